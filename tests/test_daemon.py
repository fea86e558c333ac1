"""The daemon's lifecycle: summary on the embedded twin, fallback, reconnect, SIGTERM."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

from adapters.client.sim import SimPort
from controller.baseline import BaselineController
from kernel.contracts import Observation, Setpoints
from kernel.errors import PlantUnavailable
from kernel.recorded import DataRepairWarning
from kernel.site import Site
from scenarios.replay import ReplaySetup
from scenarios.scenario import load_scenario
from tests.helpers import fake_controller
from tunneltwin.cli import main
from tunneltwin.daemon.loop import Service
from twin.lockstep import LockstepPlant


@pytest.fixture(scope="module")
def day(site: Site) -> ReplaySetup:
    setup = load_scenario("dry-week", site, None, None, None)
    return dataclasses.replace(setup, inflow_m3h=setup.inflow_m3h[:96], price_eur_per_kwh=setup.price_eur_per_kwh[:96])


def test_run_on_the_embedded_twin_ends_with_a_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--controller", "baseline", "--duration-h", "3", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "baseline on sim, 12 ticks" in out and "hard violations 0" in out
    assert (tmp_path / "report.html").exists() and (tmp_path / "trajectory.csv").read_text().count("\n") == 13


async def test_a_failing_controller_hands_the_tick_to_the_baseline(day: ReplaySetup) -> None:
    def broken(obs: Observation) -> Setpoints:
        raise RuntimeError("solver crashed")

    failing = fake_controller("failing", broken)
    plant = LockstepPlant(day)
    stats = await Service(SimPort(plant), failing, BaselineController(day.site), day.site, max_ticks=4).run()
    assert stats.fallbacks == 4 and stats.ticks == 4
    assert any(any(row) for row in plant.traj.pump_on)  # the plant was commanded every tick
    on = plant.twin.state.status != 0
    assert set(plant.twin.state.stop_below_m[on].round(3)) == {0.55}  # fault ticks carry the floor's stop level


async def test_a_stop_while_reconnecting_is_a_clean_stop(day: ReplaySetup) -> None:
    """SIGTERM while the plant was unreachable ended the daemon with the connection error (exit
    2, and systemd counted a failure). A stop is a stop: no tick, no error."""
    plant = LockstepPlant(day)
    port = SimPort(plant)

    async def refused() -> None:
        raise PlantUnavailable("connection refused")

    port.connect = refused  # type: ignore[method-assign]
    baseline = BaselineController(day.site)
    service = Service(port, baseline, baseline, day.site, max_ticks=2)
    run = asyncio.ensure_future(service.run())
    while service.stats.reconnects < 1:
        await asyncio.sleep(0.01)
    service.stop()
    stats = await asyncio.wait_for(run, 5.0)
    assert stats.ticks == 0 and stats.reconnects >= 1


async def test_reconnects_with_backoff_until_the_plant_answers(day: ReplaySetup) -> None:
    plant = LockstepPlant(day)
    port = SimPort(plant)
    refusals = iter([True, True, False])

    async def flaky_connect() -> None:
        if next(refusals):
            raise PlantUnavailable("connection refused")

    port.connect = flaky_connect  # type: ignore[method-assign]
    t0 = time.perf_counter()
    baseline = BaselineController(day.site)
    stats = await Service(port, baseline, baseline, day.site, max_ticks=2).run()
    assert stats.reconnects == 2 and stats.ticks == 2
    assert time.perf_counter() - t0 >= 1.5  # 0.5 s then 1 s: exponential, not a busy loop


def test_sigterm_stops_after_the_tick_in_hand(tmp_path: Path) -> None:
    """SIGTERM once the daemon has ticked (a fixed 4 s sleep raced the imports on a loaded
    machine, and the signal then met Python's default handler)."""
    from tests.plants import free_port

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tunneltwin.cli", "run", "--controller", "baseline",
                             "--duration-h", "0", "--speed", "900", "--out", str(tmp_path),
                             "--listen", f"127.0.0.1:{port}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_ticking(port, proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "tunneltwin run: baseline on sim" in out and "hard violations 0" in out
    ticks = int(out.split(" ticks")[0].rsplit(" ", 1)[1])
    assert 0 < ticks < 96  # stopped early, cleanly, with the twin's record written
    assert (tmp_path / "summary.json").exists()


def _wait_ticking(port: int, proc: subprocess.Popen[str], ticks: int = 2, timeout_s: float = 60.0) -> None:
    """Until the daemon's metrics count this many completed ticks (the first only starts the plant)."""
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1) as r:
                line = next(x for x in r.read().decode().splitlines() if x.startswith("tunneltwin_ticks_total{"))
                if float(line.split()[1]) >= ticks:
                    return
        except (urllib.error.URLError, OSError, StopIteration):
            pass
        time.sleep(0.2)
    raise AssertionError(f"daemon on port {port} completed {ticks} ticks within {timeout_s:.0f} s (exit {proc.poll()})")


