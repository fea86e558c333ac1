"""The daemon's face on an MQTT broker: retained status with a Last Will, plan, forecast,
KPIs and alerts out; operator commands in.

Topics under ``prefix`` (default tunneltwin/daemon): status, plan, forecast, kpis (all
retained, so a SCADA client that connects late sees the latest), alerts (one message per
alert), and operator (retained JSON commands, read at the next tick; see README).

Commands are taken only with ``commands`` on, which the daemon allows only where the broker
decides who may publish on the operator topic (an ACL; deploy/mosquitto/): MQTT itself does
not say who sent a message, so without one anybody who may publish there would be an operator.
With ``signatures`` every command must also be signed by a named operator's own key (HMAC,
``kernel.operator.sign``), which names them in the audit and refuses a replayed older one.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import structlog

from adapters.mqtt_link import MqttLink
from kernel.errors import ConfigError
from kernel.operator import OperatorDesk, Signatures, describe

log = structlog.get_logger()
OFFLINE = json.dumps({"state": "offline"})  # the Last Will: the broker says it when our link dies


class MqttSurface:
    def __init__(self, link: MqttLink, prefix: str = "tunneltwin/daemon", commands: bool = False,
                 signatures: Signatures | None = None) -> None:
        self.link, self.prefix, self.commands, self.signatures = link, prefix.rstrip("/"), commands, signatures
        self.desk: OperatorDesk | None = None
        self._alert: Callable[[str, str], None] = lambda kind, message: None
        link.handlers.append(self._on_message)

    def topic(self, name: str) -> str:
        return f"{self.prefix}/{name}"

    async def start(self, desk: OperatorDesk, alert: Callable[[str, str], None]) -> None:
        self.desk, self._alert = desk, alert
        await self.link.connect(will=(self.topic("status"), OFFLINE))
        if self.commands:
            await self.link.subscribe({self.topic("operator")})
        await self.link.publish(self.topic("status"), json.dumps({"state": "starting"}), retain=True)

    async def publish(self, report: dict[str, Any]) -> None:
        for name in ("status", "plan", "forecast", "kpis"):
            if name in report:
                await self.link.publish(self.topic(name), json.dumps(report[name]), retain=True)

    async def alert(self, alert: dict[str, Any]) -> None:
        await self.link.publish(self.topic("alerts"), json.dumps(alert))

    async def stop(self, failure: str | None = None) -> None:
        state = {"state": "stopped"} if failure is None else {"state": "offline", "reason": failure}
        try:
            await self.link.publish(self.topic("status"), json.dumps(state), retain=True)
        finally:
            await self.link.close()

    def _on_message(self, topic: str, payload: bytes) -> None:
        if topic != self.topic("operator") or self.desk is None or not payload:
            return
        who, name = "a publisher the broker allows", None
        try:
            message = body = json.loads(payload)
            if self.signatures is not None:
                name, body = self.signatures.check(message)
                who = f"{name} (signed)"
            cmd = self.desk.submit(body)
        except (ValueError, ConfigError) as exc:  # JSONDecodeError is a ValueError
            self._alert("operator_command_refused", f"MQTT, from {who}: {exc}")
            return
        if self.signatures is not None and name is not None:
            self.signatures.taken(name, message)
        self._alert("operator_command", f"MQTT, from {who}: {describe(cmd)}")
