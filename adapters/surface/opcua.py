"""The daemon's own OPC UA server: report nodes for SCADA to read, operator nodes to write.

Under Objects/Daemon (namespace urn:tunneltwin:daemon):
  Status/State, Status/Controller, Status/Time (String), Status/LevelM (Double),
  Status/Json, Plan/Json, Forecast/Json, Kpis/Json, Alerts/Last (JSON strings);
  Operator/OptimiserOn (Boolean), Operator/Pumps/<id>/Mode (String: auto | manual |
  out_of_service), Operator/Limits/<rule> (Double, 0 = the site's rule), all writable.
A write to an operator node is checked at once; a refused one is put back and alerted.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from asyncua import Node, Server, ua
from asyncua.common.callback import CallbackType, ServerItemCallback

from adapters.opcua_common import OperatorRules, ServerSecurity, operators, secure_server
from kernel.errors import ConfigError
from kernel.operator import LIMITS, OperatorCommands, OperatorDesk, describe

DAEMON_NS = "urn:tunneltwin:daemon"
REPORT = {"Status/State": ("status", "state"), "Status/Controller": ("status", "controller"),
          "Status/Time": ("status", "time"), "Status/LevelM": ("status", "level_m"),
          "Status/Json": ("status", None), "Plan/Json": ("plan", None), "Forecast/Json": ("forecast", None),
          "Kpis/Json": ("kpis", None)}


class OpcuaSurface:
    def __init__(self, endpoint: str, pump_ids: list[str], security: ServerSecurity | None = None) -> None:
        self.endpoint, self.pump_ids, self.security = endpoint, pump_ids, security
        self.server = Server(user_manager=operators(security))
        self.nodes: dict[str, Node] = {}
        self.desk: OperatorDesk | None = None
        self._alert: Callable[[str, str], None] = lambda kind, message: None

    async def start(self, desk: OperatorDesk, alert: Callable[[str, str], None]) -> None:
        self.desk, self._alert = desk, alert
        await self.server.init()
        self.server.set_endpoint(self.endpoint)
        self.server.set_server_name("tunneltwin daemon")
        await secure_server(self.server, self.security, DAEMON_NS, OperatorRules(self._refused))
        ns = await self.server.register_namespace(DAEMON_NS)
        root = await self.server.nodes.objects.add_object(ua.NodeId("Daemon", ns), ua.QualifiedName("Daemon", ns))
        for path in [*REPORT, "Alerts/Last"]:
            await self._add(root, ns, path, ua.Variant(0.0 if path.endswith("LevelM") else "", None))
        for path, value in self._operator_values(desk.current).items():
            await (await self._add(root, ns, path, value)).set_writable()
        await self._write("Status/State", "starting")
        self.server.subscribe_server_callback(CallbackType.PostWrite, self._on_write)
        await self.server.start()

    async def _add(self, root: Node, ns: int, path: str, value: ua.Variant) -> Node:
        parent = root
        parts = path.split("/")
        for depth, part in enumerate(parts[:-1], 1):
            key = "/".join(parts[:depth])
            if key not in self.nodes:
                self.nodes[key] = await parent.add_object(ua.NodeId(f"Daemon/{key}/", ns), ua.QualifiedName(part, ns))
            parent = self.nodes[key]
        node = self.nodes[path] = await parent.add_variable(ua.NodeId(f"Daemon/{path}", ns),
                                                            ua.QualifiedName(parts[-1], ns), value)
        return node

    def _operator_values(self, cmd: OperatorCommands) -> dict[str, ua.Variant]:
        out = {"Operator/OptimiserOn": ua.Variant(cmd.optimiser_on, ua.VariantType.Boolean)}
        out |= {f"Operator/Pumps/{p}/Mode": ua.Variant(cmd.modes.get(p, "auto"), ua.VariantType.String)
                for p in self.pump_ids}
        out |= {f"Operator/Limits/{n}": ua.Variant(cmd.limits.get(n, 0.0), ua.VariantType.Double) for n in LIMITS}
        smooth = -1.0 if cmd.smooth_eur_per_m3h is None else cmd.smooth_eur_per_m3h  # negative: mpc.toml's
        out["Operator/Weights/smooth_eur_per_m3h"] = ua.Variant(smooth, ua.VariantType.Double)
        return out

    async def publish(self, report: dict[str, Any]) -> None:
        for path, (part, key) in REPORT.items():
            if part in report:
                value = report[part] if key is None else report[part].get(key)
                await self._write(path, json.dumps(value) if key is None else value)

    async def alert(self, alert: dict[str, Any]) -> None:
        await self._write("Alerts/Last", json.dumps(alert))

    async def stop(self, failure: str | None = None) -> None:
        await self._write("Status/State", "stopped" if failure is None else f"offline: {failure}")
        await self.server.stop()

    async def _write(self, path: str, value: Any) -> None:
        variant = value if isinstance(value, ua.Variant) else ua.Variant(
            float(value) if path.endswith("LevelM") else str(value),
            ua.VariantType.Double if path.endswith("LevelM") else ua.VariantType.String)
        await self.server.write_attribute_value(self.nodes[path].nodeid, ua.DataValue(variant))

    def _refused(self, who: str) -> None:
        self._alert("operator_write_refused", f"OPC UA: {who} may not write (only a logged-in operator may)")

    async def _on_write(self, event: ServerItemCallback, _dispatcher: Any) -> None:
        ours = {self.nodes[p].nodeid for p in self._operator_values(OperatorCommands())}
        if self.desk is None or not any(item.NodeId in ours for item in event.request_params.NodesToWrite):
            return
        body = await self._read_command()
        who = event.user.name if event.user is not None and event.user.name else "unknown"
        try:
            cmd = self.desk.submit(body)
        except ConfigError as exc:
            self._alert("operator_command_refused", f"OPC UA, from {who}: {exc}")
            cmd = self.desk.current
        else:
            self._alert("operator_command", f"OPC UA, from {who}: {describe(cmd)}")
        for path, value in self._operator_values(cmd).items():
            await self._write(path, value)

    async def _read_command(self) -> dict[str, Any]:
        async def value(path: str) -> Any:
            return await self.nodes[path].read_value()

        modes = {p: await value(f"Operator/Pumps/{p}/Mode") for p in self.pump_ids}
        limits = {n: v for n in LIMITS if (v := await value(f"Operator/Limits/{n}"))}
        smooth = await value("Operator/Weights/smooth_eur_per_m3h")
        return {"optimiser": "on" if await value("Operator/OptimiserOn") else "off",
                "modes": {p: m for p, m in modes.items() if m != "auto"}, "limits": limits,
                "weights": {} if smooth < 0 else {"smooth_eur_per_m3h": smooth}}
