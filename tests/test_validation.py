"""Telemetry validation on hand-made readings, and a frozen level sensor through the daemon."""

from __future__ import annotations

import dataclasses
import math
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from adapters.client.sim import SimPort
from controller.baseline import BaselineController
from kernel.contracts import Telemetry
from kernel.physics import LevelVolume
from kernel.site import Site
from scenarios.rules import check
from scenarios.scenario import load_scenario
from tests.helpers import telemetry
from tunneltwin.daemon.audit import AuditLog, read_ticks
from tunneltwin.daemon.loop import Service
from tunneltwin.daemon.validation import Checked, Validator
from twin.lockstep import LockstepPlant, SensorFault

STEP = timedelta(minutes=15)


def _series(site: Site, levels: list[float], inflow_m3h: float = 8000.0) -> list[Telemetry]:
    """One pump at 49 Hz, the given level readings, 15 min apart; the inflow meter moves by a
    few m3/h from reading to reading, as a real one does (one that does not is stuck)."""
    base = [telemetry(site, level_m=lv, inflow_m3h=inflow_m3h + _wobble(k)) for k, lv in enumerate(levels)]
    return [t.model_copy(update={"time": t.time + k * STEP}) for k, t in enumerate(base)]


def _wobble(k: int) -> float:
    return 4.0 * ((k * 7) % 5 - 2)  # -8..8 m3/h, never the same twice in a row


def test_clean_readings_pass_untouched(site: Site) -> None:
    v = Validator(site)
    geometry = LevelVolume(site.tunnel)
    level, out = 2.0, []
    for k in range(6):
        tel = _series(site, [level], 8000.0 + _wobble(k))[0]
        out.append(tel)
        net = (tel.inflow_m3h - tel.outflow_m3h) * 0.25
        level = geometry.level(geometry.volume(level) + net)
    for k, tel in enumerate(out):
        tel = tel.model_copy(update={"time": tel.time + k * STEP})
        checked = v.check(tel)
        assert checked.flags == () and checked.telemetry is tel and not checked.degrade


def test_a_frozen_level_is_flagged_and_estimated(site: Site) -> None:
    v = Validator(site)
    results = [v.check(t) for t in _series(site, [2.0] * 7)]  # inflow 8000 vs ~2500 pumped: it must rise
    kinds = [[f.kind for f in r.flags] for r in results]
    frozen = [r for r in results if any(f.kind == "frozen" for f in r.flags)]
    assert frozen, kinds
    assert all(r.telemetry.level_m > 2.0 for r in frozen)  # the estimate rises with the balance
    assert not frozen[0].degrade


@pytest.mark.parametrize("rise_m_per_tick", [0.012, 0.006, 0.0003, 0.0])
def test_a_level_stuck_while_the_tunnel_moves_slowly_is_found_by_the_summed_balance(
        site: Site, rise_m_per_tick: float) -> None:
    """The balance says the tunnel rises 1.2 cm a tick and the reading stands: judged one tick
    at a time (5 cm), it passed for as long as the fault lasted; summed since the reading
    stuck it is 2.4 cm at the third reading, and flagged. At 6 mm a tick the third reading
    needs only 1 cm (the fault soak: 4.27 m, the balance at 1.8 cm, found a tick late). Where
    the balance stands still (0.3 mm a tick: the recorded level's one run of three identical
    readings) it cannot tell; the fourth identical reading is a stuck sensor all the same,
    alarmed and kept, as the stuck flow meters."""
    geometry = LevelVolume(site.tunnel)
    pumped = sum(p.flow_m3h for p in _series(site, [2.0])[0].pumps)
    inflow = pumped + (geometry.volume(2.0 + rise_m_per_tick) - geometry.volume(2.0)) / 0.25
    v = Validator(site)
    results = [v.check(t) for t in _series(site, [2.0] * 4, inflow_m3h=inflow)]
    level = [[f for f in r.flags if f.field == "level_m"] for r in results]
    frozen = [any(f.kind == "frozen" for f in flags) for flags in level]
    if rise_m_per_tick >= 0.005:
        assert frozen == [False, False, True, True]
        assert f"moved +{2 * rise_m_per_tick:.3f} m since it stuck" in level[2][0].detail
    else:
        assert frozen == [False, False, False, True]
        assert "2.000 m for 4 readings in a row" in level[3][0].detail
        assert results[3].telemetry.level_m == 2.0 and results[3].telemetry.level_high_m is None  # kept


