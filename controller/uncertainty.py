"""How wrong the inflow forecast can be: quantiles per lead time and weather state, learnt from
the controller's own record of forecast errors.

Every forecast issued is kept until its steps have been measured. Each measurement then gives
one error per pending forecast, ``log(measured / forecast)``, filed under the weather at the
time the forecast was made (dry, wet, rising) and its lead time. Quantiles of those errors
scale the point forecast into P1, P10, P50, P90, P99 and P99.9 forecasts. Until a bucket holds enough
errors, the prior below (fitted on the synthetic generator's wet and dry year, see
``scripts/fit-spread-prior.py``) is blended in, weighted as ``PRIOR_WEIGHT`` errors.

Causal by construction: an error enters only once its interval has been measured.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from statistics import NormalDist

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]

STATES = ("dry", "wet", "rising")
LEAD_EDGES_H = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0)  # bucket upper edges; longer leads share the last bucket
QUANTILES = (0.01, 0.1, 0.5, 0.9, 0.99, 0.999)  # what is learnt; others interpolate between them
KEEP = 4000  # errors kept per weather state and lead bucket (the most recent)
PRIOR_WEIGHT = 200  # the prior counts as this many errors

# Prior log-ratio quantiles (rows: QUANTILES) per state and lead bucket (columns: LEAD_EDGES_H
# and beyond): `python scripts/fit-spread-prior.py 1460 7`, 4 years of the synthetic generator
# (fitted to the recorded data, rain on), the forecaster run causally with its default settings.
PRIOR: dict[str, tuple[tuple[float, ...], ...]] = {
    "dry": ((-0.418, -0.423, -0.437, -0.453, -0.472, -0.492, -0.498),
            (-0.099, -0.120, -0.140, -0.164, -0.186, -0.202, -0.206),
            (-0.000, -0.003, -0.006, -0.010, -0.017, -0.022, -0.021),
            (0.099, 0.114, 0.125, 0.136, 0.145, 0.161, 0.199),
            (0.323, 0.352, 0.397, 0.476, 0.576, 0.651, 0.694),
            (0.605, 0.639, 0.715, 0.794, 0.850, 0.906, 1.046)),
    "wet": ((-0.393, -0.390, -0.418, -0.454, -0.494, -0.535, -0.544),
            (-0.114, -0.137, -0.161, -0.190, -0.220, -0.239, -0.251),
            (-0.012, -0.017, -0.021, -0.028, -0.037, -0.043, -0.048),
            (0.082, 0.101, 0.117, 0.135, 0.158, 0.181, 0.237),
            (0.300, 0.339, 0.385, 0.504, 0.641, 0.717, 0.724),
            (0.593, 0.651, 0.720, 0.794, 0.871, 0.955, 0.975)),
    "rising": ((-0.389, -0.460, -0.431, -0.470, -0.503, -0.539, -0.531),
               (-0.165, -0.177, -0.191, -0.214, -0.239, -0.244, -0.239),
               (0.000, -0.012, -0.021, -0.028, -0.036, -0.037, -0.035),
               (0.186, 0.196, 0.212, 0.238, 0.267, 0.290, 0.305),
               (0.489, 0.597, 0.632, 0.649, 0.675, 0.730, 0.806),
               (0.636, 0.768, 0.863, 0.902, 0.907, 0.970, 1.105)),
}


def bucket_of(lead_h: float) -> int:
    for b, edge in enumerate(LEAD_EDGES_H):
        if lead_h <= edge + 1e-9:
            return b
    return len(LEAD_EDGES_H)


@dataclass(frozen=True)
class Spread:
    """Quantile forecasts of one decision: ``quantiles[p][k]`` is the inflow (m3/h) that step
    k's mean stays under with probability p."""

    state: str
    quantiles: dict[float, Array]

    def given(self, quantiles: dict[float, Array]) -> Spread:
        """An external forecast's quantiles where it gives them, these between them, kept in order.
        Beyond its outermost quantiles the external forecast's own tail is extrapolated (``at``)."""
        lo, hi = (min(quantiles), max(quantiles)) if quantiles else (0.0, 1.0)
        merged = {**{p: q for p, q in self.quantiles.items() if lo <= p <= hi}, **quantiles}
        ps = sorted(merged)
        ordered = np.maximum.accumulate(np.array([merged[p] for p in ps]), axis=0)
        return Spread("external", {p: ordered[i] for i, p in enumerate(ps)})

    @property
    def is_point(self) -> bool:
        """No spread at all: every quantile the same inflow (the oracle's, a perfect forecast's)."""
        return np.array_equal(self.at(0.01), self.at(0.99))

    def at(self, p: float) -> Array:
        """The p-quantile: between the known ones, interpolated on the normal scale in log
        space; beyond them (a floor risk of 0.003 under the learnt P1), extrapolated along the
        last two, as a log-normal tail would be. A spread of zero stays zero."""
        if p in self.quantiles:
            return self.quantiles[p]
        ps = sorted(self.quantiles)
        if len(ps) == 1:
            return self.quantiles[ps[0]]
        if p > ps[-1]:
            lo, hi = ps[-2], ps[-1]
        elif p < ps[0]:
            lo, hi = ps[0], ps[1]
        else:
            hi = next(x for x in ps if x >= p)
            lo = max(x for x in ps if x <= p)
        z = NormalDist().inv_cdf
        w = (z(p) - z(lo)) / (z(hi) - z(lo))
        low, high = (np.log(np.maximum(self.quantiles[x], 1e-9)) for x in (lo, hi))
        return np.asarray(np.exp(low + w * (high - low)))


