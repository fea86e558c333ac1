"""Safety supervisor: the last check between any controller and the plant.

It trusts nothing upstream. Every setpoint is checked against the hard rules and the
current telemetry, and what would break a rule is overridden, logged and counted. The
order matters: availability and timers first (they decide which pumps *can* run), then
the station limits, which only ever slow pumps down or shed the ones that may stop.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import structlog

from controller.base import Override
from controller.floor import Floor
from controller.model import StationModel
from kernel.contracts import PumpSetpoint, Setpoints, Telemetry
from kernel.site import Rules, Site

log = structlog.get_logger("tunneltwin.supervisor")
TIMER_SLACK_S = 1.0  # clock jitter tolerated on the min on/off timers


@dataclass(frozen=True)
class SupervisorSettings:
    floor_margin_m: float = 0.05  # the interval must end this far above the minimum level
    ceiling_margin_m: float = 0.3  # the interval must end this far below the alarm level


@dataclass(frozen=True)
class InflowBand:
    """How far the inflow may move within one interval, as factors on the measured inflow: the
    floor is checked on ``low`` x inflow, the ceiling and F2 on ``high`` x inflow. The MPC sets
    it every interval from its learnt spread (the floor_risk and 1 - storm_risk quantiles one
    interval ahead); the default is the rule-based controller's fixed band, close to that
    spread's P5 and P95 in dry weather (0.80 and 1.20 in the prior). ``ahead_high_m3h``: the
    forecast's own high side for the interval (its 1 - storm_risk quantile); a forecast that
    knows the inflow rises tightens the ceiling and F2 checks, one gone wrong cannot loosen them.
    (e21 with a perfect forecast: 14,142 m3/h measured, 16,357 and 18,001 coming; the level
    rose past the one the F2 check assumed, and F2 reached 16,003.8 m3/h.)"""

    low: float = 0.85
    high: float = 1.2
    ahead_high_m3h: float = 0.0

    def high_m3h(self, measured_m3h: float) -> float:
        """The inflow the ceiling and F2 checks hold against."""
        return max(self.high * measured_m3h, self.ahead_high_m3h)


@dataclass
class Supervisor:
    site: Site
    model: StationModel
    cfg: SupervisorSettings = field(default_factory=SupervisorSettings)
    band: InflowBand = field(default_factory=InflowBand)
    overrides: deque[Override] = field(default_factory=lambda: deque(maxlen=10_000))  # counts keep the totals
    counts: Counter[str] = field(default_factory=Counter)

    def check(self, tel: Telemetry, sp: Setpoints, hold: bool = False) -> Setpoints:
        """Return setpoints that keep every hard rule as far as the plant's state allows.

        ``hold`` applies the hold check to this command whatever the settings say: the
        baseline's fallback commands get it, since nothing plans their landing. It covers one
        refused write; the soak's 0.70 -> 0.29 m under the baseline came after two."""
        want = self._wanted(tel, sp)
        want = self._availability(tel, want)
        want = self._frequency(tel, want)
        want = self._timers(tel, want)
        want = self._at_least_one(tel, want)
        want = self._max_outflow(tel, want)
        stops = self._stop_levels(tel, sp)
        want = self._floor(tel, want, hold, self.floor.plc_stops(tel, stops))
        want = self._ceiling(tel, want)
        return Setpoints(pumps=tuple(
            PumpSetpoint(id=p.id, on=i in want, freq_hz=round(want[i], 3) if i in want else 0.0,
                         stop_below_m=stops.get(p.id, 0.0) if i in want else 0.0)
            for i, p in enumerate(tel.pumps)))

    # -- helpers ---------------------------------------------------------------

    def _note(self, tel: Telemetry, rule: str, pump: int | None, detail: str) -> None:
        pid = tel.pumps[pump].id if pump is not None else None
        self.overrides.append(Override(tel.time, rule, pid, detail))
        self.counts[rule] += 1
        log.warning("override", rule=rule, pump=pid, detail=detail, time=tel.time.isoformat())

    def _wanted(self, tel: Telemetry, sp: Setpoints) -> dict[int, float]:
        """Pump index -> frequency for every pump that should run (absent pumps keep state)."""
        given = sp.as_dict()
        want: dict[int, float] = {}
        for i, p in enumerate(tel.pumps):
            cmd = given.get(p.id)
            if cmd is None:
                if p.status.is_on:
                    want[i] = p.freq_hz or self.site.rules.min_freq_hz
            elif cmd.on:
                want[i] = cmd.freq_hz
        for unknown in set(given) - {p.id for p in tel.pumps}:
            self._note(tel, "unknown_pump", None, f"setpoint for unknown pump {unknown!r} dropped")
        return want

    def _may_stop(self, tel: Telemetry, i: int) -> bool:
        p = tel.pumps[i]
        return not p.status.is_on or p.time_in_state_s + TIMER_SLACK_S >= self.site.rules.min_on_s

    def _may_start(self, tel: Telemetry, i: int) -> bool:
        p = tel.pumps[i]
        return p.available and (p.status.is_on
                                or p.time_in_state_s + TIMER_SLACK_S >= self.site.rules.min_off_s)

    def _flow(self, tel: Telemetry, want: dict[int, float]) -> float:
        return self.model.flow_of(want, tel.level_m)

    def _stop_levels(self, tel: Telemetry, sp: Setpoints) -> dict[str, float]:
        """Stop levels pass up to the emptying level and the level now: one higher would stop
        pumps at once, far from the bottom, where a rising level needs them. Lowering one by
        under a millimetre (a level rounded to mm) is not noted as an override."""
        top = min(self.site.rules.emptying_level_m, tel.level_m)
        index = {p.id: i for i, p in enumerate(tel.pumps)}
        out = {}
        for p in sp.pumps:
            out[p.id] = min(p.stop_below_m, top)
            if p.stop_below_m > top + 1e-3 and p.id in index:
                self._note(tel, "stop_level", index[p.id], f"stop level {p.stop_below_m:.2f} m lowered to {top:.2f} m")
        return out

    # -- the rules, in order ---------------------------------------------------

    def _availability(self, tel: Telemetry, want: dict[int, float]) -> dict[int, float]:
        for i in [i for i in want if not tel.pumps[i].available]:
            self._note(tel, "availability", i, "pump is out of service: stopped")
            del want[i]
        return want

    def _frequency(self, tel: Telemetry, want: dict[int, float]) -> dict[int, float]:
        lo, hi = self.site.rules.min_freq_hz, self.site.rules.max_freq_hz
        for i, f in want.items():
            if not lo <= f <= hi:
                want[i] = min(max(f, lo), hi)
                self._note(tel, "frequency", i, f"{f:.2f} Hz clipped to {want[i]:.2f} Hz")
        return want

    def _timers(self, tel: Telemetry, want: dict[int, float]) -> dict[int, float]:
        for i, p in enumerate(tel.pumps):
            if p.status.is_on and i not in want and not self._may_stop(tel, i) and p.available:
                want[i] = max(p.freq_hz, self.site.rules.min_freq_hz)
                self._note(tel, "min_on", i, f"on for {p.time_in_state_s / 60:.0f} min: kept running")
            elif not p.status.is_on and i in want and not self._may_start(tel, i):
                del want[i]
                self._note(tel, "min_off", i, f"off for {p.time_in_state_s / 60:.0f} min: kept off")
        return want

    def _at_least_one(self, tel: Telemetry, want: dict[int, float]) -> dict[int, float]:
        needed = self.site.rules.min_pumps_on
        while len(want) < needed:
            pick = self._next_start(tel, want, ignore_timer=True)
            if pick is None:
                break
            want[pick] = self.site.rules.min_freq_hz
            self._note(tel, "min_pumps_on", pick, "no pump would run: started")
        return want

    def _next_start(self, tel: Telemetry, want: dict[int, float], ignore_timer: bool) -> int | None:
        """Best pump to start: one already running, else rested, else (if allowed) any available."""
        free = [i for i, p in enumerate(tel.pumps) if i not in want and p.available]
        ready = [i for i in free if self._may_start(tel, i)]
        pool = ready or (free if ignore_timer else [])
        if not pool:
            return None
        return min(pool, key=lambda i: (not tel.pumps[i].status.is_on, tel.pumps[i].run_hours_h))

    def _slow_to(self, tel: Telemetry, want: dict[int, float], cap_m3h: float) -> dict[int, float]:
        """Common frequency ceiling so the station delivers at most ``cap_m3h``."""
        on = list(want)
        f_cap = self.model.freq_for_flow(on, cap_m3h, tel.level_m)
        return {i: min(f, f_cap) for i, f in want.items()}

    def _shed(self, tel: Telemetry, want: dict[int, float], ok: Callable[[dict[int, float]], bool], rule: str,
              detail: str) -> dict[int, float]:
        """Even at minimum speed too much: stop the pumps that may stop, biggest first, until ``ok``."""
        order = sorted(want, key=lambda i: -self.model.pump_flow_power(i, want[i], tel.level_m)[0])
        for i in order:
            if ok(want) or len(want) <= self.site.rules.min_pumps_on:
                break
            if self._may_stop(tel, i):
                del want[i]
                self._note(tel, rule, i, detail)
        return want

    def _limit(self, tel: Telemetry, want: dict[int, float], cap_m3h: float, rule: str) -> dict[int, float]:
        before = self._flow(tel, want)
        if before <= cap_m3h:
            return want
        want = self._slow_to(tel, want, cap_m3h)
        self._note(tel, rule, None, f"outflow {before:.0f} m3/h over {cap_m3h:.0f}: slowed")
        return self._shed(tel, want, lambda w: self._flow(tel, w) <= cap_m3h, rule,
                          f"stopped to keep outflow under {cap_m3h:.0f} m3/h")

    def _max_outflow(self, tel: Telemetry, want: dict[int, float]) -> dict[int, float]:
        """F2 is checked at the highest level the interval may reach (``rising``)."""
        return self._limit(rising(self, tel), want, self.site.rules.max_outflow_m3h, "max_outflow")

    def _floor(self, tel: Telemetry, want: dict[int, float], hold: bool,
               stops: Mapping[int, tuple[float, float]]) -> dict[int, float]:
        """The interval must end above the floor on a pessimistic inflow (``ends_above``). Simulated
        over the interval, since near the bottom the pumps' flow falls as the level does."""
        inflow = self.band.low * tel.inflow_m3h

        floor = self.floor

        def ok(w: dict[int, float]) -> bool:
            return floor.ends_above(w, tel.volume_m3, inflow, hold, stops)

        if not want or ok(want):
            return want
        f = floor.freq_hz(list(want), tel.volume_m3, inflow, hold, stops)
        want = {i: min(x, f) for i, x in want.items()}
        floor_m = floor.level_m()
        self._note(tel, "min_level", None, f"would end under {floor_m:.2f} m: slowed to {f:.2f} Hz")
        return self._shed(tel, want, ok, "min_level", "stopped to keep the level above the floor")

    @property
    def floor(self) -> Floor:
        """The floor under the site's rules as they are now (an operator may tighten them)."""
        return Floor(self.site, self.model, self.cfg.floor_margin_m)

    def _ceiling(self, tel: Telemetry, want: dict[int, float]) -> dict[int, float]:
        """A surge must not carry the level to the alarm within the interval: speed up, then start."""
        rules = self.site.rules
        hours = self.site.timing.control_interval_s / 3600
        top = self.model.volume(rules.alarm_level_m - self.cfg.ceiling_margin_m)
        need = self.band.high_m3h(tel.inflow_m3h) - (top - tel.volume_m3) / hours
        limit = rules.max_outflow_m3h
        if tel.level_m > rules.alarm_level_m:
            self._note(tel, "overflow_risk", None, overflow_risk(tel, rules))
        if self._flow(tel, want) >= min(need, limit):
            return want
        want = {i: rules.max_freq_hz for i in want}
        self._note(tel, "max_level", None, f"level {tel.level_m:.2f} m rising: full speed")
        high = rising(self, tel)  # F2 where the level may get to
        while self._flow(tel, want) < need:
            pick = self._next_start(tel, want, ignore_timer=False)
            if pick is None or self._flow(high, {**want, pick: rules.min_freq_hz}) > limit:
                break
            want[pick] = rules.max_freq_hz
            self._note(tel, "max_level", pick, "started against a rising level")
        return self._slow_to(high, want, limit) if self._flow(high, want) > limit else want


def rising(sup: Supervisor, tel: Telemetry) -> Telemetry:
    """The telemetry at the level the interval may reach if the surge inflow meets the pumping
    now: where an F2 limit is checked, since a pump lifts more as the level rises (less head)
    and a set just within the limit at the level now goes over it in a storm."""
    level = sup.model.level_reached(tel.level_m, tel.volume_m3, sup.band.high_m3h(tel.inflow_m3h)
                                    - tel.outflow_m3h, sup.site.timing.control_interval_s / 3600)
    return tel.model_copy(update={"level_m": level})


def overflow_risk(tel: Telemetry, rules: Rules) -> str:
    return (f"level {tel.level_m:.2f} m over the alarm {rules.alarm_level_m:.2f} m, inflow {tel.inflow_m3h:.0f} "
            f"m3/h: every available pump up to F2 {rules.max_outflow_m3h:.0f} m3/h; the tunnel overflows at "
            f"{rules.max_level_m:.2f} m")
