"""The plant that replay, the daemon and both simulators drive: the twin behind a lockstep
handshake (observe, apply, step), with the prices day-ahead publication allows and the
sensor faults a scenario injects."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np

from kernel.contracts import Observation, PriceCurve, PumpSetpoint, Setpoints, Telemetry
from kernel.errors import ScenarioEnded
from kernel.physics import PlantPhysics
from kernel.site import Site
from twin.trajectory import Trajectory, commanded
from twin.twin import Twin

DAY_AHEAD_PUBLISH_HOUR = 13  # next day's prices are known from 13:00 local time


@dataclass(frozen=True)
class Outage:
    pump_id: str
    start_s: float
    end_s: float


@dataclass(frozen=True)
class SensorFault:
    """The level reading freezes at its last value for a window (the plant keeps moving)."""

    start_s: float
    end_s: float


@dataclass(frozen=True)
class PlantSetup:
    """Everything the twin needs to run as a plant; step k covers (start + k*dt, start + (k+1)*dt]."""

    name: str
    site: Site
    start: datetime
    inflow_m3h: np.ndarray
    price_eur_per_kwh: np.ndarray
    level_m: float
    running: dict[str, float]
    outages: tuple[Outage, ...] = ()
    sensor_faults: tuple[SensorFault, ...] = ()
    physics: PlantPhysics | None = field(default=None, compare=False)

    @property
    def steps(self) -> int:
        return len(self.inflow_m3h)

    @property
    def step_s(self) -> float:
        return self.site.timing.control_interval_s


def known_prices(setup: PlantSetup, now: datetime) -> PriceCurve:
    """Prices as day-ahead publication allows: today's, plus tomorrow's after 13:00."""
    days_ahead = 2 if now.hour >= DAY_AHEAD_PUBLISH_HOUR else 1
    horizon_end = datetime.combine(now.date() + timedelta(days=days_ahead), datetime.min.time())
    k0 = round((now - setup.start).total_seconds() / setup.step_s)
    k1 = min(setup.steps, round((horizon_end - setup.start).total_seconds() / setup.step_s))
    values = tuple(float(x) for x in setup.price_eur_per_kwh[k0:max(k0, k1)])
    return PriceCurve(start=now, step_s=setup.step_s, eur_per_kwh=values)


def inflow_fn(setup: PlantSetup) -> Callable[[float], float]:
    last = setup.steps - 1

    def inflow(t_s: float) -> float:
        return float(setup.inflow_m3h[min(int(t_s // setup.step_s), last)])

    return inflow


def make_twin(setup: PlantSetup) -> Twin:
    twin = Twin(setup.site, setup.start, inflow_fn(setup), setup.level_m, setup.running, setup.physics)
    for o in setup.outages:
        twin.schedule_outage(o.pump_id, o.start_s, o.end_s)
    return twin


class FaultySensor:
    """Applies sensor faults to telemetry on its way to the controller."""

    def __init__(self, faults: tuple[SensorFault, ...], start: datetime) -> None:
        self.faults, self.start = faults, start
        self.frozen: Telemetry | None = None

    def __call__(self, tel: Telemetry) -> Telemetry:
        t = (tel.time - self.start).total_seconds()
        if not any(f.start_s <= t < f.end_s for f in self.faults):
            self.frozen = tel
            return tel
        held = self.frozen or tel
        return tel.model_copy(update={"level_m": held.level_m, "volume_m3": held.volume_m3})


class LockstepPlant:
    """The twin behind a lockstep handshake: observe, apply, step, and a trajectory of it all.

    The in-process replay and the simulator served over OPC UA or MQTT both drive this
    class, which is why their results are the same.
    """

    def __init__(self, setup: PlantSetup) -> None:
        self.setup = setup
        self.twin = make_twin(setup)
        self.sensor = FaultySensor(setup.sensor_faults, setup.start)
        self.traj = Trajectory(self.twin.ids, setup.step_s)
        self.cmd = {p: (p in setup.running, setup.running.get(p, 0.0)) for p in self.twin.ids}
        self.k = 0

    @property
    def done(self) -> bool:
        return self.k >= self.setup.steps

    def observe(self) -> Observation:
        """What a controller sees now; call once per step (a frozen sensor keeps state)."""
        tel = self.sensor(self.twin.telemetry())
        return Observation(telemetry=tel, prices=known_prices(self.setup, tel.time))

    def apply(self, setpoints: Setpoints) -> None:
        self.twin.apply(setpoints)
        self.cmd = commanded(setpoints, self.cmd)

    def held(self, ids: list[str] | None = None) -> Setpoints:
        """The commands the plant holds now for ``ids`` (default all): what a read-back returns."""
        stops = dict(zip(self.twin.ids, self.twin.state.stop_below_m, strict=True))
        return Setpoints(pumps=tuple(PumpSetpoint(id=i, on=self.cmd[i][0], freq_hz=self.cmd[i][1],
                                                  stop_below_m=float(stops[i]))
                                     for i in (self.twin.ids if ids is None else ids)))

    def step(self) -> None:
        """Advance one control interval and record it."""
        if self.done:
            raise ScenarioEnded(f"scenario {self.setup.name!r} has no step {self.k + 1}")
        available = [bool(a) for a in self.twin.state.available]
        rec = self.twin.advance()
        self.traj.add(self.twin.now, self.twin.level_m, self.twin.state.volume_m3, rec,
                      float(self.setup.price_eur_per_kwh[self.k]), self.cmd, available, rec.spilled_m3)
        # a pump its stop level stopped is off from here on, as its PLC reset the command
        self.cmd.update({p: (False, 0.0) for p in self.twin.stopped_by_level()})
        self.k += 1
