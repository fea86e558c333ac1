"""Run a named controller on a scenario and write the replay's output directory."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from controller.baseline import BaselineController
from scenarios.kpis import summary
from scenarios.replay import ReplaySetup, run_controller, run_historical
from scenarios.report import write_html, write_summary, write_trajectory
from scenarios.rules import check
from scenarios.scenario import load_scenario
from scenarios.trajectory import Trajectory
from tunneltwin.errors import ConfigError
from tunneltwin.site import Site


def run_named(setup: ReplaySetup, controller: str) -> Trajectory:
    if controller == "historical":
        if setup.recorded is None:
            raise ConfigError(f"scenario {setup.name!r} has no recorded operation; "
                              "'historical' needs a recorded data file")
        return run_historical(setup)
    if controller == "baseline":
        return run_controller(setup, BaselineController(setup.site))
    raise ConfigError(f"unknown controller {controller!r}")


def replay_to_dir(scenario: str, controller: str, out: Path, site: Site, prices: str | None = None,
                  start: datetime | None = None, end: datetime | None = None) -> dict[str, Any]:
    setup = load_scenario(scenario, site, prices, start, end)
    traj = run_named(setup, controller)
    report = check(traj, setup.site.rules)
    result = summary(traj, report, setup.name, controller)
    out.mkdir(parents=True, exist_ok=True)
    write_trajectory(traj, out / "trajectory.csv")
    write_summary(result, out / "summary.json")
    write_html({controller: (traj, result)}, setup.site.rules, out / "report.html",
               f"{setup.name}: {controller}")
    return result
