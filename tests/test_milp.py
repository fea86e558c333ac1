"""The optimiser against known optima, and one test per rule, on hand-made coefficients.

Every case uses one-hour steps and a pump whose power is 0.1 kW per m3/h (zero intercept),
so each optimum can be worked out on paper.
"""

from __future__ import annotations

import dataclasses

import highspy
import numpy as np
import pytest

from controller.lp import HEURISTICS_OFF, INF, Model
from controller.milp import Coefficients, Group, Problem, Weights, solve
from controller.solve import held

H = 8
Q_MIN, Q_MAX, KW_PER_M3H = 1000.0, 2000.0, 0.1
NO_SOFT = Weights(switch_eur=0.0, smooth_eur_per_m3h=0.0)


def coef(groups: int = 1, horizon: int = H) -> Coefficients:
    shape = (groups, horizon)
    return Coefficients(np.full(shape, Q_MIN), np.full(shape, Q_MAX), np.zeros(shape), np.full(shape, KW_PER_M3H))


def problem(**kw: object) -> Problem:
    base = dict(
        step_h=1.0, volume0_m3=5000.0, inflow_m3h=np.full(H, 1500.0), price_eur_per_kwh=np.full(H, 0.1),
        level_guess_m=np.full(H, 3.0), groups=(Group("p", (0,)),), n_now=np.array([1]),
        locked_on=np.zeros((1, H), dtype=np.int64), locked_off=np.zeros((1, H), dtype=np.int64),
        outflow_now_m3h=1500.0, v_min_m3=0.0, v_max_m3=1e6, v_empty_m3=0.0, emptying_days=(),
        min_on_steps=2, min_off_steps=2, max_outflow_m3h=1e6, min_pumps_on=1, weights=NO_SOFT)
    base.update(kw)
    return Problem(**base)  # type: ignore[arg-type]


def plan_of(p: Problem, c: Coefficients | None = None):  # type: ignore[no-untyped-def]
    plan = solve(p, c or coef(len(p.groups), p.horizon), time_limit_s=10, mip_gap=1e-6)
    assert plan is not None
    return plan


def test_flat_price_one_pump_runs_at_minimum() -> None:
    """Flat price, no value on stored water: the pump must run (>= 1 pump) but as slowly as it can."""
    plan = plan_of(problem())
    assert np.allclose(plan.flows_m3h[0], Q_MIN)
    assert plan.objective == pytest.approx(H * 0.1 * KW_PER_M3H * Q_MIN)
    assert np.allclose(plan.volumes_m3, 5000.0 + 500.0 * np.arange(1, H + 1))


def test_terminal_value_above_pumping_cost_pumps_at_maximum() -> None:
    """Stored water costs 0.02 EUR/m3 at the end, pumping costs 0.01 EUR/m3: pump everything now."""
    w = dataclasses.replace(NO_SOFT, terminal_eur_per_m3=0.02)
    plan = plan_of(problem(weights=w))
    assert np.allclose(plan.flows_m3h[0], Q_MAX)


def test_cheap_hours_are_used() -> None:
    """Free power in hours 3 and 4; stored water valued between the two prices: pump hard only then."""
    prices = np.full(H, 1.0)
    prices[3:5] = 0.0
    w = dataclasses.replace(NO_SOFT, terminal_eur_per_m3=0.05)
    plan = plan_of(problem(price_eur_per_kwh=prices, weights=w))
    expected = np.where(prices == 0.0, Q_MAX, Q_MIN)
    assert np.allclose(plan.flows_m3h[0], expected)
    end_volume = 5000.0 + (1500.0 * H - expected.sum())
    assert plan.objective == pytest.approx(6 * 1.0 * KW_PER_M3H * Q_MIN + 0.05 * end_volume)


