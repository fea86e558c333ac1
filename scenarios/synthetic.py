"""A synthetic plant year: dry-weather diurnal inflow, rain events and a price curve.

Its statistics are fitted to recorded data (``fit``), stored in scenarios/data/generator.toml,
so the project runs with no external file. Output is per control step.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from scenarios.recorded import RecordedData
from tunneltwin.site import read_toml

GENERATOR_FILE = Path(__file__).parent / "data" / "generator.toml"


class GeneratorParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    dry_mean_m3h: float = Field(gt=0)
    diurnal_factor: list[float] = Field(min_length=24, max_length=24, description="by local hour")
    noise_rel_sd: float = Field(ge=0)
    noise_ar1: float = Field(ge=0, lt=1)
    rain_events_per_week: float = Field(ge=0)
    rain_peak_factor: float = Field(ge=1)
    rain_decay_h: float = Field(gt=0)
    price_hourly_eur_per_kwh: list[float] = Field(min_length=24, max_length=24)
    price_day_rel_sd: float = Field(ge=0)
    price_noise_rel_sd: float = Field(ge=0)


def load_params(path: Path = GENERATOR_FILE) -> GeneratorParams:
    return GeneratorParams.model_validate(read_toml(path))


def _hourly(values: np.ndarray, stamps: list[datetime]) -> np.ndarray:
    hours = np.array([(t - timedelta(seconds=1)).hour for t in stamps])
    return np.array([values[hours == h].mean() for h in range(24)])


def fit(data: RecordedData, dry_day_max_inflow_m3: float, price_key: str = "normal") -> GeneratorParams:
    """Fit the generator to recorded data: dry days give the diurnal cycle and noise."""
    per_day = round(86400 / data.step_s)
    inflow = data.inflow_m3h[1:]
    stamps = data.timestamps[1:]
    days = len(inflow) // per_day
    daily = inflow[: days * per_day].reshape(days, per_day)
    dry = daily.sum(axis=1) * data.step_s / 3600 < dry_day_max_inflow_m3
    dry_rows = np.repeat(dry, per_day)
    dry_inflow = inflow[: days * per_day][dry_rows]
    dry_stamps = [t for t, d in zip(stamps, dry_rows, strict=False) if d]
    profile = _hourly(dry_inflow, dry_stamps)
    mean = float(dry_inflow.mean())
    expected = mean * profile[[(t - timedelta(seconds=1)).hour for t in dry_stamps]] / profile.mean()
    resid = dry_inflow / expected - 1
    wet = inflow[: days * per_day][~dry_rows]
    prices = data.prices_eur_per_kwh[price_key][1:]
    price_daily = prices[: days * per_day].reshape(days, per_day).mean(axis=1)
    return GeneratorParams(
        dry_mean_m3h=mean, diurnal_factor=list(profile / profile.mean()),
        noise_rel_sd=float(resid.std()), noise_ar1=float(np.clip(np.corrcoef(resid[1:], resid[:-1])[0, 1], 0, 0.99)),
        rain_events_per_week=float(7 * max(1, (~dry).sum() // 3) / days) if (~dry).any() else 0.0,
        rain_peak_factor=float(np.percentile(wet, 95) / mean) if wet.size else 2.0,
        rain_decay_h=24.0,
        price_hourly_eur_per_kwh=list(_hourly(prices, stamps)),
        price_day_rel_sd=float(price_daily.std() / price_daily.mean()),
        price_noise_rel_sd=float(np.std(prices[: days * per_day] / np.repeat(price_daily, per_day) - 1)))


def dry_inflow(params: GeneratorParams, start: datetime, steps: int, step_s: float,
               rng: np.random.Generator) -> np.ndarray:
    """Diurnal dry-weather inflow with AR(1) noise; step k ends at start + (k+1) dt."""
    hours = np.array([(start + timedelta(seconds=(k + 0.5) * step_s)).hour for k in range(steps)])
    base = params.dry_mean_m3h * np.asarray(params.diurnal_factor)[hours]
    noise = np.zeros(steps)
    sd = params.noise_rel_sd * np.sqrt(1 - params.noise_ar1**2)
    for k in range(1, steps):
        noise[k] = params.noise_ar1 * noise[k - 1] + rng.normal(0, sd)
    return np.asarray(base * np.clip(1 + noise, 0.3, None))


def storm_shape(steps: int, step_s: float, start_h: float, duration_h: float, multiplier: float,
                decay_h: float) -> np.ndarray:
    """Multiplier over time: a 1 h rise, a plateau, then exponential decay back to 1."""
    t_h = (np.arange(steps) + 0.5) * step_s / 3600 - start_h
    rise = np.clip(t_h, 0, 1)
    plateau = np.where(t_h <= duration_h, 1.0, np.exp(-(t_h - duration_h) / decay_h))
    return np.asarray(1 + (multiplier - 1) * rise * plateau * (t_h >= 0))


def random_rain(params: GeneratorParams, steps: int, step_s: float, rng: np.random.Generator) -> np.ndarray:
    """Rain events at a fitted weekly rate, each a storm shape of random size."""
    factor = np.ones(steps)
    weeks = steps * step_s / (7 * 86400)
    for _ in range(rng.poisson(params.rain_events_per_week * weeks)):
        start_h = rng.uniform(0, steps * step_s / 3600)
        size = 1 + (params.rain_peak_factor - 1) * rng.uniform(0.3, 1.0)
        factor *= storm_shape(steps, step_s, start_h, rng.uniform(2, 12), size, params.rain_decay_h)
    return factor


def prices(params: GeneratorParams, start: datetime, steps: int, step_s: float,
           rng: np.random.Generator) -> np.ndarray:
    """Hourly prices (constant within the hour) from the fitted daily shape and spreads."""
    out = np.empty(steps)
    day_level: dict[object, float] = {}
    hour_noise: dict[object, float] = {}
    for k in range(steps):
        t = start + timedelta(seconds=(k + 0.5) * step_s)
        day = day_level.setdefault(t.date(), float(rng.lognormal(0, params.price_day_rel_sd)))
        key = (t.date(), t.hour)
        noise = hour_noise.setdefault(key, float(rng.normal(0, params.price_noise_rel_sd)))
        out[k] = params.price_hourly_eur_per_kwh[t.hour] * day * (1 + noise)
    return out


def write_params(params: GeneratorParams, path: Path, source: str) -> None:
    from tunneltwin.site_io import write_toml

    write_toml(params.model_dump(), path, [f"Synthetic generator statistics fitted to {source}",
                                           "with `tunneltwin fit-generator DATAFILE --out FILE`."])
