"""One hand-solvable trajectory per rule: the checker must flag exactly the breach built in."""

from datetime import datetime, timedelta
from typing import Any, cast

import numpy as np
import pytest

from kernel.site import Rules
from scenarios.rules import check
from twin.trajectory import Trajectory
from twin.twin import IntervalRecord

PUMPS = ["a", "b"]
RULES = Rules(min_on_s=7200, min_off_s=7200, emptying_level_m=0.7, dry_day_max_inflow_m3=110000)
T0 = datetime(2030, 1, 1)


def build(n: int = 96, **overrides: Any) -> Trajectory:
    """n quarter-hour steps of a calm day (pump a on at 49 Hz, level 2 m, emptied once at
    step 40); ``overrides`` maps a field (level, on, freq, outflow, available, spill) to
    {step: value}."""
    def get(name: str, k: int, default: object) -> object:
        return overrides.get(name, {}).get(k, default)

    traj = Trajectory(PUMPS, 900.0)
    for k in range(n):
        state = cast(tuple[bool, bool], get("on", k, (True, False)))
        fr = cast(float, get("freq", k, 49.0))
        q = cast(float, get("outflow", k, 3000.0))
        flows = np.array([q if s else 0.0 for s in state]) / max(1, sum(state))
        rec = IntervalRecord(900.0, flows, flows / 10, flows / 40, 3000.0, 0.0)
        cmd = {p: (bool(s), fr if s else 0.0) for p, s in zip(PUMPS, state, strict=True)}
        level = cast(float, get("level", k, 0.6 if k == 40 else 2.0))
        available = cast(list[bool], get("available", k, [True, True]))
        traj.add(T0 + timedelta(minutes=15 * (k + 1)), level, 5000.0, rec, 0.05, cmd, available,
                 cast(float, get("spill", k, 0.0)))
    return traj


def counts(traj: Trajectory) -> dict[str, object]:
    return {k: v["count"] for k, v in check(traj, RULES).counts().items() if v["count"]}


def test_a_clean_day_has_no_breach() -> None:
    assert counts(build()) == {}


def test_level_below_min() -> None:
    assert counts(build(level={5: 0.45})) == {"level_below_min": 1}


def test_level_above_max_and_alarm() -> None:
    traj = build(level={5: 8.2, 6: 7.5})
    assert counts(traj) == {"level_above_max": 1}
    assert len(check(traj, RULES).alarms) == 2


def test_overflow() -> None:
    assert counts(build(spill={7: 12.0})) == {"overflow": 1}


def test_no_pump_running() -> None:
    assert counts(build(on={k: (False, False) for k in (30, 31, 32)})) == {
        "no_pump_running": 3, "min_off_time": 1}


def test_min_on_time_short_run() -> None:
    # pump b runs 4 steps = 1 h < 2 h
    assert counts(build(on={k: (True, True) for k in range(20, 24)})) == {"min_on_time": 1}


def test_min_on_time_exactly_two_hours_is_fine() -> None:
    assert counts(build(on={k: (True, True) for k in range(20, 28)})) == {}


def test_a_run_cut_short_by_an_outage_is_a_trip_not_a_breach() -> None:
    """Pump b runs 1 h and goes out of service: forced, so reported as a trip. The same hour
    ended by a stop while the pump stays available is a min-on breach."""
    on = {k: (True, True) for k in range(20, 24)}
    tripped = build(on=on, available={k: [True, False] for k in range(24, 40)})
    report = check(tripped, RULES)
    assert counts(tripped) == {}
    assert [(b.rule, b.time) for b in report.trips] == [("trip", T0 + timedelta(minutes=15 * 21))]
    assert check(build(on=on), RULES).trips == []


def test_min_off_time_short_rest() -> None:
    # pump b runs 3 h, rests 1 h, runs 3 h again
    on = {k: (True, True) for k in [*range(10, 22), *range(26, 38)]}
    assert counts(build(on=on)) == {"min_off_time": 1}


def test_runs_cut_by_the_trajectory_ends_do_not_count() -> None:
    assert counts(build(on={k: (True, True) for k in (0, 1, 94, 95)})) == {}


def test_frequency_range_inside_runs_only() -> None:
    assert counts(build(freq={10: 47.0, 11: 50.5})) == {"frequency_range": 2}


def test_max_outflow() -> None:
    assert counts(build(outflow={12: 16500.0})) == {"max_outflow": 1}


def test_unavailable_pump_on() -> None:
    assert counts(build(available={12: [False, True]})) == {"unavailable_pump_on": 1}


def test_daily_emptying_on_a_dry_day() -> None:
    traj = build(level={40: 2.0})
    report = check(traj, RULES)
    assert counts(traj) == {"daily_emptying": 1}
    assert report.emptied_by_day == {T0.date(): False}


def test_daily_emptying_not_required_on_a_wet_day() -> None:
    traj = build(level={40: 2.0})
    traj.rows["inflow_m3h"] = [6000.0] * len(traj)  # 144,000 m3/day
    assert counts(traj) == {}


@pytest.mark.parametrize("n", [50])
def test_partial_day_is_not_judged(n: int) -> None:
    assert check(build(n=n, level={40: 2.0}), RULES).emptied_by_day == {T0.date(): None}
