"""Causal forecasts: inflow from what has been measured so far, prices from what is published.

Inflow: a diurnal profile (median of the same time slot over the last days, so one rainy
day does not become the norm), scaled by how far the last hour runs above or below it;
that ratio fades back to the profile over a few hours. A rain onset therefore lifts the
forecast at once, and a dry night after a storm does not keep it high for a day.

Until ``history_days`` days have been seen, the days missing from the median count as the
site's diurnal shape (``prior_hourly``) at the dry-weather level measured so far: the median,
over the shape, of the first FIRST_READINGS_H hours' readings and of the later ones under
WET_RATIO times their profile (rain only adds). Without
this a run's first wet day was the whole profile of the next and was forecast to come again
(e20 of the storm ensemble: 19,000-35,000 m3/h forecast for hours that brought
10,000-22,000). A reading is judged against the profile of the days before it, never one
that already holds it (with one day seen, the median of yesterday and today read an hour
at twice the usual as 1.33 times).
"""

from __future__ import annotations

import csv
import itertools
import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from kernel.clock import SiteClock
from kernel.contracts import QUANTILE_FIELDS, InflowForecast, PriceCurve
from kernel.errors import DataError

Array = NDArray[np.float64]
WET_RATIO = 1.2  # inflow this far over its dry-weather profile is wet weather (dry noise: a few %)
RISING_FACTOR = 1.1  # ... and rising when the last interval is this far over the two hours before
RECENT_H = 1.0  # measured window the correction ratio is taken over
RATIO_MIN, RATIO_MAX = 0.5, 4.0  # the correction ratio's bounds (a reading's fault, not the weather, beyond)
# The dry level takes its first readings as they come, this many hours of them, before it judges any: resting on
# fewer, a few readings at a fault (the recorded F1 has two in a row at 5 and 16 % of their neighbours) would be its
# median, and every later reading, over 1.2 times it, would look wet and be kept out. A run started in rain
# instead has its dry readings outvote the wet ones within a day.
FIRST_READINGS_H = 6.0


@dataclass(frozen=True)
class ForecastSettings:
    history_days: int = 7  # days kept for the diurnal profile
    decay_h: float = 6.0  # how fast the correction fades back to the profile
    wet_decay_h: float = 24.0  # ... in wet weather: the rain's recession (generator.toml rain_decay_h)
    prior_hourly: tuple[float, ...] = ()  # diurnal shape (24 factors) for the days not seen yet


