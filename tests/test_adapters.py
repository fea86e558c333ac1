"""One contract, three plants: the in-process twin, our simulator over OPC UA, over MQTT.

Servers and the broker are real (asyncua in-process, mosquitto as a process) on free
loopback ports. The end-to-end runs check the daemon's trajectory over the wire is the
in-process replay's, value for value.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from adapters.client.opcua import OpcuaPort
from adapters.client.port import check_readback, readback
from controller.baseline import BaselineController
from kernel.contracts import PumpSetpoint, Setpoints
from kernel.errors import WriteRejected
from kernel.site import Site
from scenarios.replay import ReplaySetup, run_controller
from scenarios.scenario import load_scenario
from tests.plants import FIELD_TAGS, OPCUA_TAGS, Broker, served
from tunneltwin.daemon.loop import Service
from twin.lockstep import LockstepPlant

TRANSPORTS = ["sim", "opcua", "mqtt"]


@pytest.fixture(scope="module")
def two_days(site: Site) -> ReplaySetup:
    setup = load_scenario("pump-outage", site, None, None, None)  # an outage: availability crosses the wire
    return dataclasses.replace(setup, inflow_m3h=setup.inflow_m3h[:192],
                               price_eur_per_kwh=setup.price_eur_per_kwh[:192])


def _broker_for(kind: str, request: pytest.FixtureRequest) -> Broker | None:
    return request.getfixturevalue("broker") if kind == "mqtt" else None


@pytest.mark.parametrize("kind", TRANSPORTS)
async def test_port_contract(kind: str, two_days: ReplaySetup, request: pytest.FixtureRequest) -> None:
    reference = LockstepPlant(two_days)
    async with served(kind, two_days, _broker_for(kind, request)) as (port, _plant):
        await port.connect()
        try:
            assert await port.observe() == reference.observe()  # every field, units converted back exactly
            good = Setpoints(pumps=(PumpSetpoint(id="2.1", on=True, freq_hz=48.5, stop_below_m=0.6),))
            held = await port.write(good)
            check_readback(good, held)
            assert held.as_dict()["2.1"].stop_below_m == 0.6  # the stop level reaches the plant and reads back
            bad = Setpoints(pumps=(PumpSetpoint(id="2.1", on=True, freq_hz=55.0),))  # beyond the drive's 50 Hz
            with pytest.raises(WriteRejected, match=r"2\.1"):
                check_readback(bad, await port.write(bad))
            assert await port.step() is True
            reference.apply(good)
            reference.step()
            assert await port.observe() == reference.observe()
        finally:
            await port.close()


@pytest.mark.parametrize("kind", ["opcua", "mqtt"])
async def test_daemon_over_the_wire_matches_in_process(kind: str, two_days: ReplaySetup,
                                                       request: pytest.FixtureRequest) -> None:
    expected = run_controller(two_days, BaselineController(two_days.site))
    async with served(kind, two_days, _broker_for(kind, request)) as (port, plant):
        baseline = BaselineController(two_days.site)
        stats = await Service(port, baseline, baseline, two_days.site).run()
    got = plant.traj
    assert stats.ticks == len(got) == len(expected) == 192
    assert stats.write_rejections == stats.comms_errors == stats.fallbacks == 0
    for key in expected.rows:
        np.testing.assert_array_equal(got.col(key), expected.col(key), err_msg=key)
    assert got.pump_on == expected.pump_on and got.pump_freq_hz == expected.pump_freq_hz
    assert got.timestamps == expected.timestamps


async def test_field_gateway_map(two_days: ReplaySetup) -> None:
    """A server with another node model (dotted names, c/kWh, m3 per 15 min, Float setpoints)."""
    from asyncua import ua

    from scenarios.runner import score
    from tests.plants import FIELD_TAGS, OPCUA_TAGS

    tags = FIELD_TAGS.model_copy(update={"step": OPCUA_TAGS.step})  # our simulator adds its handshake
    reference = LockstepPlant(two_days).observe()
    async with served("opcua", two_days, tags=tags) as (port, plant):
        assert isinstance(port, OpcuaPort)
        await port.connect()
        got = await port.observe()
        tel, ref = got.telemetry, reference.telemetry
        assert (tel.time, tel.level_m, tel.inflow_m3h) == (ref.time, ref.level_m, ref.inflow_m3h)
        assert got.prices.eur_per_kwh == pytest.approx(reference.prices.eur_per_kwh, rel=1e-12)
        assert tel.volume_m3 == pytest.approx(ref.volume_m3, rel=1e-9)  # derived from the level
        node = port.nodes[("setpoint", "freq_hz", "1.1")]
        assert port.types[("setpoint", "freq_hz", "1.1")] == ua.VariantType.Float
        assert port.client is not None
        refused = await port.client.write_values([node], [ua.DataValue(ua.Variant(49.0, ua.VariantType.Double))],
                                                 raise_on_partial_error=False)
        assert not refused[0].is_good()  # the trap our port avoids by writing the node's own type
        await port.close()
        baseline = BaselineController(two_days.site)
        stats = await Service(port, baseline, baseline, two_days.site, max_ticks=96).run()
    assert stats.ticks == 96 and stats.write_rejections == 0
    assert score(plant.traj, two_days, "baseline")["hard_violations"] == 0


async def test_missing_tags_are_named(two_days: ReplaySetup, broker: Broker) -> None:
    from adapters.tagmap import Tag
    from kernel.errors import TagMapError
    from tests.plants import MQTT_TAGS, OPCUA_TAGS

    pump = {**OPCUA_TAGS.pump, "flow_m3h": Tag(path="Pumps/{id}/FlowRate", unit="m3/h")}
    async with served("opcua", two_days, tags=OPCUA_TAGS) as (_port, _plant):
        assert isinstance(_port, OpcuaPort)
        wrong = OpcuaPort(_port.endpoint, OPCUA_TAGS.model_copy(update={"pump": pump}), two_days.site, timeout_s=5)
        with pytest.raises(TagMapError, match=r"\[pump\] flow_m3h pump 1.1 \(Pumps/1.1/FlowRate\)"):
            await wrong.connect()
    station = {**MQTT_TAGS.station, "level_m": Tag(topic="tunneltwin/station", field="level", unit="m")}
    async with served("mqtt", two_days, broker, tags=MQTT_TAGS) as (_port, _plant):
        from adapters.client.mqtt import MqttPort
        from adapters.mqtt_link import MqttLink

        wrong_m = MqttPort(MqttLink("127.0.0.1", broker.port, "tt-wrong"),
                           MQTT_TAGS.model_copy(update={"station": station}), two_days.site, timeout_s=1)
        with pytest.raises(TagMapError, match=r"\[station\] level_m \(tunneltwin/station .level\)"):
            await wrong_m.connect()


def test_a_read_back_no_command_can_hold_is_a_rejected_write_naming_the_pump() -> None:
    """A PLC echoing a negative stop level: the tick alarms (WriteRejected), it does not fail."""
    ok = readback({"2.1": {"on": True, "freq_hz": 48.5, "stop_below_m": 0.6}, "1.1": {"on": False, "freq_hz": 0.0}})
    assert [(p.id, p.stop_below_m) for p in ok.pumps] == [("2.1", 0.6), ("1.1", 0.0)]
    with pytest.raises(WriteRejected, match=r"pump 2\.1 .*stop_below_m = -1\.0"):
        readback({"2.1": {"on": True, "freq_hz": 48.5, "stop_below_m": -1.0}})


def test_read_back_stop_levels_are_compared_where_the_plant_reads_them_back(site: Site) -> None:
    """A PLC that took the command but dropped its stop level would drain the tunnel on a
    refused write later; a plant whose tag map has no stop level reads 0, which is no fault."""
    written = Setpoints(pumps=(PumpSetpoint(id="2.1", on=True, freq_hz=48.5, stop_below_m=0.55),))
    dropped = Setpoints(pumps=(PumpSetpoint(id="2.1", on=True, freq_hz=48.5),))
    check_readback(written, written)
    check_readback(written, dropped, stops=False)
    wrong = r"2\.1: wrote on=True 48\.50 Hz stop below 0\.550 m, read back on=True 48\.50 Hz$"
    with pytest.raises(WriteRejected, match=wrong):
        check_readback(written, dropped)
    assert OpcuaPort("opc.tcp://127.0.0.1:4840", OPCUA_TAGS, site).reads_stop_levels
    assert not OpcuaPort("opc.tcp://127.0.0.1:4840", FIELD_TAGS, site).reads_stop_levels  # no stop_below_m
