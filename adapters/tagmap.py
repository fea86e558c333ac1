"""Tag maps: which OPC UA node or MQTT topic carries each telemetry and setpoint field.

A plant's node model is not ours to choose (plant-facts.md, "SCADA / OPC UA in the field"),
so every address, unit and scaling is configuration. Values are converted to our canonical
units (the unit in the field name) on the way in, and back on the way out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, model_validator

from kernel.clock import UTC_CLOCK, SiteClock
from kernel.contracts import QUANTILE_FIELDS
from kernel.errors import PlantError, TagMapError
from kernel.settings import read_toml, validated

# unit -> (dimension, factor to the dimension's base: m, m3, m3/h, kW, Hz, s, EUR/kWh)
UNITS: dict[str, tuple[str, float]] = {
    "m": ("length", 1.0), "cm": ("length", 0.01), "mm": ("length", 0.001),
    "m3": ("volume", 1.0),
    "m3/h": ("flow", 1.0), "m3/15min": ("flow", 4.0), "m3/s": ("flow", 3600.0), "l/s": ("flow", 3.6),
    "kW": ("power", 1.0), "MW": ("power", 1000.0), "W": ("power", 0.001),
    "Hz": ("frequency", 1.0),
    "s": ("duration", 1.0), "min": ("duration", 60.0), "h": ("duration", 3600.0),
    "EUR/kWh": ("price", 1.0), "c/kWh": ("price", 0.01), "EUR/MWh": ("price", 0.001),
    "count": ("count", 1.0), "bool": ("bool", 1.0), "datetime": ("time", 1.0), "status": ("status", 1.0),
}

# field -> (dimension, the canonical unit's factor, required)
STATION = {"time": ("time", 1.0, False), "level_m": ("length", 1.0, True), "volume_m3": ("volume", 1.0, False),
           "inflow_m3h": ("flow", 1.0, True), "outflow_m3h": ("flow", 1.0, False),
           "overflow_m3": ("volume", 1.0, False), "prices": ("price", 1.0, False)}
PUMP = {"status": ("status", 1.0, False), "running": ("bool", 1.0, False), "freq_hz": ("frequency", 1.0, True),
        "flow_m3h": ("flow", 1.0, True), "power_kw": ("power", 1.0, True),
        "run_hours_h": ("duration", 3600.0, False), "starts": ("count", 1.0, False),
        "time_in_state_s": ("duration", 1.0, False), "available": ("bool", 1.0, False)}
SETPOINT = {"on": ("bool", 1.0, True), "freq_hz": ("frequency", 1.0, True), "stop_below_m": ("length", 1.0, False)}
READBACK = {"on": ("bool", 1.0, False), "freq_hz": ("frequency", 1.0, False), "stop_below_m": ("length", 1.0, False)}
STEP = {"request": ("count", 1.0, False), "done": ("count", 1.0, False), "remaining": ("count", 1.0, False)}
# an external inflow forecast (a rain radar's): the first value's time, the step between values,
# and per step the inflow and any of its quantiles (arrays)
FORECAST = {"time": ("time", 1.0, False), "step_s": ("duration", 1.0, False), "inflow_m3h": ("flow", 1.0, False),
            **{name: ("flow", 1.0, False) for name in QUANTILE_FIELDS.values()}}
TABLES = {"station": STATION, "pump": PUMP, "setpoint": SETPOINT, "readback": READBACK, "step": STEP,
          "forecast": FORECAST}


class Tag(BaseModel):
    """One field's address, with the unit the plant uses and an extra raw scale (e.g. counts)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    node: str | None = None  # OPC UA NodeId ("ns=2;s=Level"); {id} is the plant's pump name
    path: str | None = None  # OPC UA browse path under Objects, "/"-separated, in the map's namespace
    topic: str | None = None  # MQTT topic
    field: str | None = None  # key in the topic's JSON object
    unit: str
    scale: float = 1.0
    datatype: str | None = None  # only for our simulator: the OPC UA type it serves (a PLC's Float)

    def factor(self, field_factor: float) -> float:
        """canonical = raw * factor."""
        return self.scale * UNITS[self.unit][1] / field_factor

    def at(self, name: str) -> Tag:
        """The tag for one pump: ``{id}`` replaced by the plant's name for it."""
        return self.model_copy(update={k: getattr(self, k).replace("{id}", name)
                                       for k in ("node", "path", "topic", "field") if getattr(self, k)})


