"""Real servers for adapter tests: a mosquitto broker and our simulators on free loopback ports."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from adapters.client.port import PlantPort
from adapters.client.sim import SimPort
from adapters.tagmap import TagMap, load_tagmap
from kernel.settings import CONFIG_DIR
from scenarios.replay import ReplaySetup
from twin.lockstep import LockstepPlant

OPCUA_TAGS = load_tagmap(CONFIG_DIR / "tags-opcua.toml")
MQTT_TAGS = load_tagmap(CONFIG_DIR / "tags-mqtt.toml")
FIELD_TAGS = load_tagmap(CONFIG_DIR / "tags-opcua-field.toml")
REQUIRE_BROKER = os.environ.get("TUNNELTWIN_REQUIRE_MOSQUITTO") == "1"  # set by scripts/test.sh


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Broker:
    """A mosquitto process on a fixed loopback port, which a test may stop and start again."""

    def __init__(self, exe: str, port: int, dir: Path) -> None:
        self.exe, self.port, self.dir = exe, port, dir
        self.url = f"mqtt://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen([self.exe, "-c", str(self.dir / "mosquitto.conf")], stderr=subprocess.PIPE,
                                     stdout=subprocess.DEVNULL)
        _wait_listening(self.port, self.proc)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=5)
            if self.proc.stderr:
                self.proc.stderr.close()
            self.proc = None


@contextlib.contextmanager
def mosquitto(extra: str = "", files: dict[str, str] | None = None) -> Iterator[Broker]:
    """A real broker from a generated config ({dir} in ``extra`` is its directory, where ``files`` go).

    Started as root, mosquitto drops to user mosquitto: the directory and files are given to it.
    """
    exe = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
    if exe is None:
        if REQUIRE_BROKER:
            pytest.fail("mosquitto is not installed; scripts/test.sh installs it with apt-get")
        pytest.skip("mosquitto is not installed (scripts/test.sh installs it)")
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        for name, text in (files or {}).items():
            (d / name).write_text(text)
        port = free_port()
        (d / "mosquitto.conf").write_text(
            f"listener {port} 127.0.0.1\npersistence false\nset_tcp_nodelay true\nlog_dest stderr\n"
            + extra.replace("{dir}", str(d)))
        _give_to_mosquitto(d)
        broker = Broker(exe, port, d)
        broker.start()
        try:
            yield broker
        finally:
            broker.stop()


def _give_to_mosquitto(d: Path) -> None:
    if os.geteuid() != 0:
        return
    with contextlib.suppress(KeyError, PermissionError):
        for path in [d, *d.iterdir()]:
            shutil.chown(path, "mosquitto")


def _wait_listening(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode() if proc.stderr else ""
            raise RuntimeError(f"mosquitto exited: {err}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.02)
    raise RuntimeError(f"mosquitto did not listen on {port} within 5 s")


@contextlib.asynccontextmanager
async def served(kind: str, setup: ReplaySetup, broker: Broker | None = None,
                 tags: TagMap | None = None) -> AsyncIterator[tuple[PlantPort, LockstepPlant]]:
    """A fresh simulated plant behind the port of ``kind``: sim, opcua or mqtt."""
    plant = LockstepPlant(setup)
    if kind == "sim":
        yield SimPort(plant), plant
    elif kind == "opcua":
        from adapters.client.opcua import OpcuaPort
        from adapters.served.opcua import OpcuaSimulator

        url = f"opc.tcp://127.0.0.1:{free_port()}/tunneltwin/"
        sim = OpcuaSimulator(plant, tags or OPCUA_TAGS, url, forecast=setup.inflow_forecast)
        await sim.start()
        try:
            yield OpcuaPort(url, tags or OPCUA_TAGS, setup.site, timeout_s=5), plant
        finally:
            await sim.stop()
    else:
        from adapters.client.mqtt import MqttPort
        from adapters.mqtt_link import MqttLink
        from adapters.served.mqtt import MqttSimulator

        assert broker is not None
        msim = MqttSimulator(plant, tags or MQTT_TAGS, MqttLink("127.0.0.1", broker.port, "tt-sim"),
                             forecast=setup.inflow_forecast)
        await msim.start()
        try:
            yield MqttPort(MqttLink("127.0.0.1", broker.port, "tt-daemon"), tags or MQTT_TAGS, setup.site, 5), plant
        finally:
            await msim.stop()


class Proxy:
    """A loopback TCP forwarder a test can cut: a network drop with both ends left running."""

    def __init__(self, target_port: int) -> None:
        self.target_port, self.port = target_port, free_port()
        self.server: asyncio.Server | None = None
        self.links: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._link, "127.0.0.1", self.port)

    async def cut(self) -> None:
        """Refuse new connections and reset the open ones."""
        if self.server:
            self.server.close()
            await self.server.wait_closed()
            self.server = None
        for w in list(self.links):
            w.transport.abort()
        self.links.clear()

    async def _link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self.links |= {writer, up_writer}
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer), return_exceptions=True)
        self.links -= {writer, up_writer}


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()


def daemon_nodes(client: Any) -> Callable[[str], Awaitable[Any]]:
    """The daemon's own OPC UA nodes by path under Objects/Daemon (``"Status/Controller"``)."""
    found: dict[str, int] = {}  # the namespace index, asked for once

    async def node(path: str) -> Any:
        if not found:
            found["ns"] = await client.get_namespace_index("urn:tunneltwin:daemon")
        ns = found["ns"]
        return await client.nodes.objects.get_child([f"{ns}:{p}" for p in ["Daemon", *path.split("/")]])

    return node