class ForecastSpread:
    """The learner: forecasts issued, their errors as measured, and the quantiles they imply."""

    def __init__(self, step_s: float, horizon_steps: int, keep: int | None = KEEP) -> None:
        self.step_s = step_s
        self.pending: deque[tuple[datetime, str, Array]] = deque(maxlen=horizon_steps + 1)
        self.errors: dict[tuple[str, int], deque[float]] = {
            (s, b): deque(maxlen=keep) for s in STATES for b in range(len(LEAD_EDGES_H) + 1)}
        self._cache: dict[tuple[str, int], Array] = {}
        self.lead_bucket = np.array([bucket_of((k + 1) * step_s / 3600) for k in range(horizon_steps)])

    def issued(self, time: datetime, state: str, forecast_m3h: Array) -> None:
        self.pending.append((time, state, np.asarray(forecast_m3h, dtype=float)))

    def observe(self, time: datetime, measured_m3h: float) -> None:
        """``measured_m3h``: the mean inflow over the interval ending at ``time``."""
        if not math.isfinite(measured_m3h) or measured_m3h <= 0:
            return
        for issued, state, forecast in self.pending:
            k = round((time - issued).total_seconds() / self.step_s) - 1
            if 0 <= k < len(forecast) and forecast[k] > 0:
                key = (state, bucket_of((k + 1) * self.step_s / 3600))
                self.errors[key].append(math.log(measured_m3h / forecast[k]))
                self._cache.pop(key, None)

    def log_quantiles(self, state: str, bucket: int) -> Array:
        """QUANTILES of log(measured / forecast) for this state and lead bucket: the learnt ones
        blended with the prior by their counts."""
        key = (state, bucket)
        if key not in self._cache:
            prior = np.array([row[bucket] for row in PRIOR[state]])
            seen = self.errors[key]
            if seen:
                learnt = np.quantile(np.fromiter(seen, float, len(seen)), QUANTILES)
                prior = (len(seen) * learnt + PRIOR_WEIGHT * prior) / (len(seen) + PRIOR_WEIGHT)
            self._cache[key] = np.maximum.accumulate(prior)
        return self._cache[key]

    def spread(self, state: str, forecast_m3h: Array) -> Spread:
        n = len(forecast_m3h)
        table = np.array([self.log_quantiles(state, b) for b in range(len(LEAD_EDGES_H) + 1)])  # (B, Q)
        per_step = table[self.lead_bucket[:n]]  # (n, Q)
        base = np.asarray(forecast_m3h, dtype=float)
        return Spread(state, {p: base * np.exp(per_step[:, i]) for i, p in enumerate(QUANTILES)})
