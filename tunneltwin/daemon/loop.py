"""The control daemon's lifecycle (uvicorn's shape): connect, tick, reconnect, shut down.

One tick: read telemetry, decide off the event loop, write setpoints, check the read-back.
The plant port owns the clock: in lockstep ``step`` asks for the next interval, on a wall
clock it waits for it. Only our PlantError family is caught; anything else is a bug.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

import structlog

from adapters.client.port import PlantPort, check_readback
from controller.base import Controller, Report
from controller.baseline import BaselineController
from kernel.contracts import Observation, Setpoints
from kernel.errors import ConfigError, PlantError, PlantTimeout, PlantUnavailable, WriteRejected
from kernel.operator import OperatorCommands, OperatorDesk, for_controller, ours
from kernel.site import Site
from tunneltwin.daemon.audit import AuditLog
from tunneltwin.daemon.decide import Decider
from tunneltwin.daemon.metrics import Health, Metrics, ProbeServer, observe_tick
from tunneltwin.daemon.recording import forecast_error, overrides, raw_changes, tick_record
from tunneltwin.daemon.report import report
from tunneltwin.daemon.sdnotify import notify
from tunneltwin.daemon.stats import Stats
from tunneltwin.daemon.surfaces import Bulletin, Surface
from tunneltwin.daemon.validation import PlantClock, Validator, restamped

log = structlog.get_logger()
T = TypeVar("T")
RETRY_S = 1.0
PRUNE_EVERY = 96  # ticks between retention passes (a day at 15 min)
RECALL = timedelta(days=8)  # readings a restart learns from: the forecast profile's week, and a day


class Service:
    def __init__(self, port: PlantPort, controller: Controller, fallback: BaselineController, site: Site,
                 max_ticks: int | None = None, reconnect_max_s: float = 30.0,
                 surfaces: Sequence[Surface] = (), audit: AuditLog | None = None,
                 deadline_s: float = 60.0, probe: str | None = None, stale_after_s: float = 1800.0) -> None:
        self.port, self.controller, self.fallback, self.site = port, controller, fallback, site
        self.max_ticks = max_ticks
        self.reconnect_max_s = reconnect_max_s
        self.stats = Stats(site.timing.control_interval_s / 3600, site.rules.emptying_level_m)
        self.stopping = asyncio.Event()
        self.desk = OperatorDesk(site.pump_ids, site.rules, least_outflow(fallback, site))
        self.audit = audit
        self.validator = Validator(site)
        self.metrics = Metrics(site.name)
        self.bulletin = Bulletin(surfaces, self.stats, self.metrics, site.clock)
        self.alerts = self.bulletin.alerts
        self.decider = Decider(controller, fallback, site, deadline_s, self.stats, self.metrics, self.alert)
        self.health = Health(stale_after_s)
        self.metrics.telemetry_age.set_function(self.health.telemetry_age_s)
        self.probe = ProbeServer(probe, self.metrics, self.health) if probe else None
        self._flagged: set[tuple[str, str]] = set()
        self._decided: tuple[datetime, Controller, Setpoints] | None = None  # the last decision, by plant time
        self._audit_failing = False
        self._recalled = False  # the first tick has had the audit log's readings from before it

    def stop(self) -> None:
        """Finish the tick in hand, then close (SIGTERM/SIGINT)."""
        self.stopping.set()
        self.health.stopping = True
        notify("STOPPING=1")

    async def run(self) -> Stats:
        t0 = time.perf_counter()
        if self.probe:
            await self.probe.start()
        if self.audit is not None:  # first: a command retained while we were down is newer and must win over it
            resume(self.audit, self.desk, self.port, self.validator.clock, self.alert)
        await self.bulletin.start(self.desk)
        failure: str | None = None  # a crash leaves the surfaces saying "offline" and why, not "stopped"
        try:
            await self._connect()
            if self.health.connected:
                notify("READY=1")
            while not self.stopping.is_set() and (self.max_ticks is None or self.stats.ticks < self.max_ticks):
                if not await self._cycle():
                    break
        except Exception as exc:
            failure = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            await self.port.close()
            if self.audit:
                await asyncio.to_thread(self.audit.flush)
            await self.bulletin.stop(failure)
            if self.probe:
                await self.probe.stop()
            self.stats.wall_s = time.perf_counter() - t0
        log.info("daemon stopped", **self.stats.summary())
        return self.stats

    async def _cycle(self) -> bool:
        """One tick and the wait for the next interval; False when the plant has no more."""
        try:
            await self.tick()
            t0 = time.perf_counter()
            more = bool(await unless_stopped(self.stopping, self.port.step()))
            self.stats.step_s.append(time.perf_counter() - t0)
            return more
        except (PlantUnavailable, PlantTimeout) as exc:
            self.stats.comms_errors += 1
            self.metrics.comms_errors.inc()
            self.health.connected = False
            log.warning("plant link lost", error=str(exc))
            self.alert("plant_link_lost", f"{exc}; reconnecting (the plant keeps its last setpoints)")
            await self.port.close()
            await self._connect()
            if self.health.connected:
                self.alert("plant_link_restored", f"after {self.stats.reconnects} reconnect attempt(s) in all")
            return True
        except PlantError as exc:  # the link is up but a value is unusable: no new command; retry shortly
            self.stats.comms_errors += 1
            self.metrics.comms_errors.inc()
            if ("plant_data", "unusable") not in self._flagged:
                self.alert("telemetry_unusable", f"{exc}; the plant keeps its last setpoints")
            self._flagged.add(("plant_data", "unusable"))
            log.error("plant data unusable; tick retried", error=str(exc))
            await unless_stopped(self.stopping, asyncio.sleep(RETRY_S))
            return True

    async def tick(self) -> None:
        t0 = time.perf_counter()
        obs = await self.port.observe()
        t1 = time.perf_counter()
        cmd = self.desk.current
        if self._decided is not None and self._decided[0] == obs.telemetry.time:
            # the same plant time again (the step after it failed): send the same decision, and do not
            # feed the controller's forecasts and day records the same interval twice
            controller, sp = self._decided[1], self._decided[2]
            obs = restamped(obs, self.validator.clock.behind)
        else:
            plant_time = obs.telemetry.time
            obs, degrade = self._validated(obs)
            if not self._recalled and self.audit is not None:  # a restart's first tick
                await recall(self.audit, self.decider, obs.telemetry.time, self.alert)
            self._recalled = True
            self.decider.follow(cmd)
            await self.decider.settle_late()
            controller = self.decider.choose(cmd, degrade)
            sp = ours(await self.decider.decide(controller, for_controller(obs, cmd)), cmd)
            self._decided = (plant_time, controller, sp)
        t2 = time.perf_counter()
        readback: Setpoints | None = None
        try:
            readback = await self.port.write(sp)
            check_readback(sp, readback, self.port.reads_stop_levels)
        except WriteRejected as exc:
            self.stats.write_rejections += 1
            self.alert("write_rejected", str(exc))
        decide_s = t2 - t1
        self.stats.record(obs, decide_s, time.perf_counter() - t2 + t1 - t0)
        said = controller.report()
        if controller is self.decider.controller:
            self.decider.heed_forecast(said.external_forecast, obs.inflow_forecast_problem)
        rep = report(obs, sp, controller.name, said, self.stats, self.site.clock)
        # what the plant said, where we disbelieved it (and its clock, where that runs behind)
        if raw := raw_changes(obs.telemetry, self.validator.raw, self.validator.clock.behind):
            rep["status"]["raw"] = raw
        observe_tick(self.metrics, obs, self.site.rules, time.perf_counter() - t0, decide_s, self.stats.cost_eur,
                     overrides(said, obs.telemetry.time), forecast_error(said, obs), said.status)
        await self._audit(obs, sp, readback, controller.name, said, decide_s, rep, cmd)
        self.health.last_tick = time.monotonic()
        notify("WATCHDOG=1")
        tel = obs.telemetry
        log.info("tick", time=str(tel.time), level_m=round(tel.level_m, 3), inflow_m3h=round(tel.inflow_m3h),
                 outflow_m3h=round(tel.outflow_m3h), price_eur_per_kwh=obs.prices.eur_per_kwh[:1],
                 cost_eur=round(self.stats.cost_eur, 2), decide_s=round(decide_s, 3),
                 on=[p.id for p in sp.pumps if p.on], controller=controller.name)
        await self.bulletin.publish(rep)

    def _validated(self, obs: Observation) -> tuple[Observation, bool]:
        """Flags become alarms; a substituted level replaces the reading; True means the baseline decides."""
        checked = self.validator.check(obs.telemetry)
        clock = {f.kind for f in checked.flags if f.field == "time"}
        if "stale" not in clock:
            self.health.last_fresh = time.monotonic()
        self.health.clock_went_back = "backwards" in clock
        self.metrics.plant_time.set(obs.telemetry.time.timestamp())
        self.metrics.plant_clock_behind.set(self.validator.clock.behind.total_seconds())
        now = {(f.field, f.kind) for f in checked.flags}
        for flag in checked.flags:  # an alarm when a flag appears; while it stays, the log has it
            if (flag.field, flag.kind) not in self._flagged:
                self.alert(f"telemetry_{flag.kind}", f"{flag.field}: {flag.detail}")
            log.info("telemetry flag", field=flag.field, kind=flag.kind, detail=flag.detail)
        self._flagged = now
        obs = restamped(obs, self.validator.clock.behind)  # prices and a served forecast: on the plant's clock too
        if checked.telemetry is not obs.telemetry:
            obs = obs.model_copy(update={"telemetry": checked.telemetry})
        return obs, checked.degrade

    async def _audit(self, obs: Observation, sp: Setpoints, readback: Setpoints | None, name: str, said: Report,
                     decide_s: float, rep: dict[str, Any], cmd: OperatorCommands) -> None:
        alarms = self.bulletin.tick_alerts()
        if self.audit is None:
            return
        rec, state = tick_record(obs, sp, readback, name, said, decide_s, rep, cmd, alarms, self.validator.raw,
                                 self.validator.clock.behind)
        ok = await asyncio.to_thread(self.audit.record, rec, state)
        if ok == self._audit_failing:  # the disk started or stopped refusing: say so once
            self._audit_failing = not ok
            held = len(self.audit.backlog)
            message = "backlog written" if ok else f"cannot write (disk full?); {held} tick(s) kept in memory"
            self.alert("audit_recovered" if ok else "audit_write_failed", f"{self.audit.path}: {message}")
        if ok and self.stats.ticks % PRUNE_EVERY == 0:
            await asyncio.to_thread(self.audit.prune, obs.telemetry.time)

    def alert(self, kind: str, message: str) -> None:
        """Log it, keep it for the status report, and push it to every surface."""
        self.bulletin.alert(kind, message)

    async def _connect(self) -> None:
        """Connect, retrying with capped exponential backoff until it works or we are stopped."""
        delay = 0.5
        while True:
            try:
                await self.port.connect()
                self.health.connected = True
                return
            except (PlantUnavailable, PlantTimeout) as exc:
                if self.stopping.is_set():  # told to stop while the plant was away: a clean stop, exit 0
                    log.info("stopped before the plant answered", error=str(exc))
                    return
                self.stats.reconnects += 1
                log.warning("cannot reach the plant; retrying", error=str(exc), retry_s=delay)
                await unless_stopped(self.stopping, asyncio.sleep(delay))
                delay = min(delay * 2, self.reconnect_max_s)


async def unless_stopped(stopping: asyncio.Event, work: Coroutine[Any, Any, T]) -> T | None:
    """Await ``work`` unless a stop comes first (then None): a wall-clock wait may be 15 min."""
    task = asyncio.ensure_future(work)
    stop = asyncio.ensure_future(stopping.wait())
    done, _ = await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
    stop.cancel()
    if task not in done:
        task.cancel()
        return None
    return task.result()



def resume(audit: AuditLog, desk: OperatorDesk, port: PlantPort, clock: PlantClock,
           alert: Callable[[str, str], None]) -> None:
    """Resume from the audit log's state: operator commands, how far the plant clock runs
    behind, and pump timers for ports that derive them."""
    if (timers := audit.state("timers")) is not None:  # a run before this one left its state
        alert("daemon_restarted", f"resuming from the audit log {audit.path}: operator commands "
                                  "and pump timers as the last run left them")
    if (saved := audit.state("operator")) is not None:
        try:
            desk.submit(saved)
        except ConfigError as exc:
            alert("state_not_restored", f"operator commands: {exc}")
    if (clock_state := audit.state("clock")) is not None and clock_state.get("plant_behind_s"):
        clock.behind = timedelta(seconds=float(clock_state["plant_behind_s"]))
        alert("telemetry_behind", f"the plant clock ran {clock.behind} behind the daemon's time when the last "
                                  "run stopped: its readings are moved on by that")
    if timers and port.restore_timers(timers):
        log.info("pump timers restored", pumps=len(timers))


async def recall(audit: AuditLog, decider: Decider, now: datetime, alert: Callable[[str, str], None]) -> None:
    """Before the first decision, the controllers learn from the audit log's readings of the
    ``RECALL`` before it (a first start finds none): a restart does not forget the inflow's
    profile, the forecast's errors or which days were emptied."""
    history, unread = await asyncio.to_thread(audit.telemetry_before, now, RECALL)
    if unread:
        alert("history_unreadable", f"{unread} reading(s) in the audit log {audit.path} from the {RECALL.days} "
                                    f"days before {now.isoformat()} could not be read; the controllers learn from "
                                    "the others")
    if history:
        await asyncio.to_thread(decider.recall, history)
        log.info("history recalled", readings=len(history), first=history[0].time.isoformat(),
                 last=history[-1].time.isoformat())


def least_outflow(baseline: BaselineController, site: Site) -> float:
    """The least F2 the station can run at: its smallest available pump at minimum speed, at
    the alarm level (where a pump gives the most). An operator's F2 limit under it is refused."""
    rules = site.rules
    return min(baseline.model.pump_flow_power(i, rules.min_freq_hz, rules.alarm_level_m)[0]
               for i, p in enumerate(site.pumps) if p.available)
