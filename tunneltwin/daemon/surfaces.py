"""Where the daemon reports (status, plan, forecast, KPIs, alerts) and operators command:
the surfaces, and the alerts on their way to them. Reporting never blocks control."""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import structlog

from kernel.clock import SiteClock
from kernel.errors import PlantError
from kernel.operator import OperatorDesk
from tunneltwin.daemon.metrics import Metrics
from tunneltwin.daemon.stats import Stats

log = structlog.get_logger()


class Surface(Protocol):
    """A reporting and operator server (OPC UA, MQTT)."""

    async def start(self, desk: OperatorDesk, alert: Callable[[str, str], None]) -> None: ...

    async def publish(self, report: dict[str, Any]) -> None: ...

    async def alert(self, alert: dict[str, Any]) -> None: ...

    async def stop(self, failure: str | None = None) -> None:
        """Say "stopped", or "offline" with ``failure`` when the daemon ends on an error."""
        ...


class Bulletin:
    """The surfaces and the alerts: every alert is logged, counted, kept for the status report,
    pushed to every surface with the next report, and kept for the tick's audit record."""

    def __init__(self, surfaces: Sequence[Surface], stats: Stats, metrics: Metrics,
                 clock: SiteClock | None = None) -> None:
        self.surfaces = list(surfaces)
        self.stats, self.metrics, self.clock = stats, metrics, clock or SiteClock()
        self.alerts: deque[dict[str, Any]] = deque(maxlen=50)
        self._unsent: list[dict[str, Any]] = []  # alerts not yet pushed to the surfaces
        self._tick: list[dict[str, Any]] = []  # raised during the tick in hand, for the audit

    async def start(self, desk: OperatorDesk) -> None:
        """A surface that cannot start is alerted and left out."""
        for surface in list(self.surfaces):
            try:
                await surface.start(desk, self.alert)
            except PlantError as exc:
                self.surfaces.remove(surface)
                self.alert("report_unavailable", f"{type(surface).__name__}: {exc}")

    async def stop(self, failure: str | None = None) -> None:
        for surface in self.surfaces:
            with contextlib.suppress(PlantError):  # the report link may be down; control is over
                await surface.stop(failure)

    def alert(self, kind: str, message: str) -> None:
        when = self.stats.last  # the plant time of the last tick, with the site's offset
        entry = {"time": self.clock.stamp(when) if when else "", "kind": kind, "message": message}
        self.alerts.append(entry)
        self.metrics.alerts(kind).inc()
        log.warning("alert", kind=kind, message=message)
        self._unsent.append(entry)
        self._tick.append(entry)

    def tick_alerts(self) -> list[dict[str, Any]]:
        """The alerts raised since the last call (one tick's, for its audit record)."""
        alarms, self._tick = self._tick, []
        return alarms

    async def publish(self, rep: dict[str, Any]) -> None:
        rep["status"]["alerts"] = list(self.alerts)[-10:]
        unsent, self._unsent = self._unsent, []
        for surface in self.surfaces:
            try:
                for entry in unsent:
                    await surface.alert(entry)
                await surface.publish(rep)
            except PlantError as exc:  # reporting must never stop control
                log.warning("report not published", error=str(exc))
