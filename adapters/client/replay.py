"""A recorded scenario as the plant, for shadow mode: what the controller would have done.

Telemetry comes row by row from the recorded data (what the gateway would have served);
setpoints are kept, not applied, since the recording already holds what was done. The
fields a recording lacks (starts, run hours, time in state) are derived as for a gateway.
"""

from __future__ import annotations

from typing import Any

from adapters.client.assemble import Assembler
from kernel.contracts import Observation, Setpoints
from kernel.recorded import RecordedData
from twin.lockstep import PlantSetup, known_prices


class ReplayPort:
    name = "replay"
    reads_stop_levels = True  # the read-back is the command itself

    def __init__(self, setup: PlantSetup, recorded: RecordedData) -> None:
        self.setup, self.data = setup, recorded
        self.assembler = Assembler(setup.site)
        self.k = 0
        self.decisions: list[tuple[int, Setpoints]] = []  # (recorded row, what we would have written)

    async def connect(self) -> None:
        return None

    async def observe(self) -> Observation:
        d, k = self.data, self.k
        station = {"time": d.timestamps[k], "level_m": float(d.level_m[k]), "volume_m3": float(d.volume_m3[k]),
                   "inflow_m3h": float(d.inflow_m3h[k]), "outflow_m3h": float(d.outflow_m3h[k])}
        pumps = {p: {"running": bool(d.pump_flow_m3h[p][k] > 0), "freq_hz": float(d.pump_freq_hz[p][k]),
                     "flow_m3h": float(d.pump_flow_m3h[p][k]), "power_kw": float(d.pump_power_kw[p][k])}
                 for p in self.setup.site.pump_ids}
        tel = self.assembler.telemetry(station, pumps)
        return Observation(telemetry=tel, prices=known_prices(self.setup, tel.time))

    async def write(self, setpoints: Setpoints) -> Setpoints:
        self.decisions.append((self.k, setpoints))
        return setpoints

    async def step(self) -> bool:
        self.k += 1
        return self.k < len(self.data) - 1

    def restore_timers(self, timers: dict[str, dict[str, Any]]) -> bool:
        self.assembler.seed(timers)
        return True

    async def close(self) -> None:
        return None

    def agreement(self) -> float:
        """Share of ticks where our set of running pumps is the one the plant ran next."""
        d = self.data
        same = sum({p.id for p in sp.pumps if p.on} == {p for p in d.pump_flow_m3h if d.pump_flow_m3h[p][k + 1] > 0}
                   for k, sp in self.decisions)
        return same / len(self.decisions) if self.decisions else 0.0
