"""The plant port over OPC UA (asyncua client). asyncua's errors become ours here.

Reads and writes are batched into one request each (engineering notes: node by node is
16x the round trips). Writes use each node's own DataType, read at connect: a PLC refuses
a Double written to a Float node.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from asyncua import Client, Node, ua
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256

from adapters.client.assemble import Assembler
from adapters.client.port import readback
from adapters.opcua_common import split_path
from adapters.pki import DAEMON_URI
from adapters.tagmap import Binding, TagMap, bindings
from kernel.contracts import Observation, Setpoints
from kernel.errors import PlantError, PlantTimeout, PlantUnavailable, SecurityMismatch, TagMapError, WriteRejected
from kernel.site import Site

Key = tuple[str, str, str | None]


@dataclass(frozen=True)
class OpcuaSecurity:
    """Basic256Sha256 SignAndEncrypt with our certificate, the server's, and a user."""

    certificate: Path
    private_key: Path
    server_certificate: Path
    username: str = ""
    password: str = field(default="", repr=False)  # from a file or the environment; never logged
    application_uri: str = DAEMON_URI  # must match the URI in our certificate


@contextlib.asynccontextmanager
async def translated(action: str) -> AsyncIterator[None]:
    """asyncua and socket errors -> our PlantError family, naming what we were doing."""
    try:
        yield
    except TimeoutError as exc:
        raise PlantTimeout(f"OPC UA {action}: no answer in time") from exc
    except ua.UaStatusCodeError as exc:
        raise PlantError(f"OPC UA {action}: {exc}") from exc
    except (OSError, ConnectionError, ua.UaError) as exc:
        raise PlantUnavailable(f"OPC UA {action}: {exc}") from exc


