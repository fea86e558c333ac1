"""Small builders for our own types, shared by the tests."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from controller.base import Controller, Report
from controller.model import StationModel
from kernel.contracts import Observation, PumpStatus, PumpTelemetry, Setpoints, Telemetry
from kernel.site import Site

_MODELS: dict[int, StationModel] = {}


def station(site: Site) -> StationModel:
    """One station model per site object: building the operating grids takes a moment."""
    if id(site) not in _MODELS:
        _MODELS[id(site)] = StationModel(site)
    return _MODELS[id(site)]


T0 = datetime(2025, 1, 6, 12, 0)
LONG = 6 * 3600.0  # well past both 2 h timers


def telemetry(site: Site, level_m: float = 3.0, inflow_m3h: float = 4000.0,
              on: dict[str, float] | None = None, timers: dict[str, float] | None = None,
              unavailable: tuple[str, ...] = ()) -> Telemetry:
    model = station(site)
    on = {"1.2": 49.0} if on is None else on
    pumps = []
    for i, p in enumerate(site.pumps):
        running = p.id in on
        flow, power = model.pump_flow_power(i, on[p.id], level_m) if running else (0.0, 0.0)
        pumps.append(PumpTelemetry(
            id=p.id, status=PumpStatus.RUNNING if running else PumpStatus.OFF, freq_hz=on.get(p.id, 0.0),
            flow_m3h=flow, power_kw=power, run_hours_h=float(i), starts=0,
            time_in_state_s=(timers or {}).get(p.id, LONG),
            available=p.available and p.id not in unavailable))
    return Telemetry(time=T0, level_m=level_m, volume_m3=model.volume(level_m), inflow_m3h=inflow_m3h,
                     outflow_m3h=sum(x.flow_m3h for x in pumps), pumps=tuple(pumps))


def fake_controller(name: str, decide: Callable[[Observation], Setpoints]) -> Controller:
    """A controller that only decides: it forecasts and plans nothing, and ignores retuning."""

    class Fake:
        def __init__(self) -> None:
            self.name = name

        def decide(self, obs: Observation) -> Setpoints:
            return decide(obs)

        def retune(self, site: Site) -> None:
            return None

        def reprice(self, smooth_eur_per_m3h: float | None) -> None:
            return None

        def report(self) -> Report:
            return Report()

        def recall(self, history: Sequence[Telemetry]) -> None:
            return None

    return Fake()


def sample(exposition: str, name: str, **labels: str) -> float | None:
    """One sample's value in a Prometheus text exposition, by name and (some of) its labels."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(exposition):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return None