def test_a_level_frozen_during_a_drawdown_stays_flagged_and_errs_low(site: Site) -> None:
    """Inflow 500 m3/h under one pump: the level falls while the reading stays at 1.5 m. Every
    identical reading is flagged (compared with the substituted level, every other one passed),
    and near the bottom the estimate errs low by the growing doubt of the dead reckoning."""
    v = Validator(site)
    geometry = LevelVolume(site.tunnel)
    readings = _series(site, [1.5] * 6, inflow_m3h=500.0)
    results = [v.check(t) for t in readings]
    # (the hand-made pump flow is the model's at the reading, so from the third reading on it is
    # stuck too: alarmed, and kept)
    assert all([f.kind for f in r.flags if f.field == "level_m"] == ["frozen"] for r in results[1:])
    central, doubt = geometry.volume(1.5), 0.0
    for tel, r in zip(readings[1:], results[1:], strict=True):
        central = max(0.0, central + (tel.inflow_m3h - sum(p.flow_m3h for p in tel.pumps)) * 0.25)
        doubt = math.hypot(doubt, 0.15 * (tel.inflow_m3h + tel.outflow_m3h) * 0.25)  # independent ticks
        assert r.telemetry.volume_m3 == pytest.approx(max(0.0, central - doubt))
    assert results[-1].telemetry.level_m < results[1].telemetry.level_m < 1.5
    # the estimate carries its high end: the central estimate plus the doubt
    for r in results[1:]:
        high = r.telemetry.level_high_m
        assert high is not None and high > r.telemetry.level_m


@pytest.mark.parametrize("controller", ["mpc", "baseline"])
def test_an_estimated_level_counts_as_emptied_only_by_its_high_end(site: Site, controller: str) -> None:
    """The fault soak: a level frozen at 1.1 m while the tunnel drained; the estimate's low end
    read 0.08 m, the day was taken as emptied and the pumps stopped, while the tunnel stood at
    0.95 m; no emptying followed that day. An estimate is credited only if its high end is
    under the emptying level; a measured level as before."""
    from controller.baseline import DayTracker
    from controller.emptying import EmptyingTracker

    level = site.rules.emptying_level_m
    estimate = telemetry(site, level_m=0.08).model_copy(update={"level_high_m": 0.95})

    def emptied(tel: Telemetry) -> bool:
        if controller == "mpc":
            mpc = EmptyingTracker(level)
            mpc.update(tel, 0.25)
            return bool(mpc.emptied)
        day = DayTracker()
        day.update(tel, level)
        return day.emptied

    assert not emptied(estimate)
    assert emptied(estimate.model_copy(update={"level_high_m": level - 0.05}))
    assert emptied(telemetry(site, level_m=level - 0.05))


def test_an_impossible_level_is_replaced_and_long_estimation_degrades(site: Site) -> None:
    v = Validator(site)
    first = v.check(_series(site, [2.0])[0])
    assert first.flags == ()
    readings = _series(site, [2.0] + [25.0] * 10)[1:]
    results = [v.check(t) for t in readings]
    level_flags = [[f.kind for f in r.flags if f.field == "level_m"] for r in results]
    assert level_flags == [["out_of_range"]] * 10 and all(r.telemetry.level_m < 8 for r in results)
    assert [r.degrade for r in results] == [False] * 8 + [True] * 2  # 2 h on an estimate, then the baseline


def test_stale_time_degrades_at_once(site: Site) -> None:
    v = Validator(site)
    tel = _series(site, [2.0])[0]
    v.check(tel)
    again = v.check(tel)
    assert again.degrade and again.flags[0].kind == "stale"


def test_f2_against_the_pumps_is_an_alarm_only(site: Site) -> None:
    tel = _series(site, [2.0])[0]
    bad = tel.model_copy(update={"outflow_m3h": tel.outflow_m3h + 5000})
    checked = Validator(site).check(bad)
    assert [f.kind for f in checked.flags] == ["inconsistent"] and checked.telemetry is bad


