"""The twin in-process behind the plant port: the embedded default, and the reference run."""

from __future__ import annotations

import asyncio
from typing import Any

from kernel.contracts import Observation, Setpoints
from kernel.errors import SetpointError, WriteRejected
from twin.lockstep import LockstepPlant


class SimPort:
    """``speed`` 0 steps as soon as asked (lockstep); 900 makes 15 plant minutes last 1 s."""

    name = "sim"
    reads_stop_levels = True  # the twin holds the command it was given

    def __init__(self, plant: LockstepPlant, speed: float = 0.0) -> None:
        self.plant = plant
        self.speed = speed

    async def connect(self) -> None:
        return None

    async def observe(self) -> Observation:
        return self.plant.observe()

    async def write(self, setpoints: Setpoints) -> Setpoints:
        try:
            self.plant.apply(setpoints)
        except SetpointError as exc:
            raise WriteRejected(str(exc)) from exc
        return self.plant.held([sp.id for sp in setpoints.pumps])

    async def step(self) -> bool:
        if self.speed > 0:
            await asyncio.sleep(self.plant.setup.step_s / self.speed)
        self.plant.step()
        return not self.plant.done

    def restore_timers(self, timers: dict[str, dict[str, Any]]) -> bool:
        return False  # the twin keeps its own timers

    async def close(self) -> None:
        return None
