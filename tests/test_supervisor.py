"""The safety supervisor: one test per hard rule it enforces, on hand-built telemetry."""

from __future__ import annotations

import pytest

from controller.supervisor import Supervisor, SupervisorSettings
from tests.helpers import station, telemetry
from tunneltwin.contracts import PumpSetpoint, Setpoints
from tunneltwin.site import Site


def command(**pumps: float) -> Setpoints:
    """Pump ids with dots replaced by underscores: p1_2=49.0 runs pump 1.2 at 49 Hz; 0 stops it."""
    return Setpoints(pumps=tuple(PumpSetpoint(id=k[1:].replace("_", "."), on=f > 0, freq_hz=f)
                                 for k, f in pumps.items()))


def running(sp: Setpoints) -> dict[str, float]:
    return {p.id: p.freq_hz for p in sp.pumps if p.on}


@pytest.fixture
def sup(site: Site) -> Supervisor:
    return Supervisor(site, station(site))


def test_safe_command_passes_unchanged(site: Site, sup: Supervisor) -> None:
    out = sup.check(telemetry(site), command(p1_2=49.0))
    assert running(out) == {"1.2": 49.0}
    assert not sup.overrides


def test_unavailable_pump_is_not_run(site: Site, sup: Supervisor) -> None:
    out = sup.check(telemetry(site, on={"1.2": 49.0, "2.2": 49.0}), command(p1_2=49.0, p1_3=49.0, p2_2=49.0))
    assert "1.3" not in running(out)
    assert sup.counts["availability"] == 1


def test_frequency_is_clipped_to_the_band(site: Site, sup: Supervisor) -> None:
    out = sup.check(telemetry(site, on={"1.2": 49.0, "2.2": 49.0}), command(p1_2=45.0, p2_2=49.0))
    assert running(out)["1.2"] == site.rules.min_freq_hz
    assert sup.counts["frequency"] == 1


def test_min_on_time_keeps_a_young_pump_running(site: Site, sup: Supervisor) -> None:
    tel = telemetry(site, on={"1.2": 49.0, "2.2": 49.0}, timers={"2.2": 1800.0})
    out = sup.check(tel, command(p1_2=49.0, p2_2=0.0))
    assert "2.2" in running(out)
    assert sup.counts["min_on"] == 1


def test_min_off_time_keeps_a_rested_pump_off(site: Site, sup: Supervisor) -> None:
    tel = telemetry(site, timers={"2.2": 1800.0})
    out = sup.check(tel, command(p1_2=49.0, p2_2=49.0))
    assert "2.2" not in running(out)
    assert sup.counts["min_off"] == 1


def test_at_least_one_pump_runs(site: Site, sup: Supervisor) -> None:
    out = sup.check(telemetry(site), command(p1_2=0.0))
    assert len(running(out)) == 1
    assert sup.counts["min_pumps_on"] == 1


def test_station_outflow_is_capped(site: Site, sup: Supervisor) -> None:
    five = {p: 50.0 for p in ("1.2", "1.4", "2.2", "2.3", "2.4")}
    tel = telemetry(site, level_m=7.0, inflow_m3h=12000.0, on=five)
    out = sup.check(tel, command(**{f"p{p.replace('.', '_')}": 50.0 for p in five}))
    flow = station(site).flow_of({site.pump_ids.index(p): f for p, f in running(out).items()}, 7.0)
    assert flow <= site.rules.max_outflow_m3h + 1.0
    assert sup.counts["max_outflow"] >= 1


def test_floor_slows_pumps_when_the_level_is_low(site: Site, sup: Supervisor) -> None:
    tel = telemetry(site, level_m=0.62, inflow_m3h=1000.0, on={"1.2": 50.0})
    out = sup.check(tel, command(p1_2=50.0))
    assert running(out)["1.2"] < 50.0
    assert sup.counts["min_level"] == 1