class Said:
    """A reporting surface that keeps what it was given (our Surface protocol)."""

    def __init__(self) -> None:
        self.reports: list[dict[str, Any]] = []

    async def start(self, desk: Any, alert: Any) -> None:
        return None

    async def publish(self, report: dict[str, Any]) -> None:
        self.reports.append(report)

    async def alert(self, alert: dict[str, Any]) -> None:
        return None

    async def stop(self, failure: str | None = None) -> None:
        return None


async def test_a_frozen_sensor_in_the_plant_is_caught_by_the_daemon(site: Site, tmp_path: Path) -> None:
    """The level reading freezes at 04:30 for 3 h as the baseline draws the tunnel down. Unchecked, it
    pumps it dry on the frozen value; checked, the estimate takes over and the level stays above its
    minimum. (That day's emptying is then missed: caution near the bottom costs it, and the rule
    checker counts it.)"""
    setup = load_scenario("dry-week", site, None, None, None)
    setup = dataclasses.replace(setup, inflow_m3h=setup.inflow_m3h[:96], price_eur_per_kwh=setup.price_eur_per_kwh[:96],
                                sensor_faults=(SensorFault(4.5 * 3600, 7.5 * 3600),))
    results = {}
    for validated in (True, False):
        plant = LockstepPlant(setup)
        baseline = BaselineController(site)
        audit = AuditLog(tmp_path / f"audit-{validated}.db")
        said = Said()
        service = Service(SimPort(plant), baseline, baseline, site, audit=audit, surfaces=[said])
        if not validated:
            service.validator.check = lambda tel: Checked(tel, (), False)  # type: ignore[method-assign]
        await service.run()
        low = [b for b in check(plant.traj, site.rules).breaches if b.rule == "level_below_min"]
        results[validated] = (len(low), {a["kind"] for a in service.alerts})
        reported = [r["status"] for r in said.reports if "raw" in r["status"]]
        assert bool(reported) is validated  # the status (MQTT, OPC UA, HTTP) says what the plant said too
        assert all(s["raw"]["level_m"] != s["level_m"] for s in reported)
    assert results[True][0] == 0 and "telemetry_frozen" in results[True][1]
    assert results[False][0] >= 8  # the same fault, unchecked: 2 h or more under the minimum level
    # the audit keeps the frozen reading beside the estimate the controller used
    rows = list(read_ticks(tmp_path / "audit-True.db"))
    estimated = [r["telemetry"] for r in rows if "raw" in r["telemetry"]]
    assert len(estimated) >= 8
    assert len({t["raw"]["level_m"] for t in estimated}) <= 2  # frozen: one value (or its last before)
    assert all(t["raw"]["level_m"] != t["level_m"] for t in estimated)
    assert not any("raw" in r["telemetry"] for r in read_ticks(tmp_path / "audit-False.db"))


def test_a_plant_clock_that_goes_back_does_not_move_the_daemons_time_back(site: Site) -> None:
    """After a simulator restart the plant clock fell back 15 h. Holding the last reading until
    the clock caught up fed the baseline 1.206 m for 60 ticks while the tunnel rose to 4.7 m;
    keeping plant time after the jump booked the daily emptying on plant days 15 h off the true
    ones (4 true dry days missed in the 30-day fault soak). The readings after the jump are
    new, and they are re-stamped onto the daemon's timeline: the clock is taken as having lost
    what it went back, until it is set right again."""
    v = Validator(site)
    before = _series(site, [1.2, 1.206])
    for tel in before:
        v.check(tel)
    lost = timedelta(hours=15)
    after = [t.model_copy(update={"time": before[-1].time - lost + (k + 1) * STEP})
             for k, t in enumerate(_series(site, [4.7, 4.72, 4.74]))]
    first = v.check(after[0])
    assert first.telemetry.level_m == 4.7 and first.degrade  # the baseline decides the jump's tick
    assert first.telemetry.time == before[-1].time + STEP
    assert [f.kind for f in first.flags] == ["backwards"] and "now runs 15:00:00 behind" in first.flags[0].detail
    assert v.clock.behind == lost
    for k, tel in enumerate(after[1:], start=2):
        checked = v.check(tel)
        assert checked.telemetry.level_m == tel.level_m and not checked.degrade
        assert not [f for f in checked.flags if f.field == "time"]
        assert checked.telemetry.time == before[-1].time + k * STEP  # on the daemon's time, not the plant's
    set_right = _series(site, [4.76])[0].model_copy(update={"time": before[-1].time + 4 * STEP})
    fixed = v.check(set_right.model_copy(update={"volume_m3": LevelVolume(site.tunnel).volume(4.76)}))
    assert [f.kind for f in fixed.flags if f.field == "time"] == ["forward"] and not fixed.degrade
    assert v.clock.behind == timedelta(0) and fixed.telemetry.time == before[-1].time + 4 * STEP