def test_a_price_on_feed_changes_flattens_f2_once_it_outweighs_the_cheap_energy() -> None:
    """Free power in hours 3 and 4, stored water worth 0.04 EUR/m3, dear hours 0.1 EUR/m3.
    Unpriced, F2 runs at 1000 m3/h and jumps to 2000 in the cheap hours. Each m3/h more in the
    two cheap hours gains 2 x 0.04 EUR and costs a change up and one down, 2 x s: at s = 0.05
    EUR per m3/h F2 stays at 1000 throughout, and at s = 0.03 the jumps are still worth it.
    (Ramping earlier costs 0.06 per m3 for 0.04 gained.)"""
    prices = np.full(H, 1.0)
    prices[3:5] = 0.0
    w = dataclasses.replace(NO_SOFT, terminal_eur_per_m3=0.04)
    rough = plan_of(problem(price_eur_per_kwh=prices, weights=w)).flows_m3h[0]
    assert np.allclose(rough, np.where(prices == 0.0, Q_MAX, Q_MIN))
    steady = plan_of(problem(price_eur_per_kwh=prices, weights=dataclasses.replace(w, smooth_eur_per_m3h=0.05)))
    assert np.allclose(steady.flows_m3h[0], Q_MIN)
    cheap = plan_of(problem(price_eur_per_kwh=prices, weights=dataclasses.replace(w, smooth_eur_per_m3h=0.03)))
    assert np.allclose(cheap.flows_m3h[0], rough)


def test_start_above_the_band_recovers_at_full_speed() -> None:
    """The measured level already breaks the ceiling: the plan pumps flat out until back inside."""
    plan = plan_of(problem(volume0_m3=8000.0, v_max_m3=6000.0))
    assert plan.band_slack_m3 > 0
    assert plan.flows_m3h[0, 0] == pytest.approx(Q_MAX)
    assert np.all(np.diff(plan.volumes_m3[:4]) < 0)
    assert plan.volumes_m3[3] <= 6000.0 + 1e-6


def test_level_band_is_kept() -> None:
    """Cheapest would be minimum speed, but that overfills: the ceiling forces extra pumping."""
    plan = plan_of(problem(v_max_m3=6000.0))
    assert plan.band_slack_m3 == pytest.approx(0.0, abs=1e-6)
    assert plan.volumes_m3.max() <= 6000.0 + 1e-6
    assert plan.flows_m3h[0].sum() == pytest.approx(1500.0 * H - 1000.0)


def test_at_least_one_pump_runs_even_when_power_is_dear() -> None:
    two = (Group("a", (0,)), Group("b", (1,)))
    prices = np.full(H, 10.0)
    plan = plan_of(problem(groups=two, n_now=np.array([1, 0]), price_eur_per_kwh=prices,
                           locked_on=np.zeros((2, H), dtype=np.int64),
                           locked_off=np.zeros((2, H), dtype=np.int64)), coef(2))
    assert np.all(plan.counts.sum(axis=0) >= 1)


def test_min_on_time_keeps_a_started_pump_running() -> None:
    """A pump started an hour ago with a 3-hour minimum run must run 2 more hours, then may stop."""
    two = (Group("a", (0,)), Group("b", (1,)))
    locked_on = np.zeros((2, H), dtype=np.int64)
    locked_on[1, :2] = 1
    plan = plan_of(problem(groups=two, n_now=np.array([1, 1]), locked_on=locked_on,
                           locked_off=np.zeros((2, H), dtype=np.int64), min_on_steps=3), coef(2))
    assert list(plan.counts[1, :2]) == [1, 1]
    assert np.all(plan.counts[:, 2:].sum(axis=0) == 1)  # then two pumps at minimum cost more than one


def test_min_off_time_keeps_a_stopped_pump_off() -> None:
    """Pump b stopped recently must rest 3 steps even though the level needs it (band goes soft)."""
    two = (Group("a", (0,)), Group("b", (1,)))
    locked_off = np.zeros((2, H), dtype=np.int64)
    locked_off[1, :3] = 1
    inflow = np.full(H, 3000.0)
    plan = plan_of(problem(groups=two, n_now=np.array([1, 0]), locked_off=locked_off, inflow_m3h=inflow,
                           locked_on=np.zeros((2, H), dtype=np.int64), v_max_m3=7000.0), coef(2))
    assert plan.counts[1, :3].sum() == 0
    assert plan.counts[1, 3] == 1


