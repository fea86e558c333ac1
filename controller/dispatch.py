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

from controller.milp import Array, Group, Ints, Plan, Problem, lands
from controller.model import StationModel
from controller.settings import MpcSettings
from controller.supervisor import Supervisor
from kernel.contracts import PumpSetpoint, Setpoints, Telemetry
from kernel.site import Rules, Site


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


class Dispatcher:
    """The MPC's first plan step on real pumps: ranked dispatch, the floor as stop levels, and
    a landing simulated over the interval so an emptying step rarely misses."""

    def __init__(self, site: Site, cfg: MpcSettings, model: StationModel, supervisor: Supervisor) -> None:
        self.site, self.cfg, self.model, self.supervisor = site, cfg, model, supervisor
        self.step_s = site.timing.control_interval_s
        self.step_h = self.step_s / 3600

    def step(self, tel: Telemetry, groups: tuple[Group, ...], counts: Ints, flows_m3h: Array,
             end_volume_m3: float, inflow_m3h: float, v_empty_m3: float,
             prefer: Preference | None = None) -> Setpoints:
        """A plan step on real pumps. On an emptying step, land it by simulating the interval
        (flow falls fast as the level nears the bottom), so a miss is rare."""
        mid = self.model.level(0.5 * (tel.volume_m3 + end_volume_m3))
        sp = self.with_stop_levels(tel, dispatch(tel, self.model, groups, counts, flows_m3h, mid, prefer))
        if not lands(end_volume_m3, v_empty_m3):
            return sp
        on = [i for i, p in enumerate(sp.pumps) if p.on]
        f = min(self.model.freq_to_land(on, v_empty_m3, tel.volume_m3, inflow_m3h, self.step_s),
                self._freq_above_floor(tel, sp, inflow_m3h))
        return Setpoints(pumps=tuple(p.model_copy(update={"freq_hz": round(f, 3)}) if p.on else p for p in sp.pumps))

    def preference(self, problem: Problem, plan: Plan) -> Preference:
        """How dispatch ranks a group's pumps (``cost_rank``): by energy over the group's planned
        run (from now while the plan keeps the count, at least a minimum run) and run hours. A
        running pump may hand over to a rested one only where the plan keeps the count for a
        minimum run and stays clear of the bottom: the new pump cannot be stopped for 2 h."""
        least = max(1, round(self.site.rules.min_on_s / self.step_s))
        clear = float(np.min(self.model.levels(plan.volumes_m3[:least]))) >= self.cfg.guard_level_m
        price_h = [0.0] * len(self.site.pumps)
        swappable = set()
        for g, group in enumerate(problem.groups):
            keep = plan.counts[g] >= max(int(plan.counts[g, 0]), 1)
            steps = len(keep) if keep.all() else int(np.argmin(keep))
            run_price_h = float(np.sum(problem.price_eur_per_kwh[:max(steps, least)])) * self.step_h
            for i in group.members:
                price_h[i] = run_price_h
            if clear and steps >= least:
                swappable.add(group.name)
        w = self.cfg.weights
        return Preference(tuple(price_h), w.run_hour_eur, 2 * w.switch_eur, frozenset(swappable))

    def with_stop_levels(self, tel: Telemetry, sp: Setpoints) -> Setpoints:
        """The floor as every running pump's stop level (``Floor.with_stops``), unless
        the plant takes none. Pumps inside their 2 h run go on (soak: three pumps started for a
        drawdown, held by two refused writes from 0.995 m, took the level to 0.31 m)."""
        return self.supervisor.floor.with_stops(tel, sp) if self.cfg.stop_levels else sp

    def _freq_above_floor(self, tel: Telemetry, sp: Setpoints, inflow_m3h: float) -> float:
        """The landing must not go under the floor if the inflow falls short: the band is
        only ~200 m3 deep, a few minutes of a forecast error in rain. So it lands for the
        supervisor's pessimistic inflow on the lower of forecast and measurement; a shortfall
        then ends the step above the band (try again) rather than under the minimum.

        It must also be safe to hold: a refused write leaves the plant on this command for
        another interval (the soak drained the tunnel to 0.0 m that way), so two intervals
        on the same inflow must still end at or above the minimum level. The command's stop
        levels are simulated as the PLC executes them (``Floor.ends_above``)."""
        on = [i for i, p in enumerate(sp.pumps) if p.on]
        stops = self.supervisor.floor.plc_stops(tel, {p.id: p.stop_below_m for p in sp.pumps if p.on})
        pessimistic = self.supervisor.band.low * min(inflow_m3h, tel.inflow_m3h)
        return self.supervisor.floor.freq_hz(on, tel.volume_m3, pessimistic, hold=True, stops=stops)
