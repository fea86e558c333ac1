"""Benchmark: one year of plant time at 1-min internal steps, baseline control every 15 min.

Usage: python bench/year.py [--days 365] [--repeat 3]
Prints the median wall time of the replays (the machine is shared and noisy).
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import datetime

from controller.baseline import BaselineController
from kernel.physics import PlantPhysics
from scenarios import synthetic
from scenarios.replay import ReplaySetup, run_controller
from scenarios.rules import check
from tunneltwin.settings import Settings


def setup_for(days: int) -> ReplaySetup:
    site = Settings.build().site()
    step_s = site.timing.control_interval_s
    steps = round(days * 86400 / step_s)
    params = synthetic.load_params()
    start = datetime(2025, 1, 1)
    inflow, prices = synthetic.generate(params, start, steps, step_s, 1, rain=True)
    return ReplaySetup("bench-year", site, start, inflow, prices,
                       2.0, {"1.4": 49.0, "2.2": 49.0}, physics=PlantPhysics.from_site(site))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    setup = setup_for(args.days)
    times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        traj = run_controller(setup, BaselineController(setup.site))
        times.append(time.perf_counter() - t0)
    report = check(traj, setup.site.rules)
    print(f"{args.days} days, {setup.steps} control steps, internal step {setup.site.timing.internal_step_s:.0f} s: "
          f"median {statistics.median(times):.1f} s over {args.repeat} runs "
          f"(min {min(times):.1f}, max {max(times):.1f}); hard violations {report.hard_violations} "
          f"{ {rule: c['count'] for rule, c in report.counts().items() if c['count']} }")


if __name__ == "__main__":
    main()
