"""The pump-scheduling MILP: cheapest group counts and flows over a horizon, every rule kept.

Identical pumps are one group with an integer count (symmetry gone); a group of one pump
is the naive formulation, kept for the benchmark. Flow and power are linear in the count
and the group flow at each step's expected level (sequential linearisation: the caller
passes the level trajectory of the previous plan). Level bounds and daily emptying are
soft with heavy penalties so a state that already breaks them still gets a recovery plan.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from controller.lp import INF, Block, Model, Result
from controller.model import StationModel

Array = NDArray[np.float64]
Ints = NDArray[np.int64]
AFTER_EMPTYING = 2  # steps after the emptying one that may stay low (with a self-regulating set)
BEFORE_EMPTYING = 1  # steps before it that need not keep the inflow buffer over the floor


@dataclass(frozen=True)
class Group:
    """Pumps the optimiser treats as interchangeable (same type, available)."""

    name: str
    members: tuple[int, ...]


@dataclass(frozen=True)
class Weights:
    """Soft terms, in EUR so they trade directly against electricity cost."""

    switch_eur: float = 0.5  # per pump start or stop (wear, and the plant's dislike of cycling)
    smooth_eur_per_m3h: float = 0.005  # per m3/h change in F2 between steps (steady feed downstream; docs/front.md)
    level_eur_per_m3: float = 1000.0  # per m3 outside the safe band (only in recovery)
    emptying_eur: float = 5000.0  # per required daily emptying the plan cannot reach
    terminal_eur_per_m3: float = 0.0  # value of each m3 left stored at the horizon's end (a cost)
    run_hour_eur: float = 0.02  # per run hour, when dispatch picks which pump of a group runs (wear balance)
    overflow_eur_per_m3h: float = 10.0  # per m3*h over the alarm the inflow's upper tail could bring, times its
    # probability: the price of the expected overflow a plan leaves room for (a risk, not a breach)


@dataclass(frozen=True)
class Problem:
    step_h: float
    volume0_m3: float
    inflow_m3h: Array  # (H,) forecast per step
    price_eur_per_kwh: Array  # (H,)
    level_guess_m: Array  # (H,) expected mean level per step, for the linearisation
    groups: tuple[Group, ...]
    n_now: Ints  # (G,) pumps on in each group now
    locked_on: Ints  # (G, H) pumps that must still run at step k (min-on timers)
    locked_off: Ints  # (G, H) pumps that must still rest at step k (min-off timers)
    outflow_now_m3h: float
    v_min_m3: float
    v_max_m3: float
    v_empty_m3: float
    emptying_days: tuple[tuple[int, ...], ...]  # step sets; each needs one step ending emptied
    min_on_steps: int
    min_off_steps: int
    max_outflow_m3h: float
    min_pumps_on: int
    weights: Weights
    integer_steps: int | None = None  # counts integer only this far ahead (None: all)
    v_low_m3: float | None = None  # floor of every step but the emptying one (None: v_min_m3)
    q_floor_m3h: Array | None = None  # (G,) per-pump flow at minimum speed at the minimum level
    inflow_low_m3h: Array | None = None  # (H,) the low side of the inflow (a quantile); None: the forecast
    plc_stops: bool = False  # the PLC stops pumps past their minimum run at the floor: guards count the rest
    guard_steps: tuple[int, ...] = ()  # steps expected near the bottom: self-regulating too (soft)
    v_end_max_m3: float | None = None  # a step ends at most this full (soft; the oracle's bound in compare)
    v_end_step: int | None = None  # ... that step (None: the last)
    block_steps: int = 1  # beyond fine_steps, pump counts change only every this many steps
    fine_steps: int = 0  # the first steps, where counts may change at every step
    block_flows: bool = False  # ... and so do the group flows (else flows change every step)
    reserve_m3: Array | None = None  # (T, H) storm reserve per tail quantile: room to keep free under v_alarm_m3
    reserve_p: tuple[float, ...] = (1.0,)  # (T,) the probability each tail quantile of reserve_m3 stands for
    v_alarm_m3: float = 0.0  # the alarm volume the reserve is kept under
    landing_miss: float = 0.0  # chance a landing ends over the emptying level (learnt; 0: never)
    retry_miss: float = 0.0  # ... and that a retry right after a missed one does too

    @property
    def horizon(self) -> int:
        return len(self.inflow_m3h)

    @property
    def block_starts(self) -> list[int]:
        """First step of each block: single steps up to fine_steps, then block_steps long."""
        fine = min(self.fine_steps, self.horizon)
        return [*range(fine), *range(fine, self.horizon, self.block_steps)]

    @property
    def blocks(self) -> int:
        return len(self.block_starts)

    def block_of(self, k: int) -> int:
        fine = min(self.fine_steps, self.horizon)
        return k if k < fine else fine + (k - fine) // self.block_steps

    def block_index(self) -> Ints:
        k = np.arange(self.horizon, dtype=np.int64)
        fine = min(self.fine_steps, self.horizon)
        return np.where(k < fine, k, fine + (k - fine) // self.block_steps)

    def flow_index(self) -> Ints:
        """Each step's flow column. With block_flows a block's steps share one, except in blocks
        near an emptying candidate: a landing must be able to slow the pumps right after it."""
        steps = np.arange(self.horizon, dtype=np.int64)
        if not self.block_flows:
            return steps
        blocks = self.block_index()
        near = {k + d for day in self.emptying_days for k in day for d in range(-BEFORE_EMPTYING, AFTER_EMPTYING + 1)}
        free = np.isin(blocks, blocks[[k for k in sorted(near) if 0 <= k < self.horizon]])
        keys = [(int(b), int(k) if f else -1) for k, b, f in zip(steps, blocks, free, strict=True)]
        return np.unique(keys, axis=0, return_inverse=True)[1].ravel().astype(np.int64)

    def per_block(self, steps: Ints) -> Ints:
        """A per-step lock as a per-block one: the block holds it if any of its steps does."""
        out = np.zeros((len(steps), self.blocks), dtype=np.int64)
        np.maximum.at(out, (slice(None), self.block_index()), steps)  # type: ignore[arg-type]
        return out


LANDED_SLACK_M3 = 1.0  # a planned volume this little over the emptying volume still lands (solver tolerance)


def lands(volume_m3: float, v_empty_m3: float) -> bool:
    """A plan step ending at ``volume_m3`` is an emptying landing: dispatch lands it, the
    bookings keep it, and the MPC's landing record counts it."""
    return volume_m3 <= v_empty_m3 + LANDED_SLACK_M3


