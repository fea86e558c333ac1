"""The controller interface every strategy implements (baseline, MPC, oracle), and what a
controller reports of its last decision: the daemon, replay and the reports read this and
nothing else of a controller."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from controller.milp import Problem
from kernel.contracts import Observation, Setpoints, Telemetry
from kernel.site import Site


@dataclass(frozen=True)
class Override:
    """The safety supervisor changed a command: which rule, which pump, and how."""

    time: datetime
    rule: str
    pump_id: str | None
    detail: str


@dataclass(frozen=True)
class PlanView:
    """The plan behind the last decision, per step from ``start``: what SCADA is shown."""

    start: datetime
    step_s: float
    level_m: tuple[float, ...]
    outflow_m3h: tuple[float, ...]
    power_kw: tuple[float, ...]
    status: str
    running_by_group: dict[str, tuple[int, ...]] = field(default_factory=dict)  # pumps on per step, by kind


@dataclass(frozen=True)
class Report:
    """What a controller says of its last decision. Empty fields: it has nothing of that kind
    (the rule-based baseline forecasts nothing and plans nothing)."""

    source: str | None = None  # who decided: "mpc", or "baseline" when the solver gave no plan
    status: str | None = None  # the solver's status
    inflow_forecast_m3h: tuple[float, ...] | None = None  # per step from now; None: it does not forecast
    inflow_quantiles_m3h: dict[float, tuple[float, ...]] | None = None  # its spread: quantile -> per step
    previous_forecast_m3h: float | None = None  # the decision before this one, for the interval just ended
    plan: PlanView | None = None
    overrides: tuple[Override, ...] = ()  # the supervisor's changes to this decision
    problem: Problem | None = None  # the optimisation problem it solved last (``tunneltwin explain``)
    # an external inflow forecast at the last decision: "used", "stale" (it did not cover the
    # horizon), "unusable" (the plant served none this time, or a malformed one); None: none given
    external_forecast: str | None = None


class Controller(Protocol):
    name: str

    def decide(self, obs: Observation) -> Setpoints:
        """One command per control interval, from what is measured and known now."""
        ...

    def retune(self, site: Site) -> None:
        """Take a site with operator-tightened rules; history (forecasts, day records) is kept."""
        ...

    def reprice(self, smooth_eur_per_m3h: float | None) -> None:
        """The operator's price on F2 changes (EUR per m3/h) from the next decision; None: the
        configured one. A controller with no objective ignores it."""
        ...

    def report(self) -> Report:
        """What it planned and forecast at its last decision, and what the supervisor changed."""
        ...

    def recall(self, history: Sequence[Telemetry]) -> None:
        """Learn from readings taken before this run, oldest first (a restarted daemon's audit
        log): what each would have taught ``decide`` (forecasts, their errors, day records),
        with nothing decided. A controller that learns nothing ignores them."""
        ...
