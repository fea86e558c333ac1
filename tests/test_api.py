"""The daemon's HTTP API against the daemon itself, running on the twin: each route against
the audit row of the same tick, the event stream in order, reads refused without a token."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.client.sim import SimPort
from controller.baseline import BaselineController
from controller.mpc import MpcController
from kernel.site import Site
from scenarios.replay import ReplaySetup
from scenarios.scenario import load_scenario
from tunneltwin.daemon.api import HttpApi
from tunneltwin.daemon.audit import AuditLog, read_ticks
from tunneltwin.daemon.loop import Service
from twin.lockstep import LockstepPlant

TOKEN = "read-secret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ALICE = "alice-operator-token-0123"  # an operator's own token


@pytest.fixture(scope="module")
def day(site: Site) -> ReplaySetup:
    setup = load_scenario("dry-week", site, None, None, None)
    return dataclasses.replace(setup, inflow_m3h=setup.inflow_m3h[:192],
                               price_eur_per_kwh=setup.price_eur_per_kwh[:192])


@dataclasses.dataclass
class Running:
    service: Service
    api: HttpApi
    url: str
    db: Path


@pytest.fixture
async def daemon(tmp_path: Path, day: ReplaySetup) -> AsyncIterator[Running]:
    """The MPC on the twin at 15 plant minutes per 0.3 s, with an audit log and the API."""
    api = HttpApi("127.0.0.1:0", TOKEN, tmp_path / "audit.sqlite", day.site, {"alice": ALICE})
    audit = AuditLog(tmp_path / "audit.sqlite")
    service = Service(SimPort(LockstepPlant(day), speed=3000), MpcController(day.site), BaselineController(day.site),
                      day.site, max_ticks=150, surfaces=[api], audit=audit)
    run = asyncio.ensure_future(service.run())
    while service.stats.ticks < 2:
        await asyncio.sleep(0.02)
    yield Running(service, api, f"http://127.0.0.1:{api.port}", tmp_path / "audit.sqlite")
    service.stop()
    await run
    audit.close()


async def events(client: httpx.AsyncClient, n: int, **kw: Any) -> list[tuple[str, dict[str, Any]]]:
    """The first ``n`` events of the stream, as (kind, data)."""
    out: list[tuple[str, dict[str, Any]]] = []
    async with client.stream("GET", "/events", **kw) as response:
        assert response.status_code == 200
        kind = ""
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                kind = line.removeprefix("event: ")
            elif line.startswith("data: "):
                out.append((kind, json.loads(line.removeprefix("data: "))))
                if len(out) == n:
                    return out
    return out


async def test_each_route_matches_the_audit_row_of_its_tick(daemon: Running) -> None:
    async with httpx.AsyncClient(base_url=daemon.url, headers=AUTH, timeout=10) as client:
        got = {route: (await client.get(route)).json()
               for route in ("/system/state", "/system/schedule", "/system/forecasts", "/kpis")}
        history = (await client.get("/audit", params={"limit": 3})).json()
        api = (await client.get("/openapi.json")).json()
    state, schedule = got["/system/state"], got["/system/schedule"]
    at = datetime.fromisoformat(state["time"])
    assert at.utcoffset() is not None  # what the daemon says carries the site's offset; the audit keeps plant time
    rows = [r for r in read_ticks(daemon.db) if r["plant_time"] == at.replace(tzinfo=None).isoformat()]
    assert len(rows) == 1  # the tick is audited before it is reported
    row = rows[0]
    assert state["level_m"] == round(row["telemetry"]["level_m"], 3)
    assert state["inflow_m3h"] == round(row["telemetry"]["inflow_m3h"], 1)
    written = {p["id"]: p["on"] for p in row["setpoints"]["pumps"]}
    assert {i: p["on"] for i, p in state["setpoints"].items()} == written == {
        i: p["on"] for i, p in schedule["setpoints"].items()}
    assert state["controller"] == row["controller"] == "mpc"
    assert schedule["status"] == row["plan"]["status"] and schedule["level_m"] == row["plan"]["level_m"]
    assert got["/system/forecasts"]["start"] == state["time"] and len(got["/system/forecasts"]["price_eur_per_kwh"])
    assert got["/kpis"]["ticks"] >= 2
    today = got["/kpis"]["today"]  # the plant day so far
    assert today["date"] == state["time"][:10] and today["cost_eur"] >= 0 and today["emptied"] in (True, False)
    assert set(schedule["running_by_group"]) == {p.type for p in daemon.service.site.pumps}
    assert all(len(n) == len(schedule["level_m"]) for n in schedule["running_by_group"].values())
    assert schedule["cost_eur"] is not None and schedule["cost_eur"] > 0
    spread = got["/system/forecasts"]["inflow_quantiles_m3h"]
    assert {"p10", "p90"} <= set(spread) and all(lo <= hi for lo, hi in zip(spread["p10"], spread["p90"], strict=True))
    assert [r["tick"] for r in history] == list(range(min(3, got["/kpis"]["ticks"])))
    assert {"/system/state", "/system/forecasts", "/system/schedule", "/kpis", "/alerts", "/audit",
            "/events"} <= set(api["paths"])
    assert "level_m" in api["components"]["schemas"]["State"]["properties"]


async def test_the_stream_gives_the_latest_tick_first_then_every_tick_in_order(daemon: Running) -> None:
    async with httpx.AsyncClient(base_url=daemon.url, timeout=10) as client:
        got = await events(client, 5, params={"token": TOKEN})  # the browser's EventSource sets no header
    ticks = [d for k, d in got if k == "tick"]
    seqs = [d["seq"] for d in ticks]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # none skipped, none twice
    times = [d["status"]["time"] for d in ticks]
    assert times == sorted(times) and len(set(times)) == len(times)


async def test_an_alert_reaches_the_stream_and_the_history(daemon: Running) -> None:
    async with httpx.AsyncClient(base_url=daemon.url, headers=AUTH, timeout=10) as client:
        listening = asyncio.ensure_future(events(client, 6))
        await asyncio.sleep(0.2)
        daemon.service.alert("test_alert", "raised by the test")
        got = await listening
        history = (await client.get("/alerts")).json()["history"]
    alerts = [d for k, d in got if k == "alert"]
    assert [(a["kind"], a["message"]) for a in alerts] == [("test_alert", "raised by the test")]
    assert any(a["kind"] == "test_alert" for a in history)


async def test_reads_need_the_token_and_a_reader_that_stops_does_not_hold_the_tick(daemon: Running) -> None:
    async with httpx.AsyncClient(base_url=daemon.url, timeout=10) as client:
        assert (await client.get("/system/state")).status_code == 401
        assert (await client.get("/system/state", headers={"Authorization": "Bearer guess"})).status_code == 401
        assert (await client.get("/openapi.json")).status_code == 200  # the schema, no plant data
        assert (await client.get("/docs")).status_code == 404  # its page would load assets from a CDN
        assert (await client.post("/system/state", headers=AUTH)).status_code == 405  # read-only
        async with client.stream("GET", "/events", headers=AUTH) as stalled:  # opened, never read
            assert stalled.status_code == 200
            before = daemon.service.stats.ticks
            # ticks go on (0.3 s each, or the MPC's time: up to about 2 s for a first solve, more on
            # a loaded machine); a reader that held the tick would stop them for good
            for _ in range(150):
                if daemon.service.stats.ticks >= before + 3:
                    break
                await asyncio.sleep(0.1)
            assert daemon.service.stats.ticks >= before + 3


async def test_reads_open_only_when_turned_off(tmp_path: Path) -> None:
    from tunneltwin.daemon.config import load_daemon
    from tunneltwin.daemon.wiring import build_surfaces

    path = tmp_path / "daemon.toml"
    path.write_text('[publish]\nhttp_listen = "127.0.0.1:0"\n')
    from kernel.errors import ConfigError
    from kernel.site import load_site

    with pytest.raises(ConfigError, match=r"http_listen needs env TUNNELTWIN_HTTP_READ_TOKEN"):
        build_surfaces(load_daemon(path), load_site())
    path.write_text('[publish]\nhttp_listen = "127.0.0.1:0"\nhttp_read_auth = "off"\n')
    (api,) = build_surfaces(load_daemon(path), load_site())
    assert isinstance(api, HttpApi) and api.access.read_token is None and not api.access.operators
    path.write_text('[publish]\nhttp_listen = ":99999"\nhttp_read_auth = "off"\n')
    with pytest.raises(ConfigError, match=r"http_listen = ':99999': expected HOST:PORT"):
        build_surfaces(load_daemon(path), load_site())


async def test_a_client_that_stops_reading_loses_its_oldest_events_not_the_ticks() -> None:
    from tunneltwin.daemon.api import QUEUE_EVENTS

    api = HttpApi("127.0.0.1:0", None)
    stalled: asyncio.Queue[str] = asyncio.Queue(QUEUE_EVENTS)
    api.clients.add(stalled)
    for _ in range(QUEUE_EVENTS + 8):
        await api.publish({"status": {"state": "running"}})  # returns at once, queue full or not
    assert stalled.qsize() == QUEUE_EVENTS and api.dropped == 8
    assert stalled.get_nowait().startswith("id: 9\n")  # the oldest kept is the ninth


async def test_operator_actions_need_an_operators_token_and_are_audited_with_the_name(daemon: Running) -> None:
    command = {"optimiser": "off", "limits": {"max_outflow_m3h": 12000}}
    async with httpx.AsyncClient(base_url=daemon.url, timeout=10) as client:
        assert (await client.post("/operator", json=command)).status_code == 401  # no token
        assert (await client.post("/operator", json=command, headers=AUTH)).status_code == 403  # a reader's
        assert daemon.service.desk.current.optimiser_on  # nothing changed
        bad = await client.post("/operator", json={"limits": {"max_outflow_m3h": 99000}},
                                headers={"Authorization": f"Bearer {ALICE}"})
        assert bad.status_code == 422 and "max_outflow_m3h" in bad.json()["detail"]  # the desk's own check
        done = await client.post("/operator", json=command, headers={"Authorization": f"Bearer {ALICE}"})
        assert done.status_code == 200 and done.json()["optimiser_on"] is False
        assert done.json()["limits"] == {"max_outflow_m3h": 12000.0}
        assert (await client.get("/operator", headers={"Authorization": f"Bearer {ALICE}"})).json() == done.json()
        ticks = daemon.service.stats.ticks
        while daemon.service.stats.ticks < ticks + 2:  # the next tick takes it, and audits the alert
            await asyncio.sleep(0.05)
    said = [(a["kind"], a["message"]) for r in read_ticks(daemon.db) for a in r["alarms"]]
    assert ("operator_write_refused", "HTTP from 127.0.0.1: an operator token is needed (Authorization: "
            "Bearer ...)") in said
    assert any(k == "operator_command_refused" and m.startswith("HTTP, from alice: ") for k, m in said)
    assert any(k == "operator_command" and m.startswith("HTTP, from alice: optimiser off") for k, m in said)
    assert daemon.service.stats.ticks > ticks and not daemon.service.desk.current.optimiser_on


async def test_operator_actions_over_http_are_off_unless_configured(tmp_path: Path) -> None:
    from kernel.operator import OperatorDesk
    from kernel.site import load_site

    site = load_site()
    api = HttpApi("127.0.0.1:0", TOKEN, site=site)  # no operators: the default
    refused: list[str] = []
    await api.start(OperatorDesk(site.pump_ids, site.rules), lambda kind, message: refused.append(kind))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api.port}", timeout=10) as client:
            answer = await client.post("/operator", json={"optimiser": "off"}, headers=AUTH)
    finally:
        await api.stop()
    assert answer.status_code == 403 and "off" in answer.json()["detail"] and refused == ["operator_write_refused"]


def test_operator_tokens_are_named_and_checked() -> None:
    from kernel.errors import ConfigError
    from tunneltwin.daemon.api_access import operator_tokens

    assert operator_tokens("alice=aaaaaaaaaaaaaaaa1, bob=bbbbbbbbbbbbbbbb2", "env X") == {
        "alice": "aaaaaaaaaaaaaaaa1", "bob": "bbbbbbbbbbbbbbbb2"}
    for text, says in (("alice", "entry 1: expected NAME=TOKEN"), ("alice=short", "16 characters"),
                       ("a=aaaaaaaaaaaaaaaa1,b=aaaaaaaaaaaaaaaa1", r"entry 2 \(b\): the same token")):
        with pytest.raises(ConfigError, match=says) as caught:
            operator_tokens(text, "env X")
        assert "aaaaaaaaaaaaaaaa1" not in str(caught.value)  # a token never appears in an error


async def test_the_api_speaks_https_with_the_configured_certificate(tmp_path: Path) -> None:
    import datetime as dt
    import ipaddress
    import ssl

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .sign(key, hashes.SHA256()))
    (tmp_path / "api.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "api.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    from kernel.operator import OperatorDesk
    from kernel.site import load_site

    site = load_site()
    api = HttpApi("127.0.0.1:0", TOKEN, site=site, tls=(tmp_path / "api.pem", tmp_path / "api.key"))
    await api.start(OperatorDesk(site.pump_ids, site.rules), lambda kind, message: None)
    try:
        trust = ssl.create_default_context(cafile=str(tmp_path / "api.pem"))
        async with httpx.AsyncClient(base_url=f"https://127.0.0.1:{api.port}", verify=trust, timeout=10) as client:
            assert (await client.get("/openapi.json")).status_code == 200
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api.port}", timeout=5) as plain:
            with pytest.raises(httpx.HTTPError):  # no plain HTTP on a TLS port
                (await plain.get("/openapi.json")).raise_for_status()
    finally:
        await api.stop()


def test_the_api_and_the_probes_share_one_address_when_told_so(tmp_path: Path) -> None:
    """[daemon] listen equal to [publish] http_listen: one server answers /metrics, /healthz,
    /readyz (open, for scrapers and orchestrators) and the API (with its token)."""
    import signal
    import subprocess
    import sys

    from tests.plants import free_port
    from tests.test_daemon import _wait_ticking

    port = free_port()
    (tmp_path / "daemon.toml").write_text(f'[daemon]\ncontroller = "baseline"\nduration_h = 0\n'
                                          f'listen = "127.0.0.1:{port}"\n[sim]\nspeed = 900\n'
                                          f'[publish]\nhttp_listen = "127.0.0.1:{port}"\n')
    proc = subprocess.Popen([sys.executable, "-m", "tunneltwin.cli", "run", "--config", str(tmp_path / "daemon.toml")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "TUNNELTWIN_HTTP_READ_TOKEN": TOKEN})
    try:
        _wait_ticking(port, proc)  # /metrics, from the API's server
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            assert client.get("/healthz").status_code == 200 and client.get("/readyz").status_code == 200
            assert client.get("/system/state").status_code == 401
            assert client.get("/system/state", headers=AUTH).json()["controller"] == "baseline"
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "baseline on sim" in out, err