def test_a_start_in_the_plan_runs_for_the_minimum_time() -> None:
    """Free power for one hour only: a second pump may start, but must then run min_on steps."""
    two = (Group("a", (0,)), Group("b", (1,)))
    prices = np.full(H, 1.0)
    prices[2] = 0.0
    w = dataclasses.replace(NO_SOFT, terminal_eur_per_m3=0.06)
    plan = plan_of(problem(groups=two, n_now=np.array([1, 0]), price_eur_per_kwh=prices, weights=w,
                           locked_on=np.zeros((2, H), dtype=np.int64),
                           locked_off=np.zeros((2, H), dtype=np.int64), min_on_steps=3), coef(2))
    runs = plan.counts[1]
    starts = [k for k in range(H) if runs[k] and (k == 0 or not runs[k - 1])]
    for k in starts:
        assert runs[k:k + 3].sum() == min(3, H - k)


def test_max_outflow_caps_the_station() -> None:
    two = (Group("a", (0, 1)),)
    w = dataclasses.replace(NO_SOFT, terminal_eur_per_m3=1.0)
    plan = plan_of(problem(groups=two, n_now=np.array([2]), max_outflow_m3h=3000.0, weights=w, volume0_m3=50000.0,
                           locked_on=np.zeros((1, H), dtype=np.int64),
                           locked_off=np.zeros((1, H), dtype=np.int64)))
    assert plan.outflow_m3h.max() <= 3000.0 + 1e-6
    assert plan.outflow_m3h == pytest.approx(np.full(H, 3000.0))


def test_flow_stays_in_the_frequency_band_of_the_running_count() -> None:
    two = (Group("a", (0, 1)),)
    w = dataclasses.replace(NO_SOFT, terminal_eur_per_m3=0.012)
    plan = plan_of(problem(groups=two, n_now=np.array([1]), weights=w,
                           locked_on=np.zeros((1, H), dtype=np.int64),
                           locked_off=np.zeros((1, H), dtype=np.int64)))
    n, q = plan.counts[0], plan.flows_m3h[0]
    assert np.all(q >= n * Q_MIN - 1e-6) and np.all(q <= n * Q_MAX + 1e-6)


def test_daily_emptying_reaches_the_emptying_volume_once() -> None:
    """Prices fall over the day, so the emptying lands as late as it can, at the cheapest step."""
    prices = np.linspace(1.0, 0.1, H)
    plan = plan_of(problem(volume0_m3=3000.0, v_empty_m3=500.0, emptying_days=(tuple(range(H)),),
                           price_eur_per_kwh=prices, inflow_m3h=np.full(H, 1200.0)))
    assert plan.emptying_missed == 0
    assert plan.volumes_m3.min() <= 500.0 + 1e-6


@pytest.mark.parametrize("miss", [0.0, 0.25])
def test_a_landing_that_may_miss_keeps_retries_in_its_day(miss: float) -> None:
    """Prices fall over the day, so a sure landing comes at the last step. If a landing misses
    with chance ``miss``, landing at step k risks the day's penalty only if it and each of the
    7 - k later steps miss: 5000 x miss ** (8 - k). The plan lands where energy plus that risk is
    least, the energy of each landing step found by booking it alone."""
    base = problem(volume0_m3=3000.0, v_empty_m3=500.0, price_eur_per_kwh=np.linspace(1.0, 0.1, H),
                   inflow_m3h=np.full(H, 1200.0))

    def landed(plan) -> int:  # type: ignore[no-untyped-def]
        return int(np.flatnonzero(plan.volumes_m3 <= 500.0 + 1e-6)[0])

    def energy_eur(plan) -> float:  # type: ignore[no-untyped-def]
        return float(np.sum(plan.power_kw * base.price_eur_per_kwh))  # one-hour steps

    booked = {k: plan_of(dataclasses.replace(base, emptying_days=((k,),))) for k in range(H)}
    reachable = [k for k, plan in booked.items() if plan.volumes_m3[k] <= 500.0 + 1e-6]  # from step 3
    best = min(reachable, key=lambda k: energy_eur(booked[k]) + 5000.0 * miss ** (H - k))
    plan = plan_of(dataclasses.replace(base, emptying_days=(tuple(range(H)),), landing_miss=miss, retry_miss=miss))
    assert plan.emptying_missed == 0
    assert landed(plan) == best
    # sure: the last step (563 EUR of energy); one in four: step 4 (668 EUR, and 20 EUR of risk
    # against 1,250 at the last step), three retries left
    assert best == (H - 1 if miss == 0.0 else 4)


