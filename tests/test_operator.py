"""Operators talk to the daemon through topics; the daemon reports back on retained topics.

A real mosquitto broker, the in-process twin paced on a scaled clock so commands land
between ticks, and a second MQTT client playing SCADA.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

from adapters.client.sim import SimPort
from adapters.mqtt_link import MqttLink
from adapters.surface.mqtt import MqttSurface
from controller.baseline import BaselineController
from controller.mpc import MpcController
from kernel.contracts import Observation
from kernel.errors import ConfigError, PlantError, WriteRejected
from kernel.operator import OperatorCommands, OperatorDesk, for_controller, ours, parse
from kernel.site import Site
from scenarios.replay import ReplaySetup
from scenarios.scenario import load_scenario
from tests.plants import Broker, daemon_nodes, mosquitto
from tunneltwin.daemon.audit import AuditLog
from tunneltwin.daemon.loop import Service, least_outflow
from tunneltwin.settings import Settings
from twin.lockstep import LockstepPlant


@pytest.fixture(scope="module")
def day(site: Site) -> ReplaySetup:
    setup = load_scenario("dry-week", site, None, None, None)
    return dataclasses.replace(setup, inflow_m3h=setup.inflow_m3h[:96], price_eur_per_kwh=setup.price_eur_per_kwh[:96])


class Scada:
    """A second client: sends operator commands, keeps the latest message per topic."""

    def __init__(self, broker: Broker) -> None:
        self.link = MqttLink("127.0.0.1", broker.port, "scada")
        self.seen: dict[str, list[dict[str, object]]] = {}
        self.link.handlers.append(lambda t, p: self.seen.setdefault(t, []).append(json.loads(p)) if p else None)

    async def __aenter__(self) -> Scada:
        await self.link.connect()
        await self.link.subscribe({"tunneltwin/daemon/#"})
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.link.publish("tunneltwin/daemon/operator", "", retain=True)  # clear the retained command
        await self.link.close()


def test_limits_may_only_tighten(site: Site) -> None:
    with pytest.raises(ConfigError, match=r"limits.max_outflow_m3h = 20000.0 loosens the site's 16000.0"):
        parse({"limits": {"max_outflow_m3h": 20000}}, site.pump_ids, site.rules)
    with pytest.raises(ConfigError, match=r"band 5.0..5.5 m is under 1.0 m"):
        parse({"limits": {"min_level_m": 5.0, "alarm_level_m": 5.5}}, site.pump_ids, site.rules)
    with pytest.raises(ConfigError, match=r"modes.9.9 = 'auto'"):
        parse({"modes": {"9.9": "auto"}}, site.pump_ids, site.rules)


def test_the_price_on_feed_changes_is_the_operators_within_the_measured_range(site: Site) -> None:
    desk = OperatorDesk(site.pump_ids, site.rules)
    assert desk.submit({"weights": {"smooth_eur_per_m3h": 0.01}}).smooth_eur_per_m3h == 0.01
    for body, message in [({"smooth_eur_per_m3h": 0.5}, r"weights.smooth_eur_per_m3h = 0.5 is outside 0..0.02"),
                          ({"smooth_eur_per_m3h": -0.001}, r"= -0.001 is outside"),
                          ({"smooth_eur_per_m3h": "steady"}, r"weights.smooth_eur_per_m3h = 'steady'; expected"),
                          ({"switch_eur": 5}, r"weights \['switch_eur'\] not adjustable")]:
        with pytest.raises(ConfigError, match=message):
            desk.submit({"weights": body})
    assert desk.current.smooth_eur_per_m3h == 0.01  # nothing refused was taken
    assert desk.submit({}).smooth_eur_per_m3h is None  # back to config/mpc.toml's


def test_tightenings_the_plant_cannot_keep_are_refused(site: Site) -> None:
    """max_outflow_m3h = 1 and min_level_m = 6.2 were accepted as tightenings and made the
    daemon fill the tunnel: one pump must always run (the smallest gives 1,819 m3/h at minimum
    speed at the alarm level), and a minimum over the emptying level makes the daily emptying
    impossible. Feasible tightenings still pass."""
    least = least_outflow(BaselineController(site), site)
    assert 1500 < least < 2500
    desk = OperatorDesk(site.pump_ids, site.rules, least)
    with pytest.raises(ConfigError, match=r"max_outflow_m3h = 1.0 is under 18\d\d m3/h"):
        desk.submit({"limits": {"max_outflow_m3h": 1}})
    with pytest.raises(ConfigError, match=r"min_level_m = 6.2 is at or over the emptying level 0.7 m"):
        desk.submit({"limits": {"min_level_m": 6.2}})
    assert desk.current.limits == {}  # nothing refused was taken
    assert desk.submit({"limits": {"max_outflow_m3h": 9000, "min_level_m": 0.6}}).limits == {
        "max_outflow_m3h": 9000.0, "min_level_m": 0.6}


def test_a_manual_pump_is_the_operators(site: Site, day: ReplaySetup) -> None:
    plant = LockstepPlant(day)
    plant.apply(BaselineController(site).decide(plant.observe()))
    plant.step()
    obs = plant.observe()
    running = next(p for p in obs.telemetry.pumps if p.status.is_on)
    cmd = OperatorDesk(site.pump_ids, site.rules).submit({"modes": {running.id: "manual"}})
    seen = for_controller(obs, cmd).telemetry
    assert not seen.pump(running.id).available  # planned around
    assert seen.inflow_m3h == pytest.approx(max(0.0, obs.telemetry.inflow_m3h - running.flow_m3h))
    sp = BaselineController(site).decide(obs)
    assert running.id not in {p.id for p in ours(sp, cmd).pumps}  # never written


async def test_operator_commands_and_status_over_mqtt(broker: Broker, day: ReplaySetup) -> None:
    plant = LockstepPlant(day)
    surface = MqttSurface(MqttLink("127.0.0.1", broker.port, "daemon-status"), commands=True)
    mpc = MpcController(day.site, Settings().mpc())
    service = Service(SimPort(plant, speed=900 * 8), mpc, BaselineController(day.site), day.site,
                      max_ticks=40, surfaces=[surface])
    async with Scada(broker) as scada:
        run = asyncio.ensure_future(service.run())
        while service.stats.ticks < 4:
            await asyncio.sleep(0.02)
        await scada.link.publish("tunneltwin/daemon/operator", json.dumps({"limits": {"max_outflow_m3h": 99999}}))
        await scada.link.publish("tunneltwin/daemon/operator", json.dumps({"weights": {"smooth_eur_per_m3h": 0.5}}))
        await scada.link.publish("tunneltwin/daemon/operator", json.dumps(
            {"optimiser": "off", "modes": {"2.1": "out_of_service"}, "limits": {"max_outflow_m3h": 9000},
             "weights": {"smooth_eur_per_m3h": 0.01}}), retain=True)
        while not service.desk.current.modes:
            await asyncio.sleep(0.01)
        after = service.stats.ticks + 1  # respected from the next tick on
        stats = await run
        await asyncio.sleep(0.1)
    assert stats.ticks == 40
    ids = plant.twin.ids
    assert not any(row[ids.index("2.1")] for row in plant.traj.pump_on[after:])
    assert max(plant.traj.col("outflow_m3h")[after + 1:]) <= 9000 * 1.001
    status = scada.seen["tunneltwin/daemon/status"]
    running = [s for s in status if s.get("state") == "running"]
    assert running[0]["controller"] == "mpc" and running[-1]["controller"] == "baseline"
    assert status[-1] == {"state": "stopped"}
    alerts = [a["kind"] for a in scada.seen["tunneltwin/daemon/alerts"]]
    assert "operator_command_refused" in alerts and "operator_command" in alerts
    refused = [str(a["message"]) for a in scada.seen["tunneltwin/daemon/alerts"]
               if a["kind"] == "operator_command_refused"]
    assert any("weights.smooth_eur_per_m3h = 0.5 is outside" in m for m in refused)
    assert mpc.cfg.weights.smooth_eur_per_m3h == 0.01 and mpc.builder.cfg is mpc.cfg  # the next plans price it
    assert "weights" in alerts  # the change itself is alarmed, and kept in the audit's operator state
    assert "plan" in {t.rsplit("/", 1)[1] for t in scada.seen}  # the MPC's plan was published


async def test_last_will_says_offline_when_the_link_dies(broker: Broker, site: Site) -> None:
    link = MqttLink("127.0.0.1", broker.port, "daemon-dies")
    surface = MqttSurface(link)
    async with Scada(broker) as scada:
        await surface.start(OperatorDesk(site.pump_ids, site.rules), lambda k, m: None)
        assert link.client is not None
        sock = link.client.socket()
        assert isinstance(sock, socket.socket)
        sock.shutdown(socket.SHUT_RDWR)  # no DISCONNECT: as if the process or network died
        for _ in range(100):
            if scada.seen.get("tunneltwin/daemon/status", [{}])[-1] == {"state": "offline"}:
                break
            await asyncio.sleep(0.02)
        assert scada.seen["tunneltwin/daemon/status"][-1] == {"state": "offline"}
        await link.close()


async def test_a_daemon_that_crashes_leaves_status_offline_with_the_reason(broker: Broker, day: ReplaySetup) -> None:
    """After a crash the retained status said "stopped", as after a clean stop: SCADA could not
    tell a daemon that was told to stop from one that died. Now it is "offline" with the error.
    (A controller's exception is not a crash: the baseline decides that interval. An error
    outside the plant's own, from the port, ends the daemon.)"""

    class Breaking(SimPort):
        reads = 0

        async def observe(self) -> Observation:
            self.reads += 1
            if self.reads == 3:
                raise RuntimeError("driver bug")
            return await super().observe()

    surface = MqttSurface(MqttLink("127.0.0.1", broker.port, "daemon-crash"))
    service = Service(Breaking(LockstepPlant(day), speed=900 * 8), BaselineController(day.site),
                      BaselineController(day.site), day.site, max_ticks=10, surfaces=[surface])
    async with Scada(broker) as scada:
        with pytest.raises(RuntimeError, match="driver bug"):
            await service.run()
        for _ in range(100):
            if scada.seen.get("tunneltwin/daemon/status", [{}])[-1].get("state") == "offline":
                break
            await asyncio.sleep(0.02)
    assert scada.seen["tunneltwin/daemon/status"][-1] == {"state": "offline", "reason": "RuntimeError: driver bug"}


async def test_an_anonymous_opcua_client_reads_but_cannot_command(day: ReplaySetup) -> None:
    """The daemon's OPC UA server accepted anonymous writes: any client on the network was an
    operator. Without security configured every session is anonymous and read-only; the write
    is refused by the server and alarmed. (A logged-in operator: tests/test_security.py.)"""
    from asyncua import Client, ua

    from adapters.surface.opcua import OpcuaSurface
    from tests.plants import free_port

    url = f"opc.tcp://127.0.0.1:{free_port()}/tunneltwin-daemon/"
    surface = OpcuaSurface(url, day.site.pump_ids)
    baseline = BaselineController(day.site)
    service = Service(SimPort(LockstepPlant(day), speed=900 * 4), baseline, baseline, day.site, max_ticks=8,
                      surfaces=[surface])
    run = asyncio.ensure_future(service.run())
    while service.stats.ticks < 2:
        await asyncio.sleep(0.02)
    client = Client(url)
    await client.connect()
    try:
        node = daemon_nodes(client)

        assert await (await node("Status/Controller")).read_value() == "baseline"
        for path, value in (("Operator/OptimiserOn", ua.Variant(False, ua.VariantType.Boolean)),
                            ("Operator/Pumps/2.1/Mode", ua.Variant("out_of_service", ua.VariantType.String))):
            with pytest.raises(ua.uaerrors.BadUserAccessDenied):
                await (await node(path)).write_value(value)
        assert await (await node("Operator/OptimiserOn")).read_value() is True
    finally:
        await client.disconnect()
    await run
    assert service.desk.current == OperatorCommands()
    refused = [a["message"] for a in service.alerts if a["kind"] == "operator_write_refused"]
    assert len(refused) == 2 and "anonymous may not write" in refused[0]


@pytest.mark.parametrize("value", [float("nan"), float("inf"), "low", True, None])
def test_a_limit_that_is_not_a_finite_number_is_refused(site: Site, value: object) -> None:
    """NaN passed every 'tighter' check, reached the rules and ended the daemon (a ValidationError)."""
    with pytest.raises(ConfigError, match=r"limits.min_level_m = .*expected a finite number"):
        parse({"limits": {"min_level_m": value}}, site.pump_ids, site.rules)


@pytest.mark.parametrize("how", ["operator", "telemetry"])
async def test_no_pump_available_commands_all_off_and_alarms_once(day: ReplaySetup, how: str) -> None:
    """All pumps out of service (or reported unavailable) once ended the process with
    'min() arg is an empty sequence' in the baseline's choice of pump."""
    plant = LockstepPlant(day)
    port = SimPort(plant)
    if how == "telemetry":
        real = port.observe

        async def none_available() -> Observation:
            obs = await real()
            pumps = tuple(p.model_copy(update={"available": False}) for p in obs.telemetry.pumps)
            return obs.model_copy(update={"telemetry": obs.telemetry.model_copy(update={"pumps": pumps})})

        port.observe = none_available  # type: ignore[method-assign]
    service = Service(port, MpcController(day.site), BaselineController(day.site), day.site, max_ticks=4)
    if how == "operator":
        service.desk.submit({"modes": dict.fromkeys(day.site.pump_ids, "out_of_service")})
    stats = await service.run()
    assert stats.ticks == 4
    assert [a["kind"] for a in service.alerts].count("no_pump_available") == 1
    assert not any(any(row) for row in plant.traj.pump_on[1:])  # nothing commanded on after the first step


async def test_a_command_retained_while_the_daemon_was_down_wins_over_its_saved_state(
        broker: Broker, day: ReplaySetup, tmp_path: Path) -> None:
    """The surfaces once started before the audit state was restored, so the restored (older)
    commands overwrote a retained command published while the daemon was down: pumps put out
    of service were commanded on for 4 ticks while the alert said the command was accepted.
    Now the state is restored first, then the surfaces start and the retained command applies."""
    db = tmp_path / "audit.db"
    baseline = BaselineController(day.site)
    surface = MqttSurface(MqttLink("127.0.0.1", broker.port, "daemon-a"), commands=True)
    first = Service(SimPort(LockstepPlant(day)), baseline, baseline, day.site, max_ticks=2, surfaces=[surface],
                    audit=AuditLog(db))
    first.desk.submit({"modes": {"2.2": "manual"}})
    await first.run()
    assert first.audit is not None
    first.audit.close()
    async with Scada(broker) as scada:  # while the daemon is down, an operator takes 2.1 out of service
        await scada.link.publish("tunneltwin/daemon/operator",
                                 json.dumps({"modes": {"2.1": "out_of_service"}}), retain=True)
        plant = LockstepPlant(day)
        audit = AuditLog(db)
        surface = MqttSurface(MqttLink("127.0.0.1", broker.port, "daemon-b"), commands=True)
        second = Service(SimPort(plant), baseline, baseline, day.site, max_ticks=4, surfaces=[surface], audit=audit)
        await second.run()
        audit.close()
    assert second.desk.current.modes == {"2.1": "out_of_service"}
    column = plant.twin.ids.index("2.1")
    assert not any(row[column] for row in plant.traj.pump_on)  # never commanded on after the restart


def _passwords(users: dict[str, str]) -> str:
    """A mosquitto password file for these logins, made by mosquitto_passwd."""
    exe = shutil.which("mosquitto_passwd")
    if exe is None:
        pytest.skip("mosquitto_passwd is not installed (it comes with mosquitto)")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "passwd"
        for k, (user, password) in enumerate(users.items()):
            subprocess.run([exe, "-b", *(["-c"] if k == 0 else []), str(path), user, password], check=True,
                           capture_output=True)
        return path.read_text()


async def test_only_the_operator_login_commands_the_daemon_over_mqtt(day: ReplaySetup) -> None:
    """With the shipped broker config (deploy/mosquitto/: no anonymous clients, an ACL on the
    operator topic) an unauthenticated publisher cannot even connect, a read-only login's
    command never reaches the daemon, and the operator login's command does."""
    deploy = Path(__file__).resolve().parents[1] / "deploy" / "mosquitto"
    logins = {"tunneltwin": "daemon-pw", "operator": "operator-pw", "viewer": "viewer-pw"}
    config = "allow_anonymous false\npassword_file {dir}/passwd\nacl_file {dir}/tunneltwin.acl\n"
    files = {"passwd": _passwords(logins), "tunneltwin.acl": (deploy / "tunneltwin.acl").read_text()}
    with mosquitto(config, files) as b:
        surface = MqttSurface(MqttLink("127.0.0.1", b.port, "daemon", "tunneltwin", logins["tunneltwin"]),
                              commands=True)
        baseline = BaselineController(day.site)
        service = Service(SimPort(LockstepPlant(day), speed=900 * 8), baseline, baseline, day.site, max_ticks=24,
                          surfaces=[surface])
        run = asyncio.ensure_future(service.run())
        while service.stats.ticks < 2:
            await asyncio.sleep(0.02)
        with pytest.raises(PlantError, match=r"[Nn]ot authori[sz]ed|refused"):
            await MqttLink("127.0.0.1", b.port, "anonymous").connect()
        command = json.dumps({"modes": {"2.1": "out_of_service"}})
        viewer = MqttLink("127.0.0.1", b.port, "viewer", "viewer", logins["viewer"])
        await viewer.connect()
        with pytest.raises(WriteRejected, match="Not authorized"):  # MQTT 5: the broker says no, and drops it
            await viewer.publish("tunneltwin/daemon/operator", command, retain=True)
        await viewer.close()
        await asyncio.sleep(0.3)
        assert service.desk.current.modes == {}
        operator = MqttLink("127.0.0.1", b.port, "operator", "operator", logins["operator"])
        await operator.connect()
        await operator.publish("tunneltwin/daemon/operator", command, retain=True)
        while not service.desk.current.modes:
            await asyncio.sleep(0.02)
        await operator.publish("tunneltwin/daemon/operator", "", retain=True)
        await operator.close()
        await run
    assert service.desk.current.modes == {"2.1": "out_of_service"}
    assert [a["kind"] for a in service.alerts].count("operator_command") == 1


KEY_ALICE = "alice-mqtt-key-0123456789"


def test_a_signed_command_names_its_operator_and_an_older_one_is_a_replay() -> None:
    from datetime import UTC, datetime, timedelta

    from kernel.operator import Signatures, sign

    t0 = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)
    check = Signatures({"alice": KEY_ALICE})
    first = sign({"optimiser": "off"}, "alice", KEY_ALICE, t0)
    assert check.check(first) == ("alice", {"optimiser": "off"})
    check.taken("alice", first)
    cases = [
        ({"optimiser": "off"}, "not a signed command"),
        (sign({"optimiser": "off"}, "mallory", KEY_ALICE, t0), "unknown operator 'mallory'"),
        (sign({"optimiser": "off"}, "alice", "not-alices-key-0123456", t0 + timedelta(1)), "does not match"),
        ({**sign({"optimiser": "on"}, "alice", KEY_ALICE, t0 + timedelta(1)), "command": {"optimiser": "off"}},
         "does not match"),  # the command changed after signing
        (first, "not after their last"),  # replayed
        (sign({"optimiser": "on"}, "alice", KEY_ALICE, t0 - timedelta(minutes=1)), "not after their last"),
    ]
    for message, says in cases:
        with pytest.raises(ConfigError, match=says):
            check.check(message)
    assert check.check(sign({"optimiser": "on"}, "alice", KEY_ALICE, t0 + timedelta(seconds=1)))[0] == "alice"


