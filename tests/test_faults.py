"""Fault injection against real servers: each fault in the README's table, and the daemon's answer.

The plant is our twin behind a real OPC UA server or MQTT broker, in lockstep, so a fault
cannot let the plant drift while nobody commands it: what is checked is that the daemon
comes back, keeps every rule, and accounts for every tick.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from pathlib import Path

import numpy as np
import pytest

from adapters.client.mqtt import MqttPort
from adapters.client.opcua import OpcuaPort
from adapters.client.port import PlantPort
from adapters.mqtt_link import MqttLink
from adapters.served.opcua import OpcuaSimulator
from controller.baseline import BaselineController
from kernel.contracts import PumpSetpoint, Setpoints
from kernel.errors import WriteRejected
from kernel.site import Site
from scenarios.replay import ReplaySetup
from scenarios.rules import check
from scenarios.scenario import load_scenario
from tests.plants import MQTT_TAGS, OPCUA_TAGS, Broker, Proxy, free_port, mosquitto
from tunneltwin.daemon.audit import AuditLog, read_ticks
from tunneltwin.daemon.loop import Service
from twin.lockstep import LockstepPlant

TICKS = 32


@pytest.fixture(scope="module")
def setup(site: Site) -> ReplaySetup:
    s = load_scenario("dry-week", site, None, None, None)
    return dataclasses.replace(s, inflow_m3h=s.inflow_m3h[:96], price_eur_per_kwh=s.price_eur_per_kwh[:96])


async def drive(port: PlantPort, plant: LockstepPlant, fault: Callable[[], Awaitable[None]], at_tick: int = 8,
                audit: AuditLog | None = None) -> Service:
    """Run the daemon (baseline) for TICKS ticks, injecting ``fault`` once ``at_tick`` ticks are done."""
    baseline = BaselineController(plant.setup.site)
    service = Service(port, baseline, baseline, plant.setup.site, reconnect_max_s=1.0, audit=audit)
    run = asyncio.ensure_future(service.run())
    while plant.k < at_tick and not run.done():
        await asyncio.sleep(0.005)
    await fault()
    async with asyncio.timeout(120):  # the plant must get through TICKS intervals, fault or not
        while plant.k < TICKS and not run.done():
            await asyncio.sleep(0.01)
    service.stop()
    await run
    assert plant.k >= TICKS
    assert check(plant.traj, plant.setup.site.rules).hard_violations == 0
    return service


async def opcua_plant(plant: LockstepPlant, url: str) -> OpcuaSimulator:
    sim = OpcuaSimulator(plant, OPCUA_TAGS, url)
    for attempt in range(20):  # the old socket may linger a moment after a restart
        try:
            await sim.start()
            return sim
        except OSError:
            await asyncio.sleep(0.25 * (attempt + 1))
            sim = OpcuaSimulator(plant, OPCUA_TAGS, url)
    raise RuntimeError(f"could not restart the OPC UA server at {url}")


async def test_opcua_server_restart(setup: ReplaySetup) -> None:
    plant = LockstepPlant(setup)
    url = f"opc.tcp://127.0.0.1:{free_port()}/tunneltwin/"
    sims = [await opcua_plant(plant, url)]

    async def restart() -> None:
        await sims[0].stop()
        await asyncio.sleep(1.0)
        sims.append(await opcua_plant(plant, url))

    try:
        service = await drive(OpcuaPort(url, OPCUA_TAGS, setup.site, timeout_s=2), plant, restart)
    finally:
        await sims[-1].stop()
    assert service.stats.comms_errors >= 1


async def test_network_drop(setup: ReplaySetup) -> None:
    plant = LockstepPlant(setup)
    url = f"opc.tcp://127.0.0.1:{free_port()}/tunneltwin/"
    sim = await opcua_plant(plant, url)
    proxy = Proxy(int(url.split(":")[2].split("/")[0]))
    await proxy.start()

    async def drop() -> None:
        await proxy.cut()
        await asyncio.sleep(2.0)
        await proxy.start()

    try:
        port = OpcuaPort(f"opc.tcp://127.0.0.1:{proxy.port}/tunneltwin/", OPCUA_TAGS, setup.site, timeout_s=2)
        service = await drive(port, plant, drop)
    finally:
        await proxy.cut()
        await sim.stop()
    assert service.stats.comms_errors >= 1 and service.stats.reconnects >= 1
    kinds = [a["kind"] for a in service.alerts]  # the operator hears of it, and of its end
    assert "plant_link_lost" in kinds and kinds.index("plant_link_lost") < kinds.index("plant_link_restored")


async def test_broker_restart(setup: ReplaySetup) -> None:
    from adapters.served.mqtt import MqttSimulator

    with mosquitto("allow_anonymous true\n") as broker:
        plant = LockstepPlant(setup)
        sim = MqttSimulator(plant, MQTT_TAGS, MqttLink("127.0.0.1", broker.port, "tt-sim"))
        await sim.start()

        async def restart(b: Broker = broker) -> None:
            b.stop()
            await asyncio.sleep(1.0)
            b.start()

        try:
            port = MqttPort(MqttLink("127.0.0.1", broker.port, "tt-daemon"), MQTT_TAGS, setup.site, timeout_s=3)
            service = await drive(port, plant, restart)
        finally:
            await sim.stop()
    assert service.stats.ticks >= TICKS  # (a restart fast enough to lose nothing is a pass too)


async def test_pump_trip_mid_interval(setup: ReplaySetup) -> None:
    plant = LockstepPlant(setup)
    running = next(p for p in setup.running)  # a pump running from the start
    plant.twin.schedule_outage(running, 8.5 * setup.step_s, 20 * setup.step_s)  # trips halfway through step 8
    url = f"opc.tcp://127.0.0.1:{free_port()}/tunneltwin/"
    sim = await opcua_plant(plant, url)

    async def nothing() -> None:
        return None

    try:
        await drive(OpcuaPort(url, OPCUA_TAGS, setup.site, timeout_s=5), plant, nothing)
    finally:
        await sim.stop()
    j = plant.twin.ids.index(running)
    assert not any(plant.traj.pump_on[k][j] for k in range(9, 20))  # never commanded while tripped


async def test_setpoint_write_rejected(setup: ReplaySetup) -> None:
    """The PLC is in local mode: its setpoint nodes refuse writes. The daemon alarms and goes on."""
    plant = LockstepPlant(setup)
    url = f"opc.tcp://127.0.0.1:{free_port()}/tunneltwin/"
    sim = await opcua_plant(plant, url)

    async def local_mode() -> None:
        for key, node in sim.nodes.items():
            if key[0] == "setpoint":
                await node.set_writable(False)

    try:
        service = await drive(OpcuaPort(url, OPCUA_TAGS, setup.site, timeout_s=5), plant, local_mode)
    finally:
        await sim.stop()
    assert service.stats.write_rejections >= TICKS - 10
    assert "write_rejected" in {a["kind"] for a in service.alerts}


@pytest.mark.parametrize("stop_below_m", [0.0, 0.55])
async def test_a_drawdown_held_by_refused_writes_stops_at_its_stop_level(setup: ReplaySetup,
                                                                         stop_below_m: float) -> None:
    """The soak's drain, over OPC UA: six pumps (past their 2 h run) written at 0.82 m on 4,890
    m3/h, then the PLC refuses writes for three intervals. Without a stop level the tunnel runs
    under 0.5 m; with the floor, 0.55 m, the PLC stops five pumps by itself and the level stays above 0.5 m."""
    six = {"1.1": 47.8, "1.4": 48.6, "2.1": 47.8, "2.2": 48.6, "2.3": 48.6, "2.4": 48.6}
    held = dataclasses.replace(setup, level_m=0.822, running=six, inflow_m3h=np.full(4, 4890.0),
                               price_eur_per_kwh=setup.price_eur_per_kwh[:4])
    plant = LockstepPlant(held)
    url = f"opc.tcp://127.0.0.1:{free_port()}/tunneltwin/"
    sim = await opcua_plant(plant, url)
    port = OpcuaPort(url, OPCUA_TAGS, setup.site, timeout_s=5)
    try:
        await port.connect()
        drawdown = Setpoints(pumps=tuple(PumpSetpoint(id=p, on=True, freq_hz=f, stop_below_m=stop_below_m)
                                         for p, f in six.items()))
        assert (await port.write(drawdown)).as_dict()["2.4"].stop_below_m == stop_below_m
        for key, node in sim.nodes.items():
            if key[0] == "setpoint":
                await node.set_writable(False)
        for _ in range(3):
            await port.step()
            with pytest.raises(WriteRejected):
                await port.write(Setpoints(pumps=(PumpSetpoint(id="1.1", on=True, freq_hz=47.8),)))
        await port.close()
    finally:
        await sim.stop()
    lowest = float(plant.traj.col("level_m").min())
    if stop_below_m:
        assert lowest >= 0.5 and len(plant.twin.stopped_by_level()) == 5
    else:
        assert lowest < 0.5 and not plant.twin.stopped_by_level()


async def test_disk_full_for_the_audit_log(setup: ReplaySetup, tmp_path: Path) -> None:
    from adapters.client.sim import SimPort

    audit = AuditLog(tmp_path / "audit.sqlite")
    plant = LockstepPlant(setup)

    async def fill_then_free() -> None:
        pages = audit.db.execute("PRAGMA page_count").fetchone()[0]
        audit.db.execute(f"PRAGMA max_page_count = {pages}")
        await asyncio.sleep(0.05)  # a few ticks against a full disk
        audit.db.execute("PRAGMA max_page_count = 1000000")

    service = await drive(SimPort(plant, speed=900 * 100), plant, fill_then_free, audit=audit)
    audit.close()
    kinds = [a["kind"] for a in service.alerts]
    assert kinds.count("audit_write_failed") == 1 and kinds.count("audit_recovered") == 1
    assert [r["tick"] for r in read_ticks(tmp_path / "audit.sqlite")] == list(range(service.stats.ticks))


def test_no_plan_from_the_solver_hands_the_tick_to_the_baseline(setup: ReplaySetup) -> None:
    """HiGHS given no time has no incumbent: the MPC's own fallback decides, and says so."""
    from controller.mpc import MpcController
    from tunneltwin.settings import Settings

    cfg = Settings().mpc().with_solver(time_limit_s=1e-6, choose_time_limit_s=1e-6, step_budget_s=1e-6)
    mpc = MpcController(setup.site, cfg)
    plant = LockstepPlant(setup)
    obs = plant.observe()
    sp = mpc.decide(obs)
    assert mpc.log[-1].source == "baseline" and any(p.on for p in sp.pumps)
    floor = round(min(0.55, obs.telemetry.level_m), 3)  # the PLC stops what a held command would drain
    assert {p.stop_below_m for p in sp.pumps if p.on} == {floor}