@dataclass(frozen=True)
class Plan:
    counts: Ints  # (G, H), expanded from blocks
    flows_m3h: Array  # (G, H)
    volumes_m3: Array  # (H,) at the end of each step
    power_kw: Array  # (H,)
    status: str
    seconds: float
    objective: float
    gap: float
    band_slack_m3: float
    emptying_missed: int

    @property
    def outflow_m3h(self) -> Array:
        return np.asarray(self.flows_m3h.sum(axis=0))


@dataclass(frozen=True)
class Coefficients:
    q_min: Array  # (G, H) per pump
    q_max: Array
    a: Array  # power per running pump at zero flow (intercept), kW
    b: Array  # kW per m3/h of group flow


def coefficients(model: StationModel, groups: tuple[Group, ...], levels_m: Array) -> Coefficients:
    """Per-pump flow band and a linear power-vs-flow line, averaged over each group's members."""
    shape = (len(groups), len(levels_m))
    q_lo, q_hi, p_lo, p_hi = (np.zeros(shape) for _ in range(4))
    for g, group in enumerate(groups):
        bands = [model.band(i, levels_m) for i in group.members]
        q_lo[g], q_hi[g], p_lo[g], p_hi[g] = (np.mean([b[j] for b in bands], axis=0) for j in range(4))
    q_hi = np.maximum(q_hi, q_lo + 1.0)
    b = (p_hi - p_lo) / (q_hi - q_lo)
    return Coefficients(q_lo, q_hi, p_lo - b * q_lo, b)


