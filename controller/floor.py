"""The floor: the level every interval must end above, and the stop levels the PLC keeps it with.

One model of the PLC's stop rule for the supervisor's check, the MPC's landing cap and its
problem: a pump given a stop level is stopped there by its PLC once past its minimum run,
never the last one (``StationModel.end_volume`` simulates it, as the twin's interlock does).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from controller.model import StationModel
from kernel.contracts import Setpoints, Telemetry
from kernel.site import Site


@dataclass(frozen=True)
class Floor:
    site: Site
    model: StationModel
    margin_m: float  # the interval must end this far above the minimum level

    def ends_above(self, freqs_hz: dict[int, float], volume_m3: float, inflow_m3h: float, hold: bool,
                   stops: Mapping[int, tuple[float, float]]) -> bool:
        """On this inflow the interval ends above the floor. Where the PLC will stop a pump at its
        stop level (``plc_stops``: the floor), the floor is the PLC's to keep, and the interval
        need only end at or above the minimum level, the stops simulated. Without that, no landing
        could start where the inflow is uncertain by more than the 0.55-0.7 m band holds (soak:
        03-04 missed its emptying by 0.4 mm, every landing stopped at 0.70 m).

        With ``hold`` the command must also be safe to hold: a refused or lost write leaves the
        plant on it for another interval, so two intervals must still end at or above the
        minimum level."""
        seconds = self.site.timing.control_interval_s
        minimum = self.model.volume(self.site.rules.min_level_m)
        mine = {i: x for i, x in stops.items() if i in freqs_hz}
        plc = len(freqs_hz) > 1 and any(wait_s < seconds for _, wait_s in mine.values())
        first = minimum if plc else self.volume_m3()
        return self.model.end_volume(freqs_hz, volume_m3, inflow_m3h, seconds, stops=mine) >= first and (
            not hold or self.model.end_volume(freqs_hz, volume_m3, inflow_m3h, 2 * seconds, stops=mine) >= minimum)

    def plc_stops(self, tel: Telemetry, stops_m: Mapping[str, float]) -> dict[int, tuple[float, float]]:
        """Pump index -> (stop volume, seconds until its PLC may stop it) for each pump given a stop
        level, as ``StationModel.end_volume`` simulates them. A pump off now would start, so its
        whole minimum run comes first."""
        min_on = self.site.rules.min_on_s
        out = {}
        for i, p in enumerate(tel.pumps):
            level = stops_m.get(p.id, 0.0)
            if level > 0.0:
                ran = p.time_in_state_s if p.status.is_on else 0.0
                out[i] = (self.model.volume(level), max(0.0, min_on - ran))
        return out

    def with_stops(self, tel: Telemetry, sp: Setpoints) -> Setpoints:
        """Each running pump stops by itself (its PLC, once past its minimum run, never the last
        one) under the floor, or under the level now if that is lower: a command held by refused
        writes no longer drains the tunnel (soak: six pumps from 1.31 m, the next two writes
        refused, the level at 0.06 m). Not higher: stop levels 0.1 m under the plan, up to the
        emptying level, stopped the dips that empty a creeping day (three recorded runs of 11
        missed an emptying by 1-10 mm). A plant whose tag map has no stop level ignores it."""
        stop = round(min(self.level_m(), tel.level_m), 3)
        return Setpoints(pumps=tuple(p.model_copy(update={"stop_below_m": stop}) if p.on else p for p in sp.pumps))

    def volume_m3(self) -> float:
        """The volume every interval must end above (the minimum level plus the floor margin)."""
        return self.model.volume(self.level_m())

    def level_m(self) -> float:
        """The minimum level plus the floor margin: also the stop level of every command's running pumps
        (``with_stops``)."""
        return self.site.rules.min_level_m + self.margin_m

    def freq_hz(self, on: list[int], volume_m3: float, inflow_m3h: float, hold: bool,
                      stops: Mapping[int, tuple[float, float]] | None = None) -> float:
        """The highest common frequency at which these pumps pass ``ends_above``. The MPC caps its
        emptying landing with it, so the two agree on what is safe."""
        lo, hi = self.site.rules.min_freq_hz, self.site.rules.max_freq_hz

        def ok(f: float) -> bool:
            return self.ends_above(dict.fromkeys(on, f), volume_m3, inflow_m3h, hold, stops or {})

        if ok(hi):
            return hi
        if not ok(lo):
            return lo
        return self.model.bisect_freq(ok, 12)[0]
