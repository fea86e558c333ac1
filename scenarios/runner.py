"""Run named controllers on a scenario and write the replay's or comparison's output directory.

The registry below is the one list of controller names; the CLI offers exactly these.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from controller.baseline import BaselineController
from controller.config import DEFAULT_MPC, load_mpc
from controller.forecast import ExternalInflow
from controller.mpc import MpcController
from controller.oracle import OracleController
from controller.settings import MpcSettings
from controller.uncertainty import QUANTILES
from kernel.errors import ConfigError
from kernel.site import Site
from scenarios.kpis import forecast_coverage, forecast_error, percentiles, summary
from scenarios.replay import ReplaySetup, run_controller, run_historical
from scenarios.report import write_html, write_summary, write_trajectory
from scenarios.rules import check
from scenarios.scenario import load_scenario
from twin.lockstep import PlantSetup
from twin.trajectory import Trajectory

Run = tuple[Trajectory, dict[str, Any]]


@dataclass(frozen=True)
class RunOptions:
    """Per-run options a controller may take; the others ignore them."""

    oracle_end_volume_max_m3: float | None = None  # the oracle ends no fuller than this


def _historical(setup: ReplaySetup, mpc: MpcSettings, opts: RunOptions) -> Run:
    if setup.recorded is None:
        raise ConfigError(f"scenario {setup.name!r} has no recorded operation; "
                          "'historical' needs a recorded data file")
    return run_historical(setup), {}


def _baseline(setup: ReplaySetup, mpc: MpcSettings, opts: RunOptions) -> Run:
    return run_controller(setup, BaselineController(setup.site)), {}


def _mpc(setup: ReplaySetup, settings: MpcSettings, opts: RunOptions) -> Run:
    mpc = MpcController(setup.site, settings)
    mpc.forecaster.external = setup.inflow_forecast
    return _loop(setup, mpc)


def _oracle(setup: ReplaySetup, settings: MpcSettings, opts: RunOptions) -> Run:
    return _loop(setup, OracleController(setup.site, setup.start, setup.inflow_m3h, setup.price_eur_per_kwh,
                                         settings, opts.oracle_end_volume_max_m3))


def _loop(setup: ReplaySetup, mpc: MpcController) -> Run:
    traj = run_controller(setup, mpc)
    solves = [s.solve_s for s in mpc.log]
    extra = {"forecast_error_by_lead_h": forecast_error(traj, [s.inflow_forecast_m3h for s in mpc.log]),
             "forecast_coverage_by_lead_h": forecast_coverage(traj, [s.inflow_quantiles_m3h for s in mpc.log]),
             "solver_s": solves, "fallbacks": sum(s.source != "mpc" for s in mpc.log),
             "external_forecast_fallbacks": mpc.external_misses if mpc.forecaster.external is not None else None,
             "supervisor_overrides": dict(mpc.supervisor.counts),
             "landings": {"attempts": mpc.landings.attempts, "misses": mpc.landings.misses,
                          "first_made_missed": list(mpc.landings.first),
                          "retry_made_missed": list(mpc.landings.retry)}}
    return traj, extra


CONTROLLERS: dict[str, Callable[[ReplaySetup, MpcSettings, RunOptions], Run]] = {
    "historical": _historical, "baseline": _baseline, "mpc": _mpc, "oracle": _oracle}


def run_named(setup: ReplaySetup, controller: str, mpc: MpcSettings | None = None) -> Trajectory:
    return _run(setup, controller, mpc)[0]


def _run(setup: ReplaySetup, controller: str, mpc: MpcSettings | None, opts: RunOptions | None = None) -> Run:
    runner = CONTROLLERS.get(controller)
    if runner is None:
        raise ConfigError(f"unknown controller {controller!r}; known: {', '.join(CONTROLLERS)}")
    return runner(setup, mpc or load_mpc(DEFAULT_MPC), opts or RunOptions())


def evaluate(setup: ReplaySetup, controller: str, mpc: MpcSettings | None = None,
             oracle_end_volume_max_m3: float | None = None) -> tuple[Trajectory, dict[str, Any]]:
    """Run one controller and score it with the one rule checker."""
    traj, extra = _run(setup, controller, mpc, RunOptions(oracle_end_volume_max_m3))
    result = score(traj, setup, controller)
    solves = extra.pop("solver_s", None)
    if solves:
        result["solver_time_s"] = {**percentiles(solves), "n": len(solves)}
    result.update(extra)
    return traj, result


PERFECT = "perfect"  # as an external forecast: the scenario's own inflow


def with_forecast(setup: ReplaySetup, inflow_forecast: str | Path | None) -> ReplaySetup:
    """Attach an external inflow forecast for the MPC to use: a CSV (``time,inflow_m3h``,
    optional quantile columns such as ``inflow_p90_m3h``) or ``"perfect"``."""
    if inflow_forecast is None:
        return setup
    if str(inflow_forecast) == PERFECT:
        return with_perfect_forecast(setup)
    external = ExternalInflow.from_csv(Path(inflow_forecast), setup.site.clock)
    return dataclasses.replace(setup, inflow_forecast=external)


def with_perfect_forecast(setup: ReplaySetup) -> ReplaySetup:
    """The scenario's own inflow as an external forecast with no spread (every quantile the
    truth), its last day repeated past the end so the horizon is covered to the last step:
    what a perfect rain radar would give, to measure what forecast quality is worth."""
    inflow = np.asarray(setup.inflow_m3h, dtype=float)
    day = round(86400 / setup.step_s)
    padded = np.concatenate([inflow, np.resize(inflow[-day:], 7 * day)])
    times = [setup.start + timedelta(seconds=(k + 1) * setup.step_s) for k in range(len(padded))]
    return dataclasses.replace(setup, inflow_forecast=ExternalInflow(times, padded, dict.fromkeys(QUANTILES, padded)))


def replay_to_dir(scenario: str, controller: str, out: Path, site: Site, prices: str | None = None,
                  start: datetime | None = None, end: datetime | None = None,
                  mpc: MpcSettings | None = None, inflow_forecast: str | Path | None = None) -> dict[str, Any]:
    setup = with_forecast(load_scenario(scenario, site, prices, start, end), inflow_forecast)
    traj, result = evaluate(setup, controller, mpc)
    write_run(traj, result, setup.site, out)
    return result


def score(traj: Trajectory, setup: PlantSetup, controller: str) -> dict[str, Any]:
    """The one rule checker and KPI summary, for a trajectory however it was driven."""
    site = setup.site
    bep = {p.id: site.pump_types[p.type].curve_50hz.best_efficiency_flow_m3h() * p.flow_scale for p in site.pumps}
    return summary(traj, check(traj, site.rules), setup.name, controller, site.rules.f2_step_soft_m3h, bep,
                   site.clock)


def write_run(traj: Trajectory, result: dict[str, Any], site: Site, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_trajectory(traj, out / "trajectory.csv", site.clock)
    write_summary(result, out / "summary.json")
    write_html({result["controller"]: (traj, result)}, site.rules, out / "report.html",
               f"{result['scenario']}: {result['controller']}", site.clock)
