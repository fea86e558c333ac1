"""Property tests (hypothesis): the supervisor on any telemetry and any command, the loaders on
any bytes."""

from __future__ import annotations

import contextlib
import tempfile
import warnings
from datetime import datetime
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.supervisor import Supervisor
from kernel.contracts import PumpSetpoint, PumpStatus, PumpTelemetry, Setpoints, Telemetry
from kernel.errors import TunneltwinError
from kernel.operator import LIMITS
from kernel.site import load_site
from scenarios.loaders import load_recorded
from tests.helpers import station

SITE = load_site()
MODEL = station(SITE)
RULES = SITE.rules
SLACK_S = 1.0


@st.composite
def telemetry(draw: st.DrawFn) -> Telemetry:
    level = draw(st.floats(0.0, 8.5))
    pumps = []
    for p in SITE.pumps:
        status = draw(st.sampled_from(list(PumpStatus)))
        on = status.is_on
        freq = draw(st.floats(RULES.min_freq_hz, RULES.max_freq_hz)) if on else 0.0
        flow, power = MODEL.pump_flow_power(SITE.pump_ids.index(p.id), freq, level) if on else (0.0, 0.0)
        pumps.append(PumpTelemetry(
            id=p.id, status=status, freq_hz=freq, flow_m3h=flow, power_kw=power, run_hours_h=0.0, starts=0,
            time_in_state_s=draw(st.sampled_from([0.0, 900.0, 3600.0, 7200.0, 86400.0])),
            available=draw(st.booleans())))
    return Telemetry(time=datetime(2025, 1, 6, 12), level_m=level, volume_m3=MODEL.volume(level),
                     inflow_m3h=draw(st.floats(0.0, 30000.0)), outflow_m3h=sum(p.flow_m3h for p in pumps),
                     pumps=tuple(pumps))


commands = st.lists(st.tuples(st.sampled_from([*SITE.pump_ids, "9.9"]), st.booleans(), st.floats(0.0, 70.0),
                              st.floats(0.0, 20.0)),
                    max_size=10).map(lambda xs: Setpoints(pumps=tuple(
                        PumpSetpoint(id=i, on=on, freq_hz=f, stop_below_m=s)
                        for i, on, f, s in {x[0]: x for x in xs}.values())))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tel=telemetry(), sp=commands)
def test_the_supervisor_never_commands_what_the_rules_forbid(tel: Telemetry, sp: Setpoints) -> None:
    out = Supervisor(SITE, MODEL).check(tel, sp)
    assert [p.id for p in out.pumps] == SITE.pump_ids  # one command per pump, no unknown one
    on = {p.id: p.freq_hz for p in out.pumps if p.on}
    by_id = {p.id: p for p in tel.pumps}
    for cmd in out.pumps:  # a stop level never stops a pump far from the bottom, or at once
        assert cmd.stop_below_m <= (min(RULES.emptying_level_m, tel.level_m) if cmd.on else 0.0), cmd
    for pid, freq in on.items():
        assert by_id[pid].available, f"unavailable pump {pid} commanded on"
        assert RULES.min_freq_hz <= freq <= RULES.max_freq_hz, f"pump {pid} at {freq} Hz"
    if any(p.available for p in tel.pumps):
        assert len(on) >= RULES.min_pumps_on, "no pump running although one is available"
    for p in tel.pumps:
        young = p.time_in_state_s + SLACK_S < (RULES.min_on_s if p.status.is_on else RULES.min_off_s)
        if p.status.is_on and p.available and young:
            assert p.id in on, f"pump {p.id} stopped {p.time_in_state_s:.0f} s after starting"
        if not p.status.is_on and young and len(on) > RULES.min_pumps_on:
            assert p.id not in on, f"pump {p.id} started {p.time_in_state_s:.0f} s after stopping"