def test_a_gap_while_the_plant_clock_runs_behind_shortens_what_it_is_behind_by_at_most_the_gap(site: Site) -> None:
    """A jump forward is taken as the clock set right only up to what it ran behind."""
    v = Validator(site)
    tel = _series(site, [2.0, 2.0, 2.0, 2.0])
    v.check(tel[0])
    v.check(tel[1].model_copy(update={"time": tel[0].time - timedelta(hours=2)}))  # 2 h 15 min behind
    assert v.clock.behind == timedelta(hours=2, minutes=15)
    gap = timedelta(hours=1)  # the link lost for an hour: taken as the clock set right by that much
    checked = v.check(tel[2].model_copy(update={"time": tel[0].time - timedelta(hours=2) + STEP + gap}))
    assert v.clock.behind == timedelta(hours=1, minutes=15)
    assert checked.telemetry.time == tel[0].time + 2 * STEP  # an hour short: what the alarm says
    assert [f.kind for f in checked.flags if f.field == "time"] == ["forward"]
    checked = v.check(tel[3].model_copy(update={"time": tel[0].time + timedelta(hours=9)}))  # far past it
    assert v.clock.behind == timedelta(0) and checked.telemetry.time == tel[0].time + timedelta(hours=9)


async def test_the_daemon_acts_on_the_plant_after_its_clock_jumped_back(site: Site) -> None:
    """The embedded twin is replaced after 4 ticks by one whose clock is 15 h behind and whose
    tunnel stands at 4.7 m (a simulator restarted): the daemon alarms once and decides on the
    new plant's level, not on the last reading before the jump."""
    setup = load_scenario("dry-week", site, None, None, None)
    first = LockstepPlant(dataclasses.replace(setup, inflow_m3h=setup.inflow_m3h[:96]))
    earlier = setup.start - timedelta(hours=15)
    second = LockstepPlant(dataclasses.replace(setup, start=earlier, level_m=4.7))
    port = SimPort(first)
    real_step = port.step
    steps = 0

    async def restart_after_four() -> bool:
        nonlocal steps
        steps += 1
        if steps == 4:
            port.plant = second
            return True
        return await real_step()

    port.step = restart_after_four  # type: ignore[method-assign]
    baseline = BaselineController(site)
    service = Service(port, baseline, baseline, site, max_ticks=10)
    stats = await service.run()
    kinds = [a["kind"] for a in service.alerts]
    assert kinds.count("telemetry_backwards") == 1 and "telemetry_behind" not in kinds
    assert stats.level_max_m >= 4.6  # the new plant's level reached the decisions
    assert any(any(row) for row in second.traj.pump_on)  # and it was pumped


async def test_a_restarted_daemon_resumes_the_plant_clocks_lag_from_the_audit(site: Site, tmp_path: Path) -> None:
    """The plant clock falls back 15 h and stays behind; the daemon is killed and started
    again on the same audit log. Its time runs on from where it was (not 15 h back), the
    audit keeps the plant's time beside it, and the restart says how far the clock is behind."""
    setup = load_scenario("dry-week", site, None, None, None)
    lag = timedelta(hours=15)

    def plant_from(step: int) -> LockstepPlant:  # the true plant from ``step`` on, its clock ``lag`` behind
        return LockstepPlant(dataclasses.replace(setup, start=setup.start + step * STEP - lag,
                                                 inflow_m3h=setup.inflow_m3h[step:]))

    first = SimPort(LockstepPlant(setup))
    real_step, steps = first.step, 0

    async def clock_back_after_four() -> bool:
        nonlocal steps
        steps += 1
        if steps == 4:
            first.plant = plant_from(4)
            return True
        return await real_step()

    first.step = clock_back_after_four  # type: ignore[method-assign]
    baseline = BaselineController(site)
    path = tmp_path / "audit.sqlite"
    audit = AuditLog(path)
    await Service(first, baseline, baseline, site, max_ticks=8, audit=audit).run()
    audit.close()
    audit = AuditLog(path)
    again = Service(SimPort(plant_from(8)), baseline, baseline, site, max_ticks=3, audit=audit)
    await again.run()
    audit.close()
    assert again.validator.clock.behind == lag
    assert any(a["kind"] == "telemetry_behind" and "15:00:00" in a["message"] for a in again.alerts)
    rows = list(read_ticks(path))
    times = [datetime.fromisoformat(r["plant_time"]) for r in rows]
    assert times == [setup.start + k * STEP for k in range(11)]  # on and on, one interval apart
    assert "raw" not in rows[2]["telemetry"]
    assert all(r["telemetry"]["raw"]["time"] == (t - lag).isoformat() for r, t in zip(rows[4:], times[4:], strict=True))


