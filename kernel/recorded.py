"""Recorded plant data in canonical units, and the checks every loader applies.

Row t describes the control step *ending* at timestamps[t] (the plant's convention):
level and volume at t, flows and powers averaged over the step, inflow over the step.
"""

from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from numpy.typing import NDArray

from kernel.errors import DataError

Array = NDArray[np.float64]


class DataRepairWarning(UserWarning):
    """A documented repair was applied to recorded data (the message says where)."""


@dataclass(frozen=True)
class RecordedData:
    source: str
    timestamps: list[datetime]
    level_m: Array
    volume_m3: Array
    inflow_m3h: Array
    outflow_m3h: Array
    pump_flow_m3h: dict[str, Array]
    pump_power_kw: dict[str, Array]
    pump_freq_hz: dict[str, Array]
    prices_eur_per_kwh: dict[str, Array] = field(default_factory=dict)

    @property
    def step_s(self) -> float:
        return (self.timestamps[1] - self.timestamps[0]).total_seconds()

    def __len__(self) -> int:
        return len(self.timestamps)

    def window(self, start: datetime | None, end: datetime | None) -> RecordedData:
        """Rows with start <= timestamp <= end."""
        keep = [i for i, t in enumerate(self.timestamps)
                if (start is None or t >= start) and (end is None or t <= end)]
        if len(keep) < 2:
            raise DataError(f"{self.source}: fewer than 2 rows between {start} and {end}")
        sl = slice(keep[0], keep[-1] + 1)
        return RecordedData(
            self.source, self.timestamps[sl], self.level_m[sl], self.volume_m3[sl],
            self.inflow_m3h[sl], self.outflow_m3h[sl],
            *({k: v[sl] for k, v in d.items()} for d in (
                self.pump_flow_m3h, self.pump_power_kw, self.pump_freq_hz, self.prices_eur_per_kwh)))


def check_timestamps(source: str, column: str, stamps: list[datetime], first_row: int) -> None:
    """Monotonic, unique, evenly spaced: a gap would silently stretch the water balance.
    Order problems are reported before gaps, since a swapped row also looks like a gap."""
    if len(stamps) < 2:
        raise DataError(f"{source}: column {column!r}: need at least 2 rows, found {len(stamps)}")
    for i in range(1, len(stamps)):
        row = first_row + i
        if stamps[i] == stamps[i - 1]:
            raise DataError(f"{source}: column {column!r}, row {row}: duplicate timestamp {stamps[i]}")
        if stamps[i] < stamps[i - 1]:
            raise DataError(f"{source}: column {column!r}, row {row}: timestamp {stamps[i]} "
                            f"is earlier than the row before ({stamps[i - 1]})")
    step = min(b - a for a, b in itertools.pairwise(stamps))
    for i in range(1, len(stamps)):
        if stamps[i] - stamps[i - 1] != step:
            raise DataError(f"{source}: column {column!r}, row {first_row + i}: gap of "
                            f"{stamps[i] - stamps[i - 1]} before {stamps[i]} (expected steps of {step})")


def check_finite(source: str, column: str, values: Array, first_row: int) -> None:
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise DataError(f"{source}: column {column!r}, row {first_row + int(bad[0])}: "
                        f"value is missing or NaN ({bad.size} such rows)")


def check_range(source: str, column: str, values: Array, first_row: int, lo: float, hi: float,
                unit: str) -> None:
    """Values far outside physical bounds mean a wrong unit or a broken sensor."""
    bad = np.flatnonzero((values < lo) | (values > hi))
    if bad.size:
        i = int(bad[0])
        raise DataError(f"{source}: column {column!r}, row {first_row + i}: {values[i]:g} {unit} "
                        f"is outside {lo:g}..{hi:g} {unit}; wrong unit?")


def clamp_small_negatives(source: str, column: str, values: Array, first_row: int,
                          tolerance: float) -> Array:
    """Documented repair: sensor noise slightly below zero (e.g. -0.016 m) becomes 0."""
    neg = np.flatnonzero((values < 0) & (values >= -tolerance))
    if neg.size:
        warnings.warn(f"{source}: column {column!r}: {neg.size} small negative readings set to 0 "
                      f"(first at row {first_row + int(neg[0])}: {values[neg[0]]:g})",
                      DataRepairWarning, stacklevel=3)
        values = values.copy()
        values[neg] = 0.0
    return values


def check_inflow_unit(source: str, column: str, data: RecordedData, first_row: int) -> None:
    """The balance V[t]-V[t-1] = (F1 - F2) * dt fixes F1's unit; per-hour vs per-step shows at once."""
    hours = data.step_s / 3600.0
    dv = np.diff(data.volume_m3)
    net = (data.inflow_m3h[1:] - data.outflow_m3h[1:]) * hours
    scale = np.median(np.abs(data.inflow_m3h[1:])) * hours
    if scale <= 0:
        return
    err = np.median(np.abs(dv - net)) / scale
    if err > 0.25:
        raise DataError(
            f"{source}: column {column!r}: inflow does not close the volume balance "
            f"(median mismatch {err:.0%} of inflow per step, from row {first_row + 1}); "
            f"is its unit right (per step vs per hour)?")