def test_daemon_cli_against_the_simulate_cli_over_mqtt(tmp_path: Path) -> None:
    """The two commands as an operator runs them: `simulate --mqtt` in one process, `run` in another."""
    from tests.plants import mosquitto

    with mosquitto("allow_anonymous true\n") as broker:
        sim = subprocess.Popen([sys.executable, "-m", "tunneltwin.cli", "simulate", "storm", "--mqtt", broker.url,
                                "--exit-at-end", "--out", str(tmp_path / "sim")],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            run = subprocess.run([sys.executable, "-m", "tunneltwin.cli", "run", "--plant", "mqtt", "--url",
                                  broker.url, "--controller", "baseline", "--duration-h", "0"],
                                 capture_output=True, text=True, timeout=120)
            out, err = sim.communicate(timeout=30)
        finally:
            sim.kill()
    assert run.returncode == 0, run.stderr
    assert sim.returncode == 0, err
    served = json.loads((tmp_path / "sim" / "summary.json").read_text())
    assert "baseline on mqtt" in run.stdout and "hard violations" in out
    assert served["cost_eur"] == pytest.approx(3924.84, abs=0.01)  # the bundled storm's in-process baseline


async def test_shadow_mode_on_a_recording(site: Site) -> None:
    """plant = replay: the recording is served as telemetry, decisions are kept and never applied."""
    from adapters.client.replay import ReplayPort
    from tests.conftest import EXCERPT

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataRepairWarning)
        setup = load_scenario(str(EXCERPT), site, "normal", None, None)
    assert setup.recorded is not None
    port = ReplayPort(setup, setup.recorded)
    baseline = BaselineController(site)
    stats = await Service(port, baseline, baseline, site, max_ticks=8).run()
    assert stats.ticks == 8 and len(port.decisions) == 8
    obs = await port.observe()  # row 8, whatever we "wrote"
    assert obs.telemetry.level_m == setup.recorded.level_m[8]
    assert obs.telemetry.inflow_m3h == setup.recorded.inflow_m3h[8]
    assert 0.0 <= port.agreement() <= 1.0


async def test_a_report_surface_that_cannot_start_does_not_stop_control(day: ReplaySetup) -> None:
    from adapters.mqtt_link import MqttLink
    from adapters.surface.mqtt import MqttSurface
    from tests.plants import free_port

    dead = MqttSurface(MqttLink("127.0.0.1", free_port(), "nobody-listens"))  # connection refused
    baseline = BaselineController(day.site)
    service = Service(SimPort(LockstepPlant(day)), baseline, baseline, day.site, max_ticks=3, surfaces=[dead])
    stats = await service.run()
    assert stats.ticks == 3 and service.alerts[0]["kind"] == "report_unavailable"


