"""The one rule checker: every operating rule of plant-facts.md, on any trajectory.

Runs only count when both ends are inside the trajectory: a pump already running at
the first row, or still running at the last, may have started or may stop outside it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np

from kernel.site import Rules
from twin.trajectory import Trajectory

# A row is stamped at the end of its step, so 00:00 belongs to the day before.
STAMP_TO_STEP = timedelta(seconds=1)

HARD_RULES = ("level_below_min", "level_above_max", "overflow", "no_pump_running", "min_on_time",
              "min_off_time", "frequency_range", "max_outflow", "unavailable_pump_on", "daily_emptying")


@dataclass(frozen=True)
class Breach:
    rule: str
    time: datetime
    detail: str


@dataclass(frozen=True)
class RuleReport:
    breaches: list[Breach]
    alarms: list[Breach]  # level above the alarm level: handled, not a breach by itself
    trips: list[Breach]  # runs cut short by the pump going out of service: forced, not a control decision
    emptied_by_day: dict[date, bool | None]  # None: wet day or partial day, rule does not apply

    def counts(self, stamp: Callable[[datetime], str] = datetime.isoformat) -> dict[str, dict[str, object]]:
        out: dict[str, dict[str, object]] = {}
        for rule in HARD_RULES:
            hits = [b for b in self.breaches if b.rule == rule]
            out[rule] = {"count": len(hits), "first": stamp(hits[0].time) if hits else None}
        return out

    @property
    def hard_violations(self) -> int:
        return len(self.breaches)


def check(traj: Trajectory, rules: Rules) -> RuleReport:
    level = traj.col("level_m")
    on = np.asarray(traj.pump_on, dtype=bool).reshape(len(traj), -1)
    avail = np.asarray(traj.pump_available, dtype=bool).reshape(on.shape)
    breaches = [*_level(traj, level, rules), *_pumps_running(traj, on, rules),
                *_timers(traj, on, avail, rules), *_frequency(traj, on, rules), *_outflow(traj, rules),
                *_availability(traj, on, avail)]
    emptied = _emptying(traj, level, rules)
    breaches += [Breach("daily_emptying", datetime.combine(d, datetime.min.time()),
                        f"dry day {d}: level never at or below {rules.emptying_level_m} m")
                 for d, ok in emptied.items() if ok is False]
    alarms = [Breach("level_above_alarm", t, f"{x:.2f} m") for t, x in zip(traj.timestamps, level, strict=True)
              if x > rules.alarm_level_m]
    trips = [b for b in breaches if b.rule == "trip"]
    breaches = [b for b in breaches if b.rule != "trip"]
    return RuleReport(sorted(breaches, key=lambda b: b.time), alarms, trips, emptied)


def _level(traj: Trajectory, level: np.ndarray, rules: Rules) -> Iterator[Breach]:
    spill = traj.col("overflow_m3")
    for t, x, s in zip(traj.timestamps, level, spill, strict=True):
        if x < rules.min_level_m:
            yield Breach("level_below_min", t, f"{x:.3f} m < {rules.min_level_m} m")
        if x > rules.max_level_m:
            yield Breach("level_above_max", t, f"{x:.3f} m > {rules.max_level_m} m")
        if s > 0:
            yield Breach("overflow", t, f"{s:.0f} m3 spilled")


def _pumps_running(traj: Trajectory, on: np.ndarray, rules: Rules) -> Iterator[Breach]:
    for t, n in zip(traj.timestamps, on.sum(axis=1), strict=True):
        if n < rules.min_pumps_on:
            yield Breach("no_pump_running", t, f"{n} pumps running")


def runs(column: np.ndarray) -> Iterator[tuple[int, int, bool]]:
    """(first, last, value) of each constant stretch."""
    start = 0
    for k in range(1, len(column) + 1):
        if k == len(column) or column[k] != column[start]:
            yield start, k - 1, bool(column[start])
            start = k


def _timers(traj: Trajectory, on: np.ndarray, avail: np.ndarray, rules: Rules) -> Iterator[Breach]:
    """A run that ends because the pump went out of service is a trip, reported apart: the
    rule is on the starts and stops control decides."""
    n = len(traj)
    for j, pid in enumerate(traj.pump_ids):
        for first, last, value in runs(on[:, j]):
            if first == 0 or last == n - 1:
                continue
            length_s = (last - first + 1) * traj.step_s
            limit = rules.min_on_s if value else rules.min_off_s
            if length_s < limit:
                tripped = value and not avail[last + 1, j]
                rule = "trip" if tripped else "min_on_time" if value else "min_off_time"
                yield Breach(rule, traj.timestamps[first], f"pump {pid} {'ran' if value else 'rested'} "
                             f"{length_s / 3600:.2f} h < {limit / 3600:.2f} h")


def _frequency(traj: Trajectory, on: np.ndarray, rules: Rules) -> Iterator[Breach]:
    """Only steps fully inside a run: start and stop steps ramp through low frequencies."""
    freq = traj.arr("pump_freq_hz")
    for j, pid in enumerate(traj.pump_ids):
        for first, last, value in runs(on[:, j]):
            for k in range(first + 1, last) if value else ():
                if not rules.min_freq_hz - 1e-6 <= freq[k, j] <= rules.max_freq_hz + 1e-6:
                    yield Breach("frequency_range", traj.timestamps[k], f"pump {pid} at {freq[k, j]:.2f} Hz")


def _outflow(traj: Trajectory, rules: Rules) -> Iterator[Breach]:
    for t, q in zip(traj.timestamps, traj.col("outflow_m3h"), strict=True):
        if q > rules.max_outflow_m3h:
            yield Breach("max_outflow", t, f"F2 {q:.0f} m3/h > {rules.max_outflow_m3h:.0f}")


def _availability(traj: Trajectory, on: np.ndarray, avail: np.ndarray) -> Iterator[Breach]:
    for k, j in zip(*np.nonzero(on & ~avail), strict=True):
        yield Breach("unavailable_pump_on", traj.timestamps[k], f"pump {traj.pump_ids[j]} unavailable")


def _emptying(traj: Trajectory, level: np.ndarray, rules: Rules) -> dict[date, bool | None]:
    """Per calendar day of step *ends*; only whole days are judged, dry days only."""
    per_day = round(86400 / traj.step_s)
    days: dict[date, list[int]] = {}
    for k, t in enumerate(traj.timestamps):
        days.setdefault((t - STAMP_TO_STEP).date(), []).append(k)
    inflow_m3 = traj.col("inflow_m3h") * traj.step_s / 3600
    out: dict[date, bool | None] = {}
    for d, idx in days.items():
        dry = inflow_m3[idx].sum() < rules.dry_day_max_inflow_m3
        out[d] = bool(level[idx].min() <= rules.emptying_level_m) if len(idx) == per_day and dry else None
    return out

