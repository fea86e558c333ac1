"""Prometheus metrics and the /metrics, /healthz and /readyz endpoints.

The HTTP side is a few lines on asyncio's own server: three fixed paths need no framework,
and it runs on the daemon's event loop, so a blocked loop shows up as a failed probe.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from kernel.contracts import Observation
from kernel.errors import ConfigError
from kernel.site import Rules
from tunneltwin.daemon.config import host_port

TICK_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120, 300, 900)


@dataclass
class Metrics:
    """Every series carries ``station`` (the site TOML's name), so one Prometheus scrapes many
    daemons; deploy/grafana/tunneltwin.json is a dashboard of all of them."""

    station: str = "station"
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r, s = self.registry, self.station
        self.tick_seconds = Histogram("tunneltwin_tick_seconds", "read, decide, write and read back",
                                      ["station"], buckets=TICK_BUCKETS, registry=r).labels(s)
        self.solve_seconds = Histogram("tunneltwin_decide_seconds", "controller decision time", ["station"],
                                       buckets=TICK_BUCKETS, registry=r).labels(s)
        self.level_m = Gauge("tunneltwin_level_m", "tunnel level as used by the controller", ["station"],
                             registry=r).labels(s)
        self.inflow_m3h = Gauge("tunneltwin_inflow_m3h", "inflow as used by the controller", ["station"],
                                registry=r).labels(s)
        self.outflow_m3h = Gauge("tunneltwin_outflow_m3h", "measured outflow F2", ["station"], registry=r).labels(s)
        self.alarm = Gauge("tunneltwin_level_over_alarm", "1 while the level is over the alarm level",
                           ["station"], registry=r).labels(s)
        self.cost_eur = Gauge("tunneltwin_cost_eur", "electricity cost so far, estimated from telemetry",
                              ["station"], registry=r).labels(s)
        self.pump_on = _each(Gauge("tunneltwin_pump_on", "1 while the pump runs (telemetry)", ["station", "pump"],
                                   registry=r), s)
        self.pump_frequency_hz = _each(Gauge("tunneltwin_pump_frequency_hz", "pump frequency (telemetry)",
                                             ["station", "pump"], registry=r), s)
        self.solver_status = _each(Counter("tunneltwin_solver_status_total", "decisions by the solver's status",
                                           ["station", "status"], registry=r), s)
        self.violations = _each(Counter("tunneltwin_rule_violations_total", "hard rules seen broken in telemetry",
                                        ["station", "rule"], registry=r), s)
        self.overrides = _each(Counter("tunneltwin_supervisor_overrides_total", "setpoints the supervisor changed",
                                       ["station", "rule"], registry=r), s)
        self.fallbacks = _each(Counter("tunneltwin_fallbacks_total",
                                       "ticks the baseline decided instead of the optimiser", ["station", "reason"],
                                       registry=r), s)
        self.forecast_fallbacks = _each(Counter(
            "tunneltwin_external_forecast_fallbacks_total",
            "decisions on the internal forecast because the external one was stale or unusable",
            ["station", "reason"], registry=r), s)
        self.comms_errors = Counter("tunneltwin_comms_errors_total", "failed reads, writes or steps", ["station"],
                                    registry=r).labels(s)
        self.alerts = _each(Counter("tunneltwin_alerts_total", "alerts raised", ["station", "kind"], registry=r), s)
        self.forecast_error = Gauge("tunneltwin_inflow_forecast_error_m3h",
                                    "last one-step inflow forecast minus the measured inflow", ["station"],
                                    registry=r).labels(s)
        self.ticks = Counter("tunneltwin_ticks_total", "ticks completed", ["station"], registry=r).labels(s)
        self.plant_time = Gauge("tunneltwin_plant_time_seconds",
                                "the plant time of the last reading, as seconds since the epoch", ["station"],
                                registry=r).labels(s)
        self.plant_clock_behind = Gauge("tunneltwin_plant_clock_behind_seconds",
                                        "how far the plant clock runs behind the daemon's timeline (it went back)",
                                        ["station"], registry=r).labels(s)
        self.telemetry_age = Gauge("tunneltwin_telemetry_age_seconds",
                                   "wall seconds since the plant time last advanced", ["station"],
                                   registry=r).labels(s)


M = TypeVar("M", Counter, Gauge)


def _each(metric: M, station: str) -> Callable[[str], M]:
    """The station's series of a metric with one more label: ``metrics.alerts("stale").inc()``."""
    return lambda value: metric.labels(station, value)


@dataclass
class Health:
    """What the probes answer: alive while ticks keep coming, ready once connected and ticking."""

    stale_after_s: float  # no completed tick, or no new plant time, for this long (wall time)
    started: float = field(default_factory=time.monotonic)
    last_tick: float | None = None
    last_fresh: float | None = None  # when a reading last brought a plant time after the one before
    clock_went_back: bool = False  # this tick: the plant clock went back and the baseline decided
    connected: bool = False
    stopping: bool = False

    def telemetry_age_s(self) -> float:
        return time.monotonic() - (self.last_fresh or self.started)

    def healthy(self) -> tuple[bool, str]:
        if self.stopping:
            return False, "stopping"
        since = time.monotonic() - (self.last_tick or self.started)
        return (since <= self.stale_after_s, f"last tick {since:.1f} s ago (limit {self.stale_after_s:.0f} s)")

    def ready(self) -> tuple[bool, str]:
        ok, why = self.healthy()
        if not self.connected:
            return False, "not connected to the plant"
        if self.last_tick is None:
            return False, "no tick yet"
        if self.clock_went_back:
            return False, "the plant clock went back: this tick the baseline decided"
        if (age := self.telemetry_age_s()) > self.stale_after_s:
            return False, f"the plant time has not advanced for {age:.1f} s (limit {self.stale_after_s:.0f} s)"
        return ok, why


class ProbeServer:
    def __init__(self, listen: str, metrics: Metrics, health: Health) -> None:
        self.host, self.port = host_port(listen, "health/metrics listen address")
        self.metrics, self.health = metrics, health
        self.server: asyncio.Server | None = None

    async def start(self) -> None:
        try:
            self.server = await asyncio.start_server(self._serve, self.host, self.port)
        except OSError as exc:
            raise ConfigError(f"health/metrics listen address {self.host}:{self.port}: {exc.strerror}") from exc
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.server:
            self.server.close()
            await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readline(), 5)
            while (await asyncio.wait_for(reader.readline(), 5)) not in (b"\r\n", b"\n", b""):
                pass
            path = request.split(b" ")[1].decode() if request.count(b" ") >= 2 else ""
            status, ctype, body = self._answer(path)
            writer.write(f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                         f"Connection: close\r\n\r\n".encode() + body)
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()

    def _answer(self, path: str) -> tuple[str, str, bytes]:
        return probe_answer(self.metrics, self.health, path)