@dataclass
class _Vars:
    n: Block
    q: Block
    s: Block
    d: Block
    v: Block
    lo: Block
    hi: Block
    dq: Block
    e: Block | None
    miss: Block | None
    flow_of: Ints  # (H,) each step's flow column (Problem.flow_index, derived once per build)
    short: Block | None = None  # shortfall (m3) of booked emptying steps


def build(p: Problem, coef: Coefficients, empty_floor: bool = True) -> tuple[Model, _Vars]:
    m = Model()
    v = _variables(m, p, coef, empty_floor)
    _flow_band(m, p, coef, v)
    _switching(m, p, v)
    _timers(m, p, v)
    _station(m, p, v)
    _balance(m, p, v)
    _smoothness(m, p, v)
    _emptying(m, p, v)
    _self_regulating(m, p, v)
    _committed(m, p, coef, v)
    _storm_reserve(m, p, v)
    return m, v


def _variables(m: Model, p: Problem, coef: Coefficients, empty_floor: bool) -> _Vars:
    G, H, B = len(p.groups), p.horizon, p.blocks
    sizes = np.array([len(g.members) for g in p.groups])[:, None]
    w = p.weights
    energy_price = p.price_eur_per_kwh[None, :] * p.step_h
    n_lo = np.minimum(p.per_block(p.locked_on), sizes)
    n_hi = np.maximum(sizes - p.per_block(p.locked_off), n_lo)
    block_cost = np.zeros((G, B))
    for k, b in enumerate(p.block_index()):
        block_cost[:, b] += energy_price[:, k] * coef.a[:, k]
    n = m.block("n", (G, B), n_lo, n_hi, block_cost, integer=True)
    if p.integer_steps is not None:
        for g in range(G):
            for b in range(p.block_of(p.integer_steps), B):
                m.integer[n[g, b]] = 0
    fi = p.flow_index()
    flow_cost = _per_column(energy_price * coef.b, fi)
    q = m.block("q", flow_cost.shape, 0.0, INF, flow_cost)
    s = m.block("s", (G, B), 0.0, INF, w.switch_eur)
    d = m.block("d", (G, B), 0.0, INF, w.switch_eur)
    terminal = np.zeros(H)
    terminal[-1] = w.terminal_eur_per_m3
    vol = m.block("v", (H,), 0.0 if empty_floor else -INF, INF, terminal)
    lo = m.block("lo", (H,), 0.0, INF, w.level_eur_per_m3)
    hi = m.block("hi", (H,), 0.0, INF, w.level_eur_per_m3)
    dq = m.block("dq", (flow_cost.shape[1],), 0.0, INF, w.smooth_eur_per_m3h)
    e = miss = None
    if p.emptying_days:
        e = m.block("e", (H,), 0.0, 1.0, 0.0, integer=True)
        miss = m.block("miss", (len(p.emptying_days),), 0.0, 1.0, w.emptying_eur)
    return _Vars(n, q, s, d, vol, lo, hi, dq, e, miss, fi)


def _per_column(values: Array, flow_of: Ints, mean: bool = False) -> Array:
    """(G, H) per-step values summed (or averaged) over each flow column's steps: (G, F)."""
    out = np.zeros((values.shape[0], int(flow_of[-1]) + 1))
    np.add.at(out, (slice(None), flow_of), values)  # type: ignore[arg-type]
    return out / np.bincount(flow_of) if mean else out


