"""A synthetic plant year: dry-weather diurnal inflow, rain events and a price curve.

Its statistics are fitted to recorded data (``fit``), stored in scenarios/data/generator.toml,
so the project runs with no external file. Output is per control step.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from kernel.recorded import RecordedData
from kernel.settings import read_toml

GENERATOR_FILE = Path(__file__).parent / "data" / "generator.toml"


class GeneratorParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    dry_mean_m3h: float = Field(gt=0)
    diurnal_factor: list[float] = Field(min_length=24, max_length=24, description="by local hour")
    noise_rel_sd: float = Field(ge=0, description="everyday noise: stationary sd of the AR(1)")
    noise_ar1: float = Field(ge=0, lt=1, description="its correlation from one step to the next")
    noise_shock_rate: float = Field(0.0, ge=0, le=1, description="share of steps with a one-step spike")
    noise_shock_sd: float = Field(0.0, ge=0, description="relative size of a spike (sd)")
    rain_events_per_week: float = Field(ge=0)
    rain_peak_factor: float = Field(ge=1)
    rain_decay_h: float = Field(gt=0)
    price_hourly_eur_per_kwh: list[float] = Field(min_length=24, max_length=24)
    price_day_rel_sd: float = Field(ge=0)
    price_noise_rel_sd: float = Field(ge=0)


def load_params(path: Path = GENERATOR_FILE) -> GeneratorParams:
    return GeneratorParams.model_validate(read_toml(path))


def diurnal(factors: list[float], hours: np.ndarray) -> np.ndarray:
    """The hourly factors joined linearly between the hours' middles (periodic): recorded dry
    inflow changes smoothly, while the factors as steps jump up to 43 % on the hour, which
    the controller would meet as inflow drops that never happen."""
    f = np.asarray(factors)
    return np.asarray(np.interp(np.asarray(hours) % 24, np.arange(-0.5, 25.0), np.r_[f[-1], f, f[0]]))


def _mid_hours(stamps: list[datetime], step_s: float) -> np.ndarray:
    """Local hour of day (fractional) at the middle of each step stamped at its end."""
    mids = [t - timedelta(seconds=step_s / 2) for t in stamps]
    return np.array([t.hour + t.minute / 60 + t.second / 3600 for t in mids])


def _fit_noise(resid: np.ndarray) -> dict[str, float]:
    """A robust AR(1) plus jumps. Scales come from median absolute deviations of the residual
    and of its one-step change, so that a few jumps (recorded: 8 steps of 60-108 %) do not set
    the everyday noise: fitted by plain moments, it made one-interval changes three times the
    recorded ones (median 10 % against 3 %). The jumps are kept apart as one-step spikes (a
    spike is two jumps, up and back), at their own rate and size; fed through the AR(1) they
    would last hours and move whole days' totals by up to 30 % (measured: 87-128 thousand m3)."""
    def mad_sd(x: np.ndarray) -> float:
        return float(1.4826 * np.median(np.abs(x - np.median(x))))
    step = np.diff(resid)
    sd, step_sd = mad_sd(resid), mad_sd(step)
    ar1 = float(np.clip(1 - step_sd**2 / (2 * sd**2), 0.0, 0.99)) if sd > 0 else 0.0
    jumps = step[np.abs(step - np.median(step)) > 4 * step_sd]
    return {"noise_rel_sd": sd, "noise_ar1": ar1, "noise_shock_rate": jumps.size / max(2 * step.size, 1),
            "noise_shock_sd": float(np.sqrt(np.mean(jumps**2))) if jumps.size else 0.0}


def _hourly(values: np.ndarray, stamps: list[datetime]) -> np.ndarray:
    hours = np.array([(t - timedelta(seconds=1)).hour for t in stamps])
    return np.array([values[hours == h].mean() for h in range(24)])