@pytest.mark.parametrize("factor", [4.0, -0.5])
def test_a_wrong_inflow_reading_gives_way_to_the_level_and_the_pumped_flow(site: Site, factor: float) -> None:
    """The level sensor is right and the inflow reading is not (x4, or negative). Before, the
    controller planned on 20,000 m3/h and drained the tunnel to 0.33 m, or the balance pulled
    the believed level to 0 m while it was 2.17 m. The level's change and the pumped flow give
    the inflow; the reading is flagged and replaced, and the level stands."""
    geometry = LevelVolume(site.tunnel)
    v = Validator(site)
    true_inflow, level = 5000.0, 2.17
    first = telemetry(site, level_m=level, inflow_m3h=true_inflow)
    v.check(first)
    pumped = first.outflow_m3h
    after = geometry.level(geometry.volume(level) + (true_inflow - pumped) * 0.25)
    wrong = telemetry(site, level_m=after, inflow_m3h=factor * true_inflow)
    checked = v.check(wrong.model_copy(update={"time": first.time + STEP}))
    assert checked.telemetry.level_m == pytest.approx(after)
    assert checked.telemetry.inflow_m3h == pytest.approx(true_inflow, rel=0.01)
    # a negative reading is out of range, and replaced as such before the balance is asked
    assert [(f.field, f.kind) for f in checked.flags if f.field != "inflow_m3h" or f.kind != "out_of_range"] == (
        [("inflow_m3h", "inconsistent")] if factor > 0 else [])
    assert not checked.degrade


def test_an_inflow_read_negative_near_the_bottom_is_not_passed_on(site: Site) -> None:
    """The fault soak's sign error at 0.70 m: -6,680 m3/h agreed with the flow balance within
    its 600 m3 (the balance stops at an empty tunnel, and the bottom holds a few hundred m3),
    so it was passed on; the true 1.0-1.7 m after it were disbelieved as a jump from -6,680,
    and the tunnel was believed empty for an hour while it filled. An inflow out of range is
    replaced by the level's change and the pumped flow, and the levels after it stand."""
    geometry = LevelVolume(site.tunnel)
    on = {"2.1": 48.0, "2.2": 48.0, "2.3": 48.0}
    v = Validator(site)
    last = 0.76
    v.check(telemetry(site, level_m=last, inflow_m3h=6682.0, on=on))
    for k, level in enumerate([0.70, 1.0, 1.4, 1.7], start=1):
        tel = telemetry(site, level_m=level, on=on)
        true_inflow = (geometry.volume(level) - geometry.volume(last)) / 0.25 + tel.outflow_m3h
        checked = v.check(tel.model_copy(update={"time": tel.time + k * STEP, "inflow_m3h": -true_inflow}))
        assert checked.telemetry.level_m == pytest.approx(level)
        assert checked.telemetry.inflow_m3h == pytest.approx(true_inflow)
        assert ("inflow_m3h", "out_of_range") in {(f.field, f.kind) for f in checked.flags}
        last = level


