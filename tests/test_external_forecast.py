"""An external inflow forecast served by the plant (a rain radar's, through the tag map's
[forecast] tags): across the wire on both transports, into the MPC, and its failures alarmed
and counted by the daemon while the learnt forecast decides."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from adapters.mqtt_link import MqttLink
from adapters.tagmap import Tag, TagMap
from controller.baseline import BaselineController
from controller.forecast import ExternalInflow
from controller.mpc import MpcController
from kernel.contracts import InflowForecast, Observation
from kernel.settings import CONFIG_DIR
from kernel.site import Site
from scenarios.replay import ReplaySetup
from scenarios.runner import with_perfect_forecast
from scenarios.scenario import load_scenario
from tests.plants import MQTT_TAGS, OPCUA_TAGS, Broker, mosquitto, served
from tunneltwin.daemon.decide import Decider
from tunneltwin.daemon.loop import Service
from tunneltwin.daemon.metrics import Metrics
from tunneltwin.daemon.stats import Stats
from twin.lockstep import LockstepPlant

FIELDS = ("time", "step_s", "inflow_m3h", "inflow_p10_m3h", "inflow_p90_m3h")
UNITS = {"time": "datetime", "step_s": "min", "inflow_m3h": "m3/h", "inflow_p10_m3h": "m3/h", "inflow_p90_m3h": "l/s"}


def _with_forecast_tags(tags: TagMap) -> TagMap:
    """The shipped map plus [forecast], in units other than ours (minutes, l/s) so conversion is tested."""
    if tags.transport == "mqtt":
        table = {f: Tag(topic="tunneltwin/forecast", field=f, unit=UNITS[f]) for f in FIELDS}
    else:
        table = {f: Tag(path=f"Forecast/{f}", unit=UNITS[f]) for f in FIELDS}
    return TagMap.model_validate({**tags.model_dump(), "forecast": {k: v.model_dump() for k, v in table.items()}})


TAGS = {"opcua": _with_forecast_tags(OPCUA_TAGS), "mqtt": _with_forecast_tags(MQTT_TAGS)}


@pytest.fixture(scope="module")
def day(site: Site) -> ReplaySetup:
    setup = load_scenario("storm", site, None, None, None)
    return dataclasses.replace(setup, inflow_m3h=setup.inflow_m3h[:96], price_eur_per_kwh=setup.price_eur_per_kwh[:96])


def _broker(kind: str, request: pytest.FixtureRequest) -> Broker | None:
    return request.getfixturevalue("broker") if kind == "mqtt" else None


async def _forget_retained(broker: Broker | None) -> None:
    """An earlier test's retained forecast message would still be served by the broker."""
    if broker is None:
        return
    link = MqttLink("127.0.0.1", broker.port, "tt-cleaner")
    await link.connect()
    try:
        await link.publish("tunneltwin/forecast", "", retain=True)
    finally:
        await link.close()


async def _first_observation(kind: str, setup: ReplaySetup,
                             request: pytest.FixtureRequest) -> tuple[Observation, Observation]:
    """The daemon's first reading of a served plant (with the [forecast] map), and the twin's own."""
    async with served(kind, setup, _broker(kind, request), tags=TAGS[kind]) as (port, plant):
        await port.connect()
        try:
            return await port.observe(), plant.observe()
        finally:
            await port.close()


def _p90(setup: ReplaySetup) -> ReplaySetup:
    """The perfect forecast with a P10 and P90 band around it (so quantiles cross the wire)."""
    perfect = with_perfect_forecast(setup).inflow_forecast
    assert perfect is not None
    band = {0.1: perfect.values * 0.8, 0.9: perfect.values * 1.25}
    return dataclasses.replace(setup, inflow_forecast=ExternalInflow(perfect.times, perfect.values, band))


@pytest.mark.parametrize("kind", ["opcua", "mqtt"])
async def test_a_served_forecast_crosses_the_wire_with_its_quantiles(kind: str, day: ReplaySetup,
                                                                    request: pytest.FixtureRequest) -> None:
    setup = _p90(day)
    obs, truth = await _first_observation(kind, setup, request)
    assert setup.inflow_forecast is not None
    expected = setup.inflow_forecast.ahead(obs.telemetry.time, setup.step_s, 192)
    assert obs.inflow_forecast_problem is None and expected is not None
    got = obs.inflow_forecast
    assert got is not None and got.start == expected.start and got.step_s == pytest.approx(900)
    assert got.inflow_m3h == pytest.approx(expected.inflow_m3h, rel=1e-9)
    assert set(got.quantiles) == {0.1, 0.9}
    assert got.quantiles[0.9] == pytest.approx(expected.quantiles[0.9], rel=1e-6)  # l/s on the wire
    assert obs.telemetry == truth.telemetry  # the forecast does not disturb the rest


