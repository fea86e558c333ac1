"""From a plan's group counts and flows to individual pumps and frequencies.

Within a group the pumps are interchangeable to the optimiser, so the choice here is
about wear: start the rested pump with the fewest run hours, stop the free one with the
most. The group frequency is then solved at the measured level for the planned flow.
"""

from __future__ import annotations

from collections.abc import Sequence

from controller.milp import Array, Group, Ints
from controller.model import StationModel
from tunneltwin.contracts import PumpSetpoint, Setpoints, Telemetry
from tunneltwin.site import Rules


def choose_pumps(tel: Telemetry, group: Group, count: int, rules: Rules, slack_s: float = 1.0) -> list[int]:
    on = [i for i in group.members if tel.pumps[i].status.is_on]
    if count > len(on):
        rested = [i for i in group.members if i not in on
                  and tel.pumps[i].time_in_state_s + slack_s >= rules.min_off_s]
        rested.sort(key=lambda i: tel.pumps[i].run_hours_h)
        return on + rested[:count - len(on)]
    if count < len(on):
        free = [i for i in on if tel.pumps[i].time_in_state_s + slack_s >= rules.min_on_s]
        free.sort(key=lambda i: -tel.pumps[i].run_hours_h)
        drop = set(free[:len(on) - count])
        return [i for i in on if i not in drop]
    return on


def dispatch(tel: Telemetry, model: StationModel, groups: Sequence[Group], counts: Sequence[int] | Ints,
             flows_m3h: Sequence[float] | Array, level_m: float | None = None) -> Setpoints:
    """``level_m``: the level the flows are solved at; the step's expected mean level is better
    than the level now, since at low levels flow falls fast as the tunnel drains."""
    rules = model.site.rules
    level = tel.level_m if level_m is None else level_m
    freq: dict[int, float] = {}
    for group, count, flow in zip(groups, counts, flows_m3h, strict=True):
        chosen = choose_pumps(tel, group, int(count), rules)
        f = model.freq_for_flow(chosen, float(flow), level) if chosen else 0.0
        freq.update({i: f for i in chosen})
    return Setpoints(pumps=tuple(
        PumpSetpoint(id=p.id, on=i in freq, freq_hz=round(freq[i], 3) if i in freq else 0.0)
        for i, p in enumerate(tel.pumps)))
