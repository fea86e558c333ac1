"""The control daemon's lifecycle (uvicorn's shape): connect, tick, reconnect, shut down.

One tick: read telemetry, decide off the event loop, write setpoints, check the read-back.
The plant port owns the clock: in lockstep ``step`` asks for the next interval, on a wall
clock it waits for it. Only our PlantError family is caught; anything else is a bug.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

import structlog

from adapters.assemble import Assembler
from adapters.port import PlantPort, check_readback
from controller.base import Controller, Retunable
from controller.baseline import BaselineController
from scenarios.kpis import percentiles
from tunneltwin.audit import AuditLog, TickRecord
from tunneltwin.contracts import Observation, Setpoints
from tunneltwin.errors import ConfigError, PlantError, PlantTimeout, PlantUnavailable, WriteRejected
from tunneltwin.operator import OperatorCommands, OperatorDesk, for_controller, ours, tightened
from tunneltwin.report import report
from tunneltwin.site import Site
from tunneltwin.validation import Validator

log = structlog.get_logger()
T = TypeVar("T")
RETRY_S = 1.0
PRUNE_EVERY = 96  # ticks between retention passes (a day at 15 min)


@dataclass
class Stats:
    """What the daemon saw and did. Energy and cost are estimates from telemetry: the power read at
    each tick, taken as the mean over the interval it closes, at that interval's price."""

    step_h: float
    ticks: int = 0
    first: datetime | None = None
    last: datetime | None = None
    level_min_m: float = float("inf")
    level_max_m: float = float("-inf")
    energy_kwh: float = 0.0
    cost_eur: float = 0.0
    decide_s: list[float] = field(default_factory=list)
    io_s: list[float] = field(default_factory=list)  # per tick: read telemetry + write + read back
    step_s: list[float] = field(default_factory=list)  # per tick: the lockstep handshake or the wait
    fallbacks: int = 0
    write_rejections: int = 0
    comms_errors: int = 0
    reconnects: int = 0
    wall_s: float = 0.0
    _price: float | None = None

    def record(self, obs: Observation, decide_s: float, io_s: float) -> None:
        tel = obs.telemetry
        self.ticks += 1
        self.first = self.first or tel.time
        self.last = tel.time
        self.level_min_m = min(self.level_min_m, tel.level_m)
        self.level_max_m = max(self.level_max_m, tel.level_m)
        if self._price is not None:  # this reading closes the interval that the last tick's price covered
            kwh = sum(p.power_kw for p in tel.pumps) * self.step_h
            self.energy_kwh += kwh
            self.cost_eur += kwh * self._price
        self._price = obs.prices.eur_per_kwh[0] if obs.prices.eur_per_kwh else None
        self.decide_s.append(decide_s)
        self.io_s.append(io_s)

    def summary(self) -> dict[str, object]:
        return {"ticks": self.ticks, "plant_time": [str(self.first), str(self.last)],
                "level_m": [round(self.level_min_m, 3), round(self.level_max_m, 3)],
                "energy_kwh_from_telemetry": round(self.energy_kwh, 1),
                "cost_eur_from_telemetry": round(self.cost_eur, 2),
                "decide_s": percentiles(self.decide_s) if self.decide_s else {},
                "io_s": percentiles(self.io_s) if self.io_s else {},
                "step_s": percentiles(self.step_s) if self.step_s else {},
                "fallbacks": self.fallbacks, "write_rejections": self.write_rejections,
                "comms_errors": self.comms_errors, "reconnects": self.reconnects, "wall_s": round(self.wall_s, 2)}


class Surface(Protocol):
    """Where the daemon reports (status, plan, forecast, KPIs, alerts) and operators command."""

    async def start(self, desk: OperatorDesk, alert: Callable[[str, str], None]) -> None: ...

    async def publish(self, report: dict[str, Any]) -> None: ...

    async def alert(self, alert: dict[str, Any]) -> None: ...

    async def stop(self) -> None: ...


