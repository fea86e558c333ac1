"""The daily emptying as the MPC's explicit state: which days were emptied (measured), and
which step each coming day's emptying is booked for (chosen once by a solve, then kept so
later solves need no binaries for it)."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from controller.milp import Plan, lands
from kernel.contracts import Telemetry

STAMP = timedelta(seconds=1)  # a reading stamped at a step's end belongs to the step's day


def day_of(step_end: datetime) -> date:
    """The day a reading stamped at a step's end belongs to."""
    return (step_end - STAMP).date()


class EmptyingTracker:
    """Which days have had their level at or below the emptying level (from measurements)."""

    def __init__(self, level_m: float) -> None:
        self.level_m = level_m
        self.emptied: set[date] = set()
        self.inflow_m3: dict[date, float] = {}

    def update(self, tel: Telemetry, step_h: float) -> None:
        day = day_of(tel.time)
        self.inflow_m3[day] = self.inflow_m3.get(day, 0.0) + tel.inflow_m3h * step_h
        if tel.level_at_most_m() <= self.level_m:  # an estimate counts only if its high end is
            self.emptied.add(day)
        for old in [d for d in self.inflow_m3 if d < day - timedelta(days=7)]:
            del self.inflow_m3[old]
        self.emptied = {d for d in self.emptied if d >= day - timedelta(days=7)}


class Bookings:
    """Day -> end of the step its emptying is booked for. Reading is pure; ``forget_stale`` and
    ``book`` are the only changes, and the loop makes them explicitly."""

    def __init__(self) -> None:
        self.appointments: dict[date, datetime] = {}

    def steps(self, day: date, candidates: list[int], ends: list[datetime]) -> tuple[int, ...]:
        """The day's booked step if it is still a candidate, else every candidate (choose again)."""
        k = self._booked(day, candidates, ends)
        return tuple(candidates) if k is None else (k,)

    def forget_stale(self, candidates: dict[date, list[int]], ends: list[datetime]) -> None:
        """Drop the bookings of days whose booked step is no longer a candidate: passed, or no
        longer landable on the new forecast."""
        for day, steps in candidates.items():
            if self._booked(day, steps, ends) is None:
                self.appointments.pop(day, None)

    def _booked(self, day: date, candidates: list[int], ends: list[datetime]) -> int | None:
        booked = self.appointments.get(day)
        return next((k for k in candidates if booked is not None and ends[k] == booked), None)

    def book(self, days: list[tuple[int, ...]], ends: list[datetime], v_empty_m3: float, plan: Plan) -> None:
        """Keep the emptying step the plan chose for each of ``days`` (step sets not yet booked)."""
        self.appointments.update(emptied_steps(days, ends, v_empty_m3, plan))


def first_landing(day: tuple[int, ...], v_empty_m3: float, plan: Plan) -> int | None:
    """The first of a day's candidate steps where the plan is emptied, or None."""
    return next((k for k in day if lands(float(plan.volumes_m3[k]), v_empty_m3)), None)


def emptied_steps(days: list[tuple[int, ...]], ends: list[datetime], v_empty_m3: float,
                  plan: Plan) -> dict[date, datetime]:
    """Day -> end of the first step of that day's candidates where the plan is emptied."""
    out = {}
    for day in days:
        if (k := first_landing(day, v_empty_m3, plan)) is not None:
            out[day_of(ends[k])] = ends[k]
    return out


# the priors, each counting as four landings until the record outweighs it: one first landing
# in four misses; three retries in four miss (a retry meets what the missed landing met: on
# the recorded days 6 of 8 retries missed, on the bundled dry week 5 of 7)
PRIOR_FIRST = (3, 1)  # made, missed
PRIOR_RETRY = (1, 3)


class Landings:
    """How often a landing misses the emptying level: the intervals the MPC dispatched as an
    emptying step, and whether the level measured at their end was at or under it. A landing
    aims at the plan's forecast, which in the evening's rising inflow ran 10-15 % low (e04:
    five ticks in a row each ended 5 cm over the plan, and the day's last step landed at 0.80 m).
    A first landing and a retry (a landing right after a missed one) are counted apart: on the
    recorded days 4 of 7 first landings missed and 6 of 8 retries, and every dry day was
    emptied. The MILP prices each candidate step with the chance that it and every later retry
    of the day miss (``Problem.landing_miss``, ``Problem.retry_miss``)."""

    def __init__(self, level_m: float) -> None:
        self.level_m = level_m
        self.first = [0, 0]  # landings that followed no missed landing: made, missed
        self.retry = [0, 0]  # ... that followed a missed one
        self.pending = False  # the interval now running was dispatched as a landing
        self.after_miss = False  # ... right after a missed landing

    def dispatched(self, landing: bool) -> None:
        if not landing:
            self.after_miss = False
        self.pending = landing

    def update(self, tel: Telemetry) -> None:
        """The interval just ended: a landing counts as made only by its high end (an estimate's)."""
        if not self.pending:
            return
        missed = tel.level_at_most_m() > self.level_m
        record = self.retry if self.after_miss else self.first
        record[missed] += 1
        self.pending, self.after_miss = False, missed

    @property
    def attempts(self) -> int:
        return sum(self.first) + sum(self.retry)

    @property
    def misses(self) -> int:
        return self.first[1] + self.retry[1]

    @property
    def miss(self) -> float:
        """The chance a first landing misses."""
        return _rate(self.first, PRIOR_FIRST)

    @property
    def retry_miss(self) -> float:
        """The chance a retry misses too."""
        return _rate(self.retry, PRIOR_RETRY)


def _rate(record: list[int], prior: tuple[int, int]) -> float:
    return (record[1] + prior[1]) / (sum(record) + sum(prior))
