"""The control daemon's lifecycle (uvicorn's shape): connect, tick, reconnect, shut down.

One tick: read telemetry, decide off the event loop, write setpoints, check the read-back.
The plant port owns the clock: in lockstep ``step`` asks for the next interval, on a wall
clock it waits for it. Only our PlantError family is caught; anything else is a bug.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import structlog

from adapters.port import PlantPort, check_readback
from controller.base import Controller
from controller.baseline import BaselineController
from scenarios.kpis import percentiles
from tunneltwin.contracts import Observation, Setpoints
from tunneltwin.errors import PlantError, PlantTimeout, PlantUnavailable, WriteRejected

log = structlog.get_logger()
T = TypeVar("T")
RETRY_S = 1.0


@dataclass
class Stats:
    """What the daemon saw and did; energy and cost from telemetry (instantaneous power x interval)."""

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

    def record(self, obs: Observation, decide_s: float, io_s: float) -> None:
        tel = obs.telemetry
        self.ticks += 1
        self.first = self.first or tel.time
        self.last = tel.time
        self.level_min_m = min(self.level_min_m, tel.level_m)
        self.level_max_m = max(self.level_max_m, tel.level_m)
        kwh = sum(p.power_kw for p in tel.pumps) * self.step_h
        self.energy_kwh += kwh
        self.cost_eur += kwh * (obs.prices.eur_per_kwh[0] if obs.prices.eur_per_kwh else 0.0)
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


class Service:
    def __init__(self, port: PlantPort, controller: Controller, fallback: BaselineController,
                 step_s: float, max_ticks: int | None = None, reconnect_max_s: float = 30.0) -> None:
        self.port, self.controller, self.fallback = port, controller, fallback
        self.max_ticks = max_ticks
        self.reconnect_max_s = reconnect_max_s
        self.stats = Stats(step_s / 3600)
        self.stopping = asyncio.Event()

    def stop(self) -> None:
        """Finish the tick in hand, then close (SIGTERM/SIGINT)."""
        self.stopping.set()

    async def run(self) -> Stats:
        t0 = time.perf_counter()
        await self._connect()
        try:
            while not self.stopping.is_set() and (self.max_ticks is None or self.stats.ticks < self.max_ticks):
                if not await self._cycle():
                    break
        finally:
            await self.port.close()
            self.stats.wall_s = time.perf_counter() - t0
        log.info("daemon stopped", **self.stats.summary())
        return self.stats

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
        sp = await asyncio.to_thread(self._decide, obs)
        t2 = time.perf_counter()
        try:
            check_readback(sp, await self.port.write(sp))
        except WriteRejected as exc:
            self.stats.write_rejections += 1
            log.error("setpoints not accepted", error=str(exc), time=str(obs.telemetry.time))
        decide_s = t2 - t1
        self.stats.record(obs, decide_s, time.perf_counter() - t2 + t1 - t0)
        log.info("tick", time=str(obs.telemetry.time), level_m=round(obs.telemetry.level_m, 3),
                 decide_s=round(decide_s, 3), on=[p.id for p in sp.pumps if p.on])

    def _decide(self, obs: Observation) -> Setpoints:
        """Every tick gets a command: a controller that fails hands this tick to the baseline."""
        self.fallback.observe(obs.telemetry)
        try:
            return self.controller.decide(obs)
        except Exception:  # any solver or model failure: the plant must not be left uncommanded
            self.stats.fallbacks += 1
            log.exception("controller failed; baseline decides this tick")
            return self.fallback.decide(obs)

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