def test_relinearising_keeps_the_emptying_step_the_first_solve_chose() -> None:
    """Prices fall over the day, so the day's emptying lands at its last candidate, step 3 (as
    above). The passes that re-solve at the plan's own levels keep that step, as the next
    interval's booking would; a booked day stays booked, and a day the plan cannot land on
    still chooses."""
    p = problem(volume0_m3=3000.0, v_empty_m3=500.0, emptying_days=(tuple(range(4)), (H - 1,)),
                price_eur_per_kwh=np.linspace(1.0, 0.1, H), inflow_m3h=np.full(H, 1200.0))
    assert held(p, plan_of(p)) == ((3,), (H - 1,))
    unreachable = problem(volume0_m3=50000.0, v_empty_m3=500.0, emptying_days=((0, 1),))
    assert held(unreachable, plan_of(unreachable)) == ((0, 1),)


def test_unreachable_emptying_is_reported_not_infeasible() -> None:
    plan = plan_of(problem(volume0_m3=50000.0, v_empty_m3=500.0, emptying_days=((0, 1),)))
    assert plan.emptying_missed == 1


def test_blocks_hold_counts_for_whole_blocks() -> None:
    two = (Group("a", (0, 1)),)
    prices = np.full(H, 1.0)
    prices[5] = 0.0
    w = dataclasses.replace(NO_SOFT, terminal_eur_per_m3=0.06)
    plan = plan_of(problem(groups=two, n_now=np.array([1]), price_eur_per_kwh=prices, weights=w, block_steps=4,
                           locked_on=np.zeros((1, H), dtype=np.int64),
                           locked_off=np.zeros((1, H), dtype=np.int64)))
    assert len(set(plan.counts[0, :4])) == 1 and len(set(plan.counts[0, 4:])) == 1


def test_nan_input_is_refused_before_the_solver() -> None:
    prices = np.full(H, 0.1)
    prices[2] = np.nan
    with pytest.raises(ValueError, match="price_eur_per_kwh"):
        solve(problem(price_eur_per_kwh=prices), coef(), time_limit_s=1)


def test_fine_steps_then_blocks() -> None:
    two = (Group("a", (0, 1)),)
    w = dataclasses.replace(NO_SOFT, terminal_eur_per_m3=0.06)
    p = problem(groups=two, n_now=np.array([1]), weights=w, block_steps=3, fine_steps=2,
                price_eur_per_kwh=np.array([1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0]),
                locked_on=np.zeros((1, H), dtype=np.int64), locked_off=np.zeros((1, H), dtype=np.int64))
    assert p.block_starts == [0, 1, 2, 5]
    plan = plan_of(p)
    assert len(set(plan.counts[0, 2:5])) == 1 and len(set(plan.counts[0, 5:])) == 1


def test_block_flows_hold_the_flow_for_a_block_unless_it_is_worth_less_than_stored_water() -> None:
    """Fine steps 0-1, then blocks [2-4] and [5-7]. Pumping costs 0.1 EUR/m3 at price 1 and
    nothing at price 0; stored water costs 0.06 EUR/m3 at the end. Step-by-step flows pump
    flat out at the two free steps (1 and 4). Held for block [2-4], a m3/h more pumps 3 m3
    for 0.2 EUR, 0.067 EUR/m3, dearer than storing: the block stays at minimum flow, so the
    end volume is 1,000 m3 higher (5,000 + 8 x 1,500 - 9,000) and the objective 60 EUR more."""
    w = dataclasses.replace(NO_SOFT, terminal_eur_per_m3=0.06)
    prices = np.array([1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0])
    p = problem(weights=w, block_steps=3, fine_steps=2, price_eur_per_kwh=prices, block_flows=True)
    plan = plan_of(p)
    assert np.allclose(plan.flows_m3h[0], [Q_MIN, Q_MAX, *[Q_MIN] * 6])
    assert plan.objective == pytest.approx(0.1 * 6 * Q_MIN + 0.06 * 8000.0)
    free = plan_of(dataclasses.replace(p, block_flows=False))
    assert free.flows_m3h[0, 4] == pytest.approx(Q_MAX)
    assert free.objective == pytest.approx(plan.objective - 60.0)


def test_block_flows_stay_free_in_blocks_near_an_emptying_candidate() -> None:
    """A landing must be able to slow the pumps right after it: the block holding the candidate,
    and the one the steps after it reach, keep a flow per step."""
    p = problem(block_steps=3, fine_steps=2, block_flows=True)
    assert list(p.flow_index()) == [0, 1, 2, 2, 2, 3, 3, 3]
    assert list(dataclasses.replace(p, emptying_days=((3,),)).flow_index()) == list(range(H))


