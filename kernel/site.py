"""Site configuration: one TOML file describes one pump station.

Every plant number lives here, not in code, so another station is another file. The
models are strict (extra keys are errors) because a typo in a plant config must not
silently fall back to a default.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from kernel.clock import SiteClock, zone
from kernel.settings import CONFIG_DIR, read_toml, validated

DEFAULT_SITE = CONFIG_DIR / "site.toml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Curve50Hz(_Strict):
    """Manufacturer's curve at 50 Hz: head and electrical input power against flow."""

    flow_m3h: list[float]
    head_m: list[float]
    power_kw: list[float]

    @model_validator(mode="after")
    def _same_length(self) -> Curve50Hz:
        if not (len(self.flow_m3h) == len(self.head_m) == len(self.power_kw) >= 3):
            raise ValueError("flow_m3h, head_m and power_kw need the same length (>= 3)")
        falls = [i for i, (q0, q1) in enumerate(itertools.pairwise(self.flow_m3h), 1) if q1 < q0]
        if falls or self.flow_m3h[0] < 0 or self.flow_m3h[-1] <= self.flow_m3h[0]:
            where = f"falls at point {falls[0]}" if falls else f"runs {self.flow_m3h[0]}..{self.flow_m3h[-1]}"
            raise ValueError(f"flow_m3h must rise from 0 or more; it {where}")
        if min(self.head_m) <= 0 or min(self.power_kw) <= 0:
            raise ValueError("head_m and power_kw must be positive (a datasheet curve)")
        return self

    def best_efficiency_flow_m3h(self) -> float:
        """The curve's flow of highest efficiency (flow x head / power) at 50 Hz; by the
        affinity laws it scales with speed."""
        eff = [q * h / p for q, h, p in zip(self.flow_m3h, self.head_m, self.power_kw, strict=True)]
        return self.flow_m3h[eff.index(max(eff))]


class PumpType(_Strict):
    """A pump model with its calibrated installation parameters.

    System head seen by the pump:
    ``L2 + head_offset_m - level_gain * min(L1, Ls) - max(L1 - Ls, 0) + loss_m_per_m3h2 * Q**2``
    with Ls = ``level_gain_until_m``. ``level_gain`` > 1 stands for suction losses that grow as
    the tunnel empties (fitted); above Ls the inlet is well submerged and head follows L1 1:1.
    Ls defaults to the top of the recorded levels, so the fit is never extrapolated upwards.
    """

    curve_50hz: Curve50Hz
    rated_power_kw: float = Field(gt=0)
    head_offset_m: float = 4.0
    level_gain: float = Field(default=1.0, ge=0)
    level_gain_until_m: float = Field(default=2.5, ge=0)
    loss_m_per_m3h2: float = Field(default=0.0, ge=0)
    power_factor: float = Field(default=1.0, gt=0)
    drive_min_hz: float = Field(default=40.0, gt=0)
    drive_max_hz: float = Field(default=50.0, gt=0)

    @model_validator(mode="after")
    def _drive_band(self) -> PumpType:
        if self.drive_min_hz >= self.drive_max_hz:
            raise ValueError(f"drive_min_hz {self.drive_min_hz} must be below drive_max_hz {self.drive_max_hz}")
        return self


class Pump(_Strict):
    """One installed pump. The scales absorb what differs between pumps of one type
    (wear, meter calibration); they are fitted by ``tunneltwin calibrate``."""

    id: str
    type: str
    available: bool = True
    flow_scale: float = Field(default=1.0, gt=0.5, lt=1.5)
    power_scale: float = Field(default=1.0, gt=0.5, lt=1.5)


class Tunnel(_Strict):
    """Official level -> volume table; must be non-decreasing in both columns."""

    level_m: list[float]
    volume_m3: list[float]

    @model_validator(mode="after")
    def _monotonic(self) -> Tunnel:
        pairs = list(zip(self.level_m, self.volume_m3, strict=True))
        for (l0, v0), (l1, v1) in itertools.pairwise(pairs):
            if l1 <= l0 or v1 < v0:
                raise ValueError(f"table not increasing at level {l1} m (volume {v1} m3)")
        if len(pairs) < 2 or self.volume_m3[-1] <= self.volume_m3[0]:
            raise ValueError("the table needs at least two rows and a volume that grows with the level")
        return self


