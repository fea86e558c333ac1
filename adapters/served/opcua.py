"""The twin served as an OPC UA server, its node model built from a tag map.

Built from the map, the same code serves our own model (config/tags-opcua.toml) and a
field gateway's (config/tags-opcua-field.toml), which is how the field map is tested.
Lockstep: a write of ``step.request`` = done + 1 applies the setpoint nodes and advances
the twin one interval before the write is answered. With ``speed`` > 0 the twin instead
advances on a scaled wall clock (900: 15 plant minutes per second).
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from asyncua import Node, Server, ua
from asyncua.common.callback import CallbackType, ServerItemCallback

from adapters.opcua_common import VARIANTS, ServerSecurity, secure_server, split_path, users
from adapters.pki import SIMULATOR_URI
from adapters.served.snapshot import Snapshot
from adapters.served.stepper import Stepper
from adapters.tagmap import SETPOINT, Binding, TagMap, bindings
from controller.forecast import ExternalInflow
from kernel.contracts import Observation, PumpSetpoint, Setpoints
from twin.lockstep import LockstepPlant

log = structlog.get_logger()
Key = tuple[str, str, str | None]
SERVED = ("station", "pump", "setpoint", "step", "forecast")


class OpcuaSimulator:
    def __init__(self, plant: LockstepPlant, tags: TagMap, endpoint: str, speed: float = 0.0,
                 security: ServerSecurity | None = None, forecast: ExternalInflow | None = None) -> None:
        self.plant, self.tags, self.endpoint, self.speed = plant, tags, endpoint, speed
        self.forecast = forecast  # served on the map's [forecast] nodes, if it has them
        self.security = security
        self.server = Server(user_manager=users(security))
        self.nodes: dict[Key, Node] = {}
        self.bound: dict[Key, Binding] = {}
        self._folders: dict[str, Node] = {}
        self._task: asyncio.Task[None] | None = None
        self.stepper = Stepper(plant, self._read_setpoints, self._publish_now, speed)
        self.accepted = plant.held()  # the last setpoints the drive took; a refused write goes back to them

    async def start(self) -> None:
        await self.server.init()
        self.server.set_endpoint(self.endpoint)
        self.server.set_server_name("tunneltwin simulator")
        await secure_server(self.server, self.security, SIMULATOR_URI)
        ns = await self.server.register_namespace(self.tags.namespace)
        for b in bindings(self.tags, self.plant.twin.ids, SERVED, self.plant.setup.site.clock):
            key = (b.table, b.field, b.pump)
            self.nodes[key], self.bound[key] = await self._add(b, ns), b
        await self._write_setpoints(self.accepted)
        await self._publish(self.plant.observe())
        self.server.subscribe_server_callback(CallbackType.PostWrite, self._on_write)
        await self.server.start()
        if self.speed > 0:
            self._task = asyncio.create_task(self.stepper.wallclock())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
        await self.server.stop()

    # -- address space ---------------------------------------------------------------

    async def _add(self, b: Binding, ns: int) -> Node:
        variant = VARIANTS.get(b.dimension, ua.VariantType[b.tag.datatype or "Double"])
        array = b.field == "prices" or (b.table == "forecast" and b.dimension == "flow")
        initial = ua.Variant([] if array else _zero(variant), variant, is_array=array)
        if b.tag.node:
            parent, name, nodeid = await self._folder("Tags", ns), b.tag.node, ua.NodeId.from_string(b.tag.node)
        else:
            *folders, name = split_path(b.tag.path or "")
            parent, nodeid = await self._folder("/".join(folders), ns), ua.NodeId(b.tag.path, ns)
        node = await parent.add_variable(nodeid, ua.QualifiedName(name, ns), initial)
        if b.table in ("setpoint", "step") and b.field != "done":
            await node.set_writable()
        return node

    async def _folder(self, path: str, ns: int) -> Node:
        if path in self._folders:
            return self._folders[path]
        parent = self.server.nodes.objects
        if "/" in path:
            head, _, _ = path.rpartition("/")
            parent = await self._folder(head, ns)
        name = path.rpartition("/")[2]
        node = self._folders[path] = await parent.add_object(ua.NodeId(f"{path}/", ns), ua.QualifiedName(name, ns))
        return node

    # -- serving the twin --------------------------------------------------------------

    async def _publish(self, obs: Observation) -> None:
        snap = Snapshot(self.plant, obs, self.forecast)
        for key, b in self.bound.items():
            value = snap.value(b)
            if value is not None:
                await self.server.write_attribute_value(self.nodes[key].nodeid,
                                                        ua.DataValue(self._variant(b, b.encode(value))))

    def _variant(self, b: Binding, raw: Any) -> ua.Variant:
        variant = VARIANTS.get(b.dimension, ua.VariantType[b.tag.datatype or "Double"])
        if variant == ua.VariantType.String:
            raw = str(raw)
        return ua.Variant(raw, variant, is_array=isinstance(raw, list))

    async def _on_write(self, event: ServerItemCallback, _dispatcher: Any) -> None:
        request = self.nodes.get(("step", "request", None))
        for item, status in zip(event.request_params.NodesToWrite, event.response_params, strict=False):
            if not status.is_good():
                continue
            if request is not None and item.NodeId == request.nodeid:
                await self.stepper.step_to(int(item.Value.Value.Value))
            elif any(item.NodeId == self.nodes[k].nodeid for k in self.nodes if k[0] == "setpoint"):
                await self._check_setpoints()

    async def _check_setpoints(self) -> None:
        """Like a PLC, refuse a command the drive cannot carry out: the nodes go back to what is held."""
        wanted = await self._read_setpoints()
        if self.stepper.refuses(wanted):
            await self._write_setpoints(self.accepted)
        else:
            self.accepted = wanted

    async def _publish_now(self) -> None:
        await self._publish(self.plant.observe())

    async def _read_setpoints(self) -> Setpoints:
        out = []
        for pid in self.plant.twin.ids:
            got = {f: self.bound[k].decode(await self.nodes[k].read_value())
                   for f in SETPOINT if (k := ("setpoint", f, pid)) in self.nodes}
            on = bool(got["on"])
            out.append(PumpSetpoint(id=pid, on=on, freq_hz=float(got["freq_hz"]) if on else 0.0,
                                    stop_below_m=float(got.get("stop_below_m", 0.0)) if on else 0.0))
        return Setpoints(pumps=tuple(out))

    async def _write_setpoints(self, sp: Setpoints) -> None:
        for p in sp.pumps:
            for name in SETPOINT:
                if ("setpoint", name, p.id) not in self.nodes:
                    continue
                value, b = getattr(p, name), self.bound[("setpoint", name, p.id)]
                await self.server.write_attribute_value(self.nodes[("setpoint", name, p.id)].nodeid,
                                                        ua.DataValue(self._variant(b, b.encode(value))))


def _zero(variant: ua.VariantType) -> Any:
    from datetime import datetime

    return {ua.VariantType.DateTime: datetime(2000, 1, 1), ua.VariantType.String: "",
            ua.VariantType.Boolean: False}.get(variant, 0)