class Service:
    def __init__(self, port: PlantPort, controller: Controller, fallback: BaselineController, site: Site,
                 max_ticks: int | None = None, reconnect_max_s: float = 30.0,
                 surfaces: Sequence[Surface] = (), audit: AuditLog | None = None) -> None:
        self.port, self.controller, self.fallback, self.site = port, controller, fallback, site
        self.max_ticks = max_ticks
        self.reconnect_max_s = reconnect_max_s
        self.stats = Stats(site.timing.control_interval_s / 3600)
        self.stopping = asyncio.Event()
        self.desk = OperatorDesk(site.pump_ids, site.rules)
        self.surfaces = list(surfaces)
        self.alerts: deque[dict[str, Any]] = deque(maxlen=50)
        self._limits: dict[str, float] = {}
        self._unsent: list[dict[str, Any]] = []  # alerts not yet pushed to the surfaces
        self.audit = audit
        self.validator = Validator(site)
        self._flagged: set[tuple[str, str]] = set()
        self._tick_alerts: list[dict[str, Any]] = []  # raised during the tick in hand, for the audit
        self._audit_failing = False

    def stop(self) -> None:
        """Finish the tick in hand, then close (SIGTERM/SIGINT)."""
        self.stopping.set()

    async def run(self) -> Stats:
        t0 = time.perf_counter()
        await self._start_surfaces()
        try:
            self._restore()
            await self._connect()
            while not self.stopping.is_set() and (self.max_ticks is None or self.stats.ticks < self.max_ticks):
                if not await self._cycle():
                    break
        finally:
            await self.port.close()
            if self.audit:
                await asyncio.to_thread(self.audit.flush)
            for surface in self.surfaces:
                with contextlib.suppress(PlantError):  # the report link may be down; control is over
                    await surface.stop()
            self.stats.wall_s = time.perf_counter() - t0
        log.info("daemon stopped", **self.stats.summary())
        return self.stats

    async def _start_surfaces(self) -> None:
        """A reporting surface that cannot start is alerted and left out: reporting never blocks control."""
        for surface in list(self.surfaces):
            try:
                await surface.start(self.desk, self.alert)
            except PlantError as exc:
                self.surfaces.remove(surface)
                self.alert("report_unavailable", f"{type(surface).__name__}: {exc}")

    async def _cycle(self) -> bool:
        """One tick and the wait for the next interval; False when the plant has no more."""
        try:
            await self.tick()
            t0 = time.perf_counter()
            more = bool(await self._unless_stopped(self.port.step()))
            self.stats.step_s.append(time.perf_counter() - t0)
            return more
        except (PlantUnavailable, PlantTimeout) as exc:
            self.stats.comms_errors += 1
            log.warning("plant link lost", error=str(exc))
            await self.port.close()
            await self._connect()
            return True
        except PlantError as exc:  # the link is up but a value is unusable: retry the tick shortly
            self.stats.comms_errors += 1
            log.error("plant data unusable; tick retried", error=str(exc))
            await self._unless_stopped(asyncio.sleep(RETRY_S))
            return True

    async def tick(self) -> None:
        t0 = time.perf_counter()
        obs = await self.port.observe()
        t1 = time.perf_counter()
        obs, degrade = self._validated(obs)
        cmd = self.desk.current
        self._retune(cmd)
        controller = self.controller if cmd.optimiser_on and not degrade else self.fallback
        sp = ours(await asyncio.to_thread(self._decide, controller, for_controller(obs, cmd)), cmd)
        t2 = time.perf_counter()
        readback: Setpoints | None = None
        try:
            readback = await self.port.write(sp)
            check_readback(sp, readback)
        except WriteRejected as exc:
            self.stats.write_rejections += 1
            self.alert("write_rejected", str(exc))
        decide_s = t2 - t1
        self.stats.record(obs, decide_s, time.perf_counter() - t2 + t1 - t0)
        rep = report(obs, sp, controller, self.stats)
        await self._audit(obs, sp, readback, controller, decide_s, rep, cmd)
        log.info("tick", time=str(obs.telemetry.time), level_m=round(obs.telemetry.level_m, 3),
                 decide_s=round(decide_s, 3), on=[p.id for p in sp.pumps if p.on], controller=controller.name)
        await self._publish(rep)

    def _validated(self, obs: Observation) -> tuple[Observation, bool]:
        """Flags become alarms; a substituted level replaces the reading; True means the baseline decides."""
        checked = self.validator.check(obs.telemetry)
        now = {(f.field, f.kind) for f in checked.flags}
        for flag in checked.flags:  # an alarm when a flag appears; while it stays, the log has it
            if (flag.field, flag.kind) not in self._flagged:
                self.alert(f"telemetry_{flag.kind}", f"{flag.field}: {flag.detail}")
            log.info("telemetry flag", field=flag.field, kind=flag.kind, detail=flag.detail)
        self._flagged = now
        if checked.telemetry is not obs.telemetry:
            obs = obs.model_copy(update={"telemetry": checked.telemetry})
        return obs, checked.degrade

    def _decide(self, controller: Controller, obs: Observation) -> Setpoints:
        """Every tick gets a command: a controller that fails hands this tick to the baseline."""
        if controller is not self.fallback:
            self.fallback.observe(obs.telemetry)
        try:
            return controller.decide(obs)
        except Exception:  # any solver or model failure: the plant must not be left uncommanded
            self.stats.fallbacks += 1
            log.exception("controller failed; baseline decides this tick")
            return self.fallback.decide(obs)

    def _restore(self) -> None:
        """Resume from the audit log's state: operator commands, and pump timers for ports that derive them."""
        if self.audit is None:
            return
        if (saved := self.audit.state("operator")) is not None:
            try:
                self.desk.submit(saved)
            except ConfigError as exc:
                self.alert("state_not_restored", f"operator commands: {exc}")
        timers = self.audit.state("timers")
        assembler = getattr(self.port, "assembler", None)
        if timers and isinstance(assembler, Assembler):
            assembler.seed(timers)
            log.info("pump timers restored", pumps=len(timers))

    async def _audit(self, obs: Observation, sp: Setpoints, readback: Setpoints | None, controller: Controller,
                     decide_s: float, rep: dict[str, Any], cmd: OperatorCommands) -> None:
        alarms, self._tick_alerts = self._tick_alerts, []
        if self.audit is None:
            return
        tel = obs.telemetry
        rec = TickRecord(tel.time, controller.name, tel.model_dump(mode="json"), sp.model_dump(mode="json"),
                         readback.model_dump(mode="json") if readback else None, decide_s,
                         forecast=_summary(rep.get("forecast")), plan=rep.get("plan"),
                         overrides=_overrides(controller, tel.time), alarms=alarms, solver_status=_status(controller))
        state = {"timers": timers(obs), "operator": _command(cmd)} | ({"plan": rep["plan"]} if "plan" in rep else {})
        ok = await asyncio.to_thread(self.audit.record, rec, state)
        if ok == self._audit_failing:  # the disk started or stopped refusing: say so once
            self._audit_failing = not ok
            held = len(self.audit.backlog)
            message = "backlog written" if ok else f"cannot write (disk full?); {held} tick(s) kept in memory"
            self.alert("audit_recovered" if ok else "audit_write_failed", f"{self.audit.path}: {message}")
        if ok and self.stats.ticks % PRUNE_EVERY == 0:
            await asyncio.to_thread(self.audit.prune, tel.time)

    def _retune(self, cmd: OperatorCommands) -> None:
        """Operator limits reach every controller before the tick that follows them."""
        if cmd.limits == self._limits:
            return
        site = self.site.model_copy(update={"rules": tightened(self.site.rules, cmd.limits)})
        for c in {id(self.controller): self.controller, id(self.fallback): self.fallback}.values():
            if isinstance(c, Retunable):
                c.retune(site)
        self._limits = dict(cmd.limits)
        self.alert("limits", f"operator limits now {cmd.limits or 'the site rules'}")

    def alert(self, kind: str, message: str) -> None:
        """Log it, keep it for the status report, and push it to every surface."""
        entry = {"time": str(self.stats.last), "kind": kind, "message": message}
        self.alerts.append(entry)
        log.warning("alert", kind=kind, message=message)
        self._unsent.append(entry)
        self._tick_alerts.append(entry)

    async def _publish(self, rep: dict[str, Any]) -> None:
        rep["status"]["alerts"] = list(self.alerts)[-10:]
        unsent, self._unsent = self._unsent, []
        for surface in self.surfaces:
            try:
                for entry in unsent:
                    await surface.alert(entry)
                await surface.publish(rep)
            except PlantError as exc:  # reporting must never stop control
                log.warning("report not published", error=str(exc))

    async def _connect(self) -> None:
        """Connect, retrying with capped exponential backoff until it works or we are stopped."""
        delay = 0.5
        while True:
            try:
                await self.port.connect()
                return
            except (PlantUnavailable, PlantTimeout) as exc:
                if self.stopping.is_set():
                    raise
                self.stats.reconnects += 1
                log.warning("cannot reach the plant; retrying", error=str(exc), retry_s=delay)
                await self._unless_stopped(asyncio.sleep(delay))
                delay = min(delay * 2, self.reconnect_max_s)

    async def _unless_stopped(self, work: Coroutine[Any, Any, T]) -> T | None:
        """Await ``work`` unless a stop comes first (then None): a wall-clock wait may be 15 min."""
        task = asyncio.ensure_future(work)
        stop = asyncio.ensure_future(self.stopping.wait())
        done, _ = await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if task not in done:
            task.cancel()
            return None
        return task.result()


