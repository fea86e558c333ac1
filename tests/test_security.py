"""Security at the edges: OPC UA Basic256Sha256 SignAndEncrypt with a trust list and users,
MQTT with TLS and passwords. Each wrong way in is refused by a real server or broker."""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from adapters.client.opcua import OpcuaPort, OpcuaSecurity
from adapters.opcua_common import ServerSecurity
from adapters.pki import DAEMON_URI, SIMULATOR_URI, make_certificate
from adapters.served.opcua import OpcuaSimulator
from kernel.errors import PlantError
from kernel.site import Site
from scenarios.replay import ReplaySetup
from scenarios.scenario import load_scenario
from tests.plants import OPCUA_TAGS, daemon_nodes, free_port
from twin.lockstep import LockstepPlant

PASSWORD = "s3cret-pump"


@dataclasses.dataclass(frozen=True)
class Pki:
    server: tuple[Path, Path]
    daemon: tuple[Path, Path]
    stranger: tuple[Path, Path]
    trusted: Path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    trusted = d / "trusted"
    trusted.mkdir()
    daemon = make_certificate(d / "daemon", "daemon", DAEMON_URI, server=False, host="localhost")
    shutil.copy(daemon[0], trusted / "daemon.der")  # the operator's step: trust the daemon's certificate
    return Pki(make_certificate(d / "server", "server", SIMULATOR_URI, server=True, host="localhost"), daemon,
               make_certificate(d / "stranger", "stranger", DAEMON_URI, server=False, host="localhost"), trusted)


@pytest.fixture(scope="module")
def setup(site: Site) -> ReplaySetup:
    return load_scenario("dry-week", site, None, None, None)


@pytest.fixture(scope="module")
async def secure_endpoint(pki: Pki, setup: ReplaySetup) -> AsyncIterator[str]:
    url = f"opc.tcp://127.0.0.1:{free_port()}/tunneltwin/"
    security = ServerSecurity(pki.server[0], pki.server[1], pki.trusted, {"operator": PASSWORD})
    sim = OpcuaSimulator(LockstepPlant(setup), OPCUA_TAGS, url, security=security)
    await sim.start()
    yield url
    await sim.stop()


def _port(url: str, setup: ReplaySetup, pki: Pki, cert: tuple[Path, Path] | None, password: str) -> OpcuaPort:
    sec = None if cert is None else OpcuaSecurity(cert[0], cert[1], pki.server[0], "operator", password)
    return OpcuaPort(url, OPCUA_TAGS, setup.site, sec, timeout_s=5)


async def test_trusted_client_with_password_gets_in(secure_endpoint: str, setup: ReplaySetup, pki: Pki) -> None:
    port = _port(secure_endpoint, setup, pki, pki.daemon, PASSWORD)
    await port.connect()
    try:
        assert (await port.observe()).telemetry.time == setup.start
    finally:
        await port.close()


@pytest.mark.parametrize(("who", "expected"), [
    ("wrong password", "BadUserAccessDenied"),
    ("untrusted certificate", "BadCertificateUntrusted|BadSecurityChecksFailed"),
])
async def test_opcua_refuses(who: str, expected: str, secure_endpoint: str, setup: ReplaySetup, pki: Pki) -> None:
    cert = {"wrong password": pki.daemon, "untrusted certificate": pki.stranger}[who]
    port = _port(secure_endpoint, setup, pki, cert, "guess" if who == "wrong password" else PASSWORD)
    with pytest.raises(PlantError, match=expected) as err:
        await port.connect()
    assert PASSWORD not in str(err.value) and "guess" not in str(err.value)


async def test_a_security_mismatch_is_a_clear_error_that_the_daemon_does_not_retry(
        secure_endpoint: str, setup: ReplaySetup, pki: Pki) -> None:
    """A client without security against a secure server used to be retried forever, and a
    wrong pinned server certificate showed as "no answer in time". Both are configuration:
    said at once, naming what to change, and the daemon stops (exit 3) instead of retrying."""
    from controller.baseline import BaselineController
    from kernel.errors import SecurityMismatch
    from tunneltwin.daemon.loop import Service

    plain = _port(secure_endpoint, setup, pki, None, PASSWORD)
    with pytest.raises(SecurityMismatch, match=r"offers no endpoint for security none \(it offers: "
                                               r"Basic256Sha256 SignAndEncrypt\); set \[opcua\] security"):
        await plain.connect()
    pinned_wrong = OpcuaPort(secure_endpoint, OPCUA_TAGS, setup.site,
                             OpcuaSecurity(pki.daemon[0], pki.daemon[1], pki.stranger[0], "operator", PASSWORD),
                             timeout_s=5)
    with pytest.raises(SecurityMismatch, match=r"the server's certificate \(SHA-256 [0-9a-f]{16}\) is not the one in "
                                               r"\[opcua\] server_certificate .*stranger"):
        await pinned_wrong.connect()
    baseline = BaselineController(setup.site)
    service = Service(_port(secure_endpoint, setup, pki, None, PASSWORD), baseline, baseline, setup.site, max_ticks=2)
    with pytest.raises(SecurityMismatch):
        await asyncio.wait_for(service.run(), 20)  # not a reconnect loop
    assert service.stats.reconnects == 0