async def test_signed_commands_over_a_real_broker(broker: Broker, day: ReplaySetup) -> None:
    """mqtt_commands = "signed": whoever may publish on the topic, only a command signed with a
    named operator's key is taken, and the alert (so the audit) names them."""
    from datetime import UTC, datetime, timedelta

    from kernel.operator import Signatures, sign

    surface = MqttSurface(MqttLink("127.0.0.1", broker.port, "daemon-signed"), commands=True,
                          signatures=Signatures({"alice": KEY_ALICE}))
    baseline = BaselineController(day.site)
    service = Service(SimPort(LockstepPlant(day), speed=900 * 8), baseline, baseline, day.site, max_ticks=30,
                      surfaces=[surface])
    now = datetime.now(UTC)
    topic = "tunneltwin/daemon/operator"
    async with Scada(broker) as scada:
        run = asyncio.ensure_future(service.run())
        while service.stats.ticks < 2:
            await asyncio.sleep(0.02)
        await scada.link.publish(topic, json.dumps({"optimiser": "off"}))  # unsigned
        await scada.link.publish(topic, json.dumps(sign({"optimiser": "off"}, "alice", "guessed-key-000000000", now)))
        taken = sign({"modes": {"2.1": "out_of_service"}}, "alice", KEY_ALICE, now)
        await scada.link.publish(topic, json.dumps(taken))
        while not service.desk.current.modes:
            await asyncio.sleep(0.01)
        await scada.link.publish(topic, json.dumps(sign({"optimiser": "off"}, "alice", KEY_ALICE,
                                                        now - timedelta(seconds=5))))  # an older one, replayed
        await scada.link.publish(topic, json.dumps(taken))  # the same one again
        await asyncio.sleep(0.5)
        service.stop()
        await run
    said = [(a["kind"], a["message"]) for a in service.alerts]
    refused = [m for k, m in said if k == "operator_command_refused"]
    assert len(refused) == 4, said
    assert "not a signed command" in refused[0] and "does not match their key" in refused[1]
    assert all("not after their last" in m for m in refused[2:])
    assert [m for k, m in said if k == "operator_command"] == [
        "MQTT, from alice (signed): optimiser on, modes {'2.1': 'out_of_service'}, limits site rules, "
        "price on F2 changes config/mpc.toml's"]
    assert service.desk.current.optimiser_on and service.desk.current.modes == {"2.1": "out_of_service"}


def test_signed_mqtt_commands_need_the_operators_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kernel.site import load_site
    from tunneltwin.daemon.config import load_daemon
    from tunneltwin.daemon.wiring import build_surfaces

    path = tmp_path / "daemon.toml"
    path.write_text('[publish]\nmqtt_url = "mqtt://127.0.0.1:1883"\nmqtt_commands = "signed"\nusername = "daemon"\n')
    monkeypatch.delenv("TUNNELTWIN_MQTT_OPERATOR_KEYS", raising=False)
    with pytest.raises(ConfigError, match=r"mqtt_commands = 'signed' needs env TUNNELTWIN_MQTT_OPERATOR_KEYS"):
        build_surfaces(load_daemon(path), load_site())
    monkeypatch.setenv("TUNNELTWIN_MQTT_OPERATOR_KEYS", f"alice={KEY_ALICE}")
    (surface,) = build_surfaces(load_daemon(path), load_site())
    assert isinstance(surface, MqttSurface) and surface.signatures is not None
    assert set(surface.signatures.keys) == {"alice"}