def _flow_band(m: Model, p: Problem, coef: Coefficients, v: _Vars) -> None:
    """Per flow column, the band of its steps' mean (held flows span a block's steps):
    q - n q_max <= 0 and q - n q_min >= 0, per group and column."""
    q_max, q_min = _per_column(coef.q_max, v.flow_of, mean=True), _per_column(coef.q_min, v.flow_of, mean=True)
    first = np.searchsorted(v.flow_of, np.arange(v.q.shape[1]))  # flow columns follow the steps in order
    q, n = v.q.index(), v.n.index()[:, p.block_index()[first]]
    cols = np.stack([np.stack([q, n], -1)] * 2, 2)  # (G, F, row, term)
    one = np.ones_like(q_max)
    coefs = np.stack([np.stack([one, -q_max], -1), np.stack([one, -q_min], -1)], 2)
    m.family("flow_band")
    m.rows_of(cols.reshape(-1, 2), coefs.reshape(-1, 2), np.tile([-INF, 0.0], q.size), np.tile([0.0, INF], q.size))


def _switching(m: Model, p: Problem, v: _Vars) -> None:
    """s >= n_k - n_{k-1} and d >= n_{k-1} - n_k (per block), with n_{-1} the pumps on now."""
    n = v.n.index()
    prev = np.concatenate([n[:, :1], n[:, :-1]], axis=1)  # block 0's "previous" is a constant
    has = np.broadcast_to((np.arange(p.blocks) > 0).astype(float), n.shape)
    one = np.ones(n.shape)
    const = np.zeros(n.shape)
    const[:, 0] = p.n_now
    cols = np.stack([np.stack([v.s.index(), n, prev], -1), np.stack([v.d.index(), n, prev], -1)], 2)
    coefs = np.stack([np.stack([one, -one, has], -1), np.stack([one, one, -has], -1)], 2)
    m.family("switching")
    m.rows_of(cols.reshape(-1, 3), coefs.reshape(-1, 3), np.stack([-const, const], -1).ravel())


def _timers(m: Model, p: Problem, v: _Vars) -> None:
    """Pumps started in the last min-on steps still run; pumps stopped in the last min-off still rest.
    A switch in block j (at step starts[j]) still binds block k if within the timer."""
    starts = np.asarray(p.block_starts)
    earlier = np.tri(p.blocks, dtype=bool)  # j <= k
    ago = starts[:, None] - starts[None, :]
    on_mask = (earlier & (ago < p.min_on_steps)).astype(float)
    off_mask = (earlier & (ago < p.min_off_steps)).astype(float)
    G, B = len(p.groups), p.blocks
    sizes = np.array([len(g.members) for g in p.groups], dtype=float)[:, None]
    n = v.n.index()[:, :, None]
    ups = np.concatenate([n, np.broadcast_to(v.s.index()[:, None, :], (G, B, B))], -1)
    downs = np.concatenate([n, np.broadcast_to(v.d.index()[:, None, :], (G, B, B))], -1)
    one = np.ones((G, B, 1))
    coef_on = np.concatenate([one, -np.broadcast_to(on_mask, (G, B, B))], -1)
    coef_off = np.concatenate([-one, -np.broadcast_to(off_mask, (G, B, B))], -1)
    cols, coefs = np.stack([ups, downs], 2), np.stack([coef_on, coef_off], 2)  # (G, B, row, term)
    lo = np.stack([p.per_block(p.locked_on), p.per_block(p.locked_off) - sizes], -1)
    m.family("timers")
    m.rows_of(cols.reshape(-1, B + 1), coefs.reshape(-1, B + 1), lo.astype(float).ravel())


def _station(m: Model, p: Problem, v: _Vars) -> None:
    n, q = v.n.index().T, v.q.index().T
    m.family("min_pumps")
    m.rows_of(n, np.ones(n.shape), lo=float(p.min_pumps_on))
    m.family("max_outflow")
    m.rows_of(q, np.ones(q.shape), hi=p.max_outflow_m3h)


