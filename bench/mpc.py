"""Benchmark: the MPC's solve times, the closed-loop replay time, and the speed-up of the
grouped formulation over the naive one (one binary per pump per step).

Usage: python bench/mpc.py [SCENARIO] [--prices normal] [--samples 12] [--naive-limit 30]
SCENARIO defaults to the recorded 10 days when ../shared is present, else the bundled dry-week.
Prints medians and ratios: the machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import statistics
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import structlog

from controller.base import Report
from controller.milp import Problem, coefficients, solve
from controller.mpc import MpcController
from kernel.contracts import Observation, Setpoints, Telemetry
from kernel.site import Site
from scenarios.replay import ReplaySetup, run_controller
from scenarios.rules import check
from scenarios.scenario import load_scenario
from tunneltwin.settings import Settings

RECORDED = Path(__file__).resolve().parents[2] / "shared" / "hsy-data" / "derived" / "hsy_timeseries_tidy.csv"


class Probe:
    """The MPC, keeping every n-th problem it solved (with its telemetry) for the naive re-solve."""

    name = "mpc"

    def __init__(self, mpc: MpcController, every: int) -> None:
        self.mpc, self.every, self.k = mpc, every, 0
        self.samples: list[tuple[Problem, Telemetry]] = []

    def decide(self, obs: Observation) -> Setpoints:
        sp = self.mpc.decide(obs)
        if self.k % self.every == 0 and self.mpc.last_problem is not None:
            self.samples.append((self.mpc.last_problem, obs.telemetry))
        self.k += 1
        return sp

    def retune(self, site: Site) -> None:
        self.mpc.retune(site)

    def reprice(self, smooth_eur_per_m3h: float | None) -> None:
        self.mpc.reprice(smooth_eur_per_m3h)

    def report(self) -> Report:
        return self.mpc.report()

    def recall(self, history: Sequence[Telemetry]) -> None:
        self.mpc.recall(history)


def naive(mpc: MpcController, p: Problem, tel: Telemetry) -> Problem:
    single = MpcController(mpc.site, mpc.cfg.with_solver(grouped=False), mpc.model)
    groups = single.builder.groups(tel)
    on, off = single.builder.locks(tel, groups)
    n_now = np.array([int(tel.pumps[g.members[0]].status.is_on) for g in groups], dtype=np.int64)
    return dataclasses.replace(p, groups=groups, n_now=n_now, locked_on=on, locked_off=off,
                               q_floor_m3h=single.builder.floor_flows(groups), block_steps=1, fine_steps=0,
                               integer_steps=None)


def timed(mpc: MpcController, p: Problem, limit: float) -> tuple[float, float, str]:
    coef = coefficients(mpc.model, p.groups, p.level_guess_m)
    t0 = time.perf_counter()
    plan = solve(p, coef, limit, mpc.cfg.solver.mip_gap)
    seconds = time.perf_counter() - t0
    return seconds, plan.objective if plan else float("nan"), plan.status if plan else "none"


def scenario_parser() -> argparse.ArgumentParser:
    """The optimiser benches' common arguments: a scenario (the recorded 10 days when
    ../shared is present, else dry-week) and its price series."""
    ap = argparse.ArgumentParser()
    ap.add_argument("scenario", nargs="?", default=str(RECORDED) if RECORDED.exists() else "dry-week")
    ap.add_argument("--prices", default=None)
    return ap


def load(args: argparse.Namespace) -> tuple[Settings, ReplaySetup]:
    """Settings as the CLI builds them (TUNNELTWIN_SITE and TUNNELTWIN_MPC apply) and the
    scenario, quietly: errors only, and the recorded data's documented repairs unwarned."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    warnings.simplefilter("ignore")
    settings = Settings.build()
    prices = args.prices or ("normal" if args.scenario.endswith((".csv", ".xlsx")) else None)
    return settings, load_scenario(args.scenario, settings.site(), prices)


def main() -> None:
    ap = scenario_parser()
    ap.add_argument("--samples", type=int, default=12)
    ap.add_argument("--naive-limit", type=float, default=30.0)
    args = ap.parse_args()
    settings, setup = load(args)
    site = setup.site
    mpc = MpcController(site, settings.mpc())
    probe = Probe(mpc, max(1, setup.steps // args.samples))
    t0 = time.perf_counter()
    traj = run_controller(setup, probe)
    wall = time.perf_counter() - t0
    solves = np.array([s.solve_s for s in mpc.log])
    report = check(traj, site.rules)
    print(f"{setup.name}: {setup.steps} steps closed loop in {wall:.1f} s; cost {traj.col('cost_eur').sum():.2f} EUR; "
          f"hard violations {report.hard_violations}; fallbacks {sum(s.source != 'mpc' for s in mpc.log)}")
    print(f"solve time per step: p50 {np.percentile(solves, 50):.3f} s, p95 {np.percentile(solves, 95):.3f} s, "
          f"max {solves.max():.3f} s")
    ratios, gaps = [], []
    for p, tel in probe.samples:
        ours, obj, _ = timed(mpc, p, mpc.cfg.solver.time_limit_s)
        theirs, obj_naive, status = timed(mpc, naive(mpc, p, tel), args.naive_limit)
        ratios.append(theirs / ours)
        gaps.append(obj / obj_naive - 1 if np.isfinite(obj_naive) else float("nan"))
        print(f"  sample: grouped {ours:.3f} s, naive {theirs:.3f} s ({status}), objective grouped/naive - 1 "
              f"{gaps[-1] * 100:+.2f} %")
    print(f"naive / grouped solve time: median {statistics.median(ratios):.1f}x over {len(ratios)} samples "
          f"(naive capped at {args.naive_limit:.0f} s); objective difference median "
          f"{statistics.median(gaps) * 100:+.2f} %")


if __name__ == "__main__":
    main()
