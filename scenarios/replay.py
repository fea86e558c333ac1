"""Lockstep replay: the twin advances one control interval, the controller answers, repeat."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import structlog

from controller.base import Controller
from controller.forecast import ExternalInflow
from kernel.recorded import RecordedData
from scenarios import progress
from scenarios.drive import run_recorded_step, twin_at_row
from twin.lockstep import LockstepPlant, PlantSetup
from twin.trajectory import Trajectory


@dataclass(frozen=True)
class ReplaySetup(PlantSetup):
    """A plant setup with what a validation run adds: the recorded operation it replays (if
    any), which of its price series, and an external inflow forecast for the MPC."""

    recorded: RecordedData | None = None
    price_key: str = "normal"
    inflow_forecast: ExternalInflow | None = field(default=None, compare=False)


def run_controller(setup: ReplaySetup, controller: Controller) -> Trajectory:
    plant = LockstepPlant(setup)
    what = f"{setup.name} / {controller.name}"
    with structlog.contextvars.bound_contextvars(run=what):  # a warning names the run it came from
        while not plant.done:
            progress.report(what, plant.k, setup.steps)
            obs = plant.observe()
            t0 = time.perf_counter()
            sp = controller.decide(obs)
            plant.traj.solve_s.append(time.perf_counter() - t0)
            plant.apply(sp)
            plant.step()
    progress.report(what, plant.k, setup.steps)
    return plant.traj


def run_historical(setup: ReplaySetup) -> Trajectory:
    """The recorded operation on the twin in tracking mode (level corrected every step)."""
    data = setup.recorded
    if data is None:
        raise ValueError(f"scenario {setup.name!r} has no recorded operation to replay")
    site = setup.site
    twin = twin_at_row(data, site, 0, setup.physics)
    traj = Trajectory(twin.ids, setup.step_s)
    available = [p.available for p in site.pumps]
    for k in range(1, len(data)):
        progress.report(f"{setup.name} / historical", k - 1, len(data) - 1)
        rec = run_recorded_step(twin, data, site, k)
        level = float(data.level_m[k])  # measured; below the flat sump the table can't return it
        twin.set_level(level)
        cmd = {p: (bool(data.pump_flow_m3h[p][k] > 0), float(data.pump_freq_hz[p][k]))
               for p in twin.ids}
        traj.add(data.timestamps[k], level, twin.state.volume_m3, rec,
                 float(setup.price_eur_per_kwh[k - 1]), cmd, available, rec.spilled_m3)
    progress.report(f"{setup.name} / historical", len(data) - 1, len(data) - 1)
    return traj
