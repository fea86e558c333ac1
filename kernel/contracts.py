"""Typed data that crosses package boundaries: telemetry out of the plant, setpoints in.

Units are in the field names. NaN and infinity are refused where a value enters, so
they can never reach the twin or the solver.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


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

    def pump(self, pump_id: str) -> PumpTelemetry:
        return next(p for p in self.pumps if p.id == pump_id)


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


class Observation(_Frozen):
    """Everything a controller may use at one decision: measured state and known prices."""

    telemetry: Telemetry
    prices: PriceCurve