@pytest.mark.parametrize("kind", ["opcua", "mqtt"])
async def test_a_forecast_the_plant_does_not_serve_is_a_problem_not_a_failed_read(
        kind: str, day: ReplaySetup, request: pytest.FixtureRequest) -> None:
    await _forget_retained(_broker(kind, request))
    obs, _truth = await _first_observation(kind, day, request)
    assert obs.inflow_forecast is None
    assert obs.inflow_forecast_problem is not None and "[forecast]" in obs.inflow_forecast_problem
    assert obs.telemetry.level_m > 0  # telemetry and prices read as ever


async def test_a_malformed_forecast_message_names_what_is_wrong(day: ReplaySetup, broker: Broker) -> None:
    start = day.start.isoformat()
    bad = {"time": start, "step_s": 15, "inflow_m3h": [3000.0, 3100.0], "inflow_p10_m3h": [2500.0, 3200.0],
           "inflow_p90_m3h": [900.0, 800.0]}  # P90 is in l/s: 3,240 and 2,880 m3/h, under P10 at the second step
    async with served("mqtt", day, broker, tags=TAGS["mqtt"]) as (port, _plant):
        await port.connect()
        sender = MqttLink("127.0.0.1", broker.port, "tt-radar")
        await sender.connect()
        try:
            await sender.publish("tunneltwin/forecast", json.dumps(bad), retain=True)
            for _ in range(100):
                obs = await port.observe()
                if obs.inflow_forecast_problem and "quantile" in obs.inflow_forecast_problem:
                    break
                await asyncio.sleep(0.02)
            assert obs.inflow_forecast is None
            assert "step 1: quantile 0.1 (3200.0 m3/h) is over quantile 0.9" in (obs.inflow_forecast_problem or "")
            await sender.publish("tunneltwin/forecast", json.dumps({**bad, "inflow_m3h": "lots"}), retain=True)
            for _ in range(100):
                obs = await port.observe()
                if "lots" in (obs.inflow_forecast_problem or ""):
                    break
                await asyncio.sleep(0.02)
            assert "[forecast] inflow_m3h" in (obs.inflow_forecast_problem or "")
        finally:
            await sender.publish("tunneltwin/forecast", "", retain=True)
            await sender.close()
            await port.close()


def test_a_forecast_is_checked_where_it_enters() -> None:
    from datetime import datetime

    t = datetime(2026, 1, 1)
    with pytest.raises(ValidationError, match=r"quantile 0\.9 has 1 values, inflow_m3h 2"):
        InflowForecast(start=t, step_s=900, inflow_m3h=(1.0, 2.0), quantiles={0.9: (3.0,)})
    with pytest.raises(ValidationError, match=r"inflow_m3h: a negative inflow -2\.0"):
        InflowForecast(start=t, step_s=900, inflow_m3h=(1.0, -2.0))
    with pytest.raises(ValidationError, match=r"quantile 1\.5 is not a probability"):
        InflowForecast(start=t, step_s=900, inflow_m3h=(1.0, 2.0), quantiles={1.5: (3.0, 3.0)})
    with pytest.raises(ValidationError, match=r"\[forecast\] needs both 'time' and 'inflow_m3h'"):
        TagMap.model_validate({**MQTT_TAGS.model_dump(), "forecast": {
            "time": {"topic": "f", "field": "t", "unit": "datetime"}}})


def _obs(setup: ReplaySetup, forecast: InflowForecast | None, problem: str | None = None) -> Observation:
    obs = LockstepPlant(setup).observe()
    return obs.model_copy(update={"inflow_forecast": forecast, "inflow_forecast_problem": problem})


def test_the_mpc_plans_on_a_served_forecast_and_falls_back_when_it_is_short_or_unusable(day: ReplaySetup) -> None:
    setup = _p90(day)
    assert setup.inflow_forecast is not None
    now = day.start
    full = setup.inflow_forecast.ahead(now, day.step_s, 192)
    assert full is not None
    mpc = MpcController(day.site)
    mpc.decide(_obs(day, full))
    said = mpc.report()
    assert said.external_forecast == "used"
    assert said.inflow_forecast_m3h == pytest.approx(full.inflow_m3h[:mpc.steps])
    assert said.inflow_quantiles_m3h is not None
    assert said.inflow_quantiles_m3h[0.9] == pytest.approx(full.quantiles[0.9][:mpc.steps])

    short = full.model_copy(update={"inflow_m3h": full.inflow_m3h[:40], "quantiles": {}})  # 10 h of a 24 h horizon
    mpc = MpcController(day.site)
    mpc.decide(_obs(day, short))
    assert mpc.report().external_forecast == "stale" and mpc.external_misses == 1

    mpc = MpcController(day.site)
    mpc.decide(_obs(day, None, "[forecast] inflow_m3h read 'lots'"))
    said = mpc.report()
    assert said.external_forecast == "unusable" and mpc.external_misses == 1
    assert said.inflow_forecast_m3h != pytest.approx(full.inflow_m3h[:mpc.steps])  # the learnt one