def test_emptying_step_uses_a_self_regulating_pump_set() -> None:
    """At the emptying step the running set at minimum speed at the floor must stay under the low
    side of the inflow (here the forecast itself, 1,200 m3/h): the big pump (1,500 m3/h there)
    must be off, the small one (400) may run."""
    groups = (Group("big", (0,)), Group("small", (1,)))
    c = coef(2)
    c.q_min[1], c.q_max[1] = 300.0, 1400.0
    p = problem(groups=groups, n_now=np.array([1, 0]), volume0_m3=1500.0, v_empty_m3=500.0,
                inflow_m3h=np.full(H, 1200.0), emptying_days=(tuple(range(H)),),
                q_floor_m3h=np.array([1500.0, 400.0]), locked_on=np.zeros((2, H), dtype=np.int64),
                locked_off=np.zeros((2, H), dtype=np.int64))
    plan = plan_of(p, c)
    assert plan.emptying_missed == 0
    emptied = [k for k in range(H) if plan.volumes_m3[k] <= 500.0 + 1e-6]
    assert any(plan.counts[0, k:k + 3].sum() == 0 for k in emptied)  # the emptying step and two after


def test_floor_keeps_the_low_sides_shortfall_outside_the_emptying() -> None:
    """Stored water is dear, so the plan drains 500 m3/h down to the floor: 1,000 m3 on the
    forecast alone; with a low side of 750 m3/h under the 1,500 m3/h forecast, each step keeps
    the shortfall over the floor, 1,000 + (1,500 - 750) x 1 h."""
    w = dataclasses.replace(NO_SOFT, terminal_eur_per_m3=0.02)
    bare = plan_of(problem(weights=w, v_min_m3=1000.0))
    assert bare.volumes_m3.min() == pytest.approx(1000.0)
    buffered = plan_of(problem(weights=w, v_min_m3=1000.0, inflow_low_m3h=np.full(H, 750.0)))
    assert buffered.volumes_m3.min() == pytest.approx(1750.0)
    assert buffered.band_slack_m3 == pytest.approx(0.0, abs=1e-6)


def test_pumps_inside_their_run_keep_the_floor_over_the_rest_of_it() -> None:
    """Three pumps, all inside their minimum run for steps 0-3 (1,000-2,000 m3/h each), 12,000
    m3 stored over a floor of 1,000, inflow 1,500 m3/h forecast and 500 on the low side. Stored
    water is dear and power is cheapest now, so the plan pumps all it may at step 0. If the
    inflow stays low, the three pumps still take 3 x 1,000 m3/h over steps 1-3: 7,500 m3 more
    than comes in. So step 0 may end no lower than 8,500 m3, i.e. pump 12,000 + 1,500 - 8,500
    = 5,000 m3/h. On the forecast alone (a 4,500 m3 fall) it would pump the station's 6,000."""
    prices = np.full(H, 1.0)
    prices[0] = 0.5
    locked = np.zeros((1, H), dtype=np.int64)
    locked[0, :4] = 3
    base = dict(groups=(Group("p", (0, 1, 2)),), n_now=np.array([3]), locked_on=locked, volume0_m3=12000.0,
                v_min_m3=1000.0, min_on_steps=4, price_eur_per_kwh=prices,
                weights=dataclasses.replace(NO_SOFT, terminal_eur_per_m3=0.2))
    assert plan_of(problem(**base)).flows_m3h[0, 0] == pytest.approx(6000.0)
    low = plan_of(problem(**base, inflow_low_m3h=np.full(H, 500.0)))
    assert low.flows_m3h[0, 0] == pytest.approx(5000.0)
    assert low.volumes_m3[0] == pytest.approx(8500.0)
    assert low.band_slack_m3 == pytest.approx(0.0, abs=1e-6)