class InflowForecaster:
    def __init__(self, step_s: float, settings: ForecastSettings | None = None) -> None:
        self.step_s = step_s
        self.cfg = settings or ForecastSettings()
        self.slots = max(1, round(86400 / step_s))
        self.by_slot: list[deque[float]] = [deque(maxlen=self.cfg.history_days) for _ in range(self.slots)]
        self.medians: list[float | None] = [None] * self.slots  # of by_slot, kept as it changes
        # the last history_days' worth of dry readings over the site's diurnal shape: the dry level is their median
        self.scaled: deque[float] = deque(maxlen=self.slots * self.cfg.history_days)
        self.first_readings = max(1, round(FIRST_READINGS_H * 3600 / step_s))
        self._dry_level_m3h: float | None = None  # their median, taken when a missing day asks for it
        # (reading, its slot's profile before it): a reading is judged against the days before it
        self.recent: deque[tuple[float, float | None]] = deque(maxlen=max(1, round(RECENT_H * 3600 / step_s)))
        self.window: deque[tuple[float, float | None]] = deque(maxlen=max(2, round(2 * 3600 / step_s) + 1))  # weather
        self.external: ExternalInflow | None = None

    def slot(self, time: datetime) -> int:
        seconds = time.hour * 3600 + time.minute * 60 + time.second
        return int(seconds // self.step_s) % self.slots

    def observe(self, time: datetime, inflow_m3h: float) -> None:
        """``inflow_m3h`` is the mean over the interval ending at ``time``."""
        if not math.isfinite(inflow_m3h):
            return
        s = self.slot(time)
        before = self.profile(s)
        if self.cfg.prior_hourly and self._prior(s) > 0 and (
                len(self.scaled) < self.first_readings or before is None or inflow_m3h < WET_RATIO * before):
            self.scaled.append(inflow_m3h / self._prior(s))
            self._dry_level_m3h = None
        self.by_slot[s].append(inflow_m3h)
        self.medians[s] = float(np.median(self.by_slot[s]))
        self.recent.append((inflow_m3h, before))
        self.window.append((inflow_m3h, before))

    def profile(self, slot: int) -> float | None:
        """The slot's dry-weather inflow: the median of the same slot over the last history_days
        days. Days not yet seen count as the site's diurnal shape at the dry level measured so
        far, so that one wet day among few does not become the norm. None: nothing to go on."""
        seen = self.by_slot[slot]
        level = None if len(seen) >= self.cfg.history_days else self.dry_level_m3h
        if level is None:
            return self.medians[slot]
        dry = level * self._prior(slot)
        return float(np.median([*seen, *[dry] * (self.cfg.history_days - len(seen))]))

    @property
    def dry_level_m3h(self) -> float | None:
        """The dry-weather level: the median of the dry readings over the shape (None: none yet).
        Taken only while a slot still misses days, once per new reading, not at every reading."""
        if self._dry_level_m3h is None and self.scaled:
            self._dry_level_m3h = float(np.median(np.fromiter(self.scaled, float, len(self.scaled))))
        return self._dry_level_m3h

    def forecast(self, now: datetime, steps: int) -> Array:
        """Mean inflow for each step (now + k dt, now + (k+1) dt]."""
        if self.external is not None:
            ext = self.external.window(now, steps, self.step_s)
            if ext is not None:
                return ext
        if not self.recent:
            raise ValueError("no inflow observed yet: the forecaster needs one measurement")
        recent_mean = float(np.mean([v for v, _ in self.recent]))
        slots = [self.slot(now + timedelta(seconds=(k + 1) * self.step_s)) for k in range(steps)]
        base = np.array([_or(self.profile(s), recent_mean) for s in slots])
        ratio = min(max(recent_mean / max(_expected(self.recent), 1e-9), RATIO_MIN), RATIO_MAX)
        lead_h = (np.arange(steps) + 1) * self.step_s / 3600
        decay_h = self.cfg.decay_h if self.weather(now) == "dry" else self.cfg.wet_decay_h
        return np.asarray(base * (1 + (ratio - 1) * np.exp(-lead_h / decay_h)))

    def weather(self, now: datetime) -> str:
        """The weather the inflow shows: "rising" when the last interval runs clearly over its
        diurnal profile and over the two hours before it, "wet" when the last interval or the
        last two hours run clearly over the profile, else "dry". Clearly: WET_RATIO."""
        if not self.recent:
            return "dry"
        last, before = self.recent[-1]
        ratio_now = last / max(_or(before, last), 1e-9)
        window = list(self.window)[:-1]
        ratio_before = float(np.mean([v for v, _ in window])) / max(_expected(window), 1e-9) if window else ratio_now
        if ratio_now >= WET_RATIO and ratio_now >= RISING_FACTOR * ratio_before:
            return "rising"
        return "wet" if max(ratio_now, ratio_before) >= WET_RATIO else "dry"

    def _prior(self, slot: int) -> float:
        return self.cfg.prior_hourly[int(slot * self.step_s // 3600) % len(self.cfg.prior_hourly)]


def _or(value: float | None, fallback: float) -> float:
    return fallback if value is None else value


def _expected(readings: Iterable[tuple[float, float | None]]) -> float:
    """The mean profile of these readings (a reading with none stands for itself)."""
    return float(np.mean([_or(before, v) for v, before in readings]))


class ExternalInflow:
    """An inflow forecast supplied from outside (a rain radar's or a weather service's), used
    where it covers the whole horizon. CSV: ``time,inflow_m3h``, and optionally quantile
    columns ``inflow_p10_m3h``, ``inflow_p90_m3h``, ... (any of QUANTILE_FIELDS): then its
    spread is used too, in place of the learnt one."""

    def __init__(self, times: list[datetime], inflow_m3h: Array,
                 quantiles: dict[float, Array] | None = None) -> None:
        self.times, self.values = times, inflow_m3h
        self.quantiles = quantiles or {}

    @classmethod
    def from_csv(cls, path: Path, clock: SiteClock | None = None) -> ExternalInflow:
        """``clock``: the site's; times may carry offsets or be the site's wall clock."""
        times: list[datetime] = []
        values: list[float] = []
        try:
            with path.open(newline="") as f:
                reader = csv.DictReader(f)
                fields = reader.fieldnames or []
                missing = {"time", "inflow_m3h"} - set(fields)
                if missing:
                    raise DataError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
                extra = {p: name for p, name in QUANTILE_FIELDS.items() if name in fields}
                quantiles: dict[float, list[float]] = {p: [] for p in extra}
                for row_no, row in enumerate(reader, start=2):
                    times.append(_parse_time(path, row_no, row["time"]))
                    values.append(_parse_flow(path, row_no, row["inflow_m3h"], "inflow_m3h"))
                    for p, name in extra.items():
                        quantiles[p].append(_parse_flow(path, row_no, row[name], name))
        except OSError as exc:
            raise DataError(f"{path}: cannot read external forecast: {exc.strerror}") from exc
        if times:
            times = (clock or SiteClock()).plant_times(str(path), "time", times, 2)
        if any(b <= a for a, b in itertools.pairwise(times)):
            raise DataError(f"{path}: column time must increase strictly")
        ordered = sorted(quantiles)
        for lo, hi in itertools.pairwise(ordered):
            bad = np.flatnonzero(np.asarray(quantiles[lo]) > np.asarray(quantiles[hi]))
            if bad.size:
                raise DataError(f"{path}: row {int(bad[0]) + 2}: {QUANTILE_FIELDS[lo]} = {quantiles[lo][bad[0]]} is "
                                f"over {QUANTILE_FIELDS[hi]} = {quantiles[hi][bad[0]]}")
        return cls(times, np.asarray(values), {p: np.asarray(v) for p, v in quantiles.items()})

    @classmethod
    def served(cls, forecast: InflowForecast) -> ExternalInflow:
        """One the plant serves (the daemon's tag map), a value per step from its start."""
        times = [forecast.start + timedelta(seconds=k * forecast.step_s) for k in range(len(forecast.inflow_m3h))]
        return cls(times, np.asarray(forecast.inflow_m3h, dtype=float),
                   {p: np.asarray(v, dtype=float) for p, v in forecast.quantiles.items()})

    def ahead(self, now: datetime, step_s: float, max_steps: int) -> InflowForecast | None:
        """What a rain radar's gateway would serve at ``now``: the values of the next steps (up to
        ``max_steps``, as far as this forecast reaches), or None when it reaches under two steps."""
        end = self.times[-1] if self.times else now
        steps = min(max_steps, int((end - now).total_seconds() // step_s))
        if steps < 2:
            return None
        point = self._at(self.values, now, steps, step_s)
        if point is None:
            return None
        at = {p: self._at(v, now, steps, step_s) for p, v in self.quantiles.items()}
        return InflowForecast(start=now + timedelta(seconds=step_s), step_s=step_s, inflow_m3h=tuple(map(float, point)),
                              quantiles={p: tuple(map(float, v)) for p, v in at.items() if v is not None})

    def covers(self, now: datetime, steps: int, step_s: float) -> bool:
        first, last = now + timedelta(seconds=step_s), now + timedelta(seconds=steps * step_s)
        return bool(self.times) and self.times[0] <= first and last <= self.times[-1]

    def window(self, now: datetime, steps: int, step_s: float) -> Array | None:
        return self._at(self.values, now, steps, step_s)

    def window_quantiles(self, now: datetime, steps: int, step_s: float) -> dict[float, Array] | None:
        if not self.quantiles or not self.covers(now, steps, step_s):
            return None
        return {p: self._at(v, now, steps, step_s) for p, v in self.quantiles.items()}  # type: ignore[misc]

    def _at(self, values: Array, now: datetime, steps: int, step_s: float) -> Array | None:
        if not self.covers(now, steps, step_s):
            return None
        wanted = [now + timedelta(seconds=(k + 1) * step_s) for k in range(steps)]
        t = np.array([x.timestamp() for x in self.times])
        return np.interp([w.timestamp() for w in wanted], t, values)


def _parse_time(path: Path, row: int, text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise DataError(f"{path}: row {row}, column time: {text!r} is not an ISO time") from None


def _parse_flow(path: Path, row: int, text: str | None, column: str) -> float:
    try:
        value = float(text or "")
    except ValueError:
        raise DataError(f"{path}: row {row}, column {column}: {text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise DataError(f"{path}: row {row}, column {column}: {value} must be a finite flow >= 0")
    return value


class PriceBook:
    """Every published price seen so far; unpublished steps take the price 24 h earlier."""

    def __init__(self) -> None:
        self.known: dict[datetime, float] = {}

    def observe(self, curve: PriceCurve) -> None:
        for k, price in enumerate(curve.eur_per_kwh):
            self.known[curve.start + timedelta(seconds=k * curve.step_s)] = price
        oldest = curve.start - timedelta(days=8)  # a daemon runs for months: keep a week
        for t in [t for t in self.known if t < oldest]:
            del self.known[t]

    def horizon(self, now: datetime, steps: int, step_s: float) -> tuple[Array, int]:
        """Prices for the next ``steps`` steps, and how many of them are published."""
        out = np.zeros(steps)
        published = 0
        last = next(reversed(self.known.values()), 0.0) if self.known else 0.0
        for k in range(steps):
            t = now + timedelta(seconds=k * step_s)
            if t in self.known:
                out[k] = last = self.known[t]
                published += published == k
                continue
            out[k] = self._day_before(t, last)
        return out, published

    def _day_before(self, t: datetime, fallback: float) -> float:
        for days in (1, 2, 7):
            earlier = t - timedelta(days=days)
            if earlier in self.known:
                return self.known[earlier]
        return fallback
