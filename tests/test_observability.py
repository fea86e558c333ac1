"""Metrics and probes scraped over HTTP, the decision watchdog, and systemd's notify socket."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import time
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from adapters.client.sim import SimPort
from controller.baseline import BaselineController
from kernel.contracts import Observation, Setpoints
from kernel.site import Site
from scenarios.replay import ReplaySetup
from scenarios.scenario import load_scenario
from tests.helpers import fake_controller, sample
from tunneltwin.daemon.loop import Service
from twin.lockstep import LockstepPlant


@pytest.fixture(scope="module")
def day(site: Site) -> ReplaySetup:
    setup = load_scenario("dry-week", site, None, None, None)
    return dataclasses.replace(setup, inflow_m3h=setup.inflow_m3h[:96], price_eur_per_kwh=setup.price_eur_per_kwh[:96])


async def get(port: int, path: str) -> tuple[int, str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await writer.drain()
    raw = (await reader.read()).decode()
    writer.close()
    head, _, body = raw.partition("\r\n\r\n")
    return int(head.split()[1]), body


async def test_metrics_and_probes_are_scraped(day: ReplaySetup) -> None:
    baseline = BaselineController(day.site)
    service = Service(SimPort(LockstepPlant(day), speed=900 * 10), baseline, baseline, day.site, max_ticks=20,
                      probe="127.0.0.1:0", stale_after_s=5)
    run = asyncio.ensure_future(service.run())
    while service.probe is None or service.probe.server is None:
        await asyncio.sleep(0.01)
    port = service.probe.port
    while service.stats.ticks < 5:
        await asyncio.sleep(0.02)
    status, body = await get(port, "/metrics")
    assert status == 200
    station = day.site.name
    ticks = sample(body, "tunneltwin_ticks_total", station=station)
    assert ticks is not None and ticks >= 5
    for name in ("tunneltwin_tick_seconds_count", "tunneltwin_decide_seconds_count", "tunneltwin_level_m",
                 "tunneltwin_inflow_m3h", "tunneltwin_outflow_m3h", "tunneltwin_level_over_alarm",
                 "tunneltwin_cost_eur", "tunneltwin_comms_errors_total", "tunneltwin_plant_time_seconds"):
        assert sample(body, name, station=station) is not None, name
    on = [sample(body, "tunneltwin_pump_on", station=station, pump=p.id) for p in day.site.pumps]
    assert set(on) <= {0.0, 1.0} and sum(x or 0 for x in on) >= 1  # every pump, and one always runs
    freqs = [sample(body, "tunneltwin_pump_frequency_hz", station=station, pump=p.id) for p in day.site.pumps]
    assert all(f is not None and 0 <= f <= 60 for f in freqs)
    assert sum(f or 0 for f in freqs) > 0  # some pump runs in a day
    assert sample(body, "tunneltwin_solver_status_total", station=station) is None  # the baseline solves nothing
    assert (await get(port, "/healthz"))[0] == 200
    assert (await get(port, "/readyz"))[0] == 200
    assert (await get(port, "/nothing"))[0] == 404
    await run


async def test_probes_fail_when_ticks_stop(day: ReplaySetup) -> None:
    from tunneltwin.daemon.metrics import Health

    health = Health(stale_after_s=0.2)
    assert health.ready() == (False, "not connected to the plant")
    health.connected, health.last_tick = True, time.monotonic()
    assert health.ready()[0] and health.healthy()[0]
    await asyncio.sleep(0.3)
    assert not health.healthy()[0] and not health.ready()[0]


async def test_a_decision_past_its_deadline_goes_to_the_baseline(day: ReplaySetup) -> None:
    baseline = BaselineController(day.site)

    def slow(obs: Observation) -> Setpoints:
        time.sleep(1.0)
        return baseline.decide(obs)

    stuck = fake_controller("stuck", slow)
    plant = LockstepPlant(day)
    service = Service(SimPort(plant), stuck, BaselineController(day.site), day.site, max_ticks=3, deadline_s=0.2)
    t0 = time.perf_counter()
    stats = await service.run()
    assert stats.ticks == 3 and time.perf_counter() - t0 < 2.5  # nobody waited for the stuck solver
    assert [a["kind"] for a in service.alerts].count("watchdog") == 1  # then it sat out while still running
    assert sample(_exposition(service), "tunneltwin_fallbacks_total", reason="deadline") == 3.0


async def test_the_next_tick_waits_for_a_late_decision_instead_of_sitting_out(day: ReplaySetup) -> None:
    """Only the first decision is slow (1.2 s against a 1 s deadline): the baseline takes
    that tick, the next tick waits for the late one to end and the controller decides again.
    Before, the optimiser sat out every tick while the late one ran: in the lockstep soak,
    57-124 plant ticks per injected solver timeout."""
    baseline = BaselineController(day.site)
    calls: list[float] = []

    def first_slow(obs: Observation) -> Setpoints:
        calls.append(time.perf_counter())
        if len(calls) == 1:
            time.sleep(1.2)
        return baseline.decide(obs)

    late = fake_controller("late", first_slow)
    service = Service(SimPort(LockstepPlant(day)), late, BaselineController(day.site), day.site, max_ticks=3,
                      deadline_s=1.0)
    stats = await service.run()
    assert stats.ticks == 3 and len(calls) == 3  # ticks 2 and 3 were the controller's own
    assert sample(_exposition(service), "tunneltwin_fallbacks_total", reason="deadline") == 1.0


def _exposition(service: Service) -> str:
    from prometheus_client import generate_latest

    return generate_latest(service.metrics.registry).decode()


async def test_systemd_hears_ready_and_the_watchdog(day: ReplaySetup, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.setblocking(False)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    baseline = BaselineController(day.site)
    await Service(SimPort(LockstepPlant(day)), baseline, baseline, day.site, max_ticks=2).run()
    heard = []
    while True:
        try:
            heard.append(sock.recv(100).decode())
        except BlockingIOError:
            break
    sock.close()
    assert heard == ["READY=1", "WATCHDOG=1", "WATCHDOG=1"]


async def test_readiness_falls_when_the_plant_clock_stops_advancing(day: ReplaySetup) -> None:
    """A plant clock that stops (the gateway serves the same reading again and again) must not
    read as ready: the daemon is only repeating its last decision. The age is a metric too."""
    plant = LockstepPlant(day)
    port = SimPort(plant)
    real_observe = port.observe
    frozen: list[Observation] = []

    async def stuck_after_two() -> Observation:
        obs = await real_observe()
        if len(frozen) < 2:
            frozen.append(obs)
        await asyncio.sleep(0.05)
        return frozen[-1]

    port.observe = stuck_after_two  # type: ignore[method-assign]
    baseline = BaselineController(day.site)
    service = Service(port, baseline, baseline, day.site, max_ticks=12, stale_after_s=0.3)
    await service.run()
    ready, why = service.health.ready()
    assert service.health.healthy()[0]  # ticks kept coming
    assert not ready and "plant time has not advanced" in why
    text = generate_latest(service.metrics.registry).decode()

    assert (sample(text, "tunneltwin_telemetry_age_seconds") or 0) > 0.3
    assert sample(text, "tunneltwin_plant_time_seconds") == pytest.approx(frozen[-1].telemetry.time.timestamp())


async def test_the_optimisers_solver_status_is_counted_per_decision(day: ReplaySetup) -> None:
    from controller.mpc import MpcController

    baseline = BaselineController(day.site)
    service = Service(SimPort(LockstepPlant(day)), MpcController(day.site), baseline, day.site, max_ticks=3)
    await service.run()
    from prometheus_client.parser import text_string_to_metric_families

    counted = {s.labels["status"]: s.value for f in text_string_to_metric_families(_exposition(service))
               for s in f.samples if s.name == "tunneltwin_solver_status_total"}
    assert sum(counted.values()) == 3 and all(counted), counted  # one per decision, each a named status


def test_library_loggers_keep_the_json_log_stream_whole(capsys: pytest.CaptureFixture[str]) -> None:
    """asyncua and paho log through the stdlib; under --log-format json their lines are JSON
    objects like ours, named by logger, and their INFO chatter stays out."""
    import json
    import logging

    import structlog

    from tunneltwin.cli import _configure_logging

    _configure_logging("info", "json")
    try:
        logging.getLogger("asyncua.client.client").warning("connection lost to %s", "opc.tcp://x:4840")
        logging.getLogger("paho.mqtt.client").info("sending PINGREQ")
        structlog.get_logger().info("tick", level_m=2.5)
        lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    finally:
        _configure_logging("warning", "console")
    assert [(x["event"], x["level"], x.get("logger")) for x in lines] == [
        ("connection lost to opc.tcp://x:4840", "warning", "asyncua.client.client"), ("tick", "info", None)]
    assert all("timestamp" in x for x in lines)


def test_a_warning_from_a_run_names_the_run(day: ReplaySetup, capsys: pytest.CaptureFixture[str]) -> None:
    """compare runs several controllers; a supervisor's warning must say whose run it was."""
    import json

    import structlog

    from scenarios.replay import run_controller
    from tunneltwin.cli import _configure_logging

    baseline = BaselineController(day.site)

    def warns(obs: Observation) -> Setpoints:
        structlog.get_logger().warning("override", rule="min_level")
        return baseline.decide(obs)

    short = dataclasses.replace(day, inflow_m3h=day.inflow_m3h[:2], price_eur_per_kwh=day.price_eur_per_kwh[:2])
    _configure_logging("warning", "json")
    try:
        run_controller(short, fake_controller("careful", warns))
        lines = [json.loads(x) for x in capsys.readouterr().err.splitlines()]
    finally:
        _configure_logging("warning", "console")
    assert lines and all(x["run"] == f"{day.name} / careful" for x in lines)