def test_guards_assume_the_low_side_of_the_inflow() -> None:
    """Stored water is dear, so the plan wants the most flow the guard admits at step 0. Floor
    flows: big 1,500, small 400, forecast 2,000 m3/h. On the forecast both pass (1,900); on a
    low side of 1,700 the big pump alone; on 1,020 only the small one."""
    c, base = _big_and_small_guarded()
    assert plan_of(problem(**{**base, "inflow_low_m3h": None}), c).counts[:, 0].tolist() == [1, 1]
    assert plan_of(problem(**base), c).counts[:, 0].tolist() == [1, 0]
    cautious = plan_of(problem(**{**base, "inflow_low_m3h": np.full(H, 1020.0)}), c)
    assert cautious.counts[:, 0].tolist() == [0, 1]


def test_with_plc_stop_levels_the_guards_count_the_pumps_it_cannot_stop() -> None:
    """Floor flows big 1,500, small 400; guard limit the low side, 1,700. Without stop levels
    the running set must pass: the big pump alone. With them the PLC stops, at the floor, the
    pumps past their 2 h run but never the last one, so the guard asks that the pumps inside
    their run pass (the small one, started now: 400) and that the pump it keeps does (a small
    one runs: 400): both run. If the big pump started an hour ago it is inside its run too,
    and 1,900 does not pass. On a low side of 1,020 with two old big pumps, the one the
    PLC keeps would be big (1,500) unless a small one runs, so the plan starts one."""
    c, base = _big_and_small_guarded()
    assert plan_of(problem(**base), c).counts[:, 0].tolist() == [1, 0]
    assert plan_of(problem(**base, plc_stops=True), c).counts[:, 0].tolist() == [1, 1]
    young = np.zeros((2, H), dtype=np.int64)
    young[0, :1] = 1  # the big pump's run ends after step 0
    assert plan_of(problem(**{**base, "locked_on": young}, plc_stops=True), c).counts[:, 0].tolist() == [1, 0]
    low = dict(base, groups=(Group("big", (0, 2)), Group("small", (1,))), n_now=np.array([2, 0]),
               inflow_m3h=np.full(H, 1200.0), inflow_low_m3h=np.full(H, 1020.0), plc_stops=True)
    assert plan_of(problem(**low), c).counts[:, 0].tolist() == [2, 1]


def _big_and_small_guarded() -> tuple[Coefficients, dict[str, object]]:
    """A big pump (floor flow 1,500) running and a small one (400) off, a guard at step 0, and
    stored water dear, so the plan wants the most flow the guard admits. The low side of the
    2,000 m3/h forecast is 1,700."""
    c = coef(2)
    c.q_min[1], c.q_max[1] = 300.0, 1400.0
    base = dict(groups=(Group("big", (0,)), Group("small", (1,))), n_now=np.array([1, 0]),
                inflow_m3h=np.full(H, 2000.0), inflow_low_m3h=np.full(H, 1700.0), volume0_m3=3000.0,
                q_floor_m3h=np.array([1500.0, 400.0]),
                guard_steps=(0,), weights=dataclasses.replace(NO_SOFT, terminal_eur_per_m3=0.02),
                locked_on=np.zeros((2, H), dtype=np.int64), locked_off=np.zeros((2, H), dtype=np.int64))
    return c, base


def test_a_landing_further_ahead_is_guarded_on_its_wider_low_side() -> None:
    """Floor flows: big 1,500, small 400; inflow 1,800 m3/h. The emptying booked at step 3 and the
    two steps after it need a set whose floor flow is under the low side there. At 1,530 m3/h
    the big pump passes, and stored water is dear, so the plan runs it. The low side widens
    with lead time: at 1,440 from step 2 on only the small pump lands there, and the big one
    still runs at step 0, whose low side is 1,530."""
    groups = (Group("big", (0,)), Group("small", (1,)))
    c = coef(2)
    c.q_min[1], c.q_max[1] = 300.0, 1400.0
    w = dataclasses.replace(NO_SOFT, terminal_eur_per_m3=0.02)
    base = dict(groups=groups, n_now=np.array([1, 0]), inflow_m3h=np.full(H, 1800.0), volume0_m3=3000.0,
                q_floor_m3h=np.array([1500.0, 400.0]), emptying_days=((3,),), v_empty_m3=1e5, weights=w,
                locked_on=np.zeros((2, H), dtype=np.int64), locked_off=np.zeros((2, H), dtype=np.int64))
    plain = plan_of(problem(**base, inflow_low_m3h=np.full(H, 1530.0)), c)
    assert plain.counts[:, 3:6].tolist() == [[1, 1, 1], [0, 0, 0]]
    wider = plan_of(problem(**base, inflow_low_m3h=np.r_[1530.0, 1530.0, np.full(H - 2, 1440.0)]), c)
    assert wider.counts[:, 3:6].tolist() == [[0, 0, 0], [1, 1, 1]]
    assert wider.counts[0, 0] == 1