def timers(obs: Observation) -> dict[str, dict[str, Any]]:
    """Per pump: on, since when (plant time), starts, run hours: what a restart needs."""
    tel = obs.telemetry
    return {p.id: {"on": p.status.is_on, "since": (tel.time - timedelta(seconds=p.time_in_state_s)).isoformat(),
                   "starts": p.starts, "run_hours_h": p.run_hours_h} for p in tel.pumps}


def _command(cmd: OperatorCommands) -> dict[str, Any]:
    return {"optimiser": "on" if cmd.optimiser_on else "off", "modes": cmd.modes, "limits": cmd.limits}


def _summary(forecast: dict[str, Any] | None) -> dict[str, Any] | None:
    if not forecast:
        return None
    inflow = forecast.get("inflow_m3h") or []
    prices = forecast.get("price_eur_per_kwh") or []
    return {"inflow_m3h_next": inflow[:4], "inflow_m3h_mean": sum(inflow) / len(inflow) if inflow else None,
            "prices_known": len(prices), "price_eur_per_kwh_next": prices[:4]}


def _overrides(controller: Controller, now: datetime) -> list[dict[str, Any]]:
    sup = getattr(controller, "supervisor", None)
    if sup is None:
        return []
    recent = itertools.takewhile(lambda o: o.time == now, reversed(sup.overrides))
    return [{"rule": o.rule, "pump": o.pump_id, "detail": o.detail} for o in recent]


def _status(controller: Controller) -> str | None:
    log_ = getattr(controller, "log", None)
    return f"{log_[-1].source}: {log_[-1].status}" if log_ else None
