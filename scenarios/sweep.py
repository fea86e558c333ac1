"""Scenarios x controllers x settings, run in parallel: one row per run (``tunneltwin sweep``).

A run is a ``Job`` (plain data, so it crosses to a worker process or a Dask worker) and
``run_job`` turns it into a row. A run that fails is a row with its error, never the end of
the sweep. Executors are the seam: a local process pool over all cores, or a Dask
distributed cluster given its scheduler address, so a utility can validate on many machines.
"""

from __future__ import annotations

import csv
import io
import itertools
import os
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from controller.config import load_mpc
from kernel.physics import LevelVolume
from kernel.site import load_site
from kernel.site_io import write_text
from scenarios.ensemble import Member
from scenarios.rules import HARD_RULES
from scenarios.runner import evaluate, with_perfect_forecast
from twin.trajectory import Trajectory


@dataclass(frozen=True)
class Job:
    member: Member
    controller: str
    settings: tuple[tuple[str, Any], ...]  # MPC overrides (dotted key, value); () for the defaults
    site_path: str
    mpc_path: str
    reproducible: bool = False
    forecast: str = "internal"  # or "perfect": the scenario's inflow as an external forecast, no spread

    @property
    def label(self) -> str:
        text = ",".join(f"{k}={v}" for k, v in self.settings) or "default"
        return text if self.forecast == "internal" else f"{text},forecast={self.forecast}"


def jobs(members: Sequence[Member], controllers: Sequence[str], grid: dict[str, list[Any]],
         site_path: Path, mpc_path: Path, reproducible: bool = False, forecasts: Sequence[str] = ("internal",),
         each: bool = False) -> list[Job]:
    """Every member x controller x combination of the grid's values (``each``: one key at a time,
    the others at their defaults, as an ablation wants). Controllers that read no MPC settings
    (baseline, historical) run once per member, not once per setting."""
    if each:
        combos: list[tuple[tuple[str, Any], ...]] = [((k, v),) for k, values in grid.items() for v in values] or [()]
    else:
        combos = [tuple(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())] or [()]
    out = []
    for m in members:
        for c in controllers:
            for combo in combos if c in ("mpc", "oracle") else [()]:
                for f in forecasts if c == "mpc" else ("internal",):
                    out.append(Job(m, c, combo, str(site_path), str(mpc_path), reproducible, f))
    return out


COVER_LEADS = ("1", "12")  # lead times (h) whose quantile coverage a row carries

COLUMNS = ("scenario", "controller", "settings", "status", "error", "cost_eur", "hard_violations",
           *(f"breaches_{r}" for r in HARD_RULES), "level_min_m", "level_max_m", "m3h_above_max_level",
           "m3h_above_alarm", "f2_max_m3h", "f2_mean_abs_step_change_m3h", "f2_jumps", "f2_std_m3h",
           "f2_max_hourly_swing_m3h", "pump_starts", "run_hour_spread_h", "decision_p95_s",
           "decision_max_s", *(f"cover_{q}_{lead}h" for lead in COVER_LEADS for q in ("p10", "p90", "p99")),
           "cover_n", "wall_s")


def run_job(job: Job) -> dict[str, Any]:
    """Run one job to a row; any failure becomes the row's error (the sweep goes on)."""
    row: dict[str, Any] = {"scenario": job.member.name, "controller": job.controller, "settings": job.label}
    t0 = time.perf_counter()
    try:
        site = load_site(Path(job.site_path))
        setup = job.member.load(site)
        if job.forecast == "perfect":
            setup = with_perfect_forecast(setup)
        mpc = load_mpc(Path(job.mpc_path), dict(job.settings))
        if job.reproducible:
            mpc = mpc.reproducible()
        traj, result = evaluate(setup, job.controller, mpc)
        rules = setup.site.rules
        row.update(status="ok", error="", **kpis(traj, result, rules.max_level_m, rules.alarm_level_m,
                                                 LevelVolume(setup.site.tunnel).volume))
    except Exception as exc:  # a failed run is a row of the table, not the sweep's end
        last = traceback.extract_tb(exc.__traceback__)[-1:]
        where = f" ({Path(last[0].filename).name}:{last[0].lineno})" if last else ""
        row.update(status="failed", error=f"{type(exc).__name__}: {exc}{where}")
    row["wall_s"] = round(time.perf_counter() - t0, 2)
    return row


