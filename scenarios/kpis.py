"""Key figures of a trajectory: what summary.json and the comparison table show."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from kernel.clock import SiteClock
from scenarios.rules import RuleReport
from twin.trajectory import Trajectory


def pump_starts(traj: Trajectory) -> dict[str, int]:
    on = np.asarray(traj.pump_on, dtype=bool).reshape(len(traj), -1)
    return {p: int((on[1:, j] & ~on[:-1, j]).sum()) for j, p in enumerate(traj.pump_ids)}


def f2_roughness(outflow_m3h: np.ndarray, step_s: float, jump_m3h: float) -> dict[str, float | int]:
    """How steady the treatment plant's feed was: the mean and the count of one-interval F2
    changes over ``jump_m3h``, F2's standard deviation, and its largest swing within any hour
    (highest minus lowest F2 among the intervals ending within one hour of each other)."""
    q = np.asarray(outflow_m3h, dtype=float)
    step = np.abs(np.diff(q)) if q.size > 1 else np.zeros(1)
    per_hour = max(round(3600 / step_s), 1)
    windows = np.lib.stride_tricks.sliding_window_view(q, min(per_hour + 1, q.size))
    return {"f2_mean_abs_step_change_m3h": round(float(step.mean()), 1),
            "f2_jumps": int((step > jump_m3h).sum()), "f2_jump_m3h": jump_m3h,
            "f2_std_m3h": round(float(q.std()), 1),
            "f2_max_hourly_swing_m3h": round(float((windows.max(axis=1) - windows.min(axis=1)).max()), 1)}


def wear(traj: Trajectory, best_efficiency_flow_m3h: dict[str, float] | None = None) -> dict[str, Any]:
    """Starts per pump per day, the spread of run hours over the pumps available the whole
    run (most minus fewest), and per pump the hours it ran under its best-efficiency flow
    (its 50 Hz best-efficiency flow scaled by speed, the affinity laws)."""
    hours = traj.step_s / 3600
    days = max(len(traj) * hours / 24, hours / 24)
    on = traj.arr("pump_on") > 0
    available = traj.arr("pump_available") > 0 if traj.pump_available else np.ones_like(on)
    run_h = on.sum(axis=0) * hours
    always = available.all(axis=0)
    starts = pump_starts(traj)
    out: dict[str, Any] = {
        "starts_per_pump_day": {p: round(n / days, 2) for p, n in starts.items()},
        "run_hours_by_pump": {p: round(float(h), 2) for p, h in zip(traj.pump_ids, run_h, strict=True)},
        "run_hour_spread_h": round(float(np.ptp(run_h[always])), 2) if always.any() else None,
    }
    if best_efficiency_flow_m3h is not None:
        flow, freq = traj.arr("pump_flow_m3h"), traj.arr("pump_freq_hz")
        bep = np.array([best_efficiency_flow_m3h[p] for p in traj.pump_ids]) * freq / 50.0
        below = on & (flow < bep)
        out["hours_below_best_efficiency_by_pump"] = {
            p: round(float(h), 2) for p, h in zip(traj.pump_ids, below.sum(axis=0) * hours, strict=True)}
    return out


def percentiles(values: Sequence[float] | np.ndarray) -> dict[str, float]:
    """p50, p95 and max of a set of durations, in seconds."""
    a = np.asarray(values, dtype=float)
    return {"p50": round(float(np.percentile(a, 50)), 4), "p95": round(float(np.percentile(a, 95)), 4),
            "max": round(float(a.max()), 4)}


def summary(traj: Trajectory, report: RuleReport, name: str, controller: str,
            f2_jump_m3h: float = 3000.0, best_efficiency_flow_m3h: dict[str, float] | None = None,
            clock: SiteClock | None = None) -> dict[str, Any]:
    stamp = (clock or SiteClock()).stamp
    energy = float(traj.col("energy_kwh").sum())
    cost = float(traj.col("cost_eur").sum())
    pumped = float(traj.col("outflow_m3h").sum() * traj.step_s / 3600)
    outflow = traj.col("outflow_m3h")
    level = traj.col("level_m")
    solve = np.asarray(traj.solve_s) if traj.solve_s else np.zeros(1)
    starts = pump_starts(traj)
    return {
        "scenario": name, "controller": controller,
        "start": stamp(traj.timestamps[0]), "end": stamp(traj.timestamps[-1]), "steps": len(traj),
        "energy_kwh": round(energy, 1), "cost_eur": round(cost, 2), "pumped_m3": round(pumped, 0),
        "kwh_per_m3": round(energy / pumped, 4) if pumped else None,
        "mean_price_paid_eur_per_kwh": round(cost / energy, 5) if energy else None,
        "level_min_m": round(float(level.min()), 3), "level_max_m": round(float(level.max()), 3),
        "level_mean_m": round(float(level.mean()), 3),
        "overflow_m3": round(float(traj.col("overflow_m3").sum()), 1),
        "pump_starts": sum(starts.values()), "pump_starts_by_pump": starts,
        **f2_roughness(outflow, traj.step_s, f2_jump_m3h),
        **wear(traj, best_efficiency_flow_m3h),
        "hard_violations": report.hard_violations, "violations": report.counts(stamp),
        "alarms_above_alarm_level": len(report.alarms),
        "runs_cut_by_outage": [{"time": stamp(b.time), "detail": b.detail} for b in report.trips],
        "emptied_by_day": {d.isoformat(): ok for d, ok in report.emptied_by_day.items()},
        "decision_time_s": percentiles(solve),
    }


FORECAST_LEADS_H = (0.25, 1.0, 3.0, 6.0, 12.0, 24.0)


def forecast_error(traj: Trajectory, forecasts: list[tuple[float, ...]]) -> dict[str, dict[str, float]]:
    """Inflow forecast error by lead time: forecast k's step j is trajectory row k + j."""
    actual = traj.col("inflow_m3h")
    out: dict[str, dict[str, float]] = {}
    for lead_h in FORECAST_LEADS_H:
        j = round(lead_h * 3600 / traj.step_s) - 1
        pairs = [(f[j], actual[k + j]) for k, f in enumerate(forecasts) if j < len(f) and k + j < len(actual)]
        if not pairs:
            continue
        err = np.array([f - a for f, a in pairs])
        act = np.array([a for _, a in pairs])
        out[f"{lead_h:g}"] = {"mae_m3h": round(float(np.abs(err).mean()), 1),
                              "bias_m3h": round(float(err.mean()), 1),
                              "mape_pct": round(float(np.mean(np.abs(err) / np.maximum(act, 1.0)) * 100), 2),
                              "n": len(pairs)}
    return out


def forecast_coverage(traj: Trajectory, quantiles: list[dict[float, tuple[float, ...]] | None]
                      ) -> dict[str, dict[str, float]]:
    """Calibration of the quantile forecasts: per lead time, the share of measured inflows at
    or under each quantile (a calibrated P90 covers 90 %). Forecast k's step j is row k + j."""
    actual = traj.col("inflow_m3h")
    out: dict[str, dict[str, float]] = {}
    for lead_h in FORECAST_LEADS_H:
        j = round(lead_h * 3600 / traj.step_s) - 1
        rows = [(q, actual[k + j]) for k, q in enumerate(quantiles)
                if q is not None and k + j < len(actual) and all(j < len(v) for v in q.values())]
        if not rows:
            continue
        cover = {f"p{round(p * 100):02d}": round(float(np.mean([a <= q[p][j] for q, a in rows])), 4)
                 for p in sorted(rows[0][0])}
        out[f"{lead_h:g}"] = {**cover, "n": len(rows)}
    return out
