"""The step handshake both served simulators speak, written once: a daemon asks for step
n + 1 after step n; the simulator applies the setpoints it holds, runs one interval and
publishes. With a speed, wall time steps it instead (``speed`` 900: 15 plant minutes a second)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog

from kernel.contracts import Setpoints
from kernel.errors import ScenarioEnded, SetpointError
from twin.lockstep import LockstepPlant

log = structlog.get_logger()


class Stepper:
    def __init__(self, plant: LockstepPlant, held: Callable[[], Awaitable[Setpoints]],
                 publish: Callable[[], Awaitable[None]], speed: float = 0.0) -> None:
        self.plant, self.held, self.publish, self.speed = plant, held, publish, speed
        self._lock = asyncio.Lock()

    def refuses(self, sp: Setpoints) -> SetpointError | None:
        """Like a PLC, what the drive cannot carry out is refused (the error says why)."""
        try:
            self.plant.twin.validate(sp)
        except SetpointError as exc:
            log.warning("simulator refused setpoints", error=str(exc))
            return exc
        return None

    async def step_to(self, n: int) -> None:
        async with self._lock:
            if n != self.plant.k + 1:
                log.warning("step request out of sequence", requested=n, done=self.plant.k)
                return
            await self._advance()

    async def wallclock(self) -> None:
        while not self.plant.done:
            await asyncio.sleep(self.plant.setup.step_s / self.speed)
            async with self._lock:
                await self._advance()

    async def _advance(self) -> None:
        """Apply what the simulator holds, run one interval, publish the new state."""
        try:
            self.plant.apply(await self.held())
            self.plant.step()
        except (ScenarioEnded, SetpointError) as exc:
            log.warning("simulator did not step", error=str(exc))
            return
        await self.publish()
