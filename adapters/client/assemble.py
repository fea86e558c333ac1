"""Telemetry from values read through a tag map; what a gateway does not serve is derived.

A field gateway rarely serves our volume, run hours or time in state. Volume comes from the
site's level-volume table; switch times and starts are tracked from observed transitions.
At startup the time in state is taken as zero, so minimum on/off times are honoured from
the first tick rather than assumed already served.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from kernel.contracts import QUANTILE_FIELDS, InflowForecast, PriceCurve, PumpStatus, PumpTelemetry, Telemetry
from kernel.errors import PlantError
from kernel.physics import LevelVolume
from kernel.site import Site

Values = dict[str, Any]


class PumpClock:
    """Time in state, starts and run hours of one pump, from what is observed."""

    def __init__(self) -> None:
        self.on: bool | None = None
        self.since: datetime | None = None
        self.last: datetime | None = None
        self.starts = 0
        self.run_s = 0.0

    def update(self, on: bool, now: datetime) -> None:
        if self.last is not None and self.on:
            self.run_s += max(0.0, (now - self.last).total_seconds())
        if on != self.on:
            self.starts += int(on and self.on is not None)
            self.since = now
        self.on, self.last = on, now

    def in_state_s(self, now: datetime) -> float:
        return 0.0 if self.since is None else (now - self.since).total_seconds()


class Assembler:
    def __init__(self, site: Site) -> None:
        self.site = site
        self.geometry = LevelVolume(site.tunnel)
        self.clocks = {p: PumpClock() for p in site.pump_ids}

    def seed(self, timers: dict[str, dict[str, Any]]) -> None:
        """Timers saved before a restart: a pump still in the same state keeps its switch time."""
        for pid, t in timers.items():
            if pid in self.clocks:
                clock = self.clocks[pid]
                clock.on, clock.since = bool(t["on"]), datetime.fromisoformat(t["since"])
                clock.starts, clock.run_s = int(t["starts"]), float(t["run_hours_h"]) * 3600

    def telemetry(self, station: Values, pumps: dict[str, Values]) -> Telemetry:
        now = station.get("time") or datetime.now(UTC)
        level = _number(station, "level_m")
        built = tuple(self._pump(p, pumps[p], now) for p in self.site.pump_ids)
        return Telemetry(
            time=now, level_m=level, volume_m3=station.get("volume_m3", self.geometry.volume(level)),
            inflow_m3h=_number(station, "inflow_m3h"),
            outflow_m3h=station.get("outflow_m3h", sum(p.flow_m3h for p in built)),
            overflow_m3=station.get("overflow_m3", 0.0), pumps=built)

    def _pump(self, pump_id: str, v: Values, now: datetime) -> PumpTelemetry:
        status = PumpStatus(v["status"]) if "status" in v else (
            PumpStatus.RUNNING if v["running"] else PumpStatus.OFF)
        clock = self.clocks[pump_id]
        clock.update(status.is_on, now)
        return PumpTelemetry(
            id=pump_id, status=status, freq_hz=_number(v, "freq_hz"), flow_m3h=_number(v, "flow_m3h"),
            power_kw=_number(v, "power_kw"), run_hours_h=v.get("run_hours_h", clock.run_s / 3600),
            starts=int(v.get("starts", clock.starts)),
            time_in_state_s=v.get("time_in_state_s", clock.in_state_s(now)),
            available=bool(v.get("available", True)))

    def prices(self, station: Values, now: datetime) -> PriceCurve:
        values = station.get("prices")
        if values is None:
            raise PlantError("the tag map has no 'prices' tag; configure a price source")
        return PriceCurve(start=now, step_s=self.site.timing.control_interval_s,
                          eur_per_kwh=tuple(float(x) for x in values))

    def forecast(self, values: Values) -> InflowForecast:
        """The external inflow forecast from its [forecast] fields; a PlantError says what is wrong."""
        try:
            return InflowForecast(
                start=values["time"], step_s=values.get("step_s", self.site.timing.control_interval_s),
                inflow_m3h=_series(values, "inflow_m3h"),
                quantiles={p: _series(values, name) for p, name in QUANTILE_FIELDS.items() if name in values})
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'forecast'}: {e['msg']}" for e in exc.errors())
            raise PlantError(f"[forecast] unusable: {problems}") from exc


def _series(values: Values, name: str) -> tuple[float, ...]:
    value = values.get(name)
    if not isinstance(value, list | tuple):
        raise PlantError(f"[forecast] {name} read {value!r}, not an array of flows")
    return tuple(value)


def _number(values: Values, name: str) -> float:
    value = values.get(name)
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise PlantError(f"tag {name!r} read {value!r}, not a number")
    return float(value)
