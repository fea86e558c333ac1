"""Calibration of the learnt inflow spread without the optimiser: the forecast does not depend on
the pumps (the inflow is the plant's, not ours), so the MPC's forecaster and spread learner are
run causally over each scenario's inflow, as the MPC calls them, and each quantile's coverage
(the share of measured inflows at or under it) is counted at 1 h and 12 h lead.

Usage: python bench/coverage.py [SCENARIO_OR_ENSEMBLE ...]   (default: storm-ensemble, and the
       recorded 10 days where ../shared has them)
"""

from __future__ import annotations

import sys
import warnings
from datetime import timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from controller.config import DEFAULT_MPC, load_mpc
from controller.forecast import InflowForecaster
from controller.uncertainty import ForecastSpread
from kernel.site import load_site
from scenarios.ensemble import members
from scenarios.replay import ReplaySetup

PS = (0.1, 0.9, 0.99)
LEADS_H = (1, 12)
RECORDED = Path(__file__).resolve().parents[2] / "shared" / "hsy-data" / "Hackathon_HSY_data.xlsx"


def hits(setup: ReplaySetup) -> dict[tuple[int, float], list[bool]]:
    """(lead h, p) -> for each forecast, whether the measured inflow was at or under its p-quantile."""
    cfg = load_mpc(DEFAULT_MPC)
    step_s = setup.step_s
    horizon = round(cfg.horizon_h * 3600 / step_s)
    forecaster, spread = InflowForecaster(step_s, cfg.forecast), ForecastSpread(step_s, horizon)
    inflow = np.asarray(setup.inflow_m3h, dtype=float)
    out: dict[tuple[int, float], list[bool]] = {(h, p): [] for h in LEADS_H for p in PS}
    for k in range(1, len(inflow)):
        t = setup.start + timedelta(seconds=k * step_s)
        forecaster.observe(t, float(inflow[k - 1]))  # the interval ending now
        spread.observe(t, float(inflow[k - 1]))
        point = forecaster.forecast(t, horizon)
        state = forecaster.weather(t)
        spread.issued(t, state, point)
        band = spread.spread(state, point)
        for h in LEADS_H:
            j = round(h * 3600 / step_s) - 1
            if k + j < len(inflow):
                for p in PS:
                    out[(h, p)].append(bool(inflow[k + j] <= band.at(p)[j]))
    return out


def table(name: str, setups: list[ReplaySetup]) -> None:
    total: dict[tuple[int, float], list[bool]] = {}
    for s in setups:
        for key, v in hits(s).items():
            total.setdefault(key, []).extend(v)
    cells = "  ".join(f"P{round(p * 100):02d}@{h}h {np.mean(total[(h, p)]):.3f}" for h in LEADS_H for p in PS)
    print(f"{name:16s} {cells}  (n={len(total[(1, 0.1)])})")


def main(refs: list[str]) -> None:
    site = load_site()
    for ref in refs or ["storm-ensemble"]:
        table(ref, [m.load(site) for m in members([ref])])
    if not refs and RECORDED.exists():
        from scenarios.scenario import load_scenario

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            table("recorded", [load_scenario(str(RECORDED), site, "normal", None, None)])


if __name__ == "__main__":
    main(sys.argv[1:])
