"""Plant physics shared by the twin and the controller's own model.

Both build from the same site config, so they agree on geometry and hydraulics; the
twin adds dynamics and state, the controller linearises. Operating points are solved
once on a (frequency, level) grid and interpolated, because the twin's hot loop asks
for them a million times a simulated year.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from numpy.typing import NDArray

from kernel.site import PumpType, Site, Tunnel

FloatArray = NDArray[np.float64]


class LevelVolume:
    """Official level <-> volume table.

    Below the first level where volume starts to rise (the sump, 0-0.4 m here) the table
    is flat; for the inverse we spread the sump's volume linearly over that depth so that
    every volume has exactly one level.
    """

    def __init__(self, tunnel: Tunnel) -> None:
        self.levels = np.asarray(tunnel.level_m, dtype=float)
        self.volumes = np.asarray(tunnel.volume_m3, dtype=float)
        rising = np.flatnonzero(np.diff(self.volumes) > 0)[0]
        self._inv_v = np.r_[0.0, self.volumes[rising:]]
        self._inv_l = np.r_[self.levels[0], self.levels[rising:]]
        self.max_level_m = float(self.levels[-1])
        self.max_volume_m3 = float(self.volumes[-1])

    def volume(self, level_m: float) -> float:
        return float(np.interp(level_m, self.levels, self.volumes))

    def level(self, volume_m3: float) -> float:
        return float(np.interp(volume_m3, self._inv_v, self._inv_l))

    def levels_of(self, volumes_m3: FloatArray) -> FloatArray:
        return np.asarray(np.interp(volumes_m3, self._inv_v, self._inv_l), dtype=float)

    def area_m2(self, level_m: float, dl: float = 0.05) -> float:
        """Surface area dV/dL (central difference), used to translate flow into level rate."""
        return (self.volume(level_m + dl) - self.volume(level_m - dl)) / (2 * dl)


SHUT_OFF_CAP = 1.1  # shut-off head at most 10 % above the curve's first point


class Curve:
    """A datasheet curve, extended linearly beyond its points.

    Datasheets stop short of shut-off; a fitted polynomial bends back there and makes the
    head curve non-monotone, so we extend the end slopes instead (head capped at shut-off).
    """

    def __init__(self, x: FloatArray, y: FloatArray, cap: float | None = None) -> None:
        order = np.argsort(x)
        x, y = x[order], y[order]
        x, keep = np.unique(x, return_index=True)
        y = y[keep]
        k = min(5, len(x) - 1)
        y0 = y[0] - (y[k] - y[0]) / (x[k] - x[0]) * x[0]
        if cap is not None:
            y0 = min(max(y0, y[0]), cap * y[0])
        x_end = 3 * x[-1]
        y_end = y[-1] + (y[-1] - y[-1 - k]) / (x[-1] - x[-1 - k]) * (x_end - x[-1])
        self.x = np.r_[0.0, x, x_end]
        self.y = np.r_[y0, y, y_end]

    def __call__(self, q: FloatArray | float) -> FloatArray:
        return np.asarray(np.interp(q, self.x, self.y), dtype=float)


Axis = tuple[float, float, int]  # first value, spacing, length of a regular grid axis


def _cell(x: float, axis: Axis) -> tuple[int, float]:
    """Cell index and fraction of ``x`` on a regular axis, clamped to the axis (plain floats)."""
    start, step, n = axis
    pos = min(max((x - start) / step, 0.0), n - 1.000001)
    return int(pos), pos - int(pos)


def _cells(x: FloatArray, axis: Axis) -> tuple[NDArray[np.int_], FloatArray]:
    start, step, n = axis
    pos = np.clip((x - start) / step, 0.0, n - 1.000001)
    i = pos.astype(int)
    return i, pos - i


def _axis(values: FloatArray) -> Axis:
    return float(values[0]), float(values[1] - values[0]), len(values)


@dataclass(frozen=True)
class OperatingGrid:
    """Flow and power of one pump type over a regular (frequency, level) grid."""

    freq_hz: FloatArray
    level_m: FloatArray
    flow_m3h: FloatArray  # shape (n_freq, n_level)
    power_kw: FloatArray

    @cached_property
    def axes(self) -> tuple[Axis, Axis]:
        return _axis(self.freq_hz), _axis(self.level_m)

    @cached_property
    def _rows(self) -> tuple[list[list[float]], list[list[float]]]:
        return self.flow_m3h.tolist(), self.power_kw.tolist()

    def lookup(self, freq_hz: FloatArray, level_m: float) -> tuple[FloatArray, FloatArray]:
        """Bilinear interpolation for a vector of frequencies at one level."""
        f_axis, l_axis = self.axes
        i, a = _cells(freq_hz, f_axis)
        j, b = _cell(level_m, l_axis)
        return self._bilinear(self.flow_m3h, i, j, a, b), self._bilinear(self.power_kw, i, j, a, b)

    def point(self, freq_hz: float, level_m: float) -> tuple[float, float]:
        """One operating point in plain floats: a controller asks thousands of single questions,
        where numpy's per-call overhead would dominate."""
        f_axis, l_axis = self.axes
        i, a = _cell(freq_hz, f_axis)
        j, b = _cell(level_m, l_axis)
        out = []
        for rows in self._rows:
            r0, r1 = rows[i], rows[i + 1]
            top = r0[j] * (1 - b) + r0[j + 1] * b
            bottom = r1[j] * (1 - b) + r1[j + 1] * b
            out.append(top * (1 - a) + bottom * a)
        return out[0], out[1]

    def lookup_levels(self, freq_hz: float) -> tuple[FloatArray, FloatArray]:
        """Flow and power at one frequency over the whole level axis (linear in frequency)."""
        i, a = _cell(freq_hz, self.axes[0])
        return (self.flow_m3h[i] * (1 - a) + self.flow_m3h[i + 1] * a,
                self.power_kw[i] * (1 - a) + self.power_kw[i + 1] * a)

    @staticmethod
    def _bilinear(z: FloatArray, i: NDArray[np.int_], j: int, a: FloatArray, b: float) -> FloatArray:
        top = z[i, j] * (1 - b) + z[i, j + 1] * b
        bottom = z[i + 1, j] * (1 - b) + z[i + 1, j + 1] * b
        return np.asarray(top * (1 - a) + bottom * a, dtype=float)


