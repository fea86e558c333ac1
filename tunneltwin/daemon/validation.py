"""Telemetry checked before anything uses it: stale time, frozen or impossible level,
impossible flows, and readings that contradict each other.

A frozen or impossible level is replaced by the estimate from the last level and the flow
balance (the twin's own arithmetic); a disputed one by the worse of reading and estimate
near the bottom or the top. That is safe for a while: after ``max_estimated`` ticks in a
row the estimate has drifted too far to optimise on, and the tick degrades to the baseline.
Stale time degrades at once. A plant clock that goes back does not move the daemon's time
back: its readings are re-stamped onto the daemon's own timeline (``PlantClock``).
Every flag becomes an alarm. NaN cannot get here: the typed telemetry refuses it where it is
read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from kernel.contracts import Observation, PumpStatus, Telemetry
from kernel.physics import LevelVolume, PlantPhysics
from kernel.site import Site


@dataclass(frozen=True)
class Flag:
    field: str
    kind: str  # stale | frozen | out_of_range | inconsistent
    detail: str


@dataclass(frozen=True)
class Checked:
    telemetry: Telemetry  # what the controller may use (the level possibly estimated)
    flags: tuple[Flag, ...]
    degrade: bool  # the baseline decides this tick


@dataclass(frozen=True)
class Limits:
    frozen_ticks: int = 1  # the level identical this many ticks while the balance says it moved (2 ran blind 30 min)
    # ... by at least this much since the reading stuck. In the twin's clean 30-day soak month
    # the balance over two ticks said >= 2 cm while the level moved under 5 mm once in 2,879
    # (p99 of its error 3 cm); a true level moves under 2 cm in 46 % of ticks, under 5 cm in 77 %
    frozen_move_m: float = 0.02
    balance_tol_m3: float = 600.0  # level vs flow balance, in volume (the sump makes levels meaningless there)
    balance_tol_share: float = 0.15  # ... or this share of the tick's inflow plus outflow, if larger
    outflow_tol: float = 0.10  # F2 vs the sum of pump flows: relative
    outflow_tol_m3h: float = 300.0  # ... plus this absolute slack
    max_inflow_m3h: float = 60_000.0  # far above any storm in the data (recorded max ~ 15,000)
    # how far the inflow can move from one control interval to the next: 3x the fastest rise in
    # the recorded 10 days (3,153 m3/h in 15 min) and above the synthetic storms' steepest (x4
    # in 1 h). A level that moved more than that implies was biased, not the inflow.
    max_inflow_change_m3h: float = 10_000.0
    # a pump's flow reading against the pump model at its speed and the level, as a share of the
    # model's flow. The model and the recorded 15-min flows of pumps running through three
    # intervals disagree by up to 52 % (p99 19 %, 1,608 points, the recorded 10 days), so only
    # a gross error is caught: a dead or sign-flipped meter, a spike, a x2 scale.
    pump_flow_tol: float = 0.6
    # an inflow, or the flow of a pump running throughout, read identical this many times in a
    # row is a stuck meter: in the recorded 10 days the inflow repeats at most twice in a row
    # and a running pump's flow never
    stuck_readings: int = 3
    # ... and the level this many: in the recorded 10 days it repeats at most 3 times (once, at
    # 1.8485 m with inflow and outflow level). Where the tunnel stands still the balance cannot
    # tell a stuck sensor (a freeze at 4.27 m was alarmed at the fourth reading, the balance
    # then saying 1 cm); a moving one is the balance's to find (frozen_move_m)
    stuck_level_readings: int = 4
    max_estimated: int = 8  # ticks in a row on an estimated level before degrading (2 h)
    low_m: float = 2.0  # below this, a disputed level is taken at the lower of reading and balance
    high_m: float = 5.0  # above this, at the higher


def restamped(obs: Observation, behind: timedelta) -> Observation:
    """``obs`` moved from the plant's clock onto the daemon's timeline: its reading, the prices
    (stamped with the reading's time where they are read) and a served forecast."""
    if not behind:
        return obs
    tel = obs.telemetry.model_copy(update={"time": obs.telemetry.time + behind})
    prices = obs.prices.model_copy(update={"start": obs.prices.start + behind})
    forecast = obs.inflow_forecast
    if forecast is not None:
        forecast = forecast.model_copy(update={"start": forecast.start + behind})
    return obs.model_copy(update={"telemetry": tel, "prices": prices, "inflow_forecast": forecast})


def _ranges(tel: Telemetry, lim: Limits) -> list[Flag]:
    out = []
    if not -0.2 <= tel.inflow_m3h <= lim.max_inflow_m3h:
        out.append(Flag("inflow_m3h", "out_of_range", f"{tel.inflow_m3h:.0f} m3/h"))
    for p in tel.pumps:
        if p.flow_m3h < -1 or p.power_kw < -1 or not 0 <= p.freq_hz <= 60:
            out.append(Flag(f"pump {p.id}", "out_of_range",
                            f"flow {p.flow_m3h:.0f} m3/h, power {p.power_kw:.0f} kW, {p.freq_hz:.1f} Hz"))
    return out


def _possible_inflow(tel: Telemetry, last: Telemetry | None, geometry: LevelVolume, step_h: float,
                     lim: Limits) -> Telemetry:
    """An inflow read outside 0..max_inflow_m3h is wrong whatever else holds, and is not passed
    on: the level's change and the pumped flow give it (the plant's historian computes it so),
    or, with no level to go by (no ``last``, or a level out of range too), the pumped flow. Passed on, a sign error's
    -6,680 m3/h at 0.70 m agreed with the flow balance within its 600 m3 (the balance cannot go
    under an empty tunnel, and the bottom holds a few hundred m3); the next true readings, 1.0
    to 1.7 m, were then disbelieved as a jump from -6,680, and the tunnel was believed empty
    for an hour while it filled (the fault soak)."""
    if -0.2 <= tel.inflow_m3h <= lim.max_inflow_m3h:
        return tel
    pumped = sum(p.flow_m3h for p in tel.pumps)
    inflow = pumped
    if last is not None and -0.2 <= tel.level_m <= geometry.max_level_m + 0.5:
        inflow = (geometry.volume(tel.level_m) - geometry.volume(last.level_m)) / step_h + pumped
    return tel.model_copy(update={"inflow_m3h": min(max(inflow, 0.0), lim.max_inflow_m3h)})


def _impossible(lim: Limits, step_h: float, tel: Telemetry, last: Telemetry, moved_m3: float) -> bool:
    """No inflow in 0..max_inflow_m3h explains the level's move since ``last``, even allowing the
    balance its tolerance and the pumps anything between what ran at the last tick and what runs
    now (pumps stopped by their PLC stop level mid-interval: a true 0.54 m at the floor looked
    like -1,800 m3/h of inflow with the pumps read at the tick, and was disbelieved)."""
    tol_m3 = max(lim.balance_tol_m3, lim.balance_tol_share * (tel.inflow_m3h + tel.outflow_m3h) * step_h)
    now, before = (sum(p.flow_m3h for p in t.pumps) for t in (tel, last))
    low = (moved_m3 - tol_m3) / step_h + min(now, before)
    high = (moved_m3 + tol_m3) / step_h + max(now, before)
    return high < -lim.outflow_tol_m3h or low > lim.max_inflow_m3h


class StuckMeters:
    """Meters whose reading has not moved for ``readings`` readings: the inflow, and each pump's
    flow while it runs (the level: ``level_readings``, inside ``0 < level < top_m``: at the ends
    of its range, an empty sump or a full tunnel, a true level stands still). Alarmed, and kept:
    a reading stuck near the truth harms nothing, and once it drifts from it the flow balance
    or the pump model replaces it."""

    def __init__(self, readings: int, level_readings: int, top_m: float) -> None:
        self.readings, self.level_readings, self.top_m = readings, level_readings, top_m
        self.repeats: dict[str, tuple[float | None, int]] = {}  # meter -> (last reading, readings identical to it)

    def check(self, tel: Telemetry) -> list[Flag]:
        meters = {"level_m": tel.level_m if 0 < tel.level_m < self.top_m else None,
                  "inflow_m3h": tel.inflow_m3h if tel.inflow_m3h > 0 else None}
        meters |= {f"pump {p.id} flow_m3h": p.flow_m3h if p.status is PumpStatus.RUNNING and p.flow_m3h > 0 else None
                   for p in tel.pumps}
        flags = []
        for meter, value in meters.items():
            last, count = self.repeats.get(meter, (None, 0))
            count = count + 1 if value is not None and value == last else 1
            self.repeats[meter] = (value, count) if value is not None else (None, 0)
            if value is not None and count >= (self.level_readings if meter == "level_m" else self.readings):
                flags.append(Flag(meter, "frozen", f"{value:.{3 if meter == 'level_m' else 1}f} "
                                                   f"{meter.rsplit('_', 1)[1]} for {count} readings in a row: a "
                                                   "meter that does not move is stuck"))
        return flags


class FrozenLevel:
    """Identical level readings while the balance says the level moved since the reading stuck.
    Counted on the raw readings and held until the reading changes: compared with the
    substituted level, a frozen reading passed every other tick, and once the estimate had
    drifted to the frozen value for a tick, the small moves after it passed too (a freeze
    during a drawdown emptied the tunnel behind a steady 0.85 m). The move is summed over the
    identical readings: judged one tick at a time, a level stuck while the tunnel moved 1-4 cm
    a tick went unseen for up to 11 ticks in the fault soak. The move it needs falls with each
    identical reading (``needed_m``)."""

    def __init__(self, geometry: LevelVolume, step_h: float, lim: Limits) -> None:
        self.geometry, self.step_h, self.lim = geometry, step_h, lim
        self.raw_m: float | None = None  # the last level as read, before any substitution
        self.same = 0  # readings identical to the one before, in a row
        self.net_m3 = 0.0  # the flow balance summed over the present run of identical readings
        self.freezing = False  # the present run has been found frozen

    def check(self, tel: Telemetry) -> bool:
        same = tel.level_m == self.raw_m
        self.raw_m = tel.level_m
        self.same = self.same + 1 if same else 0
        net = tel.inflow_m3h - sum(p.flow_m3h for p in tel.pumps)
        self.net_m3 = self.net_m3 + net * self.step_h if same else 0.0
        self.freezing = same and (self.freezing or (self.same >= self.lim.frozen_ticks
                                                     and abs(self.moved_m(tel.level_m)) >= self.needed_m()))
        return self.freezing

    def needed_m(self) -> float:
        """The summed move that finds the reading frozen: ``frozen_move_m`` at its second identical
        reading, half that at its third. Each identical reading is itself evidence: in its 960
        readings the recorded level has one run of identical readings, three long, where the
        balance said under 1 mm (inflow 4,596 against 4,604 m3/h); a freeze in the fault soak
        stood at 4.27 m with the balance at 1.8 cm by the third reading, alarmed at the fourth."""
        return self.lim.frozen_move_m / max(self.same, 1)

    def moved_m(self, level_m: float) -> float:
        """How far the flow balance says the level moved since its reading stuck at ``level_m``."""
        return self.geometry.level(max(0.0, self.geometry.volume(level_m) + self.net_m3)) - level_m


class PlantClock:
    """The daemon's own timeline: the plant clock plus how far it is known to run ``behind``.
    The daemon's time never goes back. A plant clock that does (a PLC or gateway restart, a
    clock set by hand) is taken as having lost that much: its reading is the next interval's,
    and every later one is moved on by the same amount, so the day records, prices and
    forecasts keep their true hours. (Before, the controllers kept plant time: after a clock
    fell back 15 h the day's emptying was booked on plant days 15 h off the true ones, and the
    30-day fault soak missed 4 true dry days by it.) A jump forward while the clock is behind
    is taken as the clock set right, up to what it was behind; a gap in the readings (the link
    lost) while it is behind is mistaken for that and shortens the daemon's day by the gap,
    which the alarm says."""

    def __init__(self, interval: timedelta) -> None:
        self.interval = interval
        self.behind = timedelta(0)

    def timeline(self, tel: Telemetry, last: datetime | None) -> tuple[Telemetry, list[Flag]]:
        """``tel`` on the daemon's timeline, ``last`` being the time of the reading before."""
        flags: list[Flag] = []
        at = tel.time + self.behind
        if last is not None and at < last:
            self.behind += last + self.interval - at
            flags.append(Flag("time", "backwards", f"the plant clock read {tel.time}, {last - at} before the last "
                                                   f"reading: taken as the next interval; the plant clock now runs "
                                                   f"{self.behind} behind the daemon's time"))
        elif last is not None and self.behind and at - last > self.interval:
            ahead = min(self.behind, at - last - self.interval)
            self.behind -= ahead
            flags.append(Flag("time", "forward", f"the plant clock read {tel.time}, {at - last} after the last "
                                                 f"reading while it ran behind: taken as set right by {ahead}; it "
                                                 f"now runs {self.behind} behind the daemon's time"))
        if not self.behind:
            return tel, flags
        return tel.model_copy(update={"time": tel.time + self.behind}), flags


class Validator:
    def __init__(self, site: Site, limits: Limits | None = None) -> None:
        self.site, self.lim = site, limits or Limits()
        self.physics = PlantPhysics.from_site(site)
        self.geometry = self.physics.geometry
        self.step_h = site.timing.control_interval_s / 3600
        self.last: Telemetry | None = None  # the last telemetry we passed on (level possibly estimated)
        self.frozen = FrozenLevel(self.geometry, self.step_h, self.lim)
        self.estimated = 0
        self.dead_m3: float | None = None  # while estimating: the volume dead-reckoned from flows
        self.doubt_m3 = 0.0  # ... and how far it may be off by now
        self.clock = PlantClock(timedelta(seconds=site.timing.control_interval_s))
        self.raw: Telemetry | None = None  # the last telemetry as read (on the plant's clock)
        self.pumps = {p.id: p for p in site.pumps}
        self.stuck = StuckMeters(self.lim.stuck_readings, self.lim.stuck_level_readings, self.geometry.max_level_m)

    def check(self, tel: Telemetry) -> Checked:
        self.raw = tel  # as read, for the audit
        tel, clock_flags = self.clock.timeline(tel, None if self.last is None else self.last.time)
        if any(f.kind == "backwards" for f in clock_flags):
            self._start_over()
        tel, pump_flags = self._pump_flows(tel)
        flags = [*clock_flags, *_ranges(self.raw, self.lim), *self.stuck.check(self.raw), *pump_flags,
                 *self._outflow(tel)]
        tel = _possible_inflow(tel, self.last, self.geometry, self.step_h, self.lim)
        if self.last is not None and tel.time == self.last.time:
            flags.append(Flag("time", "stale", f"{self.raw.time} is not after the last reading"))
            return Checked(self.last, tuple(flags), degrade=True)
        level_flag = self._level(tel)
        read = tel
        if level_flag is not None and level_flag.kind == "inconsistent":
            tel, level_flag = self._inflow_or_level(tel, level_flag)
            if tel is not read:
                flags.append(Flag("inflow_m3h", "inconsistent", f"{read.inflow_m3h:.0f} m3/h read; the level's "
                                                                f"change and the pumped flow say {tel.inflow_m3h:.0f}"))
        if level_flag is not None:  # it says more than the stuck-meter flag
            flags = [f for f in flags if f.field != "level_m"] + [level_flag]
        use = tel
        if level_flag is not None and self.last is not None:
            use = self._substituted(tel, level_flag)
        self.estimated = self.estimated + 1 if use is not tel else 0  # the level, not the inflow, estimated
        if self.estimated == 0 or level_flag is None or level_flag.kind == "inconsistent":
            self.dead_m3, self.doubt_m3 = None, 0.0
        self.last = use
        went_back = any(f.kind == "backwards" for f in clock_flags)
        return Checked(use, tuple(flags), degrade=went_back or self.estimated > self.lim.max_estimated)

    def _start_over(self) -> None:
        """After the plant clock went back the readings are new: a restarted simulator is a new tunnel."""
        self.last, self.dead_m3, self.doubt_m3, self.estimated = None, None, 0.0, 0
        self.frozen = FrozenLevel(self.geometry, self.step_h, self.lim)

    # -- the checks --------------------------------------------------------------------

    def _pump_flows(self, tel: Telemetry) -> tuple[Telemetry, list[Flag]]:
        """Each pump running a whole interval, against the pump model at its speed and the level
        read (the last level believed, when the reading is out of range): a reading off by more
        than ``pump_flow_tol`` is replaced by the model's flow."""
        flags, pumps = [], []
        level = tel.level_m  # the head the model needs; an impossible reading must not judge the pumps
        if not self._in_range(level):
            if self.last is None:
                return tel, []
            level = self.last.level_m  # (a sign error's -0.82 m had a good 1,269 m3/h meter replaced by 789)
        for p in tel.pumps:
            spec = self.pumps.get(p.id)
            steady = p.status is PumpStatus.RUNNING and p.time_in_state_s >= self.site.timing.control_interval_s
            if spec is not None and steady and p.freq_hz >= self.site.rules.min_freq_hz:
                model = self.physics.grids[spec.type].point(p.freq_hz, max(level, 0.0))[0] * spec.flow_scale
                if model > 0 and abs(p.flow_m3h - model) > self.lim.pump_flow_tol * model:
                    flags.append(Flag(f"pump {p.id} flow_m3h", "inconsistent",
                                      f"{p.flow_m3h:.0f} m3/h read; the pump model at {p.freq_hz:.1f} Hz and "
                                      f"{level:.2f} m gives {model:.0f}"))
                    p = p.model_copy(update={"flow_m3h": model})
            pumps.append(p)
        return (tel.model_copy(update={"pumps": tuple(pumps)}) if flags else tel), flags

    def _outflow(self, tel: Telemetry) -> list[Flag]:
        pumps = sum(p.flow_m3h for p in tel.pumps)
        if abs(tel.outflow_m3h - pumps) > self.lim.outflow_tol * max(pumps, tel.outflow_m3h) + self.lim.outflow_tol_m3h:
            return [Flag("outflow_m3h", "inconsistent", f"F2 {tel.outflow_m3h:.0f} m3/h but the pumps sum to "
                                                        f"{pumps:.0f}")]
        return []

    def _in_range(self, level_m: float) -> bool:
        return -0.2 <= level_m <= self.geometry.max_level_m + 0.5

    def _level(self, tel: Telemetry) -> Flag | None:
        if not self._in_range(tel.level_m):
            return Flag("level_m", "out_of_range", f"{tel.level_m:.2f} m")
        if self.last is None:
            self.frozen.check(tel)
            return None
        expected = self._expected_level(tel)
        if self.frozen.check(tel):
            return Flag("level_m", "frozen", f"{tel.level_m:.3f} m for {self.frozen.same + 1} readings; the flow "
                                              f"balance says it moved {self.frozen.moved_m(tel.level_m):+.3f} m "
                                              f"since it stuck, to {expected:.2f} m")
        moved = self._moved_m3(tel)
        off = abs(self.geometry.volume(expected) - self.geometry.volume(tel.level_m))
        if off > max(self.lim.balance_tol_m3, self.lim.balance_tol_share * moved):
            return Flag("level_m", "inconsistent", f"{tel.level_m:.2f} m against {expected:.2f} m from the "
                                                    f"flow balance ({off:.0f} m3 apart)")
        return None

    def _inflow_or_level(self, tel: Telemetry, flag: Flag) -> tuple[Telemetry, Flag | None]:
        """Level and flow balance disagree: either the level or the inflow reading is wrong. The
        level's own change with the pumped flow gives the inflow (the plant's historian computes
        it so). Where that inflow is possible, the level is believed and the inflow reading is
        replaced: an inflow read x4 made the controller drain the tunnel to 0.33 m, and a
        negative one made the balance pull the believed level to 0 m while it was 2.17 m.
        Where it is not (a level that jumps more than any inflow could move it, or than the
        inflow can change in one interval), the level is the suspect: a level read 1.5 m high
        implied 38,000 m3/h against the 2,960 before it, was believed, and the controller
        emptied the tunnel on it (bench/fault_soak.py)."""
        assert self.last is not None
        pumps = sum(p.flow_m3h for p in tel.pumps)
        moved_m3 = self.geometry.volume(tel.level_m) - self.geometry.volume(self.last.level_m)
        inflow = moved_m3 / self.step_h + pumps
        if _impossible(self.lim, self.step_h, tel, self.last, moved_m3):
            # no inflow could have made this move: the reading is impossible, not merely disputed, and
            # is not a candidate for the worse of the two (a +5 m spike at 2 m was believed near
            # the top, started five pumps, and their minimum run drained the tunnel to 0.08 m)
            return tel, Flag("level_m", "out_of_range", f"{tel.level_m:.2f} m: a change of {moved_m3:.0f} m3 in one "
                                                         f"interval, which would take {inflow:.0f} m3/h of inflow")
        if not -self.lim.outflow_tol_m3h <= inflow <= self.lim.max_inflow_m3h:
            return tel, flag
        if abs(inflow - self.last.inflow_m3h) > self.lim.max_inflow_change_m3h:
            return tel, flag
        return tel.model_copy(update={"inflow_m3h": max(0.0, inflow)}), None

    def _expected_level(self, tel: Telemetry) -> float:
        """The last level moved by the interval's inflow minus the pumps' outflow. The pump flows read
        now are the interval's: the commands written at the last tick ran through it."""
        return self.geometry.level(self._expected_volume(tel))

    def _moved_m3(self, tel: Telemetry) -> float:
        """What went in and out over the tick: the scale of the balance's tolerance."""
        return (tel.inflow_m3h + tel.outflow_m3h) * self.step_h

    def _expected_volume(self, tel: Telemetry) -> float:
        assert self.last is not None
        pumps = sum(p.flow_m3h for p in tel.pumps)
        start = self.geometry.volume(self.last.level_m) if self.dead_m3 is None else self.dead_m3
        return max(0.0, start + (tel.inflow_m3h - pumps) * self.step_h)

    def _substituted(self, tel: Telemetry, flag: Flag) -> Telemetry:
        """A frozen or impossible reading gives way to the estimate. When reading and balance merely
        disagree, the worse of the two is believed: the lower near the bottom, where the tunnel
        empties within a tick, the higher near the top; in between the reading stands."""
        estimate = self._expected_level(tel)
        if flag.kind == "inconsistent":
            low, high = min(estimate, tel.level_m), max(estimate, tel.level_m)
            estimate = low if low < self.lim.low_m else high if high > self.lim.high_m else tel.level_m
            if estimate == tel.level_m:
                return tel
            return tel.model_copy(update={"level_m": estimate, "volume_m3": self.geometry.volume(estimate),
                                          "level_high_m": high})
        return self._dead_reckoned(tel)

    def _dead_reckoned(self, tel: Telemetry) -> Telemetry:
        """With no level to trust, the flows carry the volume on, and each tick adds to its doubt:
        the balance tolerance's share of what moved, summed as independent errors are (root of
        the sum of squares). Measured on the twin (``bench/dead_reckoning.py`` on a 30-day fault
        soak's clean ticks): the p99 error of an n-tick balance, as a share of what moved, is 11 %
        for 1 tick, 10 % for 2, 6.6 % for 4 and 4.3 % for 8 (below 2 m: 13, 12, 8.4, 5.0 %), so it
        grows near the square root of n; 15 % summed so bounds them all but below 2 m at 2 and 4
        ticks, by about 1 % of what moved. Summed in a line, the doubt of a freeze at 1.07 m put
        the low end at 0.07 m after three ticks and at 0 m for eight more, the central estimate
        near 1.0 m and the next good reading 1.29 m. Near the bottom or the top the reported
        level is the worse end of that doubt: pump flows read at the tick miss how they fell
        as the tunnel drained, and a frozen sensor during a drawdown had the estimate 0.2 m
        high after six ticks and 0.35 m after eight, while the plant pumped on to 0.36 m. The
        high end goes with it (``level_high_m``): a low end at 0.08 m once counted as the day's
        emptying while the tunnel stood at 0.95 m, and the day went unemptied (the fault soak)."""
        self.dead_m3 = self._expected_volume(tel)
        self.doubt_m3 = math.hypot(self.doubt_m3, self.lim.balance_tol_share * self._moved_m3(tel))
        central = self.geometry.level(self.dead_m3)
        volume = self.dead_m3
        if central < self.lim.low_m:
            volume = max(0.0, volume - self.doubt_m3)
        elif central > self.lim.high_m:
            volume += self.doubt_m3
        return tel.model_copy(update={"level_m": self.geometry.level(volume), "volume_m3": volume,
                                      "level_high_m": self.geometry.level(self.dead_m3 + self.doubt_m3)})
