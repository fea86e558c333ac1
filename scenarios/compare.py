"""`tunneltwin compare`: every controller on the same scenario and twin, one report.

Costs are compared raw, and also adjusted for the water each run leaves in the tunnel
(a run that ends fuller has deferred pumping; the adjustment prices that volume at the
scenario's mean price and the reference run's kWh/m3), so a controller cannot look cheap
by ending full.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from controller.settings import MpcSettings
from kernel.site import Site
from scenarios.report import write_html, write_trajectory
from scenarios.runner import CONTROLLERS, evaluate, with_forecast
from scenarios.scenario import load_scenario
from twin.trajectory import Trajectory


def compare(scenario: str, site: Site, out: Path, prices: str | None = None, start: datetime | None = None,
            end: datetime | None = None, controllers: list[str] | None = None,
            mpc: MpcSettings | None = None, inflow_forecast: str | Path | None = None) -> dict[str, Any]:
    setup = with_forecast(load_scenario(scenario, site, prices, start, end), inflow_forecast)
    names = controllers or [c for c in CONTROLLERS if c != "historical" or setup.recorded is not None]
    runs = {name: evaluate(setup, name, mpc) for name in names if name != "oracle"}
    if "oracle" in names:
        runs["oracle"] = evaluate(setup, "oracle", mpc, oracle_end_volume_max_m3=_end_volume(runs.get("mpc")))
    table = score(runs, float(np.mean(setup.price_eur_per_kwh)), setup.level_m, setup.site)
    out.mkdir(parents=True, exist_ok=True)
    for name, (traj, _) in runs.items():
        (out / name).mkdir(exist_ok=True)
        write_trajectory(traj, out / name / "trajectory.csv", setup.site.clock)
    result = {"scenario": setup.name, "reference": table["reference"], "runs": [s for _, s in runs.values()]}
    (out / "comparison.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    write_html(runs, setup.site.rules, out / "report.html", f"{setup.name}: comparison", setup.site.clock)
    return result


def _end_volume(run: tuple[Trajectory, dict[str, Any]] | None) -> float | None:
    """The oracle ends no fuller than the MPC, so it cannot look cheap by pumping less than the
    MPC did (a run that ends fuller has deferred pumping); without an MPC run it values stored
    water instead."""
    return None if run is None else float(run[0].col("volume_m3")[-1])


def score(runs: dict[str, tuple[Trajectory, dict[str, Any]]], mean_price: float, start_level_m: float,
          site: Site) -> dict[str, Any]:
    """Add the storage-adjusted cost and the share of the oracle's saving to every summary."""
    reference = "historical" if "historical" in runs else "baseline"
    ref = runs.get(reference, next(iter(runs.values())))[1]
    value = mean_price * float(ref.get("kwh_per_m3") or 0.0)
    for traj, s in runs.values():
        stored = traj.col("volume_m3")[-1] - _volume(site, start_level_m)
        s["end_level_m"] = round(float(traj.col("level_m")[-1]), 3)
        s["cost_adjusted_eur"] = round(s["cost_eur"] + stored * value, 2)
    oracle = runs.get("oracle")
    for _, s in runs.values():
        s["cost_vs_reference"] = round(s["cost_eur"] / ref["cost_eur"], 4) if ref["cost_eur"] else None
        if oracle is not None:
            s["oracle_saving_captured"] = _share(ref, s, oracle[1], "cost_eur")
            s["oracle_saving_captured_adjusted"] = _share(ref, s, oracle[1], "cost_adjusted_eur")
    return {"reference": reference}


def _share(ref: dict[str, Any], run: dict[str, Any], oracle: dict[str, Any], key: str) -> float | None:
    possible = ref[key] - oracle[key]
    return round((ref[key] - run[key]) / possible, 4) if possible > 0 else None


def _volume(site: Site, level_m: float) -> float:
    return float(np.interp(level_m, site.tunnel.level_m, site.tunnel.volume_m3))
