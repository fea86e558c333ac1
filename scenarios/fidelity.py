"""Calibration against recorded data and the twin's fidelity report."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kernel.physics import PumpHydraulics
from kernel.recorded import RecordedData
from kernel.site import Pump, Site
from scenarios import progress
from scenarios.drive import open_loop
from twin.calibrate import FitResult, RunningPoints, fit_pump_type, mape_by, predict

WINDOW_S = 86400.0
MIN_POINTS_PER_PUMP = 20  # fewer running points than this: keep the type's model
MIN_METER_DAYS = 2  # a day-to-day drift needs this many days with running points


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
    for i, (name, ptype) in enumerate(site.pump_types.items()):
        progress.report("calibrate: pump types", i, len(site.pump_types))
        pts = running_points(data, site, name, site.rules.min_freq_hz)
        if len(pts.freq_hz) >= 10:
            fits[name] = fit_pump_type(ptype, site.discharge_level_m, pts)
    types = {n: (fits[n].pump_type if n in fits else t) for n, t in site.pump_types.items()}
    site = site.model_copy(update={"pump_types": types})
    progress.report("calibrate: pump types", len(site.pump_types), len(site.pump_types))
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
class MeterCheck:
    """Day-to-day drift of one pump's measured flow and power against the model at the
    measured frequency and level. A real change of flow moves the power too, by the pump
    curve's elasticity (d ln P / d ln Q); flow drift that the power does not show is the
    flow meter's, and no pump model can follow it."""

    days: int
    flow_daily_std_pct: float  # std of the daily mean of measured / modelled flow
    power_daily_std_pct: float  # the same for power
    elasticity: float  # d ln P / d ln Q on the pump curve at the typical running point

    @property
    def flow_seen_in_power_pct(self) -> float:
        """The daily flow drift the power readings can account for."""
        return self.power_daily_std_pct / self.elasticity if self.elasticity > 0 else float("nan")


@dataclass(frozen=True)
class Fidelity:
    flow_mape_pct: dict[str, float]
    power_mape_pct: dict[str, float]
    points: dict[str, int]
    energy_twin_kwh: float
    energy_recorded_kwh: float
    level_rmse_m: list[float]  # per window
    meters: dict[str, MeterCheck]

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
                    recorded_kwh, rmse, meter_checks(data, site))


def meter_checks(data: RecordedData, site: Site) -> dict[str, MeterCheck]:
    """Per pump with enough running points on at least MIN_METER_DAYS days (see MeterCheck)."""
    days = np.array([t.date().toordinal() for t in data.timestamps])
    out = {}
    for name in site.pump_types:
        pts = running_points(data, site, name, site.rules.min_freq_hz)
        hyd = PumpHydraulics(site.pump_types[name], site.discharge_level_m)
        flow, power = predict(site.pump_types[name], site.discharge_level_m, pts)
        for pump in (p for p in site.pumps if p.type == name):
            m = pts.pump_id == pump.id
            day = _running_days(data, site, pump.id, days)
            if m.sum() < MIN_POINTS_PER_PUMP or len(np.unique(day)) < MIN_METER_DAYS:
                continue
            rq = pts.flow_m3h[m] / (flow[m] * pump.flow_scale)
            rp = pts.power_kw[m] / (power[m] * pump.power_scale)
            out[pump.id] = MeterCheck(len(np.unique(day)), _daily_std_pct(rq, day), _daily_std_pct(rp, day),
                                      _elasticity(hyd, float(np.median(pts.freq_hz[m])),
                                                  float(np.median(pts.level_m[m]))))
    return out


def _running_days(data: RecordedData, site: Site, pump_id: str, days: np.ndarray) -> np.ndarray:
    """The day of each running point, in ``running_points``' order for this pump."""
    mask = (data.pump_freq_hz[pump_id] >= site.rules.min_freq_hz) & (data.pump_flow_m3h[pump_id] > 0)
    return days[mask]


def _daily_std_pct(ratio: np.ndarray, day: np.ndarray) -> float:
    return float(100 * np.std([ratio[day == d].mean() for d in np.unique(day)]))


def _elasticity(hyd: PumpHydraulics, freq_hz: float, level_m: float) -> float:
    """d ln P / d ln Q along the pump curve at this speed (1 % flow step)."""
    q = float(hyd.flow_m3h(np.array(freq_hz), np.array(level_m)))
    p0, p1 = hyd.power_kw(np.array(freq_hz), np.array([q, 1.01 * q]))
    return float(np.log(p1 / p0) / np.log(1.01)) if q > 0 and p0 > 0 else float("nan")


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
    if fi.meters:
        lines += ["meter check: day-to-day drift against the model at measured frequency and level",
                  f"{'pump':>6} {'days':>5} {'flow std %':>11} {'power std %':>12} {'flow seen in power %':>21}"]
        lines += [f"{p:>6} {m.days:>5} {m.flow_daily_std_pct:>11.2f} {m.power_daily_std_pct:>12.2f} "
                  f"{m.flow_seen_in_power_pct:>21.2f}" for p, m in fi.meters.items()]
    return "\n".join(lines)
