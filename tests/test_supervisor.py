"""The safety supervisor: one test per hard rule it enforces, on hand-built telemetry."""

from __future__ import annotations

import pytest

from controller.supervisor import Supervisor
from kernel.contracts import PumpSetpoint, Setpoints
from kernel.site import Site
from tests.helpers import station, telemetry


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
    The one-interval check passes it; checked with hold, it is slowed."""
    tel = telemetry(site, level_m=1.2, inflow_m3h=2000.0, on={"1.2": 50.0, "1.4": 50.0})
    assert running(sup.check(tel, command(p1_2=50.0, p1_4=50.0))) == {"1.2": 50.0, "1.4": 50.0}  # one interval
    out = running(sup.check(tel, command(p1_2=50.0, p1_4=50.0), hold=True))
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


def _with_stops(sp: Setpoints, level_m: float) -> Setpoints:
    return Setpoints(pumps=tuple(p.model_copy(update={"stop_below_m": level_m}) for p in sp.pumps))


def test_with_stop_levels_the_floor_is_the_plcs_to_keep(site: Site, sup: Supervisor) -> None:
    """0.81 m, 2,100 m3/h in, a small and a large pump past their run at 49.4 Hz: on 85 % of the
    inflow the interval ends under 0.55 m, so without stop levels the command is slowed. With
    0.55 m stop levels the PLC stops the large pump there and the small one alone refills: the
    command passes unchanged, even checked as held for a second interval. A large pump inside
    its run cannot be stopped (the PLC stops the small one): held, it drains, so it is slowed."""
    tel = telemetry(site, level_m=0.81, inflow_m3h=2100.0, on={"2.1": 49.4, "2.4": 49.4})
    landing = command(p2_1=49.4, p2_4=49.4)
    assert running(sup.check(tel, landing))["2.4"] < 49.4
    sup = Supervisor(site, sup.model)
    assert running(sup.check(tel, _with_stops(landing, 0.55), hold=True)) == {"2.1": 49.4, "2.4": 49.4}
    assert not sup.overrides
    young = telemetry(site, level_m=0.81, inflow_m3h=2100.0, on={"2.1": 49.4, "2.4": 49.4}, timers={"2.4": 3600.0})
    assert running(sup.check(young, _with_stops(landing, 0.55), hold=True))["2.4"] < 49.4


def test_the_simulated_plc_stops_are_no_kinder_than_the_twins(site: Site, sup: Supervisor) -> None:
    """The supervisor's simulation of stop levels (``StationModel.end_volume`` with stops) against
    the twin's PLC (``twin.model.interlock``) on the landing above: the twin stops the large pump
    at 0.55 m and ends where the simulation says, within 5 m3 and not below it."""
    from twin import Twin

    tel = telemetry(site, level_m=0.81, inflow_m3h=2100.0, on={"2.1": 49.4, "2.4": 49.4})
    stops = sup.floor.plc_stops(tel, {"2.1": 0.55, "2.4": 0.55})
    index = {p.id: i for i, p in enumerate(site.pumps)}
    freqs = {index["2.1"]: 49.4, index["2.4"]: 49.4}
    simulated = sup.model.end_volume(freqs, tel.volume_m3, 1785.0, 900.0, stops=stops)
    twin = Twin(site, tel.time, lambda t: 1785.0, 0.81, {"2.1": 49.4, "2.4": 49.4})
    twin.apply(_with_stops(command(p2_1=49.4, p2_4=49.4), 0.55))
    twin.advance()
    assert twin.stopped_by_level() == ["2.4"]
    assert simulated - 5.0 <= twin.state.volume_m3 and simulated <= twin.state.volume_m3 + 1.0
    assert sup.model.end_volume(freqs, tel.volume_m3, 1785.0, 900.0) < sup.floor.volume_m3() <= simulated


def test_the_simulated_plc_never_stops_the_last_pump_nor_one_inside_its_run(site: Site, sup: Supervisor) -> None:
    model, index = sup.model, {p.id: i for i, p in enumerate(site.pumps)}
    volume, floor = model.volume(0.6), sup.floor.volume_m3()
    alone = {index["2.4"]: 50.0}
    assert model.end_volume(alone, volume, 500.0, 900.0, stops={index["2.4"]: (floor, 0.0)}) \
        == pytest.approx(model.end_volume(alone, volume, 500.0, 900.0, substeps=60))
    pair = {index["2.4"]: 50.0, index["2.2"]: 50.0}
    late = {i: (floor, 900.0) for i in pair}
    assert model.end_volume(pair, volume, 500.0, 900.0, stops=late) \
        == pytest.approx(model.end_volume(pair, volume, 500.0, 900.0, substeps=60))