def _tls_files(d: Path) -> tuple[Path, Path, Path]:
    """A test CA and a broker certificate for 127.0.0.1 signed by it (PEM)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = (rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(2))
    ca = (x509.CertificateBuilder().subject_name(name("tunneltwin test CA")).issuer_name(name("tunneltwin test CA"))
          .public_key(ca_key.public_key()).serial_number(1).not_valid_before(now)
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(ca_key, hashes.SHA256()))
    cert = (x509.CertificateBuilder().subject_name(name("127.0.0.1")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(2).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False).sign(ca_key, hashes.SHA256()))
    paths = d / "ca.pem", d / "broker.pem", d / "broker.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    from tests.plants import mosquitto

    d = tmp_path_factory.mktemp("mqtt-pki")
    ca, cert, key = _tls_files(d)
    passwd = d / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwd), "operator", PASSWORD], check=True,
                   capture_output=True)
    files = {p.name: p.read_text() for p in (ca, cert, key, passwd)}
    conf = ("allow_anonymous false\npassword_file {dir}/passwd\ncafile {dir}/ca.pem\ncertfile {dir}/broker.pem\n"
            "keyfile {dir}/broker.key\ntls_version tlsv1.2\n")
    with mosquitto(conf, files) as broker:
        yield broker.port, ca


async def test_mqtt_tls_with_password_gets_in(tls_broker: tuple[int, Path]) -> None:
    from adapters.mqtt_link import MqttLink

    port, ca = tls_broker
    link = MqttLink("127.0.0.1", port, "tt-ok", "operator", PASSWORD, ca_file=ca, tls=True)
    await link.connect(timeout_s=5)
    await link.publish("tunneltwin/check", "{}")
    await link.close()


@pytest.mark.parametrize(("who", "expected"), [("wrong password", "Not authorized"),
                                               ("no TLS", "MQTT 127.0.0.1")])
async def test_mqtt_refuses(who: str, expected: str, tls_broker: tuple[int, Path]) -> None:
    from adapters.mqtt_link import MqttLink

    port, ca = tls_broker
    if who == "wrong password":
        link = MqttLink("127.0.0.1", port, "tt-bad", "operator", "guess", ca_file=ca, tls=True)
    else:
        link = MqttLink("127.0.0.1", port, "tt-plain", "operator", PASSWORD)
    with pytest.raises(PlantError, match=expected) as err:
        await link.connect(timeout_s=3)
    assert PASSWORD not in str(err.value)


async def test_a_logged_in_operator_commands_the_daemon_over_secure_opcua(pki: Pki, setup: ReplaySetup) -> None:
    """On the daemon's own server, with security on, an operator logs in with a trusted
    certificate and a password: a limit that loosens the site is refused and put back, turning
    the optimiser off is accepted from the next tick, and the alerts name who sent each."""
    from asyncua import Client, ua
    from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256

    from adapters.client.sim import SimPort
    from adapters.surface.opcua import OpcuaSurface
    from controller.baseline import BaselineController
    from controller.mpc import MpcController
    from tunneltwin.daemon.loop import Service

    url = f"opc.tcp://127.0.0.1:{free_port()}/tunneltwin-daemon/"
    security = ServerSecurity(pki.server[0], pki.server[1], pki.trusted, {"operator": PASSWORD})
    surface = OpcuaSurface(url, setup.site.pump_ids, security)
    day = dataclasses.replace(setup, inflow_m3h=setup.inflow_m3h[:96], price_eur_per_kwh=setup.price_eur_per_kwh[:96])
    service = Service(SimPort(LockstepPlant(day), speed=900 * 4), MpcController(day.site),
                      BaselineController(day.site), day.site, max_ticks=24, surfaces=[surface])
    run = asyncio.ensure_future(service.run())
    while service.stats.ticks < 2:
        await asyncio.sleep(0.02)
    client = Client(url)
    client.application_uri = DAEMON_URI
    await client.set_security(SecurityPolicyBasic256Sha256, str(pki.daemon[0]), str(pki.daemon[1]),
                              server_certificate=str(pki.server[0]), mode=ua.MessageSecurityMode.SignAndEncrypt)
    client.set_user("operator")
    client.set_password(PASSWORD)
    await client.connect()
    try:
        node = daemon_nodes(client)

        assert await (await node("Status/Controller")).read_value() == "mpc"
        limit = await node("Operator/Limits/max_outflow_m3h")
        await limit.write_value(ua.Variant(20000.0, ua.VariantType.Double))
        assert await limit.read_value() == 0.0  # refused, put back
        smooth = await node("Operator/Weights/smooth_eur_per_m3h")
        assert await smooth.read_value() == -1.0  # config/mpc.toml's
        await smooth.write_value(ua.Variant(0.01, ua.VariantType.Double))
        assert await smooth.read_value() == 0.01
        await (await node("Operator/OptimiserOn")).write_value(False)
        after = service.stats.ticks + 1
        while service.stats.ticks < after + 1:
            await asyncio.sleep(0.02)
        assert await (await node("Status/Controller")).read_value() == "baseline"
    finally:
        await client.disconnect()
    stats = await run
    assert stats.ticks == 24
    said = [(a["kind"], a["message"]) for a in service.alerts if a["kind"].startswith("operator_command")]
    assert [k for k, _ in said[:2]] == ["operator_command_refused", "operator_command"]
    assert "price on F2 changes 0.01 EUR per m3/h" in said[1][1]
    assert all("from operator" in m for _, m in said)
