"""Frozen level sensor scan: 3-h freezes at several start times of the bundled dry week's first
days, each run by the daemon with the baseline, with telemetry validation and without.

Prints the steps under the minimum level per window. Run: ``python bench/frozen.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging

import structlog

from adapters.client.sim import SimPort
from controller.baseline import BaselineController
from scenarios.replay import ReplaySetup
from scenarios.rules import check
from scenarios.scenario import load_scenario
from tunneltwin.daemon.loop import Service
from tunneltwin.daemon.validation import Checked
from tunneltwin.settings import Settings
from twin.lockstep import LockstepPlant, SensorFault


async def under_min(setup: ReplaySetup, validated: bool) -> int:
    plant = LockstepPlant(setup)
    baseline = BaselineController(setup.site)
    service = Service(SimPort(plant), baseline, baseline, setup.site)
    if not validated:
        service.validator.check = lambda tel: Checked(tel, (), False)  # type: ignore[method-assign]
    await service.run()
    return sum(b.rule == "level_below_min" for b in check(plant.traj, setup.site.rules).breaches)


async def scan(days: int, starts_h: list[float], hours: float) -> None:
    site = Settings.build().site()
    week = load_scenario("dry-week", site, None, None, None)
    per_day = round(86400 / site.timing.control_interval_s)
    totals = [0, 0]
    print("day  freeze at  under 0.5 m checked / unchecked (steps)")
    for day in range(days):
        part = slice(day * per_day, (day + 1) * per_day)
        for start in starts_h:
            fault = SensorFault(start * 3600, (start + hours) * 3600)
            setup = dataclasses.replace(week, inflow_m3h=week.inflow_m3h[part],
                                        price_eur_per_kwh=week.price_eur_per_kwh[part], sensor_faults=(fault,))
            counts = [await under_min(setup, True), await under_min(setup, False)]
            totals = [t + c for t, c in zip(totals, counts, strict=True)]
            print(f"{day + 1:3d}  {start:8.2f} h  {counts[0]:3d} / {counts[1]:3d}")
    print(f"all  {totals[0]} / {totals[1]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--days", type=int, default=3)
    ap.add_argument("--starts-h", type=float, nargs="+", default=[3.5, 4.0, 4.5, 5.0, 5.5, 6.0])
    ap.add_argument("--hours", type=float, default=3.0)
    args = ap.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))
    asyncio.run(scan(args.days, args.starts_h, args.hours))


if __name__ == "__main__":
    main()