class PumpHydraulics:
    """Affinity-scaled pump curve against the calibrated system curve.

    Head at frequency f: H_f(Q) = r^2 H_50(Q/r), power P_f(Q) = pf * r^3 P_50(Q/r), r = f/50.
    System head: L2 + offset - suction(L1) + k Q^2 (see PumpType for suction). The operating point is where they meet;
    if the pump's shut-off head is below the system head, it delivers nothing.
    """

    def __init__(self, ptype: PumpType, discharge_level_m: float) -> None:
        c = ptype.curve_50hz
        q = np.asarray(c.flow_m3h, dtype=float)
        self.head50 = Curve(q, np.asarray(c.head_m, dtype=float), cap=SHUT_OFF_CAP)
        self.power50 = Curve(q, np.asarray(c.power_kw, dtype=float))
        self.q_max_50 = float(q.max()) * 1.3
        self.ptype = ptype
        self.static_m = discharge_level_m + ptype.head_offset_m

    def system_head_m(self, flow_m3h: FloatArray, level_m: FloatArray) -> FloatArray:
        p = self.ptype
        low = np.minimum(level_m, p.level_gain_until_m)
        suction = p.level_gain * low + (level_m - low)
        return self.static_m - suction + p.loss_m_per_m3h2 * flow_m3h**2

    def flow_m3h(self, freq_hz: FloatArray, level_m: FloatArray) -> FloatArray:
        """Vectorised bisection on Q in [0, r*q_max]; monotone so 50 halvings are exact."""
        freq = np.asarray(freq_hz, dtype=float)
        level = np.asarray(level_m, dtype=float)
        r = np.maximum(freq / 50.0, 1e-6)
        lo = np.zeros(np.broadcast(r, level).shape)
        hi = np.broadcast_to(r * self.q_max_50, lo.shape).copy()
        for _ in range(50):
            mid = 0.5 * (lo + hi)
            surplus = r**2 * self.head50(mid / r) - self.system_head_m(mid, level)
            lo = np.where(surplus > 0, mid, lo)
            hi = np.where(surplus > 0, hi, mid)
        shut_off = r**2 * self.head50(0.0) - self.system_head_m(np.zeros_like(lo), level)
        return np.where((shut_off > 0) & (freq > 0), lo, 0.0)

    def power_kw(self, freq_hz: FloatArray, flow_m3h: FloatArray) -> FloatArray:
        r = np.asarray(freq_hz, dtype=float) / 50.0
        safe_r = np.maximum(r, 1e-6)
        p = self.ptype.power_factor * r**3 * self.power50(np.asarray(flow_m3h) / safe_r)
        return np.where(r > 0, np.maximum(p, 0.0), 0.0)

    def grid(self, max_level_m: float, df: float = 0.1, dl: float = 0.05) -> OperatingGrid:
        freqs = np.arange(0.0, self.ptype.drive_max_hz + df / 2, df)
        levels = np.arange(-0.5, max_level_m + dl, dl)
        f2, l2 = np.meshgrid(freqs, levels, indexing="ij")
        flow = self.flow_m3h(f2, l2)
        return OperatingGrid(freqs, levels, flow, self.power_kw(f2, flow))


