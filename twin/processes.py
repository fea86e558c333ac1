"""SimPy processes that schedule the pure model. Each is a plain generator."""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Protocol

import simpy

from twin import model
from twin.model import PlantModel, PlantState, StepFlows

InflowFn = Callable[[float], float]


class Meter(Protocol):
    def add(self, flows: StepFlows, dt: float) -> None: ...


class Twin(Protocol):
    """What the processes touch of the twin: its model, state, inflow and meter."""

    @property
    def model(self) -> PlantModel: ...

    @property
    def state(self) -> PlantState: ...

    @property
    def meter(self) -> Meter: ...

    @property
    def inflow_m3h(self) -> InflowFn: ...


def plant(env: simpy.Environment, twin: Twin, dt: float) -> Generator[simpy.Event, None, None]:
    """Step the plant every dt: the step starting now covers [now, now + dt]."""
    while True:
        inflow, n = twin.inflow_m3h(env.now), model.scans(twin.model, twin.state, dt)
        for _ in range(n):
            flows = model.step(twin.model, twin.state, inflow, dt / n)
            twin.meter.add(flows, dt / n)
            model.interlock(twin.model, twin.state, flows.pump_flow_m3h)
        yield env.timeout(dt)


def outage(env: simpy.Environment, twin: Twin, index: int, start_s: float,
           end_s: float) -> Generator[simpy.Event, None, None]:
    """Take one pump out of service for a window (maintenance or a trip)."""
    yield env.timeout(max(0.0, start_s - env.now))
    model.trip(twin.state, index, available=False)
    yield env.timeout(max(0.0, end_s - env.now))
    model.trip(twin.state, index, available=True)