class OpcuaPort:
    name = "opcua"

    def __init__(self, endpoint: str, tags: TagMap, site: Site, security: OpcuaSecurity | None = None,
                 timeout_s: float = 10.0, poll_s: float = 0.5) -> None:
        self.endpoint, self.tags, self.site = endpoint, tags, site
        self.security, self.timeout_s, self.poll_s = security, timeout_s, poll_s
        self.reads_stop_levels = "stop_below_m" in tags.setpoint  # read back from the nodes written
        self.reads = bindings(tags, site.pump_ids, ("station", "pump"), site.clock)
        self.writes = bindings(tags, site.pump_ids, ("setpoint",), site.clock)
        self.steps = bindings(tags, site.pump_ids, ("step",), site.clock)
        self.forecasts = bindings(tags, site.pump_ids, ("forecast",), site.clock)
        self.client: Client | None = None
        self.nodes: dict[Key, Node] = {}
        self.types: dict[Key, ua.VariantType] = {}
        self.assembler = Assembler(site)
        self.last_time: datetime | None = None

    # -- connection --------------------------------------------------------------------

    async def connect(self) -> None:
        async with translated(f"ask {self.endpoint} for its endpoints"):
            offered = await Client(self.endpoint, timeout=self.timeout_s).connect_and_get_server_endpoints()
        check_endpoints(self.endpoint, offered, self.security)
        client = Client(self.endpoint, timeout=self.timeout_s)
        if self.security:
            await _secure(client, self.security)
        async with translated(f"connect to {self.endpoint}"):
            await client.connect()
        self.client = client
        try:
            await self._resolve()
        except BaseException:
            await self.close()
            raise

    async def _resolve(self) -> None:
        client = self._client()
        ns = await client.get_namespace_index(self.tags.namespace) if self.tags.namespace else 0
        everything = self.reads + self.writes + self.steps + self.forecasts
        nodes = {_key(b): await self._node(b, ns) for b in everything}
        found = {k: n for k, n in nodes.items() if n is not None}
        kinds = await client.read_attributes(list(found.values()), ua.AttributeIds.DataType)
        bad = {k for k, dv in zip(found, kinds, strict=True) if not dv.StatusCode.is_good()}
        missing = [b for b in everything if nodes[_key(b)] is None or _key(b) in bad]
        if missing:
            raise TagMapError(f"{self.endpoint}: the server has no node for " + "; ".join(
                f"{b.where} ({b.tag.node or b.tag.path})" for b in missing))
        self.nodes = {k: n for k, n in found.items()}
        self.types = {k: ua.datatype_to_varianttype(dv.Value.Value) for k, dv in zip(found, kinds, strict=True)}

    async def _node(self, b: Binding, ns: int) -> Node | None:
        client = self._client()
        if b.tag.node:
            return client.get_node(b.tag.node)
        try:
            return await client.nodes.objects.get_child([f"{ns}:{p}" for p in split_path(b.tag.path or "")])
        except ua.UaStatusCodeError:
            return None

    def _client(self) -> Client:
        if self.client is None:
            raise PlantUnavailable(f"OPC UA {self.endpoint}: not connected")
        return self.client

    def restore_timers(self, timers: dict[str, dict[str, Any]]) -> bool:
        self.assembler.seed(timers)
        return True

    async def close(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            with contextlib.suppress(Exception):  # the link may already be gone; nothing to save
                await client.disconnect()

    # -- the port ----------------------------------------------------------------------

    async def observe(self) -> Observation:
        values = await self._read(self.reads)
        station = {b.field: v for b, v in zip(self.reads, values, strict=True) if b.table == "station"}
        pumps: dict[str, dict[str, Any]] = {p: {} for p in self.site.pump_ids}
        for b, v in zip(self.reads, values, strict=True):
            if b.pump:
                pumps[b.pump][b.field] = v
        tel = self.assembler.telemetry(station, pumps)
        self.last_time = tel.time
        obs = Observation(telemetry=tel, prices=self.assembler.prices(station, tel.time))
        if not self.forecasts:
            return obs
        try:
            got = await self._read(self.forecasts)
            forecast = self.assembler.forecast({b.field: v for b, v in zip(self.forecasts, got, strict=True)})
        except PlantError as exc:  # the internal forecast decides; the daemon alarms
            return obs.model_copy(update={"inflow_forecast_problem": str(exc)})
        return obs.model_copy(update={"inflow_forecast": forecast})

    async def write(self, setpoints: Setpoints) -> Setpoints:
        ids = [sp.id for sp in setpoints.pumps]
        targets = [b for b in self.writes if b.pump in ids]
        held = setpoints.as_dict()
        values = [self._value(b, getattr(held[b.pump or ""], b.field)) for b in targets]
        async with translated("write setpoints"):
            results = await self._client().write_values([self.nodes[_key(b)] for b in targets], values,
                                                        raise_on_partial_error=False)
        refused = [f"{b.where}: {r.name}" for b, r in zip(targets, results, strict=True) if not r.is_good()]
        if refused:
            raise WriteRejected("the server refused " + "; ".join(refused))
        return _setpoints(ids, targets, await self._read(targets))

    async def step(self) -> bool:
        if not self.tags.lockstep:
            return await self._wait_wallclock()
        request, done = (next(b for b in self.steps if b.field == f) for f in ("request", "done"))
        n = (await self._read([done]))[0] + 1
        async with translated("step request"):
            await self._client().write_values([self.nodes[_key(request)]], [self._value(request, n)])
        await self._wait_done(done, n)
        remaining = [b for b in self.steps if b.field == "remaining"]
        return not remaining or (await self._read(remaining))[0] > 0

    # -- helpers -----------------------------------------------------------------------

    async def _wait_done(self, done: Binding, n: int) -> None:
        deadline = asyncio.get_running_loop().time() + self.timeout_s
        while (await self._read([done]))[0] < n:
            if asyncio.get_running_loop().time() > deadline:
                raise PlantTimeout(f"OPC UA: step {n} not done within {self.timeout_s} s")
            await asyncio.sleep(0.001)

    async def _wait_wallclock(self) -> bool:
        """No handshake: wait until the plant's clock has moved one control interval on."""
        interval = timedelta(seconds=self.site.timing.control_interval_s)
        if self.last_time is None or "time" not in self.tags.station:
            await asyncio.sleep(interval.total_seconds())
            return True
        time_b = next(b for b in self.reads if b.field == "time")
        while (await self._read([time_b]))[0] < self.last_time + interval:
            await asyncio.sleep(self.poll_s)
        return True

    async def _read(self, targets: list[Binding]) -> list[Any]:
        async with translated("read"):
            dvs = await self._client().read_attributes([self.nodes[_key(b)] for b in targets])
        bad = [f"{b.where}: {dv.StatusCode.name}" for b, dv in zip(targets, dvs, strict=True)
               if not dv.StatusCode.is_good()]
        if bad:
            raise PlantError("OPC UA read: " + "; ".join(bad))
        return [b.decode(dv.Value.Value) for b, dv in zip(targets, dvs, strict=True)]

    def _value(self, b: Binding, value: Any) -> ua.DataValue:
        return ua.DataValue(ua.Variant(b.encode(value), self.types[_key(b)]))


def _key(b: Binding) -> Key:
    return (b.table, b.field, b.pump)


def _setpoints(ids: list[str], targets: list[Binding], values: list[Any]) -> Setpoints:
    got: dict[str, dict[str, Any]] = {i: {} for i in ids}
    for b, v in zip(targets, values, strict=True):
        got[b.pump or ""][b.field] = v
    return readback(got)


def check_endpoints(url: str, offered: list[Any], sec: OpcuaSecurity | None) -> None:
    """Before connecting: the server must offer our security, and (when we pinned one) be the
    server whose certificate we hold. asyncua otherwise retries a mismatch as if the server
    were down, or reports a wrong certificate as no answer in time."""
    want = (SecurityPolicyBasic256Sha256.URI, ua.MessageSecurityMode.SignAndEncrypt) if sec else \
        ("http://opcfoundation.org/UA/SecurityPolicy#None", ua.MessageSecurityMode.None_)
    modes = sorted({f"{e.SecurityPolicyUri.rsplit('#', 1)[-1]} {e.SecurityMode.name}" for e in offered})
    matching = [e for e in offered if (e.SecurityPolicyUri, e.SecurityMode) == want]
    if not matching:
        ours = "security none" if sec is None else "Basic256Sha256 SignAndEncrypt"
        raise SecurityMismatch(f"OPC UA {url}: the server offers no endpoint for {ours} (it offers: "
                               f"{', '.join(modes) or 'none'}); set [opcua] security and its certificates to match")
    if sec is not None:
        pinned = _der(sec.server_certificate)
        if all(bytes(e.ServerCertificate or b"") != pinned for e in matching):
            raise SecurityMismatch(
                f"OPC UA {url}: the server's certificate (SHA-256 {_thumb(bytes(matching[0].ServerCertificate))}) "
                f"is not the one in [opcua] server_certificate {sec.server_certificate} (SHA-256 {_thumb(pinned)}): "
                "the wrong file, or not the server you meant")


def _der(path: Path) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    data = path.read_bytes()
    pem = data.lstrip().startswith(b"-----")
    cert = x509.load_pem_x509_certificate(data) if pem else x509.load_der_x509_certificate(data)
    return cert.public_bytes(Encoding.DER)


def _thumb(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()[:16]


async def _secure(client: Client, sec: OpcuaSecurity) -> None:
    client.application_uri = sec.application_uri
    await client.set_security(SecurityPolicyBasic256Sha256, str(sec.certificate), str(sec.private_key),
                              server_certificate=str(sec.server_certificate),
                              mode=ua.MessageSecurityMode.SignAndEncrypt)
    if sec.username:
        client.set_user(sec.username)
        client.set_password(sec.password)