class StackedGrids:
    """Every pump's grid (type grid times its per-pump scales) in one array, so the twin's hot
    loop does one vectorised lookup per internal step for all pumps."""

    def __init__(self, grids: list[OperatingGrid], flow_scale: FloatArray, power_scale: FloatArray) -> None:
        self.f_axis, self.l_axis = grids[0].axes
        self.flow = np.stack([x.flow_m3h for x in grids]) * flow_scale[:, None, None]
        self.power = np.stack([x.power_kw for x in grids]) * power_scale[:, None, None]
        self.rows = np.arange(len(grids))

    @staticmethod
    def compatible(grids: list[OperatingGrid]) -> bool:
        g = grids[0]
        return all(np.array_equal(x.freq_hz, g.freq_hz) and np.array_equal(x.level_m, g.level_m) for x in grids)

    def lookup(self, freq_hz: FloatArray, level_m: float) -> tuple[FloatArray, FloatArray]:
        i, a = _cells(freq_hz, self.f_axis)
        j, b = _cell(level_m, self.l_axis)
        r = self.rows
        out = []
        for z in (self.flow, self.power):
            top = z[r, i, j] * (1 - b) + z[r, i, j + 1] * b
            bottom = z[r, i + 1, j] * (1 - b) + z[r, i + 1, j + 1] * b
            out.append(top * (1 - a) + bottom * a)
        return out[0], out[1]


@dataclass(frozen=True)
class PlantPhysics:
    """Geometry and per-pump operating grids for one site, built once.

    Once per process, too: the grids take about 0.5 s, and the twin, the controllers and the
    daemon's validator each ask for them. Kept by what they are built from (the tunnel, the
    pump types, the discharge level), so a calibrated site or another plant gets its own."""

    geometry: LevelVolume
    hydraulics: dict[str, PumpHydraulics]  # by pump type
    grids: dict[str, OperatingGrid]  # by pump type

    @classmethod
    def from_site(cls, site: Site) -> PlantPhysics:
        key = json.dumps([site.tunnel.model_dump(mode="json"), site.discharge_level_m,
                          {n: t.model_dump(mode="json") for n, t in site.pump_types.items()}], sort_keys=True)
        if key not in _BUILT:
            if len(_BUILT) >= BUILT_MAX:
                _BUILT.pop(next(iter(_BUILT)))  # the oldest
            _BUILT[key] = cls._build(site)
        return _BUILT[key]

    @classmethod
    def _build(cls, site: Site) -> PlantPhysics:
        geometry = LevelVolume(site.tunnel)
        hyd = {
            name: PumpHydraulics(pt, site.discharge_level_m) for name, pt in site.pump_types.items()
        }
        grids = {name: h.grid(geometry.max_level_m) for name, h in hyd.items()}
        return cls(geometry, hyd, grids)


BUILT_MAX = 8  # distinct plants kept (a calibration run makes one more)
_BUILT: dict[str, PlantPhysics] = {}