def fit(data: RecordedData, dry_day_max_inflow_m3: float, price_key: str = "normal") -> GeneratorParams:
    """Fit the generator to recorded data: dry days give the diurnal cycle and noise."""
    stamps = data.timestamps[1:]
    daily, dry = _days(data, dry_day_max_inflow_m3)
    days, per_day = daily.shape
    inflow = daily.ravel()
    dry_rows = np.repeat(dry, per_day)
    dry_inflow = inflow[dry_rows]
    dry_stamps = [t for t, d in zip(stamps, dry_rows, strict=False) if d]
    profile = _hourly(dry_inflow, dry_stamps)
    mean = float(dry_inflow.mean())
    expected = mean * diurnal(list(profile / profile.mean()), _mid_hours(dry_stamps, data.step_s))
    resid = dry_inflow / expected - 1
    wet = inflow[~dry_rows]
    prices = data.prices_eur_per_kwh[price_key][1:]
    price_daily = prices[: days * per_day].reshape(days, per_day).mean(axis=1)
    return GeneratorParams(
        dry_mean_m3h=mean, diurnal_factor=list(profile / profile.mean()),
        **_fit_noise(resid),
        rain_events_per_week=float(7 * max(1, (~dry).sum() // 3) / days) if (~dry).any() else 0.0,
        rain_peak_factor=float(np.percentile(wet, 95) / mean) if wet.size else 2.0,
        rain_decay_h=24.0,
        price_hourly_eur_per_kwh=list(_hourly(prices, stamps)),
        price_day_rel_sd=float(price_daily.std() / price_daily.mean()),
        price_noise_rel_sd=float(np.std(prices[: days * per_day] / np.repeat(price_daily, per_day) - 1)))


def dry_inflow(params: GeneratorParams, start: datetime, steps: int, step_s: float,
               rng: np.random.Generator) -> np.ndarray:
    """Diurnal dry-weather inflow with AR(1) noise and one-step spikes; step k ends at start + (k+1) dt."""
    hours = _mid_hours([start + timedelta(seconds=(k + 1) * step_s) for k in range(steps)], step_s)
    base = params.dry_mean_m3h * diurnal(params.diurnal_factor, hours)
    kick = rng.normal(0, params.noise_rel_sd * np.sqrt(1 - params.noise_ar1**2), steps)
    noise = np.zeros(steps)
    for k in range(1, steps):
        noise[k] = params.noise_ar1 * noise[k - 1] + kick[k]
    noise += (rng.random(steps) < params.noise_shock_rate) * rng.normal(0, max(params.noise_shock_sd, 1e-12), steps)
    return np.asarray(base * np.clip(1 + noise, 0.3, None))


def generate(params: GeneratorParams, start: datetime, steps: int, step_s: float, seed: int,
             rain: bool) -> tuple[np.ndarray, np.ndarray]:
    """Inflow and prices per step. Each part draws from its own stream of the seed, so a change
    to one model (the inflow noise, say) leaves the others' series as they were."""
    inflow_rng, rain_rng, price_rng = np.random.default_rng(seed).spawn(3)
    inflow = dry_inflow(params, start, steps, step_s, inflow_rng)
    if rain:
        inflow = inflow * random_rain(params, steps, step_s, rain_rng)
    return inflow, prices(params, start, steps, step_s, price_rng)


def storm_shape(steps: int, step_s: float, start_h: float, duration_h: float, multiplier: float,
                decay_h: float) -> np.ndarray:
    """Multiplier over time: a 1 h rise, a plateau, then exponential decay back to 1."""
    t_h = (np.arange(steps) + 0.5) * step_s / 3600 - start_h
    rise = np.clip(t_h, 0, 1)
    plateau = np.where(t_h <= duration_h, 1.0, np.exp(-np.maximum(t_h - duration_h, 0.0) / decay_h))
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


def step_changes(inflow: np.ndarray) -> dict[str, float]:
    """How inflow moves from one step to the next, the figure the controller is most sensitive
    to near the bottom: the median relative change and the shares falling by 15 % and 25 %."""
    change = np.asarray(inflow[1:]) / np.asarray(inflow[:-1]) - 1
    return {"median_abs": float(np.median(np.abs(change))), "falls_15": float(np.mean(change < -0.15)),
            "falls_25": float(np.mean(change < -0.25))}


def _days(data: RecordedData, dry_day_max_inflow_m3: float) -> tuple[np.ndarray, np.ndarray]:
    """The recorded inflow as whole days (days, steps per day), and which of them are dry."""
    per_day = round(86400 / data.step_s)
    inflow = data.inflow_m3h[1:]
    daily = inflow[: inflow.size // per_day * per_day].reshape(-1, per_day)
    return daily, daily.sum(axis=1) * data.step_s / 3600 < dry_day_max_inflow_m3


def dry_days(data: RecordedData, dry_day_max_inflow_m3: float) -> list[np.ndarray]:
    """The recorded whole days under the dry-weather limit, each as its own inflow series."""
    daily, dry = _days(data, dry_day_max_inflow_m3)
    return list(daily[dry])


def step_change_report(data: RecordedData, params: GeneratorParams,
                       dry_day_max_inflow_m3: float) -> dict[str, dict[str, float]]:
    """The fit's check: one-step inflow change on the recorded dry days (mean over the days)
    and on 200 days generated from ``params``."""
    made = dry_inflow(params, data.timestamps[0], round(200 * 86400 / data.step_s), data.step_s,
                      np.random.default_rng(0))
    out = {}
    recorded = [step_changes(d) for d in dry_days(data, dry_day_max_inflow_m3)]
    if recorded:
        out["recorded dry days"] = {k: float(np.mean([r[k] for r in recorded])) for k in recorded[0]}
    out["generated, 200 days"] = step_changes(made)
    return out


def write_params(params: GeneratorParams, path: Path, source: str) -> None:
    from kernel.site_io import write_toml

    write_toml(params.model_dump(), path, [f"Synthetic generator statistics fitted to {source}",
                                           "with `tunneltwin fit-generator DATAFILE --out FILE`."])
