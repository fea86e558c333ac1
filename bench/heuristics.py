"""Benchmark: HiGHS with and without the heuristics we switch off, on the MPC's own problems.

Runs the MPC closed loop on a scenario, keeps every n-th interval's problem, then solves
each to the gap (no time limit in practice) with both option sets, alternating, so machine
noise hits both alike. Prints the summed solve time, its ratio, p95, and how far the
objectives moved: an option set that changes no objective changes no plan's cost.

Usage: python -m bench.heuristics [SCENARIO] [--prices normal] [--every 3]
SCENARIO defaults to the recorded 10 days when ../shared is present, else the bundled dry-week.
"""

from __future__ import annotations

import time

import numpy as np

from bench.mpc import Probe, load, scenario_parser
from controller.lp import HEURISTICS_OFF
from controller.milp import build, coefficients
from controller.mpc import MpcController
from scenarios.replay import run_controller

VARIANTS = {"shipped": HEURISTICS_OFF, "feasibility jump on": HEURISTICS_OFF[:2]}


def main() -> None:
    ap = scenario_parser()
    ap.add_argument("--every", type=int, default=3)
    args = ap.parse_args()
    settings, setup = load(args)
    mpc = MpcController(setup.site, settings.mpc().reproducible())
    probe = Probe(mpc, args.every)
    run_controller(setup, probe)
    seconds: dict[str, list[float]] = {name: [] for name in VARIANTS}
    objective: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for problem, _ in probe.samples:
        coef = coefficients(mpc.model, problem.groups, problem.level_guess_m)
        for name, off in VARIANTS.items():
            model, _ = build(problem, coef)
            t0 = time.perf_counter()
            result = model.solve(60.0, mpc.cfg.solver.mip_gap, heuristics_off=off)
            seconds[name].append(time.perf_counter() - t0)
            objective[name].append(result.objective)
    base = np.array(seconds["shipped"])
    print(f"{setup.name}: {len(base)} problems (one interval in {args.every}), each solved to the gap")
    for name in VARIANTS:
        t = np.array(seconds[name])
        moved = np.abs(np.array(objective[name]) - np.array(objective["shipped"]))
        print(f"  {name:20s} sum {t.sum():6.1f} s ({t.sum() / base.sum():.2f} x shipped), "
              f"p95 {np.percentile(t, 95):.3f} s, max {t.max():.2f} s; objective moved: "
              f"max {moved.max():.3f} EUR, in {int((moved > 1e-6).sum())} problems")


if __name__ == "__main__":
    main()