def probe_answer(metrics: Metrics, health: Health, path: str) -> tuple[str, str, bytes]:
    """/metrics, /healthz and /readyz: (status line, content type, body); the probes' own
    server and the HTTP API (on the same address) both answer with this."""
    if path == "/metrics":
        return "200 OK", CONTENT_TYPE_LATEST, generate_latest(metrics.registry)
    if path in ("/healthz", "/readyz"):
        ok, why = health.healthy() if path == "/healthz" else health.ready()
        return ("200 OK" if ok else "503 Service Unavailable"), "text/plain", f"{why}\n".encode()
    return "404 Not Found", "text/plain", b"try /metrics, /healthz or /readyz\n"


def observe_tick(m: Metrics, obs: Observation, rules: Rules, tick_s: float, decide_s: float, cost_eur: float,
                 overrides: list[dict[str, Any]], forecast_error_m3h: float | None,
                 solver_status: str | None = None) -> None:
    tel = obs.telemetry
    m.ticks.inc()
    m.tick_seconds.observe(tick_s)
    m.solve_seconds.observe(decide_s)
    m.level_m.set(tel.level_m)
    m.inflow_m3h.set(tel.inflow_m3h)
    m.outflow_m3h.set(tel.outflow_m3h)
    m.alarm.set(float(tel.level_m > rules.alarm_level_m))
    m.cost_eur.set(cost_eur)
    for pump in tel.pumps:
        m.pump_on(pump.id).set(float(pump.status.is_on))
        m.pump_frequency_hz(pump.id).set(pump.freq_hz)
    if solver_status is not None:
        m.solver_status(solver_status).inc()
    for o in overrides:
        m.overrides(o["rule"]).inc()
    for rule in broken(obs, rules):
        m.violations(rule).inc()
    if forecast_error_m3h is not None:
        m.forecast_error.set(forecast_error_m3h)


def broken(obs: Observation, rules: Rules) -> list[str]:
    """Hard rules the telemetry shows broken right now (the rule checker's names)."""
    tel = obs.telemetry
    out = []
    if tel.level_m < rules.min_level_m:
        out.append("level_below_min")
    if tel.level_m > rules.max_level_m:
        out.append("level_above_max")
    if sum(p.status.is_on for p in tel.pumps) < rules.min_pumps_on:
        out.append("no_pump_running")
    if tel.outflow_m3h > rules.max_outflow_m3h:
        out.append("max_outflow")
    return out
