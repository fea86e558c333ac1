"""Replay output: trajectory.csv, summary.json and a self-contained report.html."""

from __future__ import annotations

import csv
import html
import json
from datetime import timezone
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np

from kernel.clock import SiteClock
from kernel.site import Rules
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


def trajectory_parquet(csv_path: Path) -> Path:
    """trajectory.csv -> trajectory.parquet beside it (extra [parquet]): the same columns, the
    time a UTC instant, for a data team's tools."""
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    table = pcsv.read_csv(csv_path, convert_options=pcsv.ConvertOptions(
        column_types={"timestamp": pa.timestamp("s", tz="UTC")}))
    out = csv_path.with_suffix(".parquet")
    pq.write_table(table, out)
    return out


def _cell(value: object) -> str:
    if isinstance(value, bool | np.bool_):
        return "1" if value else "0"
    return f"{float(value):.6g}"  # type: ignore[arg-type]


def write_summary(summary: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(summary, indent=2) + "\n")


def write_html(runs: dict[str, tuple[Trajectory, dict[str, Any]]], rules: Rules, path: Path,
               title: str, clock: SiteClock | None = None) -> None:
    """One self-contained page for one or several controllers on the same scenario: the KPI
    table, then charts with every controller on shared time axes (uPlot, vendored, MIT). It
    works offline; times show in the site's zone."""
    clock = clock or SiteClock()
    data = json.dumps(_chart_data(runs, rules, clock), separators=(",", ":")).replace("</", "<\\/")
    page = (
        f"{page_head(title)}<body>"
        f"<h1>{html.escape(title)}</h1>{_table([s for _, s in runs.values()])}"
        "<p class='hint'>Drag across a chart to zoom (all follow), double-click to reset, click a "
        "legend entry to hide or show it; the legend shows the values under the cursor.</p>"
        f"<div id='charts'></div><script id='data' type='application/json'>{data}</script>"
        f"<script>{(files('scenarios') / 'data' / 'report.js').read_text()}</script></body></html>\n")
    path.write_text(page)


def page_head(title: str) -> str:
    """The head of a page that draws with our charts: uPlot (vendored, its licence kept in a
    comment) and scenarios/data/charts.js, inlined, so the page works offline."""
    data = files("scenarios") / "data"
    vendor = data / "vendor" / "uplot"
    licence = (vendor / "LICENSE").read_text()
    return ("<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{html.escape(title)}</title>"
            f"<style>{(vendor / 'uPlot.min.css').read_text()}{PAGE_CSS}</style>"
            f"<!-- uPlot 1.6.32, {html.escape(' '.join(licence.split()))} -->"
            f"<script>{(vendor / 'uPlot.iife.min.js').read_text()}</script>"
            f"<script>{(data / 'charts.js').read_text()}</script></head>")


PAGE_CSS = ("body{font-family:system-ui,sans-serif;max-width:1200px;margin:auto;padding:0 1em}"
            "table.kpi{border-collapse:collapse;width:100%;font-size:0.9em;table-layout:fixed}"
            "table.kpi td,table.kpi th{border:1px solid #ccc;padding:2px 6px;text-align:right;"
            "overflow-wrap:anywhere}table.kpi th:first-child,table.kpi td:first-child{text-align:left;width:16em}"
            ".chart h3{margin:1em 0 0.2em;font-size:1em}.hint{color:#555;font-size:0.9em}")


def _chart_data(runs: dict[str, tuple[Trajectory, dict[str, Any]]], rules: Rules, clock: SiteClock
                ) -> dict[str, Any]:
    """Every run's series on the first run's time steps (runs of one scenario share them)."""
    first = next(iter(runs.values()))[0]
    index = {t: i for i, t in enumerate(first.timestamps)}
    offset = timezone(clock.offset)

    def aligned(traj: Trajectory, values: Any) -> list[float | None]:
        out: list[float | None] = [None] * len(index)
        for t, v in zip(traj.timestamps, values, strict=True):
            if t in index:
                out[index[t]] = round(float(v), 4)
        return out

    return {
        "zone": clock.zone_name, "t": [t.replace(tzinfo=offset).timestamp() for t in first.timestamps],
        "inflow_m3h": aligned(first, first.col("inflow_m3h")),
        "price_eur_per_mwh": aligned(first, first.col("price_eur_per_kwh") * 1000),
        "limits": {"level": [[rules.min_level_m, "min"], [rules.alarm_level_m, "alarm"], [rules.max_level_m, "max"]],
                   "f2_max": rules.max_outflow_m3h},
        "runs": {name: {"level_m": aligned(traj, traj.col("level_m")),
                        "outflow_m3h": aligned(traj, traj.col("outflow_m3h")),
                        "power_kw": aligned(traj, traj.col("power_kw")),
                        "pumps_on": aligned(traj, np.asarray(traj.pump_on, dtype=float).reshape(len(traj), -1).sum(1)),
                        "cost_cum_eur": aligned(traj, np.cumsum(traj.col("cost_eur")))}
                 for name, (traj, _) in runs.items()},
    }


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
    """One column per controller, one row per figure: as many controllers as needed fit the page."""
    head = "<th>figure</th>" + "".join(f"<th>{html.escape(str(s.get('controller', '')))}</th>" for s in summaries)
    rows = "".join(f"<tr><td>{html.escape(label)}</td>"
                   + "".join(f"<td>{html.escape(str(_field(s, k)))}</td>" for s in summaries) + "</tr>"
                   for k, label in TABLE_FIELDS if k != "controller")
    return f"<table class='kpi'><tr>{head}</tr>{rows}</table>"
