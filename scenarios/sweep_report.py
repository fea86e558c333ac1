"""A sweep's output: sweep.csv (one row per run), sweep.json (totals, storm safety, versions)
and a self-contained report.html."""

from __future__ import annotations

import html
import importlib.metadata
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kernel.site_io import write_text
from scenarios import front, svg
from scenarios.sweep import COLUMNS, storm_safety, totals, verdicts_table, write_csv

VERSIONED = ("tunneltwin", "highspy", "numpy", "scipy", "simpy")


def versions() -> dict[str, str]:
    out = {}
    for name in VERSIONED:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def write_sweep(rows: Sequence[dict[str, Any]], out: Path, alarm_level_m: float, f2_limit_m3h: float,
                wall_s: float) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    write_csv(rows, out / "sweep.csv")
    summary = {"runs": len(rows), "failed": sum(r["status"] != "ok" for r in rows), "wall_s": round(wall_s, 1),
               "run_s_sum": round(sum(r["wall_s"] for r in rows), 1), "versions": versions(),
               "totals": totals(rows),
               "storm_safety": verdicts_table(storm_safety(rows, alarm_level_m, f2_limit_m3h))}
    write_text(out / "sweep.json", json.dumps(summary, indent=2) + "\n")
    write_text(out / "report.html", _page(rows, summary))
    write_text(out / "sweep.md", markdown(rows, summary))
    return summary


def markdown(rows: Sequence[dict[str, Any]], summary: dict[str, Any]) -> str:
    """The sweep as a page for docs/: versions, totals, storm safety, and per scenario each run's
    cost, lowest and highest level, volume-hours over the alarm, F2 max and hard breaches."""
    lines = [f"{summary['runs']} runs, {summary['failed']} failed, {summary['wall_s']} s wall time. Versions: "
             + ", ".join(f"{k} {v}" for k, v in summary["versions"].items()) + ".", "",
             "| controller and settings | runs | cost EUR | m3*h over the alarm | hard breaches | decision max s |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    lines += [f"| {name} | {t['runs']} | {t['cost_eur']:,.0f} | {t['m3h_above_alarm']:,.0f} | {t['hard_violations']} "
              f"| {t['decision_max_s']:.2f} |" for name, t in summary["totals"].items()]
    covered = {name: t for name, t in summary["totals"].items() if t.get("cover_n")}
    if covered:
        lines += ["", "Forecast calibration, share of measured inflow at or under each quantile (all runs):", "",
                  "| controller and settings | P10 at 1 h | P90 at 1 h | P99 at 1 h | P10 at 12 h | P90 at 12 h "
                  "| P99 at 12 h |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
        lines += [f"| {name} | " + " | ".join(f"{t.get(f'cover_{q}_{lead}h', 0.0):.3f}" for lead in ("1", "12")
                                               for q in ("p10", "p90", "p99")) + " |" for name, t in covered.items()]
    safety = summary["storm_safety"]
    if safety:
        failed = [v for v in safety if not v["ok"]]
        lines += ["", f"Storm safety against the baseline: {len(safety) - len(failed)} of {len(safety)} runs pass."]
        lines += [f"- {v['scenario']} ({v['settings']}) fails: "
                  + ", ".join(k for k, ok in v.items() if ok is False and k != "ok") for v in failed]
    lines += ["", "| scenario | controller | settings | cost EUR | lowest level m | highest level m "
              "| m3*h over the alarm | F2 max m3/h | hard breaches | starts |",
              "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        if r["status"] != "ok":
            lines.append(f"| {r['scenario']} | {r['controller']} | {r['settings']} | failed: {r['error']} ||||||| ")
            continue
        lines.append(f"| {r['scenario']} | {r['controller']} | {r['settings']} | {r['cost_eur']:,.0f} | "
                     f"{r['level_min_m']:.3f} | {r['level_max_m']:.2f} | {r['m3h_above_alarm']:,.0f} | "
                     f"{r['f2_max_m3h']:,.0f} | {r['hard_violations']} | {r['pump_starts']} |")
    lines += front.markdown(rows)
    return "\n".join(lines) + "\n"


def _table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        f"<tr class='{'bad' if r.get('status') == 'failed' or r.get('ok') is False else ''}'>"
        + "".join(f"<td>{html.escape(str(r.get(c, '')))}</td>" for c in columns) + "</tr>" for r in rows)
    return f"<div class='wrap'><table><tr>{head}</tr>{body}</table></div>"


def _fronts(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Per scenario swept over settings: cost against feed roughness and against starts."""
    out = []
    for scenario in front.scenarios_with_a_front(rows):
        out.append(f"<h2>Front on {html.escape(scenario)}</h2><p>Filled: no other MPC run costs less and is "
                   "steadier (or starts fewer pumps); hollow: dominated; squares: the recorded operation and the "
                   "rule-based baseline.</p>")
        for key, label in front.AXES:
            pts = [(p.x, p.cost_eur, p.label if p.reference else p.label.split(" ", 1)[1].replace("weights.", ""),
                    "reference" if p.reference else "dominated" if p.dominated else "front")
                   for p in front.points(rows, scenario, key)]
            out.append(svg.scatter(f"{scenario}: cost against {label}", label, "cost EUR", pts))
    return out


def _page(rows: Sequence[dict[str, Any]], summary: dict[str, Any]) -> str:
    shown = [c for c in COLUMNS if not c.startswith("breaches_") or any(r.get(c) for r in rows)]
    total_rows = [{"run": name, **t} for name, t in summary["totals"].items()]
    safety = summary["storm_safety"]
    parts = [
        "<h1>Sweep</h1>",
        f"<p>{summary['runs']} runs, {summary['failed']} failed, {summary['wall_s']} s wall time "
        f"({summary['run_s_sum']} s of runs). Versions: "
        + html.escape(", ".join(f"{k} {v}" for k, v in summary["versions"].items())) + "</p>",
        "<h2>Totals</h2>", _table(total_rows, list(total_rows[0]) if total_rows else ["run"]),
        "<h2>Storm safety against the baseline</h2>",
        _table(safety, list(safety[0]) if safety else ["scenario"]),
        *_fronts(rows),
        "<h2>Runs</h2>", _table(rows, shown)]
    return ("<!doctype html><html><head><meta charset='utf-8'><title>Sweep</title><style>"
            "body{font-family:sans-serif;margin:1em}.wrap{overflow-x:auto}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right;white-space:nowrap}"
            "tr.bad td{background:#fdd}</style></head><body>" + "\n".join(parts) + "</body></html>\n")
