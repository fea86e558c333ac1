"""The controller interface every strategy implements (baseline, MPC, oracle)."""

from __future__ import annotations

from typing import Protocol

from tunneltwin.contracts import Observation, Setpoints


class Controller(Protocol):
    name: str

    def decide(self, obs: Observation) -> Setpoints:
        """One command per control interval, from what is measured and known now."""
        ...
