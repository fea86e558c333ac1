"""The twin: water balance, overflow, ramps, counters, availability and setpoint checks."""

import math
from datetime import datetime

import pytest
from pydantic import ValidationError

from tunneltwin.contracts import PumpSetpoint, PumpStatus, Setpoints
from tunneltwin.errors import SetpointError
from tunneltwin.site import Site
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
