"""Scenario files (TOML) and recorded data files, turned into a ReplaySetup.

A scenario names its data source (the synthetic generator or a recorded file), period,
prices, initial state, disturbances and rule overrides. See README, "Scenario files".
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from kernel.errors import ConfigError, DataError
from kernel.physics import PlantPhysics
from kernel.settings import read_toml, validated
from kernel.site import Rules, Site
from scenarios import synthetic
from scenarios.commands import initial_running
from scenarios.loaders import load_recorded
from scenarios.replay import ReplaySetup
from twin.lockstep import Outage, SensorFault

BUNDLED_DIR = Path(__file__).parent / "data"
MAX_DAYS = 3660.0  # ten years of synthetic days at most


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Source(_Strict):
    kind: Literal["synthetic", "recorded"] = "synthetic"
    file: str | None = None  # recorded data, relative to the scenario file
    prices: str = "normal"  # recorded price series to use
    start: datetime = datetime(2025, 1, 6)
    days: float = Field(default=7.0, ge=0.125, le=MAX_DAYS)  # 3 h at least; 1e7 days hung the generator
    seed: int = 1
    rain: bool = False  # random rain events from the fitted rate
    rain_per_week: float | None = Field(default=None, ge=0, le=50)  # ... or this many a week


class Initial(_Strict):
    level_m: float = Field(default=2.0, ge=0)
    running: dict[str, float] = {"1.4": 49.0, "2.2": 49.0}


class Storm(_Strict):
    start_h: float = Field(ge=0)
    duration_h: float = Field(gt=0)
    multiplier: float = Field(ge=1)
    decay_h: float = Field(default=12.0, gt=0)


class Window(_Strict):
    start_h: float = Field(ge=0)
    duration_h: float = Field(gt=0)


class PumpOutage(Window):
    pump: str


class ScenarioFile(_Strict):
    name: str
    description: str = ""
    source: Source = Source()
    initial: Initial = Initial()
    storm: list[Storm] = []
    outage: list[PumpOutage] = []
    sensor_fault: list[Window] = []
    rules: dict[str, float] = {}


def bundled_names() -> list[str]:
    return sorted(p.stem for p in BUNDLED_DIR.glob("*.toml") if p.stem != "generator")


def load_scenario(ref: str, site: Site, prices: str | None = None, start: datetime | None = None,
                  end: datetime | None = None) -> ReplaySetup:
    """A bundled name, a scenario TOML path, or a recorded data file (.xlsx/.csv)."""
    path = Path(ref)
    if ref in bundled_names():
        path = BUNDLED_DIR / f"{ref}.toml"
    if path.suffix.lower() in (".xlsx", ".xlsm", ".csv"):
        return from_recorded(path, site, prices or "normal", start, end)
    if not path.exists():
        raise ConfigError(f"{ref}: not a bundled scenario ({', '.join(bundled_names())}) "
                          "and no such file")
    return from_spec(validated(ScenarioFile, read_toml(path), path), path, site)


def with_rules(site: Site, overrides: dict[str, float], path: Path) -> Site:
    rules = validated(Rules, site.rules.model_dump() | overrides, path)
    return site.model_copy(update={"rules": rules})


def from_recorded(path: Path, site: Site, prices: str, start: datetime | None,
                  end: datetime | None) -> ReplaySetup:
    clock = site.clock
    data = load_recorded(path, clock).window(start and clock.plant(start), end and clock.plant(end))
    if prices not in data.prices_eur_per_kwh:
        raise DataError(f"{path}: no price series {prices!r} (has {sorted(data.prices_eur_per_kwh)})")
    unknown = set(data.pump_flow_m3h) - set(site.pump_ids)
    if unknown:
        raise DataError(f"{path}: pumps {sorted(unknown)} are not in site {site.name!r}")
    return ReplaySetup(
        name=path.stem, site=site, start=data.timestamps[0], inflow_m3h=data.inflow_m3h[1:],
        price_eur_per_kwh=data.prices_eur_per_kwh[prices][1:], level_m=float(data.level_m[0]),
        running=initial_running(data, site, 0), recorded=data, price_key=prices,
        physics=PlantPhysics.from_site(site))


def from_spec(spec: ScenarioFile, path: Path, site: Site) -> ReplaySetup:
    site = with_rules(site, spec.rules, path)
    for o in spec.outage:
        if o.pump not in site.pump_ids:
            raise ConfigError(f"{path}: outage.pump = {o.pump!r}: no such pump (site has {site.pump_ids})")
    _check_running(spec.initial.running, site, path)
    if spec.source.kind == "recorded":
        if spec.source.file is None:
            raise ConfigError(f"{path}: source.file is required when source.kind = 'recorded'")
        base = from_recorded(path.parent / spec.source.file, site, spec.source.prices, None, None)
        inflow, prices, start = base.inflow_m3h, base.price_eur_per_kwh, base.start
        if not (spec.storm or spec.outage or spec.sensor_fault or "initial" in spec.model_fields_set):
            # the recorded days as they were, from their own first state: the operation recorded
            # on them is a run to compare with ("historical")
            return dataclasses.replace(base, name=spec.name)
    else:
        inflow, prices, start = _synthetic(spec, site)
    step_s = site.timing.control_interval_s
    for s in spec.storm:
        inflow = inflow * synthetic.storm_shape(len(inflow), step_s, s.start_h, s.duration_h, s.multiplier, s.decay_h)
    return ReplaySetup(
        name=spec.name, site=site, start=start, inflow_m3h=inflow, price_eur_per_kwh=prices,
        level_m=spec.initial.level_m, running=dict(spec.initial.running),
        outages=tuple(Outage(o.pump, o.start_h * 3600, (o.start_h + o.duration_h) * 3600) for o in spec.outage),
        sensor_faults=tuple(SensorFault(w.start_h * 3600, (w.start_h + w.duration_h) * 3600)
                            for w in spec.sensor_fault),
        physics=PlantPhysics.from_site(site))


def _check_running(running: dict[str, float], site: Site, path: Path) -> None:
    """The pumps running at the start: known, available, and at a speed their drive can run."""
    available = {p.id for p in site.pumps if p.available}
    for pid, hz in running.items():
        if pid not in site.pump_ids:
            raise ConfigError(f"{path}: initial.running.{pid}: no such pump (site has {site.pump_ids})")
        if pid not in available:
            raise ConfigError(f"{path}: initial.running.{pid}: the site has this pump out of service")
        lo, hi = site.rules.min_freq_hz, site.rules.max_freq_hz
        if not lo <= hz <= hi:
            raise ConfigError(f"{path}: initial.running.{pid} = {hz} Hz: outside {lo}..{hi} Hz")


def _synthetic(spec: ScenarioFile, site: Site) -> tuple[np.ndarray, np.ndarray, datetime]:
    params = synthetic.load_params()
    step_s = site.timing.control_interval_s
    steps = round(spec.source.days * 86400 / step_s)
    start = spec.source.start
    if spec.source.rain_per_week is not None:
        params = params.model_copy(update={"rain_events_per_week": spec.source.rain_per_week})
    inflow, prices = synthetic.generate(params, start, steps, step_s, spec.source.seed, spec.source.rain)
    return inflow, prices, start