def kpis(traj: Trajectory, result: dict[str, Any], max_level_m: float, alarm_level_m: float,
         volume_of: Callable[[float], float]) -> dict[str, Any]:
    """The row's figures. Volume-hours above a level: how much water stood above it, and how
    long; the measure of how much worse one storm run was than another."""
    hours = traj.step_s / 3600
    volume = traj.col("volume_m3")
    outflow = traj.col("outflow_m3h")
    decision = result["decision_time_s"]
    counts = result["violations"]
    return {
        "cost_eur": result["cost_eur"], "hard_violations": result["hard_violations"],
        **{f"breaches_{r}": counts[r]["count"] for r in HARD_RULES},
        "level_min_m": result["level_min_m"], "level_max_m": result["level_max_m"],
        "m3h_above_max_level": round(float(np.maximum(volume - volume_of(max_level_m), 0).sum() * hours), 1),
        "m3h_above_alarm": round(float(np.maximum(volume - volume_of(alarm_level_m), 0).sum() * hours), 1),
        "f2_max_m3h": round(float(outflow.max()), 1),
        **{k: result[k] for k in ("f2_mean_abs_step_change_m3h", "f2_jumps", "f2_std_m3h",
                                  "f2_max_hourly_swing_m3h", "pump_starts", "run_hour_spread_h")},
        "decision_p95_s": decision["p95"], "decision_max_s": decision["max"],
        **coverage(result.get("forecast_coverage_by_lead_h") or {}),
    }


def coverage(by_lead: dict[str, dict[str, float]]) -> dict[str, float]:
    """The share of measured inflow under P10, P90 and P99 at 1 h and 12 h lead, and the count
    at 1 h (blank for a controller that does not forecast)."""
    out = {f"cover_{q}_{lead}h": by_lead[lead][q] for lead in COVER_LEADS if lead in by_lead
           for q in ("p10", "p90", "p99") if q in by_lead[lead]}
    if "1" in by_lead:
        out["cover_n"] = by_lead["1"]["n"]
    return out


Executor = Callable[[Sequence[Job]], Iterator[dict[str, Any]]]


def local(workers: int | None = None) -> Executor:
    """A process pool over all cores (or ``workers``); rows arrive as runs finish."""
    def run(batch: Sequence[Job]) -> Iterator[dict[str, Any]]:
        n = max(1, min(workers or os.cpu_count() or 1, len(batch)))
        if n == 1:
            yield from map(run_job, batch)
            return
        with ProcessPoolExecutor(max_workers=n) as pool:
            for future in as_completed([pool.submit(run_job, j) for j in batch]):
                yield future.result()
    return run


def dask(address: Any) -> Executor:
    """The same runs on a Dask distributed cluster: ``address`` is a scheduler address
    (tcp://host:8786) or a ``distributed`` cluster object (a LocalCluster in the tests)."""
    try:
        from distributed import Client
        from distributed import as_completed as dask_completed
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError("the Dask executor needs the 'dask' extra: pip install 'tunneltwin[dask]'",
                                  name=exc.name) from exc

    def run(batch: Sequence[Job]) -> Iterator[dict[str, Any]]:
        with Client(address) as client:  # type: ignore[no-untyped-call]
            futures = client.map(run_job, list(batch), pure=False)
            for future in dask_completed(futures):  # type: ignore[no-untyped-call]
                yield future.result()
    return run