async def test_unusable_telemetry_writes_nothing_and_alarms_once(day: ReplaySetup,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from kernel.errors import PlantError

    plant = LockstepPlant(day)
    port = SimPort(plant)
    real_observe, bad = port.observe, iter([True, True, False])
    writes = []

    async def flaky_observe() -> Observation:
        if next(bad, False):
            raise PlantError("[station] level_m read nan: not a finite number")
        return await real_observe()

    async def counted_write(sp: Setpoints) -> Setpoints:
        writes.append(sp)
        return await SimPort.write(port, sp)

    port.observe = flaky_observe  # type: ignore[method-assign]
    port.write = counted_write  # type: ignore[method-assign,assignment]
    baseline = BaselineController(day.site)
    service = Service(port, baseline, baseline, day.site, max_ticks=2)
    monkeypatch.setattr("tunneltwin.daemon.loop.RETRY_S", 0.01)
    stats = await service.run()
    assert stats.ticks == 2 and len(writes) == 2 and stats.comms_errors == 2
    assert [a["kind"] for a in service.alerts] == ["telemetry_unusable"]


async def test_a_repeated_tick_resends_the_decision_without_deciding_again(day: ReplaySetup) -> None:
    """A lost step answer makes the daemon see the same plant time again: the controller must not
    take that interval in twice (its forecasts and day records), and the plant gets the same command."""
    from kernel.errors import PlantTimeout

    plant = LockstepPlant(day)
    port = SimPort(plant)
    real_step, lost = port.step, iter([False, True])
    writes: list[Setpoints] = []
    real_write = port.write

    async def lossy_step() -> bool:
        if next(lost, False):
            raise PlantTimeout("step 2 not seen within 5 s")
        return await real_step()

    async def counted_write(sp: Setpoints) -> Setpoints:
        writes.append(sp)
        return await real_write(sp)

    seen: list[object] = []
    baseline = BaselineController(day.site)

    def decide(obs: Observation) -> Setpoints:
        seen.append(obs.telemetry.time)
        return baseline.decide(obs)

    counting = fake_controller("counting", decide)
    port.step = lossy_step  # type: ignore[method-assign]
    port.write = counted_write  # type: ignore[method-assign,assignment]
    service = Service(port, counting, BaselineController(day.site), day.site, max_ticks=4)
    await service.run()
    assert len(seen) == len(set(seen)) == 3  # four ticks, three plant times, one decision each
    assert writes[1] == writes[2]  # the repeated tick sent the same command
    assert "telemetry_stale" not in {a["kind"] for a in service.alerts}


def test_a_daemon_stopped_before_its_first_step_reports_no_record(tmp_path: Path, site: Site,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """A SIGTERM before the first plant step once crashed the summary (an empty trajectory)."""
    from tunneltwin.cli import _twin_record

    _twin_record(LockstepPlant(load_scenario("dry-week", site)), "baseline", tmp_path / "out")
    assert "no step was run" in capsys.readouterr().out
    assert not (tmp_path / "out").exists()


def test_a_tag_map_without_stop_levels_is_said_and_the_mpc_plans_without_them(tmp_path: Path, site: Site) -> None:
    """The field gateway's map has no stop_below_m: the daemon says so once, naming the file,
    and its MPC does not count on stop levels; our simulator's map has it and says nothing."""
    from structlog.testing import capture_logs

    from controller.mpc import MpcController
    from controller.settings import MpcSettings
    from kernel.settings import CONFIG_DIR
    from tunneltwin.daemon.config import load_daemon
    from tunneltwin.daemon.wiring import build_controller

    uses = {}
    with capture_logs() as logs:
        for name in ("tags-opcua.toml", "tags-mqtt.toml", "tags-opcua-field.toml"):
            kind = "mqtt" if "mqtt" in name else "opcua"
            config = tmp_path / f"{name}.daemon.toml"
            config.write_text(f'[daemon]\nplant = "{kind}"\n[{kind}]\ntags = "{CONFIG_DIR / name}"\n')
            mpc, _ = build_controller(load_daemon(config), site, MpcSettings())
            assert isinstance(mpc, MpcController)
            uses[name] = mpc.cfg.stop_levels
    warned = [e for e in logs if "stop_below_m" in e["event"]]
    assert [Path(e["tags"]).name for e in warned] == ["tags-opcua-field.toml"]
    assert warned[0]["log_level"] == "warning"
    assert uses == {"tags-opcua.toml": True, "tags-mqtt.toml": True, "tags-opcua-field.toml": False}


@pytest.mark.parametrize("plant", ["opcua", "mqtt"])
def test_tags_composes_with_every_other_run_flag(tmp_path: Path, plant: str) -> None:
    """`run --tags` once rebuilt the config from the file with only plant and tags: the endpoint,
    URL, audit, controller, duration and listen flags were dropped in silence."""
    from tunneltwin.cli import _parser, daemon_config
    from tunneltwin.settings import Settings

    tags = tmp_path / "tags.toml"
    flags = ["run", "--plant", plant, "--tags", str(tags), "--endpoint", "opc.tcp://127.0.0.1:4999/x/",
             "--url", "mqtt://127.0.0.1:1999", "--audit", str(tmp_path / "a.db"), "--controller", "baseline",
             "--duration-h", "5", "--listen", "127.0.0.1:9999"]
    cfg = daemon_config(_parser().parse_args(flags), Settings.build())
    assert getattr(cfg, plant).tags == tags
    assert cfg.opcua.endpoint == "opc.tcp://127.0.0.1:4999/x/" and cfg.mqtt.url == "mqtt://127.0.0.1:1999"
    assert cfg.audit.db == tmp_path / "a.db"
    assert (cfg.daemon.plant, cfg.daemon.controller, cfg.daemon.duration_h, cfg.daemon.listen) == (
        plant, "baseline", 5.0, "127.0.0.1:9999")
    without = daemon_config(_parser().parse_args(flags[:3] + flags[5:]), Settings.build())
    assert without.model_dump() | {plant: {}} == cfg.model_dump() | {plant: {}}  # --tags changes only the tags


def test_tags_on_a_plant_that_takes_none_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--plant", "sim", "--tags", "x.toml", "--duration-h", "1"]) == 3
    assert "--tags x.toml: plant 'sim' takes no tag map" in capsys.readouterr().err