@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=3000), suffix=st.sampled_from([".csv", ".xlsx"]))
def test_the_loaders_parse_or_refuse_any_bytes(data: bytes, suffix: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"data{suffix}"
        path.write_bytes(data)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                load_recorded(path)
        except TunneltwinError:
            pass  # our error, naming the file: the only acceptable failure


HEADER = "timestamp,L1_m,F1_m3h,F2_m3h\n"


@settings(max_examples=150, deadline=None)
@given(rows=st.lists(st.text(alphabet="0123456789-:T ,.naeE+", max_size=60), max_size=8))
def test_the_csv_loader_refuses_any_near_miss_by_name(rows: list[str]) -> None:
    """Text that looks almost like our CSV: still parsed or refused with our error."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.csv"
        path.write_text(HEADER + "\n".join(rows))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                load_recorded(path)
        except TunneltwinError as exc:
            assert "data.csv" in str(exc)


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=2000))
def test_config_files_parse_or_refuse_any_bytes(data: bytes) -> None:
    from adapters.tagmap import load_tagmap
    from tunneltwin.daemon.config import load_daemon

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "file.toml"
        path.write_bytes(data)
        for load in (load_daemon, load_tagmap, lambda p: load_site(p)):
            with contextlib.suppress(TunneltwinError):
                load(path)




# -- the daemon: no operator input and no telemetry ends the process ------------------------------

junk = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                    max_leaves=8)
limit_values = st.floats() | st.integers(-10**6, 10**6) | junk
operator_bodies = junk | st.fixed_dictionaries({}, optional={
    "optimiser": st.sampled_from(["on", "off", True, False]) | junk,
    "modes": st.dictionaries(st.sampled_from(SITE.pump_ids) | st.text(max_size=4),
                             st.sampled_from(["auto", "manual", "out_of_service"]) | junk, max_size=8) | junk,
    "limits": st.dictionaries(st.sampled_from(list(LIMITS)) | st.text(max_size=4), limit_values, max_size=3) | junk,
    "weights": st.dictionaries(st.sampled_from(["smooth_eur_per_m3h"]) | st.text(max_size=4),
                               st.floats(-0.01, 0.03) | limit_values, max_size=2) | junk,
})


@settings(max_examples=400, deadline=None)
@given(bodies=st.lists(operator_bodies, min_size=1, max_size=4))
def test_an_operator_command_is_taken_or_refused_by_name_and_a_refusal_changes_nothing(bodies: list[object]) -> None:
    from kernel.errors import ConfigError
    from kernel.operator import OperatorDesk

    desk = OperatorDesk(SITE.pump_ids, RULES, 1819.0)
    for body in bodies:
        before = desk.current
        try:
            desk.submit(body)
        except ConfigError as exc:
            assert str(exc).startswith("operator command"), exc
            assert desk.current is before


finite = st.floats(-1e6, 1e6, allow_nan=False)


@st.composite
def any_telemetry(draw: st.DrawFn, t: datetime) -> Telemetry:
    """What a plant link can deliver past the adapter's checks (finite numbers): any sign, any size,
    any status, the clock anywhere near the last reading."""
    from datetime import timedelta

    pumps = tuple(PumpTelemetry(
        id=p.id, status=draw(st.sampled_from(list(PumpStatus))), freq_hz=draw(finite), flow_m3h=draw(finite),
        power_kw=draw(finite), run_hours_h=draw(st.floats(0, 1e5)), starts=draw(st.integers(0, 10**6)),
        time_in_state_s=draw(st.floats(0, 1e7)), available=draw(st.booleans())) for p in SITE.pumps)
    level = draw(st.floats(-5, 50) | st.sampled_from([0.0, 1.2, 8.0, 8.5]))
    return Telemetry(time=t + timedelta(seconds=draw(st.sampled_from([0, 900, 1800, -900, -54000, 86400]))),
                     level_m=level, volume_m3=draw(finite | st.just(MODEL.volume(max(0.0, min(level, 8.5))))),
                     inflow_m3h=draw(finite), outflow_m3h=draw(finite), pumps=pumps)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_no_operator_command_and_no_telemetry_ends_the_daemon(data: st.DataObject) -> None:
    """Ticks of the daemon's own loop on drawn telemetry, with drawn operator commands between
    them (a refused one is an alert, as on the surfaces): each tick writes one command that
    leaves alone every pump the operator took, and nothing escapes."""
    import asyncio
    from datetime import timedelta

    from controller.baseline import BaselineController
    from kernel.contracts import Observation, PriceCurve
    from kernel.errors import ConfigError
    from tunneltwin.daemon.loop import Service

    t0 = datetime(2025, 1, 6, 12)
    written: list[Setpoints] = []

    class Port:  # the plant port is our interface: a small fake of it
        name, reads_stop_levels = "drawn", False

        async def connect(self) -> None: ...
        async def close(self) -> None: ...
        def restore_timers(self, timers: object) -> bool: return False
        async def step(self) -> bool: return True

        async def observe(self) -> Observation:
            tel = data.draw(any_telemetry(t0 + timedelta(minutes=15 * len(written))))
            return Observation(telemetry=tel, prices=PriceCurve(start=tel.time, step_s=3600.0,
                                                                eur_per_kwh=(0.05,) * 48))

        async def write(self, setpoints: Setpoints) -> Setpoints:
            written.append(setpoints)
            return setpoints

    async def ticks() -> None:
        baseline = BaselineController(SITE)
        service = Service(Port(), baseline, baseline, SITE)
        for _ in range(3):
            with contextlib.suppress(ConfigError):
                service.desk.submit(data.draw(operator_bodies))
            await service.tick()
            taken = service.desk.current.not_ours()
            assert not {p.id for p in written[-1].pumps} & taken, "a pump the operator took was commanded"

    asyncio.run(ticks())
    assert len(written) == 3
