"""Pure plant state and its step: (state, inflow, dt) -> state, plus what flowed.

Pump state lives in numpy arrays (one slot per pump) because this is the hot loop:
a simulated year at 1-minute steps is half a million calls.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from kernel.contracts import PumpStatus
from kernel.physics import PlantPhysics, StackedGrids
from kernel.site import Site

Floats = NDArray[np.float64]
OFF, STARTING, RUNNING, STOPPING = 0, 1, 2, 3
SCAN_S = 5.0  # a PLC checks its stop levels this often; near the bottom the level moves in seconds
NEAR_M = 0.3  # ... and the twin steps that finely while the level is this close to an armed one
STATUS = (PumpStatus.OFF, PumpStatus.STARTING, PumpStatus.RUNNING, PumpStatus.STOPPING)


@dataclass
class PlantState:
    """Mutable state of tunnel and pumps; the twin owns exactly one."""

    volume_m3: float
    overflow_m3: float
    status: NDArray[np.int_]
    target_hz: NDArray[np.float64]
    freq_hz: NDArray[np.float64]
    ramp_t_s: NDArray[np.float64]  # time spent in the current ramp
    since_switch_s: NDArray[np.float64]  # time since the pump last switched on or off
    run_s: NDArray[np.float64]
    starts: NDArray[np.int_]
    available: NDArray[np.bool_]
    stop_below_m: NDArray[np.float64]  # each running pump's stop level (0: none), see ``interlock``
    stopped_at_level: NDArray[np.bool_]  # stopped by its stop level: no restart inside min-off
    level_stops: NDArray[np.int_]  # how often each pump's stop level stopped it


@dataclass
class StepFlows:
    """What happened over one internal step (flows are step averages)."""

    pump_flow_m3h: NDArray[np.float64]
    pump_power_kw: NDArray[np.float64]
    outflow_m3h: float
    inflow_m3h: float
    spilled_m3: float


@dataclass
class PlantModel:
    """Everything static the step needs, resolved once from the site."""

    physics: PlantPhysics
    pump_types: list[str]
    ramp_s: float
    flow_scale: NDArray[np.float64]
    power_scale: NDArray[np.float64]
    min_on_s: float = 0.0  # the stop level never ends a run shorter than this
    min_off_s: float = 0.0  # ... and a pump it stopped ignores starts for this long
    type_index: dict[str, NDArray[np.int_]] = field(init=False)
    stacked: StackedGrids | None = field(init=False)

    def __post_init__(self) -> None:
        names = np.array(self.pump_types)
        self.type_index = {t: np.flatnonzero(names == t) for t in set(self.pump_types)}
        grids = [self.physics.grids[t] for t in self.pump_types]
        self.stacked = StackedGrids(grids, self.flow_scale, self.power_scale) \
            if StackedGrids.compatible(grids) else None

    @classmethod
    def from_site(cls, site: Site, physics: PlantPhysics | None = None) -> PlantModel:
        physics = physics or PlantPhysics.from_site(site)
        return cls(physics, [p.type for p in site.pumps], site.timing.ramp_s,
                   np.array([p.flow_scale for p in site.pumps]),
                   np.array([p.power_scale for p in site.pumps]), site.rules.min_on_s, site.rules.min_off_s)

    def initial_state(self, level_m: float, on: NDArray[np.bool_], freq_hz: NDArray[np.float64],
                      available: NDArray[np.bool_]) -> PlantState:
        n = len(self.pump_types)
        running = on & available
        return PlantState(
            volume_m3=self.physics.geometry.volume(level_m), overflow_m3=0.0,
            status=np.where(running, RUNNING, OFF), target_hz=np.where(running, freq_hz, 0.0),
            freq_hz=np.where(running, freq_hz, 0.0), ramp_t_s=np.zeros(n),
            since_switch_s=np.full(n, 86400.0), run_s=np.zeros(n),
            starts=np.zeros(n, dtype=int), available=available.copy(), stop_below_m=np.zeros(n),
            stopped_at_level=np.zeros(n, dtype=bool), level_stops=np.zeros(n, dtype=int),
        )

    def pump_flows(self, freq_hz: Floats, level_m: float) -> tuple[Floats, Floats]:
        if self.stacked is not None:
            return self.stacked.lookup(freq_hz, level_m)
        flow = np.zeros_like(freq_hz)
        power = np.zeros_like(freq_hz)
        for name, idx in self.type_index.items():
            flow[idx], power[idx] = self.physics.grids[name].lookup(freq_hz[idx], level_m)
        return flow * self.flow_scale, power * self.power_scale


def command(model: PlantModel, state: PlantState, on: NDArray[np.bool_], freq_hz: NDArray[np.float64],
            stop_below_m: NDArray[np.float64] | None = None) -> None:
    """Turn on/off commands into ramps; a pump that is not available ignores a start, and so does
    one its stop level stopped, inside its minimum off time (a held command is applied again every
    interval). A running pump takes its new stop level; a stopped one has none."""
    is_on = _running(state)
    locked = state.stopped_at_level & (state.since_switch_s < model.min_off_s)
    start = on & ~is_on & state.available & ~locked
    on = on & ~locked
    state.stopped_at_level[start] = False
    stop = ~on & is_on
    state.status[start] = STARTING
    state.status[stop] = STOPPING
    state.ramp_t_s[start | stop] = 0.0
    state.since_switch_s[start | stop] = 0.0
    state.starts[start] += 1
    keep = on & state.available
    state.target_hz[keep] = freq_hz[keep]
    state.stop_below_m[:] = np.where(keep, 0.0 if stop_below_m is None else stop_below_m, 0.0)


def interlock(model: PlantModel, state: PlantState, flow_m3h: NDArray[np.float64]) -> None:
    """Stop levels, as the PLC executes them between the daemon's commands: a running pump stops
    when the level falls under its stop level, once its minimum run is done, and never the last
    pump running (the one with the least flow stays). It covers a command the plant keeps
    running because later writes were refused (soak: six pumps from 1.31 m held two intervals
    took the level to 0.06 m)."""
    armed = (state.stop_below_m > 0) & (state.since_switch_s >= model.min_on_s)
    if not armed.any():  # the common case: no level lookup in the hot loop
        return
    on = _running(state)
    due = armed & on & (model.physics.geometry.level(state.volume_m3) < state.stop_below_m)
    if not due.any():
        return
    if due.sum() == on.sum():
        due[np.flatnonzero(due)[np.argmin(flow_m3h[due])]] = False
    state.status[due] = STOPPING
    state.ramp_t_s[due] = 0.0
    state.since_switch_s[due] = 0.0
    state.stop_below_m[due] = 0.0
    state.stopped_at_level[due] = True
    state.level_stops[due] += 1


def scans(model: PlantModel, state: PlantState, dt: float) -> int:
    """How many pieces to step dt in: one, or PLC scans while the level is near a stop level."""
    top = float(state.stop_below_m.max())
    if top <= 0:  # no stop level armed: no level lookup in the hot loop
        return 1
    near = top > model.physics.geometry.level(state.volume_m3) - NEAR_M
    return max(1, math.ceil(dt / SCAN_S)) if near else 1


def _running(state: PlantState) -> NDArray[np.bool_]:
    running: NDArray[np.bool_] = (state.status == STARTING) | (state.status == RUNNING)
    return running


def trip(state: PlantState, index: int, available: bool) -> None:
    """Availability change; a pump that trips stops at once (coasting is not modelled)."""
    state.available[index] = available
    if not available and state.status[index] != OFF:
        state.status[index] = OFF
        state.freq_hz[index] = 0.0
        state.since_switch_s[index] = 0.0


def _advance_ramps(state: PlantState, dt: float, ramp_s: float) -> NDArray[np.float64]:
    """Advance drive frequencies; returns the mid-step frequency used for flow."""
    start_f = state.freq_hz.copy()
    state.ramp_t_s += dt
    frac = np.minimum(state.ramp_t_s / ramp_s, 1.0) if ramp_s > 0 else np.ones_like(start_f)
    starting = state.status == STARTING
    stopping = state.status == STOPPING
    running = state.status == RUNNING
    state.freq_hz[starting] = state.target_hz[starting] * frac[starting]
    state.freq_hz[running] = state.target_hz[running]
    state.freq_hz[stopping] = state.target_hz[stopping] * (1 - frac[stopping])
    state.status[starting & (frac >= 1)] = RUNNING
    done = stopping & (frac >= 1)
    state.status[done] = OFF
    state.freq_hz[done] = 0.0
    state.target_hz[done] = 0.0
    return 0.5 * (start_f + state.freq_hz)


def step(model: PlantModel, state: PlantState, inflow_m3h: float, dt: float) -> StepFlows:
    """Advance the plant by dt seconds. Volume above the table's top is spilled, never hidden."""
    geometry = model.physics.geometry
    freq_mid = _advance_ramps(state, dt, model.ramp_s)
    level = geometry.level(state.volume_m3)
    flow, power = model.pump_flows(freq_mid, level)
    outflow = float(flow.sum())
    volume = state.volume_m3 + (inflow_m3h - outflow) * dt / 3600.0
    if volume < 0.0:  # pumps run dry: they cannot lift water that is not there
        scale = max(0.0, 1.0 + volume / (outflow * dt / 3600.0)) if outflow > 0 else 0.0
        flow *= scale
        outflow *= scale
        volume = 0.0
    spilled = max(0.0, volume - geometry.max_volume_m3)
    state.volume_m3 = volume - spilled
    state.overflow_m3 += spilled
    on = state.status != OFF
    state.run_s[on] += dt
    state.since_switch_s += dt
    return StepFlows(flow, power, outflow, inflow_m3h, spilled)
