"""One MQTT broker connection (paho-mqtt 2.x, MQTT 5) bridged to asyncio; paho's errors become ours.

paho runs its own network thread; its callbacks only hand work to the event loop with
``call_soon_threadsafe`` (engineering notes). The plant port, the served twin and the
daemon's surface all share it.
"""


from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
import structlog
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from kernel.errors import ConfigError, PlantTimeout, PlantUnavailable, WriteRejected

log = structlog.get_logger()
Handler = Callable[[str, bytes], None]
RECONNECT_MAX_S = 5  # paho reconnects by itself after a drop; a plant link should not wait minutes


class MqttLink:
    """One broker connection: connect, subscribe, publish with acknowledgement, a Last Will."""

    def __init__(self, host: str, port: int, client_id: str, username: str = "", password: str = "",
                 ca_file: Path | None = None, tls: bool = False) -> None:
        self.host, self.port, self.client_id = host, port, client_id
        self.username, self._password, self.ca_file, self.tls = username, password, ca_file, tls
        self.client: mqtt.Client | None = None
        self.handlers: list[Handler] = []
        self.on_reconnect: list[Callable[[], None]] = []  # run on the loop after paho reconnected by itself
        self.topics: set[str] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connected: asyncio.Future[None] | None = None
        self._acks: dict[int, asyncio.Future[None]] = {}
        self._early: set[int] = set()

    @classmethod
    def from_url(cls, url: str, client_id: str, username: str = "", password: str = "",
                 ca_file: Path | None = None) -> MqttLink:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ConfigError(f"MQTT url {url!r}: expected mqtt://host:port or mqtts://host:port")
        tls = parts.scheme == "mqtts"
        return cls(parts.hostname, parts.port or (8883 if tls else 1883), client_id, username, password,
                   ca_file, tls)

    def __repr__(self) -> str:  # never the password
        return f"MqttLink({self.host}:{self.port}, client_id={self.client_id!r}, user={self.username!r})"

    async def connect(self, will: tuple[str, str] | None = None, timeout_s: float = 10.0) -> None:
        self._loop = asyncio.get_running_loop()
        self._connected = self._loop.create_future()
        client = self.client = mqtt.Client(CallbackAPIVersion.VERSION2, self.client_id,
                                           protocol=mqtt.MQTTv5, reconnect_on_failure=True)
        client.reconnect_delay_set(min_delay=1, max_delay=RECONNECT_MAX_S)  # paho's default cap is 120 s
        if self.username:
            client.username_pw_set(self.username, self._password)
        if self.tls:
            client.tls_set(ca_certs=str(self.ca_file) if self.ca_file else None, cert_reqs=ssl.CERT_REQUIRED)
        if will:
            client.will_set(will[0], will[1], qos=1, retain=True)
        client.on_connect, client.on_message = self._on_connect, self._on_message
        client.on_publish, client.on_disconnect = self._on_publish, self._on_disconnect
        try:
            await asyncio.to_thread(client.connect, self.host, self.port, 30)
        except (OSError, ssl.SSLError) as exc:
            self.client = None
            raise PlantUnavailable(f"MQTT {self.host}:{self.port}: {exc}") from exc
        _no_delay(client)
        client.loop_start()
        try:
            await asyncio.wait_for(self._connected, timeout_s)
        except TimeoutError as exc:
            await self.close()
            raise PlantTimeout(f"MQTT {self.host}:{self.port}: no CONNACK within {timeout_s} s") from exc
        except PlantUnavailable:
            await self.close()
            raise

    async def close(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            await asyncio.to_thread(_stop, client)

    async def subscribe(self, topics: set[str]) -> None:
        self.topics |= topics
        rc, _ = self._client().subscribe([(t, 1) for t in sorted(topics)])
        if rc != mqtt.MQTT_ERR_SUCCESS:
            raise PlantUnavailable(f"MQTT subscribe failed: {mqtt.error_string(rc)}")

    async def publish(self, topic: str, payload: str, retain: bool = False, timeout_s: float = 10.0) -> None:
        """QoS 1, waiting for the broker's PUBACK; a refusal (MQTT 5 'Not authorized') is WriteRejected."""
        info = self._client().publish(topic, payload, qos=1, retain=retain)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise PlantUnavailable(f"MQTT publish to {topic}: {mqtt.error_string(info.rc)}")
        if info.mid in self._early:
            self._early.discard(info.mid)
            return
        ack = self._acks[info.mid] = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait_for(ack, timeout_s)
        except TimeoutError as exc:
            raise PlantTimeout(f"MQTT publish to {topic}: no PUBACK within {timeout_s} s") from exc
        finally:
            self._acks.pop(info.mid, None)

    def _client(self) -> mqtt.Client:
        if self.client is None:
            raise PlantUnavailable(f"MQTT {self.host}:{self.port}: not connected")
        return self.client

    # -- paho's thread -> the event loop -------------------------------------------------

    def _call(self, fn: Callable[..., None], *args: Any) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(fn, *args)

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, rc: ReasonCode, _p: Properties | None) -> None:
        if not rc.is_failure:
            _no_delay(client)  # a reconnect opened a new socket
        if not rc.is_failure and self.topics:
            client.subscribe([(t, 1) for t in sorted(self.topics)])  # a reconnect lost them
        self._call(self._connack, rc)

    def _connack(self, rc: ReasonCode) -> None:
        if self._connected is None or self._connected.done():
            if not rc.is_failure:
                for hook in self.on_reconnect:
                    hook()
            return
        if rc.is_failure:
            self._connected.set_exception(PlantUnavailable(f"MQTT {self.host}:{self.port} refused: {rc}"))
        else:
            self._connected.set_result(None)

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        for handler in self.handlers:
            self._call(handler, msg.topic, msg.payload)

    def _on_publish(self, _c: mqtt.Client, _u: Any, mid: int, rc: ReasonCode, _p: Properties | None) -> None:
        self._call(self._acked, mid, rc)

    def _acked(self, mid: int, rc: ReasonCode) -> None:
        fut = self._acks.get(mid)
        if fut is None:
            self._early.add(mid)
        elif not fut.done():
            if rc.is_failure:
                fut.set_exception(WriteRejected(f"MQTT broker refused the publish: {rc}"))
            else:
                fut.set_result(None)

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, rc: ReasonCode, _p: Properties | None) -> None:
        self._call(self._disconnected, rc)

    def _disconnected(self, rc: ReasonCode) -> None:
        if self._connected is not None and not self._connected.done():  # dropped before CONNACK (TLS mismatch)
            self._connected.set_exception(PlantUnavailable(
                f"MQTT {self.host}:{self.port}: connection closed before CONNACK ({rc}); TLS or port wrong?"))
        level = log.warning if rc.is_failure else log.info
        level("MQTT disconnected", broker=f"{self.host}:{self.port}", reason=str(rc))


def _no_delay(client: mqtt.Client) -> None:
    """paho leaves Nagle on: small messages then wait ~40 ms for the peer's delayed ACK (measured)."""
    sock = client.socket()
    if isinstance(sock, socket.socket | ssl.SSLSocket):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _stop(client: mqtt.Client) -> None:
    client.disconnect()
    client.loop_stop()


