"""The controller interface every strategy implements (baseline, MPC, oracle)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from kernel.contracts import Observation, Setpoints
from kernel.site import Site


class Controller(Protocol):
    name: str

    def decide(self, obs: Observation) -> Setpoints:
        """One command per control interval, from what is measured and known now."""
        ...


@runtime_checkable
class Retunable(Controller, Protocol):
    def retune(self, site: Site) -> None:
        """Take a site with operator-tightened rules; history (forecasts, day records) is kept."""
        ...