def _balance(m: Model, p: Problem, v: _Vars) -> None:
    """V_k = V_{k-1} + (inflow - outflow) dt, with the band soft through lo/hi slacks."""
    H, G = p.horizon, len(p.groups)
    vol = v.v.index()
    prev = np.concatenate([vol[:1], vol[:-1]])  # step 0 starts from the measured volume
    has = (np.arange(H) > 0).astype(float)
    flows = v.q.index()[:, v.flow_of].T  # (H, G)
    balance = np.column_stack([vol, prev, flows]), np.column_stack([np.ones(H), -has, np.full((H, G), p.step_h)])
    band = np.column_stack([vol, v.hi.index(), flows]), np.column_stack([np.ones(H), -np.ones(H), np.zeros((H, G))])
    rhs = p.inflow_m3h * p.step_h
    rhs[0] = rhs[0] + p.volume0_m3
    cols, coefs = (np.stack([a, b], 1).reshape(2 * H, -1) for a, b in zip(balance, band, strict=True))
    m.family("balance")
    m.rows_of(cols, coefs, np.column_stack([rhs, np.full(H, -INF)]).ravel(),
              np.column_stack([rhs, np.full(H, p.v_max_m3)]).ravel())
    if p.v_end_max_m3 is not None:
        k = p.horizon - 1 if p.v_end_step is None else p.v_end_step
        m.family("end_cap")
        m.row([(v.v[k], 1.0), (v.hi[k], -1.0)], hi=p.v_end_max_m3)


def _smoothness(m: Model, p: Problem, v: _Vars) -> None:
    """dq >= |F2 change| between consecutive flow columns (held flows change once a block)."""
    q = v.q.index().T  # (F, G)
    prev = np.concatenate([q[:1], q[:-1]])  # column 0 is measured against the outflow now
    F, G = q.shape
    has = np.broadcast_to((np.arange(F) > 0).astype(float)[:, None], (F, G))
    cols = np.column_stack([v.dq.index(), q, prev])
    one = np.ones((F, 1))
    up = np.column_stack([one, -np.ones((F, G)), has])
    down = np.column_stack([one, np.ones((F, G)), -has])
    const = np.zeros(F)
    const[0] = p.outflow_now_m3h
    m.family("smooth")
    m.rows_of(np.stack([cols, cols], 1).reshape(2 * F, -1), np.stack([up, down], 1).reshape(2 * F, -1),
              np.column_stack([-const, const]).ravel())


def _storm_reserve(m: Model, p: Problem, v: _Vars) -> None:
    """The expected overflow, priced: for each tail quantile t of the inflow (probability p_t),
    the water stored after step k plus the inflow the station cannot remove within its F2 limit
    over the coming hours on that quantile, R_tk, would stand over the alarm volume by

        o_tk >= V_k + R_tk - V_alarm,   o_tk >= 0,

    and the plan pays p_t x overflow_eur_per_m3h x step_h per m3 of o_tk: the expected m3*h over
    the alarm, summed over its steps. Room for a likely excess is bought at nearly any price;
    room for a rare one only where it is cheap, as a thin tail far past a full station's
    capacity asks little and a thick one near a reduced station's asks much."""
    if p.reserve_m3 is None:
        return
    reserve = np.atleast_2d(p.reserve_m3)
    m.family("storm_reserve")
    for r, prob in zip(reserve, p.reserve_p, strict=True):
        steps = np.flatnonzero(r > 0)
        if steps.size == 0:
            continue
        price = prob * p.weights.overflow_eur_per_m3h * p.step_h
        o = m.block("overflow", (steps.size,), 0.0, INF, price)
        cols = np.column_stack([v.v.index()[steps], o.index()])
        m.rows_of(cols, np.tile([1.0, -1.0], (steps.size, 1)), hi=p.v_alarm_m3 - r[steps])