@pytest.mark.parametrize("read_m", [5.0, 7.02])
def test_a_level_that_jumps_past_any_inflow_is_impossible_and_not_believed(site: Site, read_m: float) -> None:
    """A level reading 3 or 5 m up in one interval would need an inflow far over any storm: the
    level, not the inflow, is the suspect, and being impossible it is not "the worse of the two"
    near the top either: the balance's level is used (the fault soak's +5 m spike at 2 m was
    believed at 7.02 m, five pumps started, and their minimum run drained the tunnel to 0.08 m).
    The next good reading is believed again."""
    v = Validator(site)
    first = telemetry(site, level_m=2.0, inflow_m3h=5000.0)
    v.check(first)
    jump = telemetry(site, level_m=read_m, inflow_m3h=5000.0).model_copy(update={"time": first.time + STEP})
    checked = v.check(jump)
    assert checked.telemetry.inflow_m3h == 5000.0
    assert [(f.field, f.kind) for f in checked.flags if f.field == "level_m"] == [("level_m", "out_of_range")]
    assert 2.0 < checked.telemetry.level_m < 2.5  # the balance's: 5,000 in, one pump out
    back = checked.telemetry.level_m + 0.01
    good = telemetry(site, level_m=back, inflow_m3h=5003.0).model_copy(update={"time": first.time + 2 * STEP})
    again = v.check(good)
    assert not [f for f in again.flags if f.field == "level_m"] and again.telemetry.level_m == back


def test_a_level_read_high_near_the_bottom_is_doubted_not_the_steady_inflow(site: Site) -> None:
    """The fault soak's case: at 1 m with 3,000 m3/h in and steady, the level reads 1.5 m high.
    That jump implies ~38,000 m3/h, possible for a storm but not 35,000 m3/h up in 15 min:
    the level is the suspect and, this near the bottom, the lower of reading and balance is used;
    the inflow reading stands. (Believed, it had the controller empty the tunnel.)"""
    v = Validator(site)
    first = telemetry(site, level_m=1.0, inflow_m3h=3000.0, on={"1.2": 49.0})
    v.check(first)
    biased = first.model_copy(update={"time": first.time + STEP, "level_m": 2.5,
                                      "volume_m3": LevelVolume(site.tunnel).volume(2.5)})
    checked = v.check(biased)
    assert checked.telemetry.inflow_m3h == 3000.0
    assert ("level_m", "inconsistent") in [(f.field, f.kind) for f in checked.flags]
    assert checked.telemetry.level_m < 1.2  # the balance's level, not the biased reading


@pytest.mark.parametrize(("fault", "factor", "flagged"), [
    ("bias x2.5", 2.5, True), ("spike x10", 10.0, True), ("sign error", -1.0, True), ("dead at 0", 0.0, True),
    ("within the model's own scatter", 1.3, False), ("low but plausible", 0.6, False),
])
def test_a_pump_flow_reading_is_checked_against_the_pump_model(site: Site, fault: str, factor: float,
                                                               flagged: bool) -> None:
    """Pump 1.2 has run for hours at 49 Hz with the tunnel at 3 m; its meter reads the model's
    flow times ``factor``. A gross error is alarmed naming the meter, and the model's flow is
    used instead (the raw reading stays in the audit)."""
    from tunneltwin.daemon.recording import raw_changes

    good = telemetry(site, level_m=3.0, on={"1.2": 49.0})
    model = good.pump("1.2").flow_m3h
    bad = good.model_copy(update={"pumps": tuple(p.model_copy(update={"flow_m3h": p.flow_m3h * factor})
                                                 if p.id == "1.2" else p for p in good.pumps)})
    v = Validator(site)
    checked = v.check(bad)
    pump_flags = [f for f in checked.flags if f.field == "pump 1.2 flow_m3h"]
    assert bool(pump_flags) is flagged, (fault, checked.flags)
    used = checked.telemetry.pump("1.2").flow_m3h
    if flagged:
        assert pump_flags[0].kind == "inconsistent" and f"gives {model:.0f}" in pump_flags[0].detail
        assert used == pytest.approx(model, rel=1e-3)  # the model's flow, not the meter's
        assert raw_changes(checked.telemetry, v.raw) == {"pump 1.2 flow_m3h": pytest.approx(model * factor)}
    else:
        assert used == pytest.approx(model * factor)


def test_a_pump_that_just_started_is_not_judged_by_the_model(site: Site) -> None:
    """Within its first interval a pump's 15-min mean flow is part ramp: no verdict."""
    fresh = telemetry(site, level_m=3.0, on={"1.2": 49.0}, timers={"1.2": 300.0})
    half = fresh.model_copy(update={"pumps": tuple(p.model_copy(update={"flow_m3h": p.flow_m3h * 0.3})
                                                   if p.id == "1.2" else p for p in fresh.pumps)})
    assert not [f for f in Validator(site).check(half).flags if f.field.startswith("pump 1.2")]