def test_hold_check_makes_a_command_safe_to_hold_for_a_second_interval(site: Site, sup: Supervisor) -> None:
    """1.2 m, 2,000 m3/h in, two large pumps at 50 Hz: one interval on 0.85 x inflow ends near
    0.95 m, but held through a second (a refused write) the same command ends near 0.41 m.
    The one-interval check passes it; with hold_check on, it is slowed."""
    tel = telemetry(site, level_m=1.2, inflow_m3h=2000.0, on={"1.2": 50.0, "1.4": 50.0})
    assert running(sup.check(tel, command(p1_2=50.0, p1_4=50.0))) == {"1.2": 50.0, "1.4": 50.0}  # one interval
    sup = Supervisor(site, sup.model, SupervisorSettings(hold_check=True))
    out = running(sup.check(tel, command(p1_2=50.0, p1_4=50.0)))
    assert sup.counts["min_level"] >= 1 and out and max(out.values()) < 50.0
    index = {p.id: i for i, p in enumerate(site.pumps)}
    held = sup.model.end_volume({index[k]: f for k, f in out.items()}, tel.volume_m3, 0.85 * 2000.0, 1800.0)
    assert sup.model.level(held) >= site.rules.min_level_m - 0.01


def test_a_fallback_command_is_made_safe_to_hold_whatever_the_settings(site: Site, sup: Supervisor) -> None:
    """The soak's baseline at 0.768 m, 1,719 m3/h in, large pump 2.4 at 50 Hz: one interval
    passes, held for two on 0.85 x inflow it ends at 0.39 m. Checked with hold=True (how the
    daemon checks every fallback command), it is slowed until the held level is 0.5 m."""
    tel = telemetry(site, level_m=0.768, inflow_m3h=1719.0, on={"2.4": 50.0})
    index = {p.id: i for i, p in enumerate(site.pumps)}

    def held_level(out: dict[str, float]) -> float:
        volume = sup.model.end_volume({index[k]: f for k, f in out.items()}, tel.volume_m3, 0.85 * 1719.0, 1800.0)
        return sup.model.level(volume)

    assert running(sup.check(tel, command(p2_4=50.0))) == {"2.4": 50.0}
    assert held_level({"2.4": 50.0}) < 0.4
    out = running(sup.check(tel, command(p2_4=50.0), hold=True))
    assert 47.8 <= out["2.4"] < 50.0
    assert held_level(out) >= site.rules.min_level_m - 1e-3


def test_ceiling_speeds_up_and_starts_pumps_against_a_surge(site: Site, sup: Supervisor) -> None:
    tel = telemetry(site, level_m=6.85, inflow_m3h=14000.0, on={"1.2": 48.0})
    out = sup.check(tel, command(p1_2=48.0))
    assert len(running(out)) > 1 and running(out)["1.2"] == site.rules.max_freq_hz
    assert sup.counts["max_level"] >= 2


def test_unknown_pump_is_dropped_and_counted(site: Site, sup: Supervisor) -> None:
    out = sup.check(telemetry(site), command(p1_2=49.0, p9_9=49.0))
    assert set(running(out)) == {"1.2"}
    assert sup.counts["unknown_pump"] == 1


def test_stop_levels_pass_up_to_the_emptying_level_and_the_level_now(site: Site, sup: Supervisor) -> None:
    """A stop level over the level now would stop pumps at once, far from the bottom: it is
    lowered and noted. A stopped pump carries none."""
    tel = telemetry(site, level_m=2.0, on={"1.2": 49.0, "2.2": 49.0})
    given = Setpoints(pumps=(PumpSetpoint(id="1.2", on=True, freq_hz=49.0, stop_below_m=0.6),
                             PumpSetpoint(id="2.2", on=True, freq_hz=49.0, stop_below_m=1.5),
                             PumpSetpoint(id="2.4", on=False, stop_below_m=0.6)))
    out = {p.id: p.stop_below_m for p in sup.check(tel, given).pumps}
    assert (out["1.2"], out["2.2"], out["2.4"]) == (0.6, 0.7, 0.0)
    assert sup.counts["stop_level"] == 1
    low = sup.check(telemetry(site, level_m=0.62, on={"1.2": 48.0}),
                    Setpoints(pumps=(PumpSetpoint(id="1.2", on=True, freq_hz=48.0, stop_below_m=0.65),)))
    assert low.as_dict()["1.2"].stop_below_m == 0.62 and sup.counts["stop_level"] == 2
    rounded = sup.check(telemetry(site, level_m=0.3544, on={"1.2": 48.0}),  # the MPC rounds the level to mm
                        Setpoints(pumps=(PumpSetpoint(id="1.2", on=True, freq_hz=48.0, stop_below_m=0.355),)))
    assert rounded.as_dict()["1.2"].stop_below_m == 0.3544 and sup.counts["stop_level"] == 2
