"""The twin: water balance, overflow, ramps, counters, availability and setpoint checks."""

import math
from datetime import datetime

import pytest
from pydantic import ValidationError

from kernel.contracts import PumpSetpoint, PumpStatus, Setpoints
from kernel.errors import SetpointError
from kernel.site import Site
from twin import Twin

T0 = datetime(2025, 1, 1)


def test_volume_balance_closes_over_an_interval(site: Site) -> None:
    twin = Twin(site, T0, lambda t: 4000.0, 2.0, {"1.4": 49.0})
    v0 = twin.state.volume_m3
    rec = twin.advance()
    pumped = rec.pump_flow_m3h.sum() * rec.seconds / 3600
    assert twin.state.volume_m3 - v0 == pytest.approx(4000 * 0.25 - pumped, abs=1e-6)
    assert twin.now == datetime(2025, 1, 1, 0, 15)


def test_overflow_is_reported_not_hidden(site: Site) -> None:
    twin = Twin(site, T0, lambda t: 200000.0, 14.0, {"1.4": 49.0})
    rec = twin.advance()
    assert rec.spilled_m3 > 0
    assert twin.telemetry().overflow_m3 == pytest.approx(rec.spilled_m3)
    assert twin.state.volume_m3 == pytest.approx(twin.model.physics.geometry.max_volume_m3)


def test_start_ramps_then_runs_and_counts(site: Site) -> None:
    twin = Twin(site, T0, lambda t: 4000.0, 2.0, {"1.4": 49.0})
    twin.apply(Setpoints(pumps=(PumpSetpoint(id="2.2", on=True, freq_hz=48.5),)))
    assert twin.telemetry().pump("2.2").status is PumpStatus.STARTING
    twin.advance()
    pump = twin.telemetry().pump("2.2")
    assert pump.status is PumpStatus.RUNNING and pump.freq_hz == 48.5
    assert pump.starts == 1 and pump.run_hours_h == pytest.approx(0.25)
    assert pump.time_in_state_s == pytest.approx(900)


def test_stop_ramps_down_to_off(site: Site) -> None:
    twin = Twin(site, T0, lambda t: 4000.0, 2.0, {"1.4": 49.0, "2.2": 49.0})
    twin.apply(Setpoints(pumps=(PumpSetpoint(id="2.2", on=False),)))
    assert twin.telemetry().pump("2.2").status is PumpStatus.STOPPING
    twin.advance()
    assert twin.telemetry().pump("2.2").status is PumpStatus.OFF
    assert twin.telemetry().pump("2.2").flow_m3h == 0


def test_outage_stops_pump_and_ignores_starts(site: Site) -> None:
    twin = Twin(site, T0, lambda t: 4000.0, 2.0, {"1.4": 49.0})
    twin.schedule_outage("1.4", 300, 2000)
    twin.advance()
    assert not twin.telemetry().pump("1.4").available
    twin.apply(Setpoints(pumps=(PumpSetpoint(id="1.4", on=True, freq_hz=49.0),)))
    twin.advance()
    assert twin.telemetry().pump("1.4").status is PumpStatus.OFF
    twin.advance()
    assert twin.telemetry().pump("1.4").available


def test_unavailable_pump_in_config_never_runs(site: Site) -> None:
    twin = Twin(site, T0, lambda t: 4000.0, 2.0, {"1.3": 49.0})
    assert twin.telemetry().pump("1.3").status is PumpStatus.OFF


@pytest.mark.parametrize(("pump", "freq", "message"), [
    ("9.9", 49.0, "unknown pump"), ("1.4", 55.0, "outside the drive's range"),
    ("1.4", 10.0, "outside the drive's range")])
def test_impossible_setpoints_are_rejected_and_change_nothing(site: Site, pump: str, freq: float,
                                                              message: str) -> None:
    twin = Twin(site, T0, lambda t: 4000.0, 2.0, {"1.4": 49.0})
    good = PumpSetpoint(id="2.2", on=True, freq_hz=49.0)
    with pytest.raises(SetpointError, match=message):
        twin.apply(Setpoints(pumps=(good, PumpSetpoint(id=pump, on=True, freq_hz=freq))))
    assert twin.telemetry().pump("2.2").status is PumpStatus.OFF


