"""Benchmark: the same lockstep replay in-process, through OPC UA and through MQTT.

Usage: python bench/wire.py [SCENARIO] [--controller mpc|baseline] [--prices normal]
SCENARIO defaults to the recorded 10 days when ../shared is present, else the bundled dry-week.
The servers are real: our asyncua simulator in-process, a mosquitto broker on a free
loopback port. Prints each run's wall time, its ratio to the in-process run, and the
per-tick read + write + read-back round trip and lockstep step (medians: the machine is noisy).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import structlog

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from controller.base import Controller
from controller.baseline import BaselineController
from controller.mpc import MpcController
from scenarios.replay import ReplaySetup
from scenarios.scenario import load_scenario
from tests.plants import Broker, mosquitto, served
from tunneltwin.daemon.loop import Service
from tunneltwin.daemon.stats import Stats
from tunneltwin.settings import Settings

RECORDED = Path(__file__).resolve().parents[2] / "shared" / "hsy-data" / "derived" / "hsy_timeseries_tidy.csv"


def controller(name: str, setup: ReplaySetup) -> tuple[Controller, BaselineController]:
    baseline = BaselineController(setup.site)
    return (baseline, baseline) if name == "baseline" else (MpcController(setup.site, Settings.build().mpc()), baseline)


async def one(kind: str, setup: ReplaySetup, name: str, broker: Broker) -> tuple[float, Stats, float]:
    async with served(kind, setup, broker) as (port, plant):
        ctl, fallback = controller(name, setup)
        t0 = time.perf_counter()
        stats = await Service(port, ctl, fallback, setup.site).run()
        wall = time.perf_counter() - t0
    return wall, stats, float(plant.traj.col("cost_eur").sum())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("scenario", nargs="?", default=str(RECORDED) if RECORDED.exists() else "dry-week")
    ap.add_argument("--controller", choices=("mpc", "baseline"), default="mpc")
    ap.add_argument("--prices", default=None)
    args = ap.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    logging.disable(logging.WARNING)  # asyncua's notes about session timeouts
    warnings.simplefilter("ignore")  # the recorded data's documented repairs
    site = Settings.build().site()
    prices = args.prices or ("normal" if args.scenario.endswith((".csv", ".xlsx")) else None)
    setup = load_scenario(args.scenario, site, prices)
    print(f"{setup.name}: {setup.steps} steps of {setup.step_s / 60:.0f} min, controller {args.controller}")
    with mosquitto("allow_anonymous true\n") as broker:
        base = None
        for kind in ("sim", "opcua", "mqtt"):
            wall, stats, cost = asyncio.run(one(kind, setup, args.controller, broker))
            base = base or wall
            io = statistics.median(stats.io_s) * 1000
            step = statistics.median(stats.step_s) * 1000
            decide = np.percentile(stats.decide_s, [50, 95])
            print(f"{kind:6s} wall {wall:7.1f} s  x{wall / base:4.2f}  read+write+readback p50 {io:6.2f} ms  "
                  f"step p50 {step:6.2f} ms  decide p50/p95 {decide[0]:.3f}/{decide[1]:.3f} s  cost {cost:.2f} EUR")


if __name__ == "__main__":
    main()
