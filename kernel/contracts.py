"""Typed data that crosses package boundaries: telemetry out of the plant, setpoints in.

Units are in the field names. NaN and infinity are refused where a value enters, so
they can never reach the twin or the solver.
"""

from __future__ import annotations

import itertools
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, allow_inf_nan=False, extra="forbid")


class PumpStatus(StrEnum):
    OFF = "off"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"

    @property
    def is_on(self) -> bool:
        """Starting and running count as on for the min-on/min-off timers."""
        return self in (PumpStatus.STARTING, PumpStatus.RUNNING)


class PumpTelemetry(_Frozen):
    id: str
    status: PumpStatus
    freq_hz: float
    flow_m3h: float
    power_kw: float
    run_hours_h: float
    starts: int
    time_in_state_s: float = Field(description="time since the pump last switched on or off")
    available: bool


class Telemetry(_Frozen):
    """A SCADA-style snapshot at ``time``; flows and powers are instantaneous."""

    time: datetime
    level_m: float
    volume_m3: float
    inflow_m3h: float = Field(description="inflow estimate over the last control interval")
    outflow_m3h: float
    overflow_m3: float = Field(default=0.0, description="cumulative spilled volume")
    pumps: tuple[PumpTelemetry, ...]
    level_high_m: float | None = Field(default=None, description=(
        "where the level is an estimate (the sensor judged wrong): the highest the true level may "
        "be; None for a measured level"))

    def pump(self, pump_id: str) -> PumpTelemetry:
        return next(p for p in self.pumps if p.id == pump_id)

    def level_at_most_m(self) -> float:
        """The highest the level may be: what a day's emptying is judged by, since an estimate
        near the bottom is reported at its low end (safe for the floor, not proof of emptying)."""
        return self.level_m if self.level_high_m is None else max(self.level_m, self.level_high_m)


class PumpSetpoint(_Frozen):
    id: str
    on: bool
    freq_hz: float = 0.0
    stop_below_m: float = Field(default=0.0, ge=0.0, description=(
        "the plant stops this running pump by itself when the level falls under this, once its "
        "minimum run is done and if another pump runs (0: no stop level)"))


class Setpoints(_Frozen):
    """One command for every pump the controller wants to drive; absent pumps keep state."""

    pumps: tuple[PumpSetpoint, ...]

    def as_dict(self) -> dict[str, PumpSetpoint]:
        return {p.id: p for p in self.pumps}


class PriceCurve(_Frozen):
    """Prices known at decision time: one value per step from ``start`` (EUR/kWh)."""

    start: datetime
    step_s: float
    eur_per_kwh: tuple[float, ...]


# an external forecast's quantile columns (CSV) and fields (tag map), by probability
QUANTILE_FIELDS = {0.01: "inflow_p01_m3h", 0.1: "inflow_p10_m3h", 0.5: "inflow_p50_m3h", 0.9: "inflow_p90_m3h",
                   0.99: "inflow_p99_m3h"}


class InflowForecast(_Frozen):
    """An inflow forecast from outside (a rain radar's, a weather service's): one value per step
    from ``start``, the median or point forecast and, optionally, quantiles of the same length
    (probability -> m3/h per step), each at or over the one below it."""

    start: datetime
    step_s: float = Field(gt=0)
    inflow_m3h: tuple[float, ...] = Field(min_length=2)
    quantiles: dict[float, tuple[float, ...]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> InflowForecast:
        n = len(self.inflow_m3h)
        if bad := [p for p in self.quantiles if not 0 < p < 1]:
            raise ValueError(f"quantile {bad[0]} is not a probability between 0 and 1")
        series = {"inflow_m3h": self.inflow_m3h, **{f"quantile {p}": v for p, v in self.quantiles.items()}}
        for name, values in series.items():
            if len(values) != n:
                raise ValueError(f"{name} has {len(values)} values, inflow_m3h {n}")
            if values and min(values) < 0:
                raise ValueError(f"{name}: a negative inflow {min(values)} m3/h")
        ps = sorted(self.quantiles)
        for lo, hi in itertools.pairwise(ps):
            step = next((k for k, (a, b) in enumerate(zip(self.quantiles[lo], self.quantiles[hi], strict=True))
                         if a > b), None)
            if step is not None:
                raise ValueError(f"step {step}: quantile {lo} ({self.quantiles[lo][step]} m3/h) is over "
                                 f"quantile {hi} ({self.quantiles[hi][step]} m3/h)")
        return self


class Observation(_Frozen):
    """Everything a controller may use at one decision: measured state and known prices, and an
    external inflow forecast where the plant serves one (``inflow_forecast_problem`` says why a
    served one could not be used this time: missing or malformed)."""

    telemetry: Telemetry
    prices: PriceCurve
    inflow_forecast: InflowForecast | None = None
    inflow_forecast_problem: str | None = None
