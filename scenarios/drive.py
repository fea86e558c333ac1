"""Drive a twin through recorded steps with the recorded commands (open loop or tracking)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from kernel.physics import PlantPhysics
from kernel.recorded import RecordedData
from kernel.site import Site
from scenarios.commands import initial_running, step_schedule
from twin import Twin
from twin.twin import IntervalRecord


def recorded_inflow(data: RecordedData, first_row: int) -> Callable[[float], float]:
    """Inflow over twin time: row k's inflow covers the step ending at timestamps[k]."""
    step_s = data.step_s
    last = len(data) - 1

    def inflow(t_s: float) -> float:
        return float(data.inflow_m3h[min(first_row + 1 + int(t_s // step_s), last)])

    return inflow


def twin_at_row(data: RecordedData, site: Site, k: int, physics: PlantPhysics | None = None) -> Twin:
    """A twin in the recorded state at the end of row k."""
    return Twin(site, data.timestamps[k], recorded_inflow(data, k), float(data.level_m[k]),
                initial_running(data, site, k), physics)


def run_recorded_step(twin: Twin, data: RecordedData, site: Site, k: int) -> IntervalRecord:
    """Apply row k's recorded switches at their offsets; meter the whole step."""
    schedule = step_schedule(data, site, k, site.timing.internal_step_s)
    bounds = [s.offset_s for s in schedule] + [data.step_s]
    m3 = np.zeros(len(site.pumps))
    kwh = np.zeros(len(site.pumps))
    inflow_m3 = spilled = 0.0
    for switch, end in zip(schedule, bounds[1:], strict=True):
        twin.apply(switch.setpoints)
        if end > switch.offset_s:
            rec = twin.advance(end - switch.offset_s)
            hours = rec.seconds / 3600
            m3 += rec.pump_flow_m3h * hours
            kwh += rec.pump_energy_kwh
            inflow_m3 += rec.inflow_m3h * hours
            spilled += rec.spilled_m3
    hours = data.step_s / 3600
    return IntervalRecord(data.step_s, m3 / hours, kwh / hours, kwh, inflow_m3 / hours, spilled)


@dataclass(frozen=True)
class OpenLoopRun:
    """Per recorded row (from row 1): twin level at step end and step-average pump figures."""

    level_m: np.ndarray
    pump_flow_m3h: np.ndarray  # (rows, pumps)
    pump_power_kw: np.ndarray
    window_start: np.ndarray  # row index each step's window was initialised at


def open_loop(data: RecordedData, site: Site, window_steps: int) -> OpenLoopRun:
    """Recorded commands and inflow, no correction; re-initialised every ``window_steps``."""
    physics = PlantPhysics.from_site(site)
    n = len(data)
    level = np.full(n, np.nan)
    flow = np.zeros((n, len(site.pumps)))
    power = np.zeros((n, len(site.pumps)))
    start = np.zeros(n, dtype=int)
    twin = None
    for k in range(1, n):
        if (k - 1) % window_steps == 0:
            twin = twin_at_row(data, site, k - 1, physics)
        assert twin is not None
        rec = run_recorded_step(twin, data, site, k)
        level[k], flow[k], power[k] = twin.level_m, rec.pump_flow_m3h, rec.pump_power_kw
        start[k] = k - 1 - (k - 1) % window_steps
    return OpenLoopRun(level, flow, power, start)
