"""Calibration against recorded data and the twin's fidelity report."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scenarios.drive import open_loop
from scenarios.recorded import RecordedData
from tunneltwin.site import Pump, Site
from twin.calibrate import FitResult, RunningPoints, fit_pump_type, mape_by, predict

WINDOW_S = 86400.0
MIN_POINTS_PER_PUMP = 20  # fewer running points than this: keep the type's model


def running_points(data: RecordedData, site: Site, type_name: str, min_hz: float) -> RunningPoints:
    """Steady steps (average frequency >= the rule minimum) of every available pump of a type."""
    cols: dict[str, list[np.ndarray]] = {"f": [], "l": [], "q": [], "p": [], "id": []}
    for pump in site.pumps:
        if pump.type != type_name or pump.id not in data.pump_freq_hz:
            continue
        mask = (data.pump_freq_hz[pump.id] >= min_hz) & (data.pump_flow_m3h[pump.id] > 0)
        cols["f"].append(data.pump_freq_hz[pump.id][mask])
        cols["l"].append(data.level_m[mask])
        cols["q"].append(data.pump_flow_m3h[pump.id][mask])
        cols["p"].append(data.pump_power_kw[pump.id][mask])
        cols["id"].append(np.full(int(mask.sum()), pump.id))
    f, lv, q, p, ids = (np.concatenate(cols[k]) if cols[k] else np.array([]) for k in cols)
    return RunningPoints(f, lv, q, p, ids.astype(str))


def calibrate(data: RecordedData, site: Site) -> tuple[Site, dict[str, FitResult]]:
    """Fit every pump type that has running points; returns the calibrated site."""
    fits = {}
    for name, ptype in site.pump_types.items():
        pts = running_points(data, site, name, site.rules.min_freq_hz)
        if len(pts.freq_hz) >= 10:
            fits[name] = fit_pump_type(ptype, site.discharge_level_m, pts)
    types = {n: (fits[n].pump_type if n in fits else t) for n, t in site.pump_types.items()}
    site = site.model_copy(update={"pump_types": types})
    pumps = [_scaled(pump, data, site) for pump in site.pumps]
    return site.model_copy(update={"pumps": pumps}), fits


def _scaled(pump: Pump, data: RecordedData, site: Site) -> Pump:
    """Per-pump flow and power scale: measured / modelled totals, which conserves the
    pumped volume and the energy (a median ratio drifted the level by 0.3 m a day)."""
    pts = running_points(data, site, pump.type, site.rules.min_freq_hz)
    mask = pts.pump_id == pump.id
    if mask.sum() < MIN_POINTS_PER_PUMP:
        return pump.model_copy(update={"flow_scale": 1.0, "power_scale": 1.0})
    flow, power = predict(site.pump_types[pump.type], site.discharge_level_m, pts)
    return pump.model_copy(update={
        "flow_scale": float(pts.flow_m3h[mask].sum() / flow[mask].sum()),
        "power_scale": float(pts.power_kw[mask].sum() / power[mask].sum())})


@dataclass(frozen=True)
class Fidelity:
    flow_mape_pct: dict[str, float]
    power_mape_pct: dict[str, float]
    points: dict[str, int]
    energy_twin_kwh: float
    energy_recorded_kwh: float
    level_rmse_m: list[float]  # per window

    @property
    def energy_error_pct(self) -> float:
        return 100 * (self.energy_twin_kwh / self.energy_recorded_kwh - 1)


def fidelity(data: RecordedData, site: Site) -> Fidelity:
    """Open loop with recorded commands and inflow, re-initialised every 24 h."""
    window = max(1, round(WINDOW_S / data.step_s))
    run = open_loop(data, site, window)
    ids = site.pump_ids
    hours = data.step_s / 3600
    flow_mape: dict[str, float] = {}
    power_mape: dict[str, float] = {}
    points: dict[str, int] = {}
    for j, pid in enumerate(ids):
        if pid not in data.pump_freq_hz:
            continue
        m = (data.pump_freq_hz[pid] >= site.rules.min_freq_hz) & (data.pump_flow_m3h[pid] > 0)
        m[0] = False
        if m.sum() == 0:
            continue
        key = np.full(int(m.sum()), pid)
        flow_mape |= mape_by(key, run.pump_flow_m3h[m, j], data.pump_flow_m3h[pid][m])
        power_mape |= mape_by(key, run.pump_power_kw[m, j], data.pump_power_kw[pid][m])
        points[pid] = int(m.sum())
    recorded_kwh = sum(float(data.pump_power_kw[p][1:].sum()) * hours for p in ids if p in data.pump_power_kw)
    err = run.level_m[1:] - data.level_m[1:]
    starts = run.window_start[1:]
    rmse = [float(np.sqrt(np.mean(err[starts == s] ** 2))) for s in np.unique(starts)]
    return Fidelity(flow_mape, power_mape, points, float(run.pump_power_kw[1:].sum()) * hours,
                    recorded_kwh, rmse)


def format_fidelity(fi: Fidelity) -> str:
    lines = ["per-pump error at running points (f >= rule minimum), open loop, daily re-initialised:",
             f"{'pump':>6} {'points':>7} {'flow MAPE %':>12} {'power MAPE %':>13}"]
    lines += [f"{p:>6} {fi.points[p]:>7} {fi.flow_mape_pct[p]:>12.2f} {fi.power_mape_pct[p]:>13.2f}"
              for p in fi.flow_mape_pct]
    lines.append(f"energy: twin {fi.energy_twin_kwh:,.0f} kWh, recorded {fi.energy_recorded_kwh:,.0f} kWh, "
                 f"error {fi.energy_error_pct:+.2f} %")
    rmse = fi.level_rmse_m
    lines.append(f"level RMSE per 24 h window (m): {', '.join(f'{x:.3f}' for x in rmse)}")
    lines.append(f"level RMSE: median {sorted(rmse)[len(rmse) // 2]:.3f} m, worst {max(rmse):.3f} m")
    return "\n".join(lines)
