"""The daemon's TOML (config/daemon.toml): which plant, which controller, how to reach it.

Relative paths are taken from the file's own directory. Passwords are never in this file:
they come from a file named here or from an environment variable (TUNNELTWIN_OPCUA_PASSWORD,
TUNNELTWIN_MQTT_PASSWORD), and are never logged.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from kernel.errors import ConfigError
from kernel.settings import read_toml, validated

ENV_PASSWORD = {"opcua": "TUNNELTWIN_OPCUA_PASSWORD", "mqtt": "TUNNELTWIN_MQTT_PASSWORD"}


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DaemonSection(_Strict):
    plant: Literal["sim", "opcua", "mqtt", "replay"] = "sim"
    controller: Literal["mpc", "baseline"] = "mpc"
    duration_h: float = Field(24.0, ge=0)  # plant time to run; 0 = until stopped or the plant ends
    reconnect_max_s: float = Field(30.0, gt=0)
    decide_deadline_s: float = Field(60.0, gt=0)  # the watchdog: a slower decision goes to the baseline
    listen: str = ""  # HOST:PORT for /metrics, /healthz, /readyz; empty: none
    stale_after_s: float = Field(1800.0, gt=0)  # /healthz fails when no tick has completed for this long


class SimSection(_Strict):
    scenario: str = "dry-week"  # bundled name or scenario TOML
    speed: float = Field(0.0, ge=0)  # 0: lockstep, as fast as the controller; 900: 15 min per second


class ReplaySection(_Strict):
    """plant = "replay": shadow mode on a recorded data file (decisions kept, not applied)."""

    file: Path | None = None  # .csv or .xlsx, relative to this file
    prices: Literal["normal", "high"] = "normal"


class LinkSection(_Strict):
    tags: Path
    timeout_s: float = Field(10.0, gt=0)
    poll_s: float = Field(0.5, gt=0)  # wall clock without a handshake: how often plant time is read
    username: str = ""
    password_file: Path | None = None


def host_port(listen: str, what: str) -> tuple[str, int]:
    """A HOST:PORT the daemon listens on; ``what`` names it in the error (the setting or flag)."""
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{what} {listen!r}: expected HOST:PORT")
    return host, int(port)


def _url(value: str, schemes: tuple[str, ...]) -> str:
    """A server address an operator typed: scheme, host and port must all be there."""
    parts = urlsplit(value)
    try:
        port = parts.port
    except ValueError as exc:  # a port out of range or not a number
        raise ValueError(f"{value!r}: {exc}") from exc
    if parts.scheme not in schemes or not parts.hostname or port is None:
        raise ValueError(f"{value!r} is not a {' or '.join(s + '://HOST:PORT' for s in schemes)} address")
    return value


class OpcuaSection(LinkSection):
    endpoint: Annotated[str, AfterValidator(lambda v: _url(v, ("opc.tcp",)))] = "opc.tcp://127.0.0.1:4840/tunneltwin/"
    tags: Path = Path("tags-opcua.toml")
    security: Literal["none", "Basic256Sha256_SignAndEncrypt"] = "none"
    certificate: Path | None = None  # ours (DER or PEM)
    private_key: Path | None = None
    server_certificate: Path | None = None


class MqttSection(LinkSection):
    url: Annotated[str, AfterValidator(lambda v: _url(v, ("mqtt", "mqtts")))] = "mqtt://127.0.0.1:1883"
    tags: Path = Path("tags-mqtt.toml")
    client_id: str = "tunneltwin-daemon"
    ca_file: Path | None = None  # set for TLS (mqtts://)


class PublishSection(_Strict):
    """Status, plan, forecast, KPIs and alerts out, operator commands in: MQTT and/or our OPC UA server."""

    mqtt_url: str = ""  # empty: not published over MQTT
    # "acl": take operator commands on {prefix}/operator, where the broker's ACL says who may
    # publish (deploy/mosquitto/); needs username. "off": publish only, take no commands.
    # "signed": as "acl", and each command signed by a named operator's key (env
    # TUNNELTWIN_MQTT_OPERATOR_KEYS = "alice=KEY,bob=KEY"; `tunneltwin sign-command` signs)
    mqtt_commands: Literal["off", "acl", "signed"] = "off"
    opcua_endpoint: str = ""  # the daemon's own OPC UA server for SCADA; empty: none
    opcua_security: Literal["none", "Basic256Sha256_SignAndEncrypt"] = "none"
    opcua_certificate: Path | None = None  # the daemon server's certificate (DER)
    opcua_private_key: Path | None = None
    opcua_trusted: Path | None = None  # directory of trusted client (SCADA) certificates
    opcua_username: str = ""  # one operator login; password from env TUNNELTWIN_PUBLISH_OPCUA_PASSWORD
    # HOST:PORT of the HTTP API (/system/state, ..., /events, /live, /openapi.json; extra [http]);
    # empty: none
    http_listen: str = ""
    # "token": reads need env TUNNELTWIN_HTTP_READ_TOKEN as a bearer token; "off": anyone who
    # reaches the address reads (say so here, on a network you trust)
    http_read_auth: Literal["token", "off"] = "token"
    # "token": POST /operator takes commands from the operators named in env
    # TUNNELTWIN_HTTP_OPERATOR_TOKENS ("alice=TOKEN,bob=TOKEN"), audited with the name; "off": none
    http_operator: Literal["off", "token"] = "off"
    http_tls_certificate: Path | None = None  # PEM; with the key: the API speaks HTTPS only
    http_tls_private_key: Path | None = None
    prefix: str = "tunneltwin/daemon"
    client_id: str = "tunneltwin-daemon-status"
    username: str = ""
    password_file: Path | None = None
    ca_file: Path | None = None


class AuditSection(_Strict):
    """Every tick and the state a restart resumes from, in one SQLite file."""

    db: Path | None = None  # e.g. /var/lib/tunneltwin/audit.sqlite; unset: no audit log, no restart state
    retention_days: float = Field(400.0, gt=0)  # plant time; older ticks are deleted once a day


class DaemonConfig(_Strict):
    daemon: DaemonSection = DaemonSection()
    sim: SimSection = SimSection()
    replay: ReplaySection = ReplaySection()
    opcua: OpcuaSection = OpcuaSection()
    mqtt: MqttSection = MqttSection()
    publish: PublishSection = PublishSection()
    audit: AuditSection = AuditSection()
    source: Path = Path("config/daemon.toml")


def load_daemon(path: Path) -> DaemonConfig:
    cfg = validated(DaemonConfig, {**read_toml(path), "source": path}, path)
    return _resolved(cfg, path.parent)


def _resolved(cfg: DaemonConfig, base: Path) -> DaemonConfig:
    """Paths relative to the config file, so the daemon runs from any directory."""
    def fix(section: BaseModel) -> BaseModel:
        update = {k: base / v for k, v in section.model_dump().items()
                  if isinstance(v, Path) and not v.is_absolute()}
        return section.model_copy(update=update)
    sections = ("replay", "opcua", "mqtt", "publish", "audit")
    return cfg.model_copy(update={name: fix(getattr(cfg, name)) for name in sections})


def password(section: LinkSection | PublishSection, transport: str) -> str:
    """From the environment, else the password file; empty when neither is set."""
    if env := os.environ.get(ENV_PASSWORD[transport]):
        return env
    if section.password_file is None:
        return ""
    try:
        return section.password_file.read_text().strip()
    except OSError as exc:
        raise ConfigError(f"[{transport}] password_file {section.password_file}: {exc.strerror}") from exc


def with_overrides(cfg: DaemonConfig, overrides: dict[str, dict[str, object]]) -> DaemonConfig:
    """CLI flags win over the file; unset flags (None) leave the file's value. Checked like the file."""
    data = cfg.model_dump()
    for section, values in overrides.items():
        data[section].update({k: v for k, v in values.items() if v is not None})
    return validated(DaemonConfig, data, Path("command line"))