class TagMap(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    transport: Literal["opcua", "mqtt"]
    namespace: str = ""  # OPC UA namespace URI for browse paths
    timezone: str = "UTC"  # the gateway's zone: a time it serves without an offset is its wall clock there
    pump_names: dict[str, str] = {}  # our pump id -> the plant's name for it in {id} (default: the id)
    station: dict[str, Tag]
    pump: dict[str, Tag]
    setpoint: dict[str, Tag]
    readback: dict[str, Tag] = {}
    step: dict[str, Tag] = {}
    forecast: dict[str, Tag] = {}  # optional: an external inflow forecast, read every tick

    @model_validator(mode="after")
    def _complete(self) -> TagMap:
        problems = [p for table, fields in TABLES.items() for p in _check_table(self, table, fields)]
        if "status" not in self.pump and "running" not in self.pump:
            problems.append("[pump] needs 'status' or 'running'")
        if self.step and not {"request", "done"} <= set(self.step):
            problems.append("[step] needs both 'request' and 'done' (or no [step] at all)")
        if self.forecast and not {"time", "inflow_m3h"} <= set(self.forecast):
            problems.append("[forecast] needs both 'time' and 'inflow_m3h' (or no [forecast] at all)")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            problems.append(f"timezone {self.timezone!r} is not a known IANA zone")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def lockstep(self) -> bool:
        return bool(self.step)

    def name_of(self, pump_id: str) -> str:
        return self.pump_names.get(pump_id, pump_id)


def _check_table(tags: TagMap, table: str, fields: dict[str, tuple[str, float, bool]]) -> list[str]:
    entries: dict[str, Tag] = getattr(tags, table)
    problems = [f"[{table}] unknown field {name!r} (known: {', '.join(fields)})" for name in entries
                if name not in fields]
    problems += [f"[{table}] missing required field {name!r}" for name, (_, _, req) in fields.items()
                 if req and name not in entries]
    for name, tag in entries.items():
        if name not in fields:
            continue
        problems += _check_tag(tags.transport, f"[{table}] {name}", tag, fields[name][0])
    return problems


def _check_tag(transport: str, where: str, tag: Tag, dimension: str) -> list[str]:
    problems = []
    if tag.unit not in UNITS:
        problems.append(f"{where}: unknown unit {tag.unit!r} (known: {', '.join(UNITS)})")
    elif UNITS[tag.unit][0] != dimension:
        problems.append(f"{where}: unit {tag.unit!r} is a {UNITS[tag.unit][0]}, the field needs a {dimension}")
    if transport == "opcua" and (tag.node is None) == (tag.path is None):
        problems.append(f"{where}: give exactly one of 'node' or 'path'")
    if transport == "mqtt" and (tag.topic is None or tag.field is None):
        problems.append(f"{where}: give 'topic' and 'field'")
    return problems


def load_tagmap(path: Path) -> TagMap:
    return validated(TagMap, read_toml(path), path, TagMapError)


def field_factor(table: str, name: str) -> float:
    return TABLES[table][name][1]


def plant_time(value: datetime, zone: str, clock: SiteClock) -> datetime:
    """A time from the wire as plant time (the site's standard time, kernel/clock.py): one
    with an offset is an instant; one without is the gateway's wall clock in ``zone``."""
    return clock.from_aware(value if value.tzinfo is not None else value.replace(tzinfo=ZoneInfo(zone)))


@dataclass(frozen=True)
class Binding:
    """One field of one table (and pump) bound to its tag."""

    table: str
    field: str
    pump: str | None
    tag: Tag
    zone: str = "UTC"
    clock: SiteClock = UTC_CLOCK  # the site's, in every binding the adapters make

    @property
    def dimension(self) -> str:
        return TABLES[self.table][self.field][0]

    @property
    def factor(self) -> float:
        return self.tag.factor(TABLES[self.table][self.field][1])

    @property
    def where(self) -> str:
        pump = f" pump {self.pump}" if self.pump else ""
        return f"[{self.table}] {self.field}{pump}"

    def decode(self, raw: Any) -> Any:
        """Wire value -> canonical value; a value of the wrong kind is a PlantError naming the tag."""
        try:
            return _decode(self, raw)
        except (TypeError, ValueError) as exc:
            raise PlantError(f"{self.where} read {raw!r}: {exc}") from exc

    def encode(self, value: Any) -> Any:
        """Canonical value -> wire value."""
        if self.dimension in ("bool", "status"):
            return value
        if self.dimension == "time":  # plant time, labelled with its fixed offset: an instant
            return value if value.tzinfo else value.replace(tzinfo=timezone(self.clock.offset))
        if self.dimension == "count":
            return round(value / self.factor)
        if isinstance(value, list | tuple):
            return [float(x) / self.factor for x in value]
        return float(value) / self.factor


def _decode(b: Binding, raw: Any) -> Any:
    if b.dimension == "time":
        value = datetime.fromisoformat(raw) if isinstance(raw, str) else raw
        if not isinstance(value, datetime):
            raise TypeError("not a time")
        return plant_time(value, b.zone, b.clock)
    if b.dimension == "status":
        return str(raw)
    if b.dimension == "bool":
        if not isinstance(raw, bool | int):
            raise TypeError("not a boolean")
        return bool(raw)
    if isinstance(raw, list | tuple):
        return [_finite(x) * b.factor for x in raw]
    value = _finite(raw) * b.factor
    return round(value) if b.dimension == "count" else value


def _finite(raw: Any) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
        raise ValueError("not a finite number")
    return float(raw)


def bindings(tags: TagMap, pump_ids: list[str], tables: tuple[str, ...], clock: SiteClock) -> list[Binding]:
    """Every (field, pump) of ``tables`` with its tag; pump tables once per pump. ``clock``:
    the site's, whose plant time the times are read into and written from."""
    out = []
    for table in tables:
        for name, tag in getattr(tags, table).items():
            if table in ("pump", "setpoint", "readback"):
                out += [Binding(table, name, p, tag.at(tags.name_of(p)), tags.timezone, clock) for p in pump_ids]
            else:
                out.append(Binding(table, name, None, tag, tags.timezone, clock))
    return out
