"""Key figures of a trajectory: what summary.json and the comparison table show."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from scenarios.rules import RuleReport
from twin.trajectory import Trajectory


def pump_starts(traj: Trajectory) -> dict[str, int]:
    on = np.asarray(traj.pump_on, dtype=bool).reshape(len(traj), -1)
    return {p: int((on[1:, j] & ~on[:-1, j]).sum()) for j, p in enumerate(traj.pump_ids)}


def percentiles(values: Sequence[float] | np.ndarray) -> dict[str, float]:
    """p50, p95 and max of a set of durations, in seconds."""
    a = np.asarray(values, dtype=float)
    return {"p50": round(float(np.percentile(a, 50)), 4), "p95": round(float(np.percentile(a, 95)), 4),
            "max": round(float(a.max()), 4)}


def summary(traj: Trajectory, report: RuleReport, name: str, controller: str) -> dict[str, Any]:
    energy = float(traj.col("energy_kwh").sum())
    cost = float(traj.col("cost_eur").sum())
    pumped = float(traj.col("outflow_m3h").sum() * traj.step_s / 3600)
    outflow = traj.col("outflow_m3h")
    level = traj.col("level_m")
    solve = np.asarray(traj.solve_s) if traj.solve_s else np.zeros(1)
    starts = pump_starts(traj)
    return {
        "scenario": name, "controller": controller,
        "start": traj.timestamps[0].isoformat(), "end": traj.timestamps[-1].isoformat(), "steps": len(traj),
        "energy_kwh": round(energy, 1), "cost_eur": round(cost, 2), "pumped_m3": round(pumped, 0),
        "kwh_per_m3": round(energy / pumped, 4) if pumped else None,
        "mean_price_paid_eur_per_kwh": round(cost / energy, 5) if energy else None,
        "level_min_m": round(float(level.min()), 3), "level_max_m": round(float(level.max()), 3),
        "level_mean_m": round(float(level.mean()), 3),
        "overflow_m3": round(float(traj.col("overflow_m3").sum()), 1),
        "pump_starts": sum(starts.values()), "pump_starts_by_pump": starts,
        "f2_std_m3h": round(float(outflow.std()), 1),
        "f2_mean_abs_step_change_m3h": round(float(np.abs(np.diff(outflow)).mean()), 1),
        "hard_violations": report.hard_violations, "violations": report.counts(),
        "alarms_above_alarm_level": len(report.alarms),
        "runs_cut_by_outage": [{"time": b.time.isoformat(), "detail": b.detail} for b in report.trips],
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