def test_nan_setpoint_is_refused_at_the_boundary_and_by_the_twin(site: Site) -> None:
    with pytest.raises(ValidationError):
        PumpSetpoint(id="1.4", on=True, freq_hz=math.nan)
    twin = Twin(site, T0, lambda t: 4000.0, 2.0, {"1.4": 49.0})
    sneaky = PumpSetpoint.model_construct(id="1.4", on=True, freq_hz=math.nan)
    with pytest.raises(SetpointError, match="NaN"):
        twin.apply(Setpoints.model_construct(pumps=(sneaky,)))


SIX = {"1.1": 47.8, "1.4": 48.6, "2.1": 47.8, "2.2": 48.6, "2.3": 48.6, "2.4": 48.6}


def _lowest_level(twin: Twin, intervals: int) -> float:
    """The lowest level seen at one-minute reads over the intervals."""
    lowest = twin.level_m
    for _ in range(intervals * 15):
        twin.advance(60.0)
        lowest = min(lowest, twin.level_m)
    return lowest


def _six(stop_below_m: float) -> Setpoints:
    return Setpoints(pumps=tuple(PumpSetpoint(id=p, on=True, freq_hz=f, stop_below_m=stop_below_m)
                                 for p, f in SIX.items()))


def test_stop_levels_keep_a_held_drawdown_above_the_minimum(site: Site) -> None:
    """The soak's refused-write drain: six pumps (running for hours) held from 0.82 m on
    4,890 m3/h for two intervals. Without stop levels the tunnel drains; with 0.7 m the PLC
    stops five of them and keeps the pump with the least flow."""
    drained = Twin(site, T0, lambda t: 4890.0, 0.822, SIX)
    drained.apply(_six(0.0))
    assert _lowest_level(drained, 2) < 0.5
    twin = Twin(site, T0, lambda t: 4890.0, 0.822, SIX)
    twin.apply(_six(0.7))
    assert _lowest_level(twin, 2) >= 0.5
    running = [p.id for p in twin.telemetry().pumps if p.status.is_on]
    assert len(running) == 1 and running[0] in ("1.1", "2.1")
    assert sorted(twin.stopped_by_level()) == sorted(set(SIX) - set(running))
    assert int(twin.state.level_stops.sum()) == 5


def test_a_stop_level_never_ends_a_run_before_its_minimum(site: Site) -> None:
    """2.2 starts now; the level falls under the stop level within its 2 h: it runs on, while
    1.4 (running for hours) is stopped."""
    twin = Twin(site, T0, lambda t: 3000.0, 0.9, {"1.4": 50.0})
    twin.apply(Setpoints(pumps=(PumpSetpoint(id="1.4", on=True, freq_hz=50.0, stop_below_m=0.7),
                                PumpSetpoint(id="2.2", on=True, freq_hz=50.0, stop_below_m=0.7))))
    _lowest_level(twin, 1)
    assert twin.telemetry().pump("2.2").status.is_on
    assert twin.telemetry().pump("1.4").status is PumpStatus.OFF and twin.stopped_by_level() == ["1.4"]


def test_a_pump_its_stop_level_stopped_ignores_the_held_command_inside_min_off(site: Site) -> None:
    """A refused write leaves the old command on the plant, applied again every interval: it must
    not restart the pump the PLC stopped until its minimum off time is done."""
    twin = Twin(site, T0, lambda t: 4890.0, 0.822, SIX)
    twin.apply(_six(0.7))
    _lowest_level(twin, 1)
    stopped = twin.stopped_by_level()
    twin.apply(_six(0.7))
    twin.advance()
    assert all(not twin.telemetry().pump(p).status.is_on for p in stopped)
    twin.advance(float(site.rules.min_off_s))
    twin.apply(_six(0.0))
    twin.advance()
    assert all(twin.telemetry().pump(p).status.is_on for p in stopped)
