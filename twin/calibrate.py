"""Fit a pump type's installation parameters to recorded running points.

Pure: arrays in, parameters and fit errors out. The CLI reads data and writes TOML.
Fitted per pump type: head offset (L2_eff - L2), level gain (suction losses that grow as
the tunnel empties), loss coefficient and power factor (measured kW / datasheet kW).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import least_squares

from kernel.physics import PumpHydraulics
from kernel.site import PumpType

Array = NDArray[np.float64]


@dataclass(frozen=True)
class RunningPoints:
    """Steady running points of one pump type: one entry per (pump, step)."""

    freq_hz: Array
    level_m: Array
    flow_m3h: Array
    power_kw: Array
    pump_id: NDArray[np.str_]


@dataclass(frozen=True)
class FitResult:
    pump_type: PumpType
    flow_mape_by_pump: dict[str, float]
    power_mape_by_pump: dict[str, float]
    points: int


PARAMS = ("head_offset_m", "level_gain", "loss_m_per_m3h2", "power_factor")
LOWER = (-10.0, 0.0, 0.0, 0.5)
UPPER = (15.0, 10.0, 1e-6, 2.0)  # loss <= 9 m at 3,000 m3/h


def _with(ptype: PumpType, x: Array) -> PumpType:
    return ptype.model_copy(update=dict(zip(PARAMS, map(float, x), strict=True)))


def predict(ptype: PumpType, discharge_level_m: float, pts: RunningPoints) -> tuple[Array, Array]:
    hyd = PumpHydraulics(ptype, discharge_level_m)
    flow = hyd.flow_m3h(pts.freq_hz, pts.level_m)
    return flow, hyd.power_kw(pts.freq_hz, flow)


def fit_pump_type(ptype: PumpType, discharge_level_m: float, pts: RunningPoints) -> FitResult:
    """Least squares on relative flow and power errors (both matter equally for cost)."""
    if len(pts.freq_hz) < 10:
        raise ValueError(f"need at least 10 running points to calibrate, got {len(pts.freq_hz)}")

    def residuals(x: Array) -> Array:
        flow, power = predict(_with(ptype, x), discharge_level_m, pts)
        return np.concatenate([(flow - pts.flow_m3h) / pts.flow_m3h,
                               (power - pts.power_kw) / pts.power_kw])

    best = None
    for x0 in _starts(ptype):
        sol = least_squares(residuals, x0, bounds=(LOWER, UPPER), x_scale=[1.0, 1.0, 1e-7, 0.1])
        if best is None or sol.cost < best.cost:
            best = sol
    assert best is not None
    fitted = _with(ptype, best.x)
    flow, power = predict(fitted, discharge_level_m, pts)
    return FitResult(fitted, mape_by(pts.pump_id, flow, pts.flow_m3h),
                     mape_by(pts.pump_id, power, pts.power_kw), len(pts.freq_hz))


def _starts(ptype: PumpType) -> list[Array]:
    """Several starting points: from a start where the pump cannot lift at all, the
    gradient is zero and the fit would stay there."""
    current = np.clip([getattr(ptype, p) for p in PARAMS], LOWER, UPPER)
    grid = [np.array([off, gain, 0.0, 1.05]) for off in (-4.0, 0.0, 3.0, 6.0) for gain in (1.0, 3.0)]
    return [current, *grid]


def mape_by(keys: NDArray[np.str_], predicted: Array, measured: Array) -> dict[str, float]:
    """Mean absolute percentage error per key (e.g. per pump)."""
    err = np.abs(predicted - measured) / np.abs(measured)
    return {str(k): float(100 * err[keys == k].mean()) for k in np.unique(keys)}