def _emptying(m: Model, p: Problem, v: _Vars) -> None:
    """The floor, and the daily emptying: each required day has a step ending at or below the
    emptying volume (big-M as tight as the band allows), or pays the miss penalty. Only that
    step may dip under the low floor, so the plan never lingers near the bottom.

    The floor holds on the low side of the inflow, not only on the forecast: each step ends
    above the minimum even if its own inflow falls to ``inflow_low_m3h``, i.e. the planned
    volume keeps the shortfall (forecast - low) x dt over it. The band near the bottom holds a
    few hundred m3, and recorded inflow has fallen 44 % within one interval. A shortfall that
    lasts is met by the next interval's plan, from the level then measured. For the step
    applied now this is the floor on a low inflow: a diurnal forecast expecting the morning
    rise (recorded: 2,725 m3/h forecast, 1,186 came) does not license pumping only the
    forecast can sustain."""
    in_day = {k for day in p.emptying_days for k in day}
    low = p.v_min_m3 if p.v_low_m3 is None else max(p.v_low_m3, p.v_min_m3)
    shortfall = np.zeros(p.horizon) if p.inflow_low_m3h is None \
        else np.maximum(p.inflow_m3h - p.inflow_low_m3h, 0.0) * p.step_h
    for k in range(p.horizon):
        low_k = max(low, p.v_min_m3 + float(shortfall[k]))
        # only the emptying step and the few after it may go below the low floor (the landing
        # has its own cap and guards), and the step before it may skip the shortfall (the
        # landing starts from the band's top)
        near = [(e[j], low_k - p.v_min_m3) for j in range(k - AFTER_EMPTYING, k + 1) if j in in_day] \
            + [(e[j], low_k - low) for j in range(k + 1, k + 1 + BEFORE_EMPTYING) if j in in_day and low_k > low] \
            if (e := v.e) is not None else []
        m.family("floor")
        m.row([(v.v[k], 1.0), (v.lo[k], 1.0), *near], lo=low_k)
    if v.e is None or v.miss is None:
        return
    big_m = max(p.v_max_m3 - p.v_empty_m3, 0.0) + 1.0
    booked = {day[0]: j for j, day in enumerate(p.emptying_days) if len(day) == 1}
    # a landing misses with chance landing_miss; each later candidate of its day is a retry, so a
    # landing with r left risks the day's penalty with chance landing_miss * retry_miss ** r
    retries = {k: len(day) - 1 - i for day in p.emptying_days for i, k in enumerate(sorted(day))}
    short = m.block("short", (len(booked),), 0.0, INF, p.weights.emptying_eur / max(low - p.v_empty_m3, 1.0))
    for k in range(p.horizon):
        if k in booked:  # a booked step: no binary, a shortfall in m3 pays instead
            j = booked[k]
            m.lower[v.e[k]] = 1.0
            m.upper[v.miss[j]] = 0.0
            i = list(booked).index(k)
            m.family("emptying_booked")
            m.row([(v.v[k], 1.0), (v.e[k], big_m), (v.hi[k], -1.0), (short[i], -1.0)], hi=p.v_empty_m3 + big_m)
        elif k in in_day:
            m.cost[v.e[k]] = p.weights.emptying_eur * p.landing_miss * p.retry_miss ** retries[k]
            m.family("emptying_step")
            m.row([(v.v[k], 1.0), (v.e[k], big_m), (v.hi[k], -1.0)], hi=p.v_empty_m3 + big_m)
        else:
            m.upper[v.e[k]] = 0.0
    for j, day in enumerate(p.emptying_days):
        m.family("emptying_day")
        m.row([*[(v.e[k], 1.0) for k in day], (v.miss[j], 1.0)], lo=1.0)
    v.short = short


