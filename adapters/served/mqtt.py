"""The twin served over an MQTT broker, its topics built from a tag map.

Messages are handled one at a time, in arrival order, by one task: a setpoint is checked
and echoed on its read-back topic; a step request = done + 1 applies the held setpoints
and advances one interval. Telemetry is retained, so a late subscriber sees the state.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import structlog

from adapters.mqtt_link import MqttLink
from adapters.served.snapshot import Snapshot
from adapters.served.stepper import Stepper
from adapters.tagmap import Binding, TagMap, bindings
from controller.forecast import ExternalInflow
from kernel.contracts import Setpoints
from kernel.errors import PlantError
from twin.lockstep import LockstepPlant

log = structlog.get_logger()


class MqttSimulator:
    def __init__(self, plant: LockstepPlant, tags: TagMap, link: MqttLink, speed: float = 0.0,
                 forecast: ExternalInflow | None = None) -> None:
        self.plant, self.tags, self.link, self.speed = plant, tags, link, speed
        self.forecast = forecast  # published on the map's [forecast] topics, if it has them
        ids = plant.twin.ids
        clock = plant.setup.site.clock
        self.telemetry = bindings(tags, ids, ("station", "pump", "step", "forecast"), clock)
        self.setpoints = bindings(tags, ids, ("setpoint",), clock)
        self.readback = bindings(tags, ids, ("readback",), clock)
        self.request = next((b for b in self.telemetry if b.table == "step" and b.field == "request"), None)
        self.wanted = plant.held().as_dict()
        self.inbox: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
        self._tasks: list[asyncio.Future[None]] = []
        self._last: Snapshot | None = None  # the state last published (a republish must not observe again)
        self.stepper = Stepper(plant, self._wanted, self._publish_telemetry, speed)
        link.handlers.append(lambda topic, payload: self.inbox.put_nowait((topic, payload)))
        link.on_reconnect.append(self._republish)

    async def start(self) -> None:
        await self.link.connect()
        topics = {b.tag.topic or "" for b in self.setpoints}
        if self.request:
            topics.add(self.request.tag.topic or "")
        await self.link.subscribe(topics)
        await self._publish_held(list(self.wanted))
        await self._publish_telemetry()
        self._tasks.append(asyncio.create_task(self._work()))
        if self.speed > 0:
            self._tasks.append(asyncio.create_task(self.stepper.wallclock()))

    def _republish(self) -> None:
        """A restarted broker forgot our retained state: say it again."""
        async def again() -> None:
            try:
                await self._publish_held(list(self.wanted))
                await self._publish_telemetry(observe=False)
            except PlantError as exc:
                log.warning("simulator could not republish", error=str(exc))

        self._tasks.append(asyncio.ensure_future(again()))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await self.link.close()

    async def _work(self) -> None:
        while True:
            topic, payload = await self.inbox.get()
            try:
                body = json.loads(payload)
            except (UnicodeDecodeError, json.JSONDecodeError):
                log.warning("simulator ignored a non-JSON message", topic=topic)
                continue
            if not isinstance(body, dict):
                continue
            try:
                if self.request and topic == self.request.tag.topic and self.request.tag.field in body:
                    await self.stepper.step_to(self.request.decode(body[self.request.tag.field]))
                else:
                    await self._setpoint(topic, body)
            except PlantError as exc:  # the broker went away mid-publish: the next message, or a reconnect, goes on
                log.warning("simulator could not publish", error=str(exc))

    async def _setpoint(self, topic: str, body: dict[str, Any]) -> None:
        """Take the fields of one setpoint message; refuse (echo what is held) what the drive cannot do."""
        touched, before = set(), dict(self.wanted)
        for b in self.setpoints:
            if b.tag.topic == topic and b.tag.field in body and b.pump:
                current = self.wanted[b.pump]
                value = b.decode(body[b.tag.field])
                self.wanted[b.pump] = current.model_copy(update={b.field: value})
                touched.add(b.pump)
        for pump in touched:
            if self.stepper.refuses(Setpoints(pumps=(self.wanted[pump],))):
                self.wanted[pump] = before[pump]
        await self._publish_held(sorted(touched))

    async def _wanted(self) -> Setpoints:
        return Setpoints(pumps=tuple(self.wanted.values()))

    async def _publish_telemetry(self, observe: bool = True) -> None:
        """Pump topics first, the topic that carries the step count last (ordered delivery)."""
        if observe or self._last is None:
            self._last = Snapshot(self.plant, self.plant.observe(), self.forecast)
        snap = self._last
        messages = _by_topic(self.telemetry, snap.value)
        last = {b.tag.topic or "" for b in self.telemetry if b.table == "step" and b.field == "done"}
        first = [t for t in messages if t not in last]
        await asyncio.gather(*(self.link.publish(t, json.dumps(messages[t]), retain=True) for t in first))
        for topic in sorted(last & set(messages)):
            await self.link.publish(topic, json.dumps(messages[topic]), retain=True)

    async def _publish_held(self, pumps: list[str]) -> None:
        chosen = [b for b in self.readback if b.pump in pumps]
        messages = _by_topic(chosen, lambda b: getattr(self.wanted[b.pump or ""], b.field))
        await asyncio.gather(*(self.link.publish(t, json.dumps(body), retain=True) for t, body in messages.items()))


def _by_topic(targets: list[Binding], value: Any) -> dict[str, dict[str, Any]]:
    messages: dict[str, dict[str, Any]] = {}
    for b in targets:
        v = value(b)
        if v is not None:
            raw = b.encode(v)
            messages.setdefault(b.tag.topic or "", {})[b.tag.field or ""] = (
                raw.isoformat() if hasattr(raw, "isoformat") else raw)
    return messages