def test_the_daemon_alarms_when_the_external_forecast_fails_and_when_it_returns(site: Site) -> None:
    raised: list[tuple[str, str]] = []
    stats = Stats(step_h=0.25)
    baseline = BaselineController(site)
    decider = Decider(baseline, baseline, site, 10.0, stats, Metrics(site.name), lambda k, m: raised.append((k, m)))
    for state, problem in [(None, None), ("used", None), ("unusable", "[forecast] time: nothing received"),
                           ("unusable", "[forecast] time: nothing received"), ("used", None), ("stale", None),
                           ("stale", None), ("used", None)]:
        decider.heed_forecast(state, problem)
    assert [k for k, _ in raised] == ["external_forecast_unusable", "external_forecast_restored",
                                      "external_forecast_stale", "external_forecast_restored"]
    assert "nothing received" in raised[0][1] and "internal forecast decides" in raised[0][1]
    assert stats.forecast_fallbacks == 4
    counted = decider.metrics.registry.get_sample_value("tunneltwin_external_forecast_fallbacks_total",
                                                        {"station": site.name, "reason": "stale"})
    assert counted == 2


async def test_a_daemon_over_mqtt_with_no_forecast_served_decides_on_its_own_and_alarms_once(
        day: ReplaySetup, broker: Broker) -> None:
    await _forget_retained(broker)
    async with served("mqtt", day, broker, tags=TAGS["mqtt"]) as (port, _plant):
        mpc = MpcController(day.site)
        service = Service(port, mpc, BaselineController(day.site), day.site, max_ticks=3)
        stats = await service.run()
    kinds = [a["kind"] for a in service.alerts]
    assert kinds.count("external_forecast_unusable") == 1
    assert stats.ticks == 3 and stats.forecast_fallbacks == 3 and stats.fallbacks == 0


async def test_a_daemon_over_opcua_plans_on_the_served_forecast(day: ReplaySetup) -> None:
    setup = with_perfect_forecast(day)
    async with served("opcua", setup, tags=TAGS["opcua"]) as (port, plant):
        mpc = MpcController(day.site)
        service = Service(port, mpc, BaselineController(day.site), day.site, max_ticks=3)
        stats = await service.run()
        said = mpc.report()
    assert stats.forecast_fallbacks == 0 and not [a for a in service.alerts if "forecast" in a["kind"]]
    assert said.external_forecast == "used"
    truth = setup.inflow_m3h[plant.k - 1:plant.k - 1 + 8]  # the perfect forecast is the scenario's inflow
    assert said.inflow_forecast_m3h is not None
    assert list(said.inflow_forecast_m3h[:8]) == pytest.approx(list(truth), rel=1e-6)


@pytest.mark.parametrize("forecast", ["perfect", None])
def test_simulate_serves_a_forecast_that_run_plans_on(tmp_path: Path, forecast: str | None) -> None:
    """The two commands: `simulate --inflow-forecast perfect` publishes it on the map's [forecast]
    topics; `run --tags` with that map plans on it, or says on how many decisions it could not."""
    tags = tmp_path / "tags.toml"
    text = (CONFIG_DIR / "tags-mqtt.toml").read_text()
    tags.write_text(text[:text.index("# [forecast]")] + text[text.index("# [forecast]"):].replace("# ", ""))
    with mosquitto("allow_anonymous true\n") as broker:  # its own: another run's retained clock is later
        run = _simulate_and_run(broker, tags, forecast)
    assert run.returncode == 0, run.stderr
    assert "4 ticks" in run.stdout
    if forecast:
        assert "external inflow forecast" not in run.stdout
    else:
        assert "external inflow forecast not used on 4 decision(s)" in run.stdout


def _simulate_and_run(broker: Broker, tags: Path, forecast: str | None) -> subprocess.CompletedProcess[str]:
    sim = subprocess.Popen([sys.executable, "-m", "tunneltwin.cli", "simulate", "storm", "--mqtt", broker.url,
                            "--mqtt-tags", str(tags)] + (["--inflow-forecast", forecast] if forecast else []),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        run = subprocess.run([sys.executable, "-m", "tunneltwin.cli", "run", "--plant", "mqtt", "--url", broker.url,
                              "--tags", str(tags), "--controller", "mpc", "--duration-h", "1"],
                             capture_output=True, text=True, timeout=120)
    finally:
        sim.terminate()
        sim.communicate(timeout=30)
    return run