def test_the_step_applied_keeps_its_floor_on_the_low_side() -> None:
    """Stored water is dear and power gets dearer, so the plan pumps flat out first (2,000 m3/h).
    From 1,800 m3 over a 1,000 m3 floor the 1,500 m3/h forecast allows that, but if the inflow
    falls to its low side, 1,000 m3/h, only 1,800 m3/h keeps the floor: 1,800 + (1,000 - 1,800)
    x 1 h."""
    w = dataclasses.replace(NO_SOFT, terminal_eur_per_m3=0.03)
    base = dict(weights=w, volume0_m3=1800.0, v_min_m3=1000.0, price_eur_per_kwh=np.linspace(0.1, 0.2, H))
    assert plan_of(problem(**base)).flows_m3h[0, 0] == pytest.approx(Q_MAX)
    robust = plan_of(problem(**base, inflow_low_m3h=np.full(H, 1000.0)))
    assert robust.flows_m3h[0, 0] == pytest.approx(1800.0)
    assert robust.band_slack_m3 == pytest.approx(0.0, abs=1e-6)


def test_a_landing_is_not_held_over_the_floor_by_the_low_side() -> None:
    """A landing booked at step 0, from 1,800 to 1,400 m3 on a 1,500 m3/h forecast: 1,900 m3/h.
    The low side (1,000 m3/h) would keep the step over 1,500 m3 elsewhere, but at the emptying
    step the floor is the minimum on the forecast: the landing's own cap and guards hold it."""
    base = dict(volume0_m3=1800.0, v_min_m3=1000.0, v_low_m3=1500.0, v_empty_m3=1400.0,
                emptying_days=((0,),), inflow_low_m3h=np.full(H, 1000.0))
    for plc in (False, True):
        landed = plan_of(problem(**base, plc_stops=plc))
        assert landed.volumes_m3[0] <= 1400.0 + 1e-6 and landed.band_slack_m3 == pytest.approx(0.0, abs=1e-6)


def test_end_cap_pumps_exactly_down_to_it() -> None:
    """No value on stored water: alone the plan runs at minimum and ends at 9,000 m3. Capped at
    7,000 m3 (the oracle ending no fuller than a compared run), it pumps those 2,000 m3 more
    at the same price: 12,000 - 2,000 m3 pumped x 0.01 EUR/m3."""
    assert plan_of(problem()).volumes_m3[-1] == pytest.approx(9000.0)
    capped = plan_of(problem(v_end_max_m3=7000.0))
    assert capped.volumes_m3[-1] == pytest.approx(7000.0)
    assert capped.objective == pytest.approx(0.1 * KW_PER_M3H * (1500.0 * H - 2000.0))
    assert capped.band_slack_m3 == pytest.approx(0.0, abs=1e-6)


def test_end_cap_on_an_earlier_step_binds_there() -> None:
    """The oracle's horizon runs past the scenario's end, so its cap sits on the scenario's last
    step inside the horizon. Uncapped, step 3 ends at 7,000 m3; capped there at 6,000 m3, the
    plan pumps 1,000 m3 more by then and runs at minimum after (+500 m3 a step): 8,000 at the end."""
    capped = plan_of(problem(v_end_max_m3=6000.0, v_end_step=3))
    assert capped.volumes_m3[3] == pytest.approx(6000.0)
    assert capped.volumes_m3[-1] == pytest.approx(8000.0)
    assert capped.objective == pytest.approx(0.1 * KW_PER_M3H * (1500.0 * H - 3000.0))


