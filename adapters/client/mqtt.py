"""The plant port over MQTT; telemetry topics are cached as their latest JSON object, and a
read assembles telemetry from the cache through the tag map.
"""


from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import structlog

from adapters.client.assemble import Assembler
from adapters.client.port import readback
from adapters.mqtt_link import MqttLink
from adapters.tagmap import Binding, TagMap, bindings
from kernel.contracts import Observation, Setpoints
from kernel.errors import PlantError, PlantTimeout, TagMapError
from kernel.site import Site

log = structlog.get_logger()


class MqttPort:
    name = "mqtt"

    def __init__(self, link: MqttLink, tags: TagMap, site: Site, timeout_s: float = 10.0,
                 poll_s: float = 0.5) -> None:
        self.link, self.tags, self.site = link, tags, site
        self.timeout_s, self.poll_s = timeout_s, poll_s
        self.reads_stop_levels = not tags.readback or "stop_below_m" in tags.readback  # none: echoes the command
        self.reads = bindings(tags, site.pump_ids, ("station", "pump"), site.clock)
        self.writes = bindings(tags, site.pump_ids, ("setpoint",), site.clock)
        self.readback = bindings(tags, site.pump_ids, ("readback",), site.clock)
        self.steps = bindings(tags, site.pump_ids, ("step",), site.clock)
        self.forecasts = bindings(tags, site.pump_ids, ("forecast",), site.clock)
        self.cache: dict[str, dict[str, Any]] = {}
        self.seq: dict[str, int] = {}  # messages seen per topic, to tell a fresh read-back
        self.changed = asyncio.Event()
        self.assembler = Assembler(site)
        self.last_time: Any = None
        link.handlers.append(self._on_message)

    async def connect(self) -> None:
        await self.link.connect(timeout_s=self.timeout_s)
        watched = self.reads + self.readback + [b for b in self.steps if b.field != "request"]
        await self.link.subscribe({b.tag.topic or "" for b in watched + self.forecasts})  # a forecast is not waited for
        try:
            await self._until(lambda: not self._missing(watched), "the plant's first messages")
        except PlantTimeout as exc:
            await self.close()
            raise TagMapError(f"MQTT {self.link.host}:{self.link.port}: nothing for "
                              + "; ".join(self._missing(watched))) from exc

    def restore_timers(self, timers: dict[str, dict[str, Any]]) -> bool:
        self.assembler.seed(timers)
        return True

    async def close(self) -> None:
        await self.link.close()

    def _on_message(self, topic: str, payload: bytes) -> None:
        try:
            value = json.loads(payload)
        except (UnicodeDecodeError, json.JSONDecodeError):
            log.error("MQTT message is not JSON; ignored", topic=topic)
            return
        if isinstance(value, dict):
            self.cache[topic] = value
            self.seq[topic] = self.seq.get(topic, 0) + 1
            self.changed.set()

    def _missing(self, watched: list[Binding]) -> list[str]:
        return sorted({f"{b.where} ({b.tag.topic} .{b.tag.field})" for b in watched
                       if b.tag.field not in self.cache.get(b.tag.topic or "", {})})

    def _get(self, b: Binding) -> Any:
        raw = self.cache.get(b.tag.topic or "", {}).get(b.tag.field or "")
        if raw is None:
            raise PlantError(f"MQTT: no value for {b.where} ({b.tag.topic} .{b.tag.field})")
        return b.decode(raw)

    async def _until(self, ready: Callable[[], bool], what: str) -> None:
        deadline = asyncio.get_running_loop().time() + self.timeout_s
        while not ready():
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise PlantTimeout(f"MQTT: {what} not seen within {self.timeout_s} s")
            self.changed.clear()
            if not ready():
                try:
                    await asyncio.wait_for(self.changed.wait(), left)
                except TimeoutError:
                    continue

    # -- the port ----------------------------------------------------------------------

    async def observe(self) -> Observation:
        station = {b.field: self._get(b) for b in self.reads if b.table == "station"}
        pumps: dict[str, dict[str, Any]] = {p: {} for p in self.site.pump_ids}
        for b in self.reads:
            if b.pump:
                pumps[b.pump][b.field] = self._get(b)
        tel = self.assembler.telemetry(station, pumps)
        self.last_time = tel.time
        obs = Observation(telemetry=tel, prices=self.assembler.prices(station, tel.time))
        if not self.forecasts:
            return obs
        try:
            forecast = self.assembler.forecast({b.field: self._get(b) for b in self.forecasts})
        except PlantError as exc:  # the internal forecast decides; the daemon alarms
            return obs.model_copy(update={"inflow_forecast_problem": str(exc)})
        return obs.model_copy(update={"inflow_forecast": forecast})

    async def write(self, setpoints: Setpoints) -> Setpoints:
        ids = [sp.id for sp in setpoints.pumps]
        held = setpoints.as_dict()
        messages: dict[str, dict[str, Any]] = {}
        for b in self.writes:
            if b.pump in ids:
                value = b.encode(getattr(held[b.pump], b.field))
                messages.setdefault(b.tag.topic or "", {})[b.tag.field or ""] = value
        rb = [b for b in self.readback if b.pump in ids]
        before = {b.tag.topic or "": self.seq.get(b.tag.topic or "", 0) for b in rb}
        await asyncio.gather(*(self.link.publish(topic, json.dumps(body), timeout_s=self.timeout_s)
                               for topic, body in messages.items()))
        if not rb:
            return setpoints  # the map has no read-back topics: nothing to check against
        with contextlib.suppress(PlantTimeout):  # no fresh report: the caller compares the last one
            await self._until(lambda: all(self.seq.get(t, 0) > n for t, n in before.items()), "the read-back")
        return _setpoints(ids, rb, self._get)

    async def step(self) -> bool:
        if not self.tags.lockstep:
            return await self._wait_wallclock()
        request, done = (next(b for b in self.steps if b.field == f) for f in ("request", "done"))
        n = self._get(done) + 1
        await self.link.publish(request.tag.topic or "", json.dumps({request.tag.field: n}),
                                timeout_s=self.timeout_s)
        await self._until(lambda: self._get(done) >= n, f"step {n}")
        remaining = [b for b in self.steps if b.field == "remaining"]
        return not remaining or self._get(remaining[0]) > 0

    async def _wait_wallclock(self) -> bool:
        interval = timedelta(seconds=self.site.timing.control_interval_s)
        time_b = next((b for b in self.reads if b.field == "time"), None)
        if self.last_time is None or time_b is None:
            await asyncio.sleep(interval.total_seconds())
            return True
        while self._get(time_b) < self.last_time + interval:
            await asyncio.sleep(self.poll_s)
        return True


def _setpoints(ids: list[str], targets: list[Binding], get: Callable[[Binding], Any]) -> Setpoints:
    got: dict[str, dict[str, Any]] = {i: {} for i in ids}
    for b in targets:
        got[b.pump or ""][b.field] = get(b)
    return readback(got)
