"""From a plan's group counts and flows to individual pumps and frequencies.

Within a group the pumps are interchangeable to the optimiser, but not to the plant: the
calibrated pumps of one type differ by up to 7 % in energy per m3. So the choice here ranks
them (``rank``, lower runs first): start the best rested pump, stop the worst free one. The
default rank is run hours alone (wear). The group frequency is then solved at the measured
level for the planned flow.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from controller.milp import Array, Group, Ints
from controller.model import StationModel
from kernel.contracts import PumpSetpoint, Setpoints, Telemetry
from kernel.site import Rules


def choose_pumps(tel: Telemetry, group: Group, count: int, rules: Rules,
                 rank: Callable[[int], float] | None = None, swap_eur: float | None = None,
                 slack_s: float = 1.0) -> list[int]:
    """The group's pumps to run. With ``swap_eur`` and the count unchanged, a free running pump
    hands over to a rested one that ranks better by more than that (a stop and a start)."""
    key = rank or (lambda i: tel.pumps[i].run_hours_h)
    on = [i for i in group.members if tel.pumps[i].status.is_on]
    rested = sorted((i for i in group.members if i not in on
                     and tel.pumps[i].time_in_state_s + slack_s >= rules.min_off_s), key=key)
    free = sorted((i for i in on if tel.pumps[i].time_in_state_s + slack_s >= rules.min_on_s), key=lambda i: -key(i))
    if count > len(on):
        return on + rested[:count - len(on)]
    if count < len(on):
        drop = set(free[:len(on) - count])
        return [i for i in on if i not in drop]
    if swap_eur is not None and count and free and rested and key(free[0]) - key(rested[0]) > swap_eur:
        return [rested[0] if i == free[0] else i for i in on]
    return on


@dataclass(frozen=True)
class Preference:
    """What dispatch weighs beyond run hours (``cost_rank``), from the plan."""

    price_h: tuple[float, ...]  # per pump: its group's planned run, price summed over hours (EUR/kWh x h)
    run_hour_eur: float  # per run hour already on the pump (wear balance)
    swap_eur: float  # a hand-over costs a stop and a start
    swappable: frozenset[str]  # groups whose running pump may hand over to a rested one now


def cost_rank(tel: Telemetry, model: StationModel, prefer: Preference, level_m: float) -> Callable[[int], float]:
    """EUR to prefer a pump by: its energy on its group's planned run at the group's typical
    flow (the flow is the plan's, so only energy per m3 tells the pumps apart), plus
    ``run_hour_eur`` per hour it has run. A pump cheaper by a gain runs until it leads the
    others by gain / ``run_hour_eur`` hours, then they take turns. At prices at or under zero
    only wear counts."""
    rules = model.site.rules
    freq = 0.5 * (rules.min_freq_hz + rules.max_freq_hz)
    types = [p.type for p in model.site.pumps]
    points = [model.pump_flow_power(i, freq, level_m) for i in range(len(types))]
    typical = {t: float(np.mean([q for (q, _), u in zip(points, types, strict=True) if u == t])) for t in types}

    def rank(i: int) -> float:
        q, p = points[i]
        kwh = p / q * typical[types[i]] if q > 0 else 0.0
        return max(prefer.price_h[i], 0.0) * kwh + prefer.run_hour_eur * tel.pumps[i].run_hours_h
    return rank


def dispatch(tel: Telemetry, model: StationModel, groups: Sequence[Group], counts: Sequence[int] | Ints,
             flows_m3h: Sequence[float] | Array, level_m: float | None = None,
             prefer: Preference | None = None) -> Setpoints:
    """``level_m``: the level the flows are solved at; the step's expected mean level is better
    than the level now, since at low levels flow falls fast as the tunnel drains. Without
    ``prefer`` the pumps of a group are ranked by run hours alone and never hand over."""
    rules = model.site.rules
    level = tel.level_m if level_m is None else level_m
    rank = None if prefer is None else cost_rank(tel, model, prefer, level)
    freq: dict[int, float] = {}
    for group, count, flow in zip(groups, counts, flows_m3h, strict=True):
        swap = prefer.swap_eur if prefer is not None and group.name in prefer.swappable else None
        chosen = choose_pumps(tel, group, int(count), rules, rank, swap)
        f = model.freq_for_flow(chosen, float(flow), level) if chosen else 0.0
        freq.update({i: f for i in chosen})
    return Setpoints(pumps=tuple(
        PumpSetpoint(id=p.id, on=i in freq, freq_hz=round(freq[i], 3) if i in freq else 0.0)
        for i, p in enumerate(tel.pumps)))