def _self_regulating(m: Model, p: Problem, v: _Vars) -> None:
    """At the guard steps, the emptying step and the ones after, the running set must not be able
    to pull the level under the minimum even at minimum speed on the low side of the inflow:
    near the bottom the level reacts within minutes, and pumps still inside their minimum run
    cannot be stopped (soak: a large pump started for a landing, then alone at minimum speed,
    took the level from 0.66 to 0.37 m when the inflow fell to 38 %). All are soft: pumps inside
    their minimum run may make a booked step's set impossible (pump-outage: a booking at 4.5 m
    with five pumps locked on made the plan infeasible)."""
    if p.q_floor_m3h is None:
        return
    in_day = {k for day in p.emptying_days for k in day}
    inflow = p.inflow_m3h if p.inflow_low_m3h is None else p.inflow_low_m3h
    locked = p.per_block(p.locked_on)  # pumps inside their minimum run now, per block
    for k in p.guard_steps:
        for terms, const in _guard_sets(p, v, p.block_of(k), locked):
            slack = m.block("guard_slack", (1,), 0.0, INF, p.weights.level_eur_per_m3 * p.step_h)
            m.family("guard")
            m.row([*terms, (slack[0], -1.0)], hi=float(inflow[k]) - const)
    if v.e is None:
        return
    sizes = np.array([len(g.members) for g in p.groups])
    big_m = float(np.dot(sizes, p.q_floor_m3h))
    for k in sorted(in_day):
        for kk in range(k, k + AFTER_EMPTYING + 1):
            if kk >= p.horizon:
                continue
            for terms, const in _guard_sets(p, v, p.block_of(kk), locked):
                slack = m.block("guard_slack", (1,), 0.0, INF, p.weights.level_eur_per_m3 * p.step_h)
                m.family("landing_guard")
                m.row([*terms, (v.e[k], big_m), (slack[0], -1.0)], hi=float(inflow[kk]) + big_m - const)


def _committed(m: Model, p: Problem, coef: Coefficients, v: _Vars) -> None:
    """Pumps inside their minimum run cannot be stopped, so the floor must hold on what they take
    out for the rest of their run, not only on the plan's next interval. From the end of each
    block's last step k, a fallback: every pump that may stop stops, the ones inside their run go
    on at minimum speed, and the inflow stays on its low side; it must end no step of their run
    under the floor:

        V_k - sum_(i=k+1..t) (sum_g q_min_gi L_gi - inflow_low_i) dt >= V_min,  t = k+1 .. k+min_on,

    L_gi the pumps of group g still inside their run at step i: those locked now, and those
    started in a block up to k less than min_on steps before i. A shortfall of inflow that lasts
    a recession's hours is not met by the next interval's plan when the pumps are locked (e20:
    four pumps started beside one at 2.2 m, then a fifth; the inflow fell from 7,400 to 4,500
    m3/h within their run, and the level reached 0.295 m). Soft, priced as the level band, since
    the pumps locked now may already break it."""
    if p.min_on_steps <= 0:
        return
    G, H = len(p.groups), p.horizon
    inflow = p.inflow_m3h if p.inflow_low_m3h is None else p.inflow_low_m3h
    starts = p.block_starts
    ends = [*starts[1:], H]
    net = np.r_[0.0, np.cumsum(inflow - (coef.q_min * p.locked_on).sum(axis=0))] * p.step_h  # net[i]: steps < i
    drained = np.concatenate([np.zeros((G, 1)), np.cumsum(coef.q_min, axis=1)], axis=1) * p.step_h
    slack = m.block("committed_slack", (p.blocks,), 0.0, INF, p.weights.level_eur_per_m3)
    m.family("committed")
    for b in range(p.blocks):
        k = ends[b] - 1
        young = [j for j in range(b + 1) if starts[j] + p.min_on_steps > k + 1]
        if not young and not p.locked_on[:, k + 1:].any():
            continue
        for t in range(k + 1, min(k + p.min_on_steps, H - 1) + 1):
            terms = [(v.v[k], 1.0), (slack[b], 1.0)]
            for j in young:
                last = min(t, starts[j] + p.min_on_steps - 1)  # the last step of (k, t] it is locked in
                terms += [(v.s[g, j], -float(drained[g, last + 1] - drained[g, k + 1])) for g in range(G)]
            m.row(terms, lo=p.v_min_m3 - float(net[t + 1] - net[k + 1]))


