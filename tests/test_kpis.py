"""The feed and wear figures on hand-made trajectories, worked out by hand in each docstring."""

from datetime import datetime, timedelta

import numpy as np
import pytest

from kernel.site import Curve50Hz
from scenarios.kpis import f2_roughness, wear
from twin.trajectory import Trajectory
from twin.twin import IntervalRecord

T0 = datetime(2030, 1, 1)


def test_f2_roughness_of_a_hand_made_feed() -> None:
    """Quarter-hour F2 4000, 4000, 8000, 8000, 5000, 5000, 5000, 5000, 5000: steps 0, 4000,
    0, 3000, 0, 0, 0, 0, mean 7000 / 8 = 875; one step over 3000 (the 3000 itself is not); the
    widest hour (5 values) holds 4000..8000: swing 4000."""
    q = np.array([4000, 4000, 8000, 8000, 5000, 5000, 5000, 5000, 5000], dtype=float)
    got = f2_roughness(q, 900.0, 3000.0)
    assert got["f2_mean_abs_step_change_m3h"] == 875.0
    assert got["f2_jumps"] == 1 and got["f2_jump_m3h"] == 3000.0
    assert got["f2_max_hourly_swing_m3h"] == 4000.0
    assert got["f2_std_m3h"] == pytest.approx(round(float(q.std()), 1))
    assert f2_roughness(q, 900.0, 2999.0)["f2_jumps"] == 2


def test_a_steady_feed_has_no_roughness() -> None:
    got = f2_roughness(np.full(8, 6000.0), 900.0, 3000.0)
    assert (got["f2_mean_abs_step_change_m3h"], got["f2_jumps"], got["f2_std_m3h"],
            got["f2_max_hourly_swing_m3h"]) == (0.0, 0, 0.0, 0.0)


def _trajectory(on: list[tuple[bool, bool, bool]], available: tuple[bool, bool, bool],
                flow_m3h: float, freq_hz: float) -> Trajectory:
    traj = Trajectory(["a", "b", "c"], 3600.0)
    for k, state in enumerate(on):
        flows = np.array([flow_m3h if s else 0.0 for s in state])
        rec = IntervalRecord(3600.0, flows, flows / 10, flows / 10, 3000.0, 0.0)
        cmd = {p: (s, freq_hz if s else 0.0) for p, s in zip(traj.pump_ids, state, strict=True)}
        traj.add(T0 + timedelta(hours=k + 1), 2.0, 5000.0, rec, 0.05, cmd, list(available), 0.0)
    return traj


def test_wear_of_a_hand_made_day() -> None:
    """24 hourly rows. Pump a runs hours 0-11 and 18-23 (18 h, one start at hour 18: the run
    in progress at the first row is not a start); b runs hours 6-9 (4 h, one start); c is out
    of service and never runs. Spread over a and b: 18 - 4 = 14 h. Both ran 2000 m3/h at
    40 Hz, under a best-efficiency flow of 3000 m3/h at 50 Hz = 2400 m3/h at 40 Hz."""
    on = [(k < 12 or k >= 18, 6 <= k < 10, False) for k in range(24)]
    got = wear(_trajectory(on, (True, True, False), 2000.0, 40.0), {"a": 3000.0, "b": 3000.0, "c": 3000.0})
    assert got["starts_per_pump_day"] == {"a": 1.0, "b": 1.0, "c": 0.0}
    assert got["run_hours_by_pump"] == {"a": 18.0, "b": 4.0, "c": 0.0}
    assert got["run_hour_spread_h"] == 14.0
    assert got["hours_below_best_efficiency_by_pump"] == {"a": 18.0, "b": 4.0, "c": 0.0}
    above = wear(_trajectory(on, (True, True, False), 2500.0, 40.0), {"a": 3000.0, "b": 3000.0, "c": 3000.0})
    assert above["hours_below_best_efficiency_by_pump"] == {"a": 0.0, "b": 0.0, "c": 0.0}


def test_best_efficiency_flow_is_the_curve_maximum_of_flow_head_over_power() -> None:
    """Flow x head / power at 1000, 2000, 3000 m3/h: 10, 12.5, 11.25: the best is 2000."""
    curve = Curve50Hz(flow_m3h=[1000.0, 2000.0, 3000.0], head_m=[20.0, 15.0, 9.0], power_kw=[2000.0, 2400.0, 2400.0])
    assert curve.best_efficiency_flow_m3h() == 2000.0
