"""Recorded pump operation turned back into commands the twin can carry out.

The recorded frequency is a 15-min average, so a step in which a pump started or
stopped shows e.g. 24 Hz. We rebuild when it switched: it ran for the fraction
f_avg / f_running of the step, at the end of a start step or the beginning of a stop step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kernel.contracts import PumpSetpoint, Setpoints
from kernel.recorded import RecordedData
from kernel.site import Site

FULL_STEP = 0.98  # an on-fraction above this is a full step
DEFAULT_RUN_HZ = 49.0


@dataclass(frozen=True)
class Switch:
    """A command at ``offset_s`` into a control step."""

    offset_s: float
    setpoints: Setpoints


def _on(data: RecordedData, pid: str) -> np.ndarray:
    return (data.pump_flow_m3h[pid] > 0) | (data.pump_power_kw[pid] > 0)


def _running_hz(freq: np.ndarray, k: int, step: int, lo: float) -> float:
    """Frequency of the nearest full running step in direction ``step``."""
    j = k + step
    if 0 <= j < len(freq) and freq[j] >= lo:
        return float(freq[j])
    return DEFAULT_RUN_HZ


def pump_switches(data: RecordedData, site: Site, pid: str, k: int) -> list[tuple[float, bool, float]]:
    """(offset_s, on, freq_hz) commands for pump ``pid`` during the step ending at row k."""
    on = _on(data, pid)
    freq = data.pump_freq_hz[pid]
    ptype = site.pump_type(pid)
    lo, hi = ptype.drive_min_hz, ptype.drive_max_hz
    step_s = data.step_s
    if not on[k]:
        return [(0.0, False, 0.0)]
    if freq[k] >= lo:
        return [(0.0, True, float(min(freq[k], hi)))]
    starting = k > 0 and not on[k - 1]
    stopping = k + 1 < len(on) and not on[k + 1]
    run_hz = min(max(_running_hz(freq, k, 1 if starting else -1, lo), lo), hi)
    frac = min(1.0, freq[k] / run_hz)
    if frac >= FULL_STEP or not (starting or stopping):
        return [(0.0, True, run_hz)]
    on_s = frac * step_s
    if starting and not stopping:
        return [(0.0, False, 0.0), (step_s - on_s, True, run_hz)]
    return [(0.0, True, run_hz), (on_s, False, 0.0)]


def step_schedule(data: RecordedData, site: Site, k: int, internal_s: float) -> list[Switch]:
    """All pumps' commands for step k, merged by offset and rounded to the internal step."""
    by_offset: dict[float, list[PumpSetpoint]] = {}
    for pid in data.pump_flow_m3h:
        if pid not in site.pump_ids:
            continue
        for offset, on, hz in pump_switches(data, site, pid, k):
            rounded = round(offset / internal_s) * internal_s
            by_offset.setdefault(rounded, []).append(PumpSetpoint(id=pid, on=on, freq_hz=hz))
    return [Switch(off, Setpoints(pumps=tuple(sps))) for off, sps in sorted(by_offset.items())]


def initial_running(data: RecordedData, site: Site, k: int) -> dict[str, float]:
    """Pumps running at row k (the state the twin starts from), with their frequency."""
    out = {}
    for pid in data.pump_flow_m3h:
        if pid in site.pump_ids and _on(data, pid)[k]:
            lo, hi = site.pump_type(pid).drive_min_hz, site.pump_type(pid).drive_max_hz
            out[pid] = float(min(max(data.pump_freq_hz[pid][k], lo), hi))
    return out