class Rules(_Strict):
    """Operating rules (plant-facts.md). Hard unless the name says soft."""

    min_level_m: float = Field(default=0.5, ge=0)
    max_level_m: float = Field(default=8.0, gt=0)
    alarm_level_m: float = Field(default=7.2, gt=0)
    min_on_s: float = Field(default=7200.0, ge=0)
    min_off_s: float = Field(default=7200.0, ge=0)
    min_freq_hz: float = Field(default=47.8, gt=0)
    max_freq_hz: float = Field(default=50.0, gt=0)
    max_outflow_m3h: float = Field(default=16000.0, gt=0)
    min_pumps_on: int = Field(default=1, ge=0)
    emptying_level_m: float = Field(
        default=0.7, ge=0,
        description="daily emptying counts when the day's lowest level is at or below this",
    )
    dry_day_max_inflow_m3: float = Field(
        default=110000.0, ge=0, description="a day with less inflow than this is a dry day"
    )
    f2_step_soft_m3h: float = Field(
        default=3000.0, gt=0,
        description="the treatment plant's tolerance: F2 changing more than this in one interval is a jump",
    )

    @model_validator(mode="after")
    def _ordered(self) -> Rules:
        levels = (self.min_level_m, self.emptying_level_m, self.alarm_level_m, self.max_level_m)
        if not levels[0] < levels[1] < levels[2] <= levels[3]:
            raise ValueError(f"levels must be min_level_m < emptying_level_m < alarm_level_m <= max_level_m; "
                             f"got {' , '.join(map(str, levels))}")
        if self.min_freq_hz >= self.max_freq_hz:
            raise ValueError(f"min_freq_hz {self.min_freq_hz} must be below max_freq_hz {self.max_freq_hz}")
        return self


class Timing(_Strict):
    control_interval_s: float = Field(default=900.0, gt=0)
    internal_step_s: float = Field(default=60.0, gt=0, le=60.0)
    ramp_s: float = Field(default=30.0, ge=0)


def _known_zone(name: str) -> str:
    zone(name)
    return name


class Site(_Strict):
    name: str
    # the zone of the plant's wall clock: naive times in its files are read in it, and
    # inside every time is its standard time (kernel/clock.py)
    timezone: Annotated[str, AfterValidator(_known_zone)] = "UTC"
    discharge_level_m: float = 30.0
    tunnel: Tunnel
    pump_types: dict[str, PumpType]
    pumps: list[Pump]
    rules: Rules = Rules()
    timing: Timing = Timing()

    @model_validator(mode="after")
    def _consistent(self) -> Site:
        ids = [p.id for p in self.pumps]
        if not any(p.available for p in self.pumps):
            raise ValueError("the site needs at least one pump, and one of them available")
        if len(set(ids)) != len(ids):
            raise ValueError(f"duplicate pump ids in {ids}")
        for pump in self.pumps:
            if pump.type not in self.pump_types:
                raise ValueError(f"pump {pump.id} has unknown type {pump.type!r}")
        if self.timing.control_interval_s % self.timing.internal_step_s:
            raise ValueError("control_interval_s must be a multiple of internal_step_s")
        return self

    def pump_type(self, pump_id: str) -> PumpType:
        return self.pump_types[next(p.type for p in self.pumps if p.id == pump_id)]

    @property
    def clock(self) -> SiteClock:
        return SiteClock(self.timezone)

    @property
    def pump_ids(self) -> list[str]:
        return [p.id for p in self.pumps]


def parse_site(data: dict[str, Any], path: Path) -> Site:
    return validated(Site, data, path)


def load_site(path: Path | None = None) -> Site:
    """Load a site TOML; ``None`` means the bundled reference plant."""
    path = path or DEFAULT_SITE
    return parse_site(read_toml(path), path)