def test_pumps_locked_on_past_empty_still_get_a_plan() -> None:
    """One pump that must run (>= 1 pump) drains 1,000 m3/h against 200 m3/h of inflow from
    1,500 m3: the linear model empties in two hours. With the volume bounded at zero HiGHS
    says infeasible (the baseline then decided four intervals running in the soak). The plan
    must come from the re-solve, priced through the floor slack, with the pump as slow as it
    can go."""
    plan = plan_of(problem(volume0_m3=1500.0, inflow_m3h=np.full(H, 200.0), v_min_m3=1000.0))
    assert np.allclose(plan.flows_m3h[0], Q_MIN)
    assert plan.volumes_m3[1] == pytest.approx(-100.0)
    assert plan.band_slack_m3 == pytest.approx(sum(1000.0 - (1500.0 - 800.0 * k) for k in range(1, H + 1)))


def test_a_start_from_pump_counts_keeps_the_optimum() -> None:
    """The MPC starts HiGHS from the previous plan's counts. A good start, a poor one and one
    outside the bounds (clipped) must all end at the cold solve's optimum."""
    prices = np.full(H, 1.0)
    prices[3:5] = 0.0
    p = problem(price_eur_per_kwh=prices, weights=dataclasses.replace(NO_SOFT, terminal_eur_per_m3=0.05))
    cold = plan_of(p)
    for counts in (cold.counts, np.zeros((1, H), dtype=np.int64), np.full((1, H), 5, dtype=np.int64)):
        warm = solve(p, coef(), time_limit_s=10, mip_gap=1e-6, counts=counts)
        assert warm is not None and warm.objective == pytest.approx(cold.objective)


def test_a_booked_emptying_beyond_reach_still_gets_a_plan() -> None:
    """The booked step is now, from 5,000 m3, with the big pump locked on (floor flow 1,500
    against 0.85 x 1,200): neither the emptying nor its self-regulating set is possible. The
    plan must still come (the miss reported), not an infeasible model and a fallback."""
    groups = (Group("big", (0,)), Group("small", (1,)))
    c = coef(2)
    c.q_min[1], c.q_max[1] = 300.0, 1400.0
    locked_on = np.zeros((2, H), dtype=np.int64)
    locked_on[0, :2] = 1
    p = problem(groups=groups, n_now=np.array([1, 0]), v_empty_m3=500.0, v_low_m3=1000.0, inflow_m3h=np.full(H, 1200.0),
                emptying_days=((0,),), q_floor_m3h=np.array([1500.0, 400.0]), locked_on=locked_on,
                locked_off=np.zeros((2, H), dtype=np.int64))
    plan = plan_of(p, c)
    assert plan.emptying_missed == 1
    assert plan.counts[0, 0] == 1


def test_the_heuristics_we_switch_off_exist_in_this_highs() -> None:
    """HiGHS ignores an unknown option with only a log line: a rename in a later release would
    silently bring back the solve time these options saved."""
    h = highspy.Highs()  # type: ignore[no-untyped-call]
    h.setOptionValue("output_flag", False)
    for name in HEURISTICS_OFF:
        assert h.setOptionValue(name, False) == highspy.HighsStatus.kOk, name


def test_rows_at_once_are_the_rows_one_by_one() -> None:
    """The bulk builder must give HiGHS the very same matrix: same rows, order and bounds,
    zero coefficients (short rows' padding) dropped."""
    one, bulk = Model(), Model()
    for m in (one, bulk):
        m.block("x", (4,))
    one.row([(0, 1.0), (2, -3.0)], lo=1.0)
    one.row([(1, 2.0)], hi=5.0)
    one.row([(3, -0.0), (0, 4.0)], lo=-2.0, hi=2.0)
    bulk.rows_of(np.array([[0, 2], [1, 1], [3, 0]]), np.array([[1.0, -3.0], [2.0, 0.0], [-0.0, 4.0]]),
                 np.array([1.0, -INF, -2.0]), np.array([INF, 5.0, 2.0]))
    for name in ("rows", "cols", "vals", "row_lo", "row_hi"):
        assert getattr(one, name) == getattr(bulk, name), name


def test_an_option_highs_refuses_is_an_error_naming_it() -> None:
    """An older HiGHS refuses the heuristics switches; it must not then run untuned in silence."""
    from controller.lp import quiet_highs, set_option

    h = quiet_highs()
    h.setOptionValue("output_flag", False)
    set_option(h, "mip_heuristic_run_rins", False)  # known from 1.11 on
    with pytest.raises(RuntimeError, match=r"refused option mip_heuristic_run_nothing = False: .*highspy >= 1.11"):
        set_option(h, "mip_heuristic_run_nothing", False)