def sweep(batch: Sequence[Job], executor: Executor, progress: Callable[[int, int, dict[str, Any]], None]
          ) -> list[dict[str, Any]]:
    """Every row, in the jobs' order, calling ``progress(done, total, row)`` as each finishes."""
    rows = []
    for done, row in enumerate(executor(batch), start=1):
        progress(done, len(batch), row)
        rows.append(row)
    order = {(j.member.name, j.controller, j.label): i for i, j in enumerate(batch)}
    return sorted(rows, key=lambda r: order[(r["scenario"], r["controller"], r["settings"])])


def write_csv(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """The table, written as the report's other files are (atomically, readable by others)."""
    text = io.StringIO(newline="")
    w = csv.DictWriter(text, fieldnames=COLUMNS, extrasaction="ignore")
    w.writeheader()
    for row in rows:
        w.writerow({k: row.get(k, "") for k in COLUMNS})
    write_text(path, text.getvalue())


@dataclass(frozen=True)
class Verdict:
    """Storm safety of one run against the baseline on the same scenario."""

    scenario: str
    settings: str
    checks: dict[str, bool]

    @property
    def ok(self) -> bool:
        return all(self.checks.values())


def storm_safety(rows: Sequence[dict[str, Any]], alarm_level_m: float, f2_limit_m3h: float,
                 controller: str = "mpc", tolerance_m: float = 0.10) -> list[Verdict]:
    """Each run of ``controller`` against the baseline's on its scenario: under the alarm where
    the baseline stays under it, else no more than ``tolerance_m`` higher; no more volume-hours
    above the max level or the alarm; F2 within its limit; every rule kept where the baseline
    keeps them all."""
    base = {r["scenario"]: r for r in rows if r["controller"] == "baseline" and r["status"] == "ok"}
    out = []
    for r in rows:
        b = base.get(r["scenario"])
        if r["controller"] != controller or b is None:
            continue
        if r["status"] != "ok":
            out.append(Verdict(r["scenario"], r["settings"], {"ran": False}))
            continue
        peak_ok = (r["level_max_m"] <= alarm_level_m if b["level_max_m"] <= alarm_level_m
                   else r["level_max_m"] <= b["level_max_m"] + tolerance_m)
        out.append(Verdict(r["scenario"], r["settings"], {
            "highest_level": peak_ok,
            "m3h_above_max_level": r["m3h_above_max_level"] <= b["m3h_above_max_level"] + 1e-6,
            "m3h_above_alarm": r["m3h_above_alarm"] <= b["m3h_above_alarm"] + 1e-6,
            "f2_limit": max(r["f2_max_m3h"], b["f2_max_m3h"]) <= f2_limit_m3h + 0.5,
            "rules_where_baseline_keeps_them": b["hard_violations"] > 0 or r["hard_violations"] == 0}))
    return out


def totals(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per controller and settings: summed cost and volume-hours, and the worst decision time."""
    out: dict[str, dict[str, float]] = {}
    for r in rows:
        if r["status"] != "ok":
            continue
        t = out.setdefault(f"{r['controller']} {r['settings']}", {"runs": 0, "cost_eur": 0.0,
                                                                    "m3h_above_alarm": 0.0, "hard_violations": 0,
                                                                    "decision_max_s": 0.0})
        t["runs"] += 1
        t["cost_eur"] = round(t["cost_eur"] + r["cost_eur"], 2)
        t["m3h_above_alarm"] = round(t["m3h_above_alarm"] + r["m3h_above_alarm"], 1)
        t["hard_violations"] += r["hard_violations"]
        t["decision_max_s"] = max(t["decision_max_s"], r["decision_max_s"])
        if r.get("cover_n"):
            n = t.get("cover_n", 0) + r["cover_n"]
            for key in (k for k in COLUMNS if k.startswith("cover_p") and r.get(k) not in (None, "")):
                t[key] = round((t.get(key, 0.0) * t.get("cover_n", 0) + r[key] * r["cover_n"]) / n, 4)
            t["cover_n"] = n
    return out


def verdicts_table(verdicts: Sequence[Verdict]) -> list[dict[str, Any]]:
    return [{"scenario": v.scenario, "settings": v.settings, "ok": v.ok, **v.checks} for v in verdicts]