def _guard_sets(p: Problem, v: _Vars, b: int, locked_on: Ints) -> list[tuple[list[tuple[int, float]], float]]:
    """The floor flows a guard sums, as (terms, constant). Without PLC stop levels: every pump
    running in block b. With them the PLC stops, at the floor, every pump past its minimum run
    but never the last one, so two sets must each be self-regulating: the pumps still inside
    their run (``locked_on`` per block now, and those started within min_on_steps), and the pump it
    keeps when none is, the least-flow one (the smallest group's, if one of it runs, else the
    largest floor flow; linear in that group's count)."""
    q = p.q_floor_m3h
    assert q is not None
    G = len(p.groups)
    if not p.plc_stops:
        return [([(v.n[g, b], float(q[g])) for g in range(G)], 0.0)]
    starts = p.block_starts
    young = [(v.s[g, j], float(q[g])) for g in range(G) for j in range(b + 1)
             if starts[b] - starts[j] < p.min_on_steps]
    locked = float(np.dot(locked_on[:, b], q))
    small, top = int(np.argmin(q)), float(np.max(q))
    return [(young, locked), ([(v.n[small, b], float(q[small]) - top)], top)]


def solve(p: Problem, coef: Coefficients, time_limit_s: float, mip_gap: float = 1e-3,
          counts: Ints | None = None) -> Plan | None:
    """Solve and read the plan back; None when HiGHS has no feasible point at all. ``counts``
    (G, H) are pump counts per step to start from (the previous plan shifted), which HiGHS
    completes into an incumbent."""
    _check_finite(p, coef)
    # Flows are linearised at guessed levels, so pumps held on by their minimum run can seem
    # to drain past empty. Only then (infeasible) is the volume let below zero, priced by the
    # floor slack: always unbounded, the dry-week scenario missed 2 emptyings it keeps.
    for empty_floor in (True, False):
        model, v = build(p, coef, empty_floor)
        result = model.solve(time_limit_s, mip_gap, _count_start(model, p, v, counts))
        if result.status != "Infeasible":
            break
    if not result.has_solution:
        return None
    return plan_of(p, coef, v, result)


def _count_start(model: Model, p: Problem, v: _Vars, counts: Ints | None
                 ) -> tuple[NDArray[np.int32], Array] | None:
    """Each block's count from the given per-step counts at its first step, within its bounds."""
    if counts is None or counts.shape != (len(p.groups), p.horizon):
        return None
    idx = v.n.index().ravel()
    lo, hi = np.asarray(model.lower)[idx], np.asarray(model.upper)[idx]
    vals = np.clip(counts[:, p.block_starts].astype(float).ravel(), lo, hi)
    return idx.astype(np.int32), vals


def plan_of(p: Problem, coef: Coefficients, v: _Vars, r: Result) -> Plan:
    counts = np.rint(v.n.values(r.x)).astype(np.int64)[:, p.block_index()]
    flows = np.maximum(v.q.values(r.x), 0.0)[:, v.flow_of]
    power = (coef.a * counts + coef.b * flows).sum(axis=0)
    slack = float(v.lo.values(r.x).sum() + v.hi.values(r.x).sum())
    missed = int(np.rint(v.miss.values(r.x)).sum()) if v.miss is not None else 0
    if v.short is not None:
        missed += int((v.short.values(r.x) > 1.0).sum())
    return Plan(counts, flows, v.v.values(r.x), power, r.status, r.seconds, r.objective, r.gap,
                slack, missed)


def _check_finite(p: Problem, coef: Coefficients) -> None:
    """HiGHS accepts NaN costs and then runs to its time limit: refuse them here."""
    for name in ("inflow_m3h", "price_eur_per_kwh", "level_guess_m"):
        if not np.all(np.isfinite(getattr(p, name))):
            raise ValueError(f"plan input {name} has a non-finite value")
    for name in ("q_min", "q_max", "a", "b"):
        if not np.all(np.isfinite(getattr(coef, name))):
            raise ValueError(f"pump coefficient {name} has a non-finite value")
    if not np.isfinite(p.volume0_m3):
        raise ValueError(f"plan input volume0_m3 is {p.volume0_m3}")
