"""The controller's own station model, built from the site config (never from the twin).

It answers: what flow and power does a set of pumps give at a frequency and level.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import numpy as np
from numpy.typing import NDArray

from kernel.physics import PlantPhysics
from kernel.site import Site

Array = NDArray[np.float64]
PLC_SCAN_S = 15.0  # stop levels are checked this often in ``end_volume`` (the twin's PLC: 5 s; coarser stops later)


class StationModel:
    def __init__(self, site: Site, physics: PlantPhysics | None = None) -> None:
        self.site = site
        self.physics = physics or PlantPhysics.from_site(site)
        self.ids = site.pump_ids
        self._grid = [self.physics.grids[p.type] for p in site.pumps]
        self._flow_scale = [p.flow_scale for p in site.pumps]
        self._power_scale = [p.power_scale for p in site.pumps]

    def pump_flow_power(self, index: int, freq_hz: float, level_m: float) -> tuple[float, float]:
        flow, power = self._grid[index].point(freq_hz, level_m)
        return flow * self._flow_scale[index], power * self._power_scale[index]

    def set_flow(self, on: list[int], freq_hz: float, level_m: float) -> float:
        return sum(self.pump_flow_power(i, freq_hz, level_m)[0] for i in on)

    def set_power(self, on: list[int], freq_hz: float, level_m: float) -> float:
        return sum(self.pump_flow_power(i, freq_hz, level_m)[1] for i in on)

    def freq_for_flow(self, on: list[int], target_m3h: float, level_m: float) -> float:
        """Common frequency in the rule band giving ``target_m3h``, clipped to the band."""
        rules = self.site.rules
        lo, hi = rules.min_freq_hz, rules.max_freq_hz
        if not on or self.set_flow(on, lo, level_m) >= target_m3h:
            return lo
        if self.set_flow(on, hi, level_m) <= target_m3h:
            return hi
        lo, hi = self.bisect_freq(lambda f: self.set_flow(on, f, level_m) < target_m3h, 30)
        return 0.5 * (lo + hi)

    def bisect_freq(self, below: Callable[[float], bool], steps: int) -> tuple[float, float]:
        """The rule band halved ``steps`` times towards where ``below`` (true at its low end,
        false at its high end) turns false: the bracket (lo, hi) left."""
        lo, hi = self.site.rules.min_freq_hz, self.site.rules.max_freq_hz
        for _ in range(steps):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if below(mid) else (lo, mid)
        return lo, hi

    def volume(self, level_m: float) -> float:
        return self.physics.geometry.volume(level_m)

    def level(self, volume_m3: float) -> float:
        return self.physics.geometry.level(volume_m3)

    def levels(self, volumes_m3: Array) -> Array:
        return self.physics.geometry.levels_of(volumes_m3)

    def level_reached(self, level_m: float, volume_m3: float, net_inflow_m3h: float, hours: float) -> float:
        """The level after ``hours`` of ``net_inflow_m3h`` (never below the level now, never over
        the tunnel's top): where an F2 limit is checked, since a pump lifts more as the level
        rises (less head) and a set just within the limit now goes over it in a storm."""
        top = float(self.physics.geometry.levels[-1])
        return max(level_m, min(self.level(volume_m3 + max(net_inflow_m3h, 0.0) * hours), top))

    def flow_of(self, freqs_hz: dict[int, float], level_m: float) -> float:
        """Station outflow with each listed pump at its own frequency."""
        return sum(self.pump_flow_power(i, f, level_m)[0] for i, f in freqs_hz.items())

    def band(self, index: int, levels_m: Array) -> tuple[Array, Array, Array, Array]:
        """Flow and power of one pump at the rule band's min and max frequency, per level.

        Vectorised over levels, for the optimiser's per-step coefficients.
        """
        grid = self._grid[index]
        rules = self.site.rules
        out = []
        for freq in (rules.min_freq_hz, rules.max_freq_hz):
            flow_row, power_row = grid.lookup_levels(freq)
            out.append(np.interp(levels_m, grid.level_m, flow_row) * self._flow_scale[index])
            out.append(np.interp(levels_m, grid.level_m, power_row) * self._power_scale[index])
        q_lo, p_lo, q_hi, p_hi = out
        return q_lo, q_hi, p_lo, p_hi

    def end_volume(self, freqs_hz: dict[int, float], volume_m3: float, inflow_m3h: float, seconds: float,
                   substeps: int = 15, stops: Mapping[int, tuple[float, float]] | None = None) -> float:
        """Volume after ``seconds`` with these pumps, integrating the level's effect on flow: near
        the bottom the flow falls within minutes as the tunnel drains.

        ``stops`` maps a pump to its stop volume and the seconds until its minimum run is done:
        the PLC stops it under that volume once the run is done, never the last pump running
        (twin.model.interlock). Near the bottom that is what keeps a deep landing safe."""
        if stops:
            substeps = max(substeps, math.ceil(seconds / PLC_SCAN_S))
        dt_s = seconds / substeps
        running = dict(freqs_hz)
        for n in range(substeps):
            out = self.flow_of(running, self.level(volume_m3))
            volume_m3 = max(volume_m3 + (inflow_m3h - out) * dt_s / 3600, 0.0)
            if stops:
                running = self._after_plc_stops(running, stops, volume_m3, (n + 1) * dt_s)
        return volume_m3

    def _after_plc_stops(self, running: dict[int, float], stops: Mapping[int, tuple[float, float]],
                         volume_m3: float, t_s: float) -> dict[int, float]:
        due = [i for i in running if i in stops and volume_m3 < stops[i][0] and t_s >= stops[i][1]]
        if len(due) == len(running) and due:  # the last pump stays: the one with the least flow
            level = self.level(volume_m3)
            due.remove(min(due, key=lambda i: self.pump_flow_power(i, running[i], level)[0]))
        return {i: f for i, f in running.items() if i not in due}

    def freq_to_land(self, on: list[int], target_m3: float, volume_m3: float, inflow_m3h: float,
                     seconds: float) -> float:
        """Common frequency in the rule band that ends the interval at ``target_m3`` (clipped)."""
        lo, hi = self.site.rules.min_freq_hz, self.site.rules.max_freq_hz
        if not on:
            return lo

        def end(f: float) -> float:
            return self.end_volume(dict.fromkeys(on, f), volume_m3, inflow_m3h, seconds)

        if end(hi) >= target_m3:
            return hi
        if end(lo) <= target_m3:
            return lo
        lo, hi = self.bisect_freq(lambda f: end(f) > target_m3, 12)
        return 0.5 * (lo + hi)

