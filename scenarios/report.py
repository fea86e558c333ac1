"""Replay output: trajectory.csv, summary.json and a self-contained report.html."""

from __future__ import annotations

import csv
import html
import json
from pathlib import Path
from typing import Any

import numpy as np

from kernel.clock import SiteClock
from kernel.site import Rules
from scenarios import svg
from twin.trajectory import Trajectory

BASE_COLUMNS = ("level_m", "volume_m3", "inflow_m3h", "outflow_m3h", "price_eur_per_kwh", "power_kw",
                "energy_kwh", "cost_eur")


def write_trajectory(traj: Trajectory, path: Path, clock: SiteClock | None = None) -> None:
    """One row per step; times with the site's offset (plant time is the site's standard time)."""
    stamp = (clock or SiteClock()).stamp
    per_pump = [(f"pump_{p}_{k}", j, k) for j, p in enumerate(traj.pump_ids)
                for k in ("on", "freq_hz", "flow_m3h", "power_kw")]
    arrays: dict[str, list[list[bool]] | list[list[float]]] = {
        "on": traj.pump_on, "freq_hz": traj.pump_freq_hz, "flow_m3h": traj.pump_flow_m3h,
              "power_kw": traj.pump_power_kw}
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["timestamp", *BASE_COLUMNS, *(name for name, _, _ in per_pump)])
        for i, t in enumerate(traj.timestamps):
            base = [f"{traj.rows[c][i]:.6g}" for c in BASE_COLUMNS]
            pumps = [_cell(arrays[k][i][j]) for _, j, k in per_pump]
            w.writerow([stamp(t), *base, *pumps])


def _cell(value: object) -> str:
    if isinstance(value, bool | np.bool_):
        return "1" if value else "0"
    return f"{float(value):.6g}"  # type: ignore[arg-type]


def write_summary(summary: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(summary, indent=2) + "\n")


def write_html(runs: dict[str, tuple[Trajectory, dict[str, Any]]], rules: Rules, path: Path,
               title: str) -> None:
    """One page for one or several controllers on the same scenario."""
    parts = [f"<h1>{html.escape(title)}</h1>", _table([s for _, s in runs.values()])]
    for name, (traj, _) in runs.items():
        parts.append(f"<h2>{html.escape(name)}</h2>")
        parts.extend(_charts(traj, rules))
    page = ("<!doctype html><html><head><meta charset='utf-8'><title>" + html.escape(title) +
            "</title><style>body{font-family:sans-serif;max-width:1100px;margin:auto}"
            "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
            "</style></head><body>" + "\n".join(parts) + "</body></html>\n")
    path.write_text(page)


TABLE_FIELDS = (("controller", "controller"), ("cost_eur", "cost EUR"), ("energy_kwh", "energy kWh"),
                ("kwh_per_m3", "kWh/m3"), ("mean_price_paid_eur_per_kwh", "mean price EUR/kWh"),
                ("hard_violations", "hard violations"), ("level_min_m", "min level m"),
                ("level_max_m", "max level m"), ("overflow_m3", "overflow m3"), ("pump_starts", "starts"),
                ("f2_std_m3h", "F2 std m3/h"), ("f2_mean_abs_step_change_m3h", "F2 mean step change m3/h"),
                ("f2_jumps", "F2 jumps"), ("f2_max_hourly_swing_m3h", "F2 max hourly swing m3/h"),
                ("run_hour_spread_h", "run-hour spread h"),
                ("decision_time_s.p50", "decision p50 s"), ("decision_time_s.p95", "decision p95 s"),
                ("decision_time_s.max", "decision max s"), ("end_level_m", "end level m"),
                ("cost_adjusted_eur", "cost adj. for storage EUR"), ("cost_vs_reference", "cost / reference"),
                ("oracle_saving_captured", "oracle saving captured"))


def _field(summary: dict[str, Any], key: str) -> object:
    value: object = summary
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return "" if value is None else value


def _table(summaries: list[dict[str, Any]]) -> str:
    head = "".join(f"<th>{html.escape(label)}</th>" for _, label in TABLE_FIELDS)
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(str(_field(s, k)))}</td>" for k, _ in TABLE_FIELDS)
                   + "</tr>" for s in summaries)
    return f"<table><tr>{head}</tr>{rows}</table>"


def _charts(traj: Trajectory, rules: Rules) -> list[str]:
    x = np.array([(t - traj.timestamps[0]).total_seconds() / 3600 for t in traj.timestamps])
    level = traj.col("level_m")
    limits = [(rules.min_level_m, "min"), (rules.alarm_level_m, "alarm"), (rules.max_level_m, "max")]
    return [
        svg.lines("Tunnel level (m) with limits", x, {"level": level}, hlines=limits),
        svg.lines("Inflow and pumped flow (m3/h)", x,
                  {"inflow": traj.col("inflow_m3h"), "pumped F2": traj.col("outflow_m3h")},
                  hlines=[(rules.max_outflow_m3h, "F2 max")]),
        svg.lines("Price (EUR/MWh) and pumping power (kW/10)", x,
                  {"price": traj.col("price_eur_per_kwh") * 1000, "power/10": traj.col("power_kw") / 10}),
        svg.timeline("Pumps on", x, traj.pump_ids, np.asarray(traj.pump_on, dtype=bool).reshape(len(x), -1)),
        svg.lines("Cumulative cost (EUR)", x, {"cost": np.cumsum(traj.col("cost_eur"))}),
    ]
