"""Wiring for `tunneltwin run` and `tunneltwin simulate`: config in, ports and service out."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from adapters.client.port import PlantPort
from adapters.client.sim import SimPort
from adapters.tagmap import TagMap, load_tagmap
from controller.base import Controller
from controller.baseline import BaselineController
from controller.mpc import MpcController
from controller.settings import MpcSettings
from kernel.errors import ConfigError
from kernel.operator import Signatures
from kernel.site import Site
from scenarios.scenario import load_scenario
from tunneltwin.daemon.audit import AuditLog
from tunneltwin.daemon.config import DaemonConfig, password
from tunneltwin.daemon.loop import Service
from tunneltwin.daemon.stats import Stats
from tunneltwin.daemon.surfaces import Surface
from twin.lockstep import LockstepPlant

END_GRACE_S = 1.0
LOG_LIMIT = 192  # the MPC step log a daemon keeps (2 days at 15 min): reports need the last two
ENV_MQTT_KEYS = "TUNNELTWIN_MQTT_OPERATOR_KEYS"
log = structlog.get_logger()


@dataclass
class DaemonRun:
    stats: Stats
    plant: LockstepPlant | None  # the embedded twin, when plant = "sim"
    port: PlantPort
    agreement: Callable[[], float] | None = None  # shadow mode: share of ticks our pump set was the recorded one


@dataclass
class BuiltPort:
    port: PlantPort
    plant: LockstepPlant | None = None
    agreement: Callable[[], float] | None = None


def build_port(cfg: DaemonConfig, site: Site) -> BuiltPort:
    kind = cfg.daemon.plant
    if kind == "sim":
        plant = LockstepPlant(load_scenario(cfg.sim.scenario, site, None, None, None))
        return BuiltPort(SimPort(plant, cfg.sim.speed), plant)
    if kind == "opcua":
        return BuiltPort(_opcua_port(cfg, site))
    if kind == "replay":
        from adapters.client.replay import ReplayPort

        if cfg.replay.file is None:
            raise ConfigError(f"{cfg.source}: plant = 'replay' needs [replay] file")
        setup = load_scenario(str(cfg.replay.file), site, cfg.replay.prices, None, None)
        if setup.recorded is None:
            raise ConfigError(f"{cfg.source}: [replay] file {cfg.replay.file} is a scenario, not a recorded data file")
        shadow = ReplayPort(setup, setup.recorded)
        return BuiltPort(shadow, agreement=shadow.agreement)
    return BuiltPort(_mqtt_port(cfg, site))


def _opcua_port(cfg: DaemonConfig, site: Site) -> PlantPort:
    from adapters.client.opcua import OpcuaPort, OpcuaSecurity

    o = cfg.opcua
    security = None
    if o.security != "none":
        files = {"certificate": o.certificate, "private_key": o.private_key,
                 "server_certificate": o.server_certificate}
        if missing := [k for k, v in files.items() if v is None]:
            raise ConfigError(f"{cfg.source}: [opcua] security = {o.security!r} needs {', '.join(missing)}")
        assert o.certificate and o.private_key and o.server_certificate
        security = OpcuaSecurity(o.certificate, o.private_key, o.server_certificate, o.username,
                                 password(o, "opcua"))
    return OpcuaPort(o.endpoint, load_tagmap(o.tags), site, security, o.timeout_s, o.poll_s)


def _mqtt_port(cfg: DaemonConfig, site: Site) -> PlantPort:
    from adapters.client.mqtt import MqttPort
    from adapters.mqtt_link import MqttLink

    m = cfg.mqtt
    link = MqttLink.from_url(m.url, m.client_id, m.username, password(m, "mqtt"), m.ca_file)
    return MqttPort(link, load_tagmap(m.tags), site, m.timeout_s, m.poll_s)


def plant_takes_stop_levels(cfg: DaemonConfig) -> bool:
    """Our twin executes stop levels; a gateway only if its tag map has [setpoint] stop_below_m."""
    path = {"opcua": cfg.opcua.tags, "mqtt": cfg.mqtt.tags}.get(cfg.daemon.plant)
    return path is None or _stop_levels_checked(load_tagmap(path), path)


def _stop_levels_checked(tags: TagMap, path: Path) -> bool:
    """Say at startup when the plant cannot take stop levels: a command its PLC holds after
    refused writes then runs on until the next accepted one (README, "Faults"), so the MPC
    must not count on them when it makes a landing safe to hold."""
    if "stop_below_m" in tags.setpoint:
        return True
    log.warning("tag map has no [setpoint] stop_below_m: the plant will not stop pumps at a level by itself; "
                "the MPC plans without stop levels", tags=str(path))
    return False


def _mqtt_signatures(cfg: DaemonConfig) -> Signatures | None:
    if cfg.publish.mqtt_commands != "signed":
        return None
    return Signatures(_operator_secrets(cfg, ENV_MQTT_KEYS, "mqtt_commands = 'signed'", "NAME=KEY,NAME=KEY"))


def _http_operators(cfg: DaemonConfig) -> dict[str, str]:
    from tunneltwin.daemon.api_access import ENV_OPERATORS

    if cfg.publish.http_operator == "off":
        return {}
    return _operator_secrets(cfg, ENV_OPERATORS, "http_operator = 'token'", "NAME=TOKEN,NAME=TOKEN",
                             ", or http_operator = 'off'")


def _operator_secrets(cfg: DaemonConfig, env: str, setting: str, form: str, otherwise: str = "") -> dict[str, str]:
    """Each operator's own key or token from ``env`` (``NAME=SECRET,...``); the ``[publish]``
    setting that needs them is a configuration error without any."""
    from tunneltwin.daemon.api_access import operator_tokens

    found = operator_tokens(os.environ.get(env, ""), f"env {env}")
    if not found:
        raise ConfigError(f"{cfg.source}: [publish] {setting} needs env {env} ({form}){otherwise}")
    return found


def _http_tls(cfg: DaemonConfig) -> tuple[Path, Path] | None:
    cert, key = cfg.publish.http_tls_certificate, cfg.publish.http_tls_private_key
    if (cert is None) != (key is None):
        raise ConfigError(f"{cfg.source}: [publish] http_tls_certificate and http_tls_private_key go together")
    for name, path in (("http_tls_certificate", cert), ("http_tls_private_key", key)):
        if path is not None and not path.is_file():
            raise ConfigError(f"{cfg.source}: [publish] {name} = {str(path)!r}: file not found")
    return (cert, key) if cert and key else None


def build_surfaces(cfg: DaemonConfig, site: Site) -> list[Surface]:
    p = cfg.publish
    surfaces: list[Surface] = []
    if p.mqtt_url:
        from adapters.mqtt_link import MqttLink
        from adapters.surface.mqtt import MqttSurface

        if p.mqtt_commands != "off" and not p.username:
            raise ConfigError(f"{cfg.source}: [publish] mqtt_commands = '{p.mqtt_commands}' needs username: operator "
                              "commands are taken only from a broker that knows who publishes (deploy/mosquitto/)")
        link = MqttLink.from_url(p.mqtt_url, p.client_id, p.username, password(p, "mqtt"), p.ca_file)
        surfaces.append(MqttSurface(link, p.prefix, commands=p.mqtt_commands != "off",
                                    signatures=_mqtt_signatures(cfg)))
    if p.opcua_endpoint:
        from adapters.surface.opcua import OpcuaSurface

        surfaces.append(OpcuaSurface(p.opcua_endpoint, site.pump_ids, _surface_security(cfg)))
    if p.http_listen:
        from tunneltwin.daemon.api import HttpApi

        token = os.environ.get("TUNNELTWIN_HTTP_READ_TOKEN", "")
        if p.http_read_auth == "token" and not token:
            raise ConfigError(f"{cfg.source}: [publish] http_listen needs env TUNNELTWIN_HTTP_READ_TOKEN "
                              "(or http_read_auth = \"off\" to let anyone who reaches it read)")
        surfaces.append(HttpApi(p.http_listen, token if p.http_read_auth == "token" else None, cfg.audit.db, site,
                                _http_operators(cfg), _http_tls(cfg)))
    return surfaces


def _surface_security(cfg: DaemonConfig) -> Any:
    p = cfg.publish
    if p.opcua_security == "none":
        return None
    from adapters.opcua_common import ServerSecurity

    files = {"opcua_certificate": p.opcua_certificate, "opcua_private_key": p.opcua_private_key,
             "opcua_trusted": p.opcua_trusted}
    if missing := [k for k, v in files.items() if v is None]:
        raise ConfigError(f"{cfg.source}: [publish] opcua_security needs {', '.join(missing)}")
    secret = os.environ.get("TUNNELTWIN_PUBLISH_OPCUA_PASSWORD", "")
    if not p.opcua_username or not secret:
        raise ConfigError(f"{cfg.source}: [publish] opcua_security needs opcua_username and "
                          "env TUNNELTWIN_PUBLISH_OPCUA_PASSWORD")
    assert p.opcua_certificate and p.opcua_private_key and p.opcua_trusted
    return ServerSecurity(p.opcua_certificate, p.opcua_private_key, p.opcua_trusted, {p.opcua_username: secret})


def build_controller(cfg: DaemonConfig, site: Site, mpc: MpcSettings) -> tuple[Controller, BaselineController]:
    baseline = BaselineController(site)
    if cfg.daemon.controller == "baseline":
        return baseline, baseline
    if mpc.stop_levels and not plant_takes_stop_levels(cfg):
        mpc = dataclasses.replace(mpc, stop_levels=False)
    return MpcController(site, mpc, log_limit=LOG_LIMIT), baseline


async def run_daemon(cfg: DaemonConfig, site: Site, mpc: MpcSettings, signals: bool = True) -> DaemonRun:
    built = build_port(cfg, site)
    port = built.port
    controller, fallback = build_controller(cfg, site, mpc)
    step_s = site.timing.control_interval_s
    ticks = round(cfg.daemon.duration_h * 3600 / step_s) or None
    audit = AuditLog(cfg.audit.db, cfg.audit.retention_days) if cfg.audit.db else None
    if audit is None and cfg.daemon.plant in ("opcua", "mqtt"):
        log.warning("no [audit] db: ticks are not recorded and pump timers do not survive a restart")
    d = cfg.daemon
    surfaces = build_surfaces(cfg, site)
    shared = bool(d.listen) and d.listen == cfg.publish.http_listen  # one address: the API answers the probes
    service = Service(port, controller, fallback, site, ticks, d.reconnect_max_s, surfaces, audit,
                      d.decide_deadline_s, None if shared else (d.listen or None), d.stale_after_s)
    if shared:
        from tunneltwin.daemon.api import HttpApi
        from tunneltwin.daemon.metrics import probe_answer

        for api in (s for s in surfaces if isinstance(s, HttpApi)):
            api.probes = functools.partial(probe_answer, service.metrics, service.health)
    try:
        with _on_signals(service.stop if signals else None):
            stats = await service.run()
    finally:
        if audit:
            audit.close()
    return DaemonRun(stats, built.plant, port, built.agreement)


class _on_signals:
    """SIGTERM/SIGINT ask the service to stop after the tick in hand."""

    def __init__(self, handler: Callable[[], None] | None) -> None:
        self.handler = handler

    def __enter__(self) -> None:
        if self.handler:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.handler)

    def __exit__(self, *_: object) -> None:
        if self.handler:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)


async def serve_simulator(plant: LockstepPlant, opcua: tuple[str, Path] | None,
                          mqtt: tuple[str, Path] | None, speed: float, until_done: bool,
                          security: Any = None) -> None:
    """The twin over OPC UA until SIGTERM/SIGINT (or the scenario's end with ``until_done``)."""
    from adapters.served.opcua import OpcuaSimulator

    stop = asyncio.Event()
    servers: list[Any] = []
    forecast = getattr(plant.setup, "inflow_forecast", None)  # a replay setup's external forecast, served
    if opcua:
        servers.append(OpcuaSimulator(plant, load_tagmap(opcua[1]), opcua[0], speed, security, forecast))
    if mqtt:
        from adapters.mqtt_link import MqttLink
        from adapters.served.mqtt import MqttSimulator

        servers.append(MqttSimulator(plant, load_tagmap(mqtt[1]), MqttLink.from_url(mqtt[0], "tunneltwin-sim"),
                                     speed, forecast))
    with _on_signals(stop.set):
        for s in servers:
            await s.start()
        try:
            while not stop.is_set() and not (until_done and plant.done):
                await asyncio.wait([asyncio.ensure_future(stop.wait())], timeout=0.2)
            if until_done and not stop.is_set():
                await asyncio.sleep(END_GRACE_S)  # let the last step's telemetry reach the daemon
        finally:
            for s in servers:
                await s.stop()