@pytest.mark.parametrize("meter", ["inflow", "pump flow"])
def test_a_meter_that_does_not_move_is_stuck_by_the_third_reading(site: Site, meter: str) -> None:
    """In the recorded 10 days the inflow repeats at most twice in a row and a running pump's
    flow never: a third identical reading is a stuck meter, alarmed naming it (kept: the balance
    replaces it once it drifts from the level's story). A pump that stops is not stuck."""
    v = Validator(site)
    geometry = LevelVolume(site.tunnel)
    level, flags = 3.0, []
    for k in range(5):
        tel = telemetry(site, level_m=level, inflow_m3h=3000.0 + (0.0 if meter == "inflow" else _wobble(k)),
                        on={"1.2": 49.0})
        if meter == "pump flow":
            tel = tel.model_copy(update={"pumps": tuple(p.model_copy(update={"flow_m3h": 2600.0}) if p.id == "1.2"
                                                        else p for p in tel.pumps)})
        checked = v.check(tel.model_copy(update={"time": tel.time + k * STEP}))
        flags.append([(f.field, f.kind) for f in checked.flags if f.kind == "frozen"])
        assert checked.telemetry.inflow_m3h == tel.inflow_m3h  # kept
        level = geometry.level(geometry.volume(level) + (tel.inflow_m3h - tel.outflow_m3h) * 0.25)
    field = "inflow_m3h" if meter == "inflow" else "pump 1.2 flow_m3h"
    assert flags == [[], [], [(field, "frozen")], [(field, "frozen")], [(field, "frozen")]]
    stopped = telemetry(site, level_m=level, inflow_m3h=3001.0)
    assert not [f for f in v.check(stopped.model_copy(update={"time": stopped.time + 5 * STEP})).flags
                if f.kind == "frozen"]


def test_a_level_sign_error_does_not_judge_the_pumps_by_its_impossible_level(site: Site) -> None:
    """The fault soak's case: five pumps draining the tunnel at 0.8 m, the level read -0.82 m.
    The pump model at that reading (clamped to 0 m) gave 789 m3/h against a good meter's 1,269,
    the good meters were replaced, the dead reckoning believed the level rising, and the
    tunnel reached 0.026 m. The pumps are judged at the last level believed instead."""
    on = {"1.1": 50.0, "2.1": 49.0, "2.2": 49.0}
    v = Validator(site)
    first = telemetry(site, level_m=0.8, inflow_m3h=3000.0, on=on)
    v.check(first)
    flipped = telemetry(site, level_m=0.8, inflow_m3h=3003.0, on=on).model_copy(
        update={"time": first.time + STEP, "level_m": -0.8})
    checked = v.check(flipped)
    assert [(f.field, f.kind) for f in checked.flags] == [("level_m", "out_of_range")]
    assert checked.telemetry.pumps == flipped.pumps  # the meters stand
    assert checked.telemetry.level_m < 0.8  # and the estimate falls with what they pump


def test_a_true_low_reading_after_pumps_stopped_mid_interval_is_believed(site: Site) -> None:
    """The fault soak's false alarm: four pumps ran at 1.03 m, the PLC stopped three at their
    stop level during the interval, and the level read a true 0.54 m. With the one pump read at
    the tick the move looks like a negative inflow, but the pumps that ran at the last tick
    explain it: disputed, not impossible, and near the bottom the lower (the reading) is used."""
    four = {"1.1": 50.0, "1.4": 50.0, "2.1": 49.0, "2.2": 49.0}
    v = Validator(site)
    before = telemetry(site, level_m=1.03, inflow_m3h=3208.0, on=four)
    v.check(before)
    after = telemetry(site, level_m=0.54, inflow_m3h=1894.0, on={"1.4": 49.0}).model_copy(
        update={"time": before.time + STEP})
    checked = v.check(after)
    assert ("level_m", "out_of_range") not in [(f.field, f.kind) for f in checked.flags]
    assert checked.telemetry.level_m == pytest.approx(0.54, abs=0.02)
