"""Loaders for recorded plant data: the plant's workbook layout and a tidy CSV.

Both produce ``RecordedData`` in canonical units through one validation path. Each
problem is an error naming file, column and row, or a documented repair with a warning
(README, "Data formats"). Nothing is silently dropped.
"""

from __future__ import annotations

import contextlib
import csv
import re
import warnings
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from kernel.clock import UTC_CLOCK, SiteClock
from kernel.errors import DataError
from kernel.recorded import (
    Array,
    DataRepairWarning,
    RecordedData,
    check_finite,
    check_inflow_unit,
    check_range,
    check_timestamps,
    clamp_small_negatives,
)

PER_STEP_TO_PER_HOUR = 4.0  # m3 per 15 min -> m3/h
PRICE_EUR_MAX = 5.0  # EUR/kWh; anything above is a c/kWh column with a wrong unit label
# Excel row 1 holds names, row 2 units: data starts on row 3.
WORKBOOK_FIRST_ROW = 3


def load_recorded(path: Path, clock: SiteClock = UTC_CLOCK) -> RecordedData:
    """Pick the loader by file type. ``clock``: the site's, which reads naive wall-clock times
    in its zone and turns every time into plant time (kernel/clock.py)."""
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        return load_workbook(path, clock)
    if path.suffix.lower() == ".csv":
        return load_tidy_csv(path, clock)
    raise DataError(f"{path}: unknown data file type {path.suffix!r} (expected .xlsx or .csv)")


# ---------------------------------------------------------------- workbook

WORKBOOK_COLUMNS = {
    "level": re.compile(r"^water level in tunnel l[12]$"),
    "volume": re.compile(r"^water volume in tunnel v$"),
    "outflow": re.compile(r"^sum of pumped flow to wwtp f2$"),
    "inflow": re.compile(r"^inflow to tunnel f1$"),
}
PUMP_COLUMN = re.compile(r"^pump (flow|efficiency|frequency) (\d+\.\d+)$")
PRICE_COLUMN = re.compile(r"^electricity price \d+: *(\w+)$")


def load_workbook(path: Path, clock: SiteClock = UTC_CLOCK) -> RecordedData:
    import openpyxl  # imported here: only this loader needs it

    try:
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many types for a broken file
        raise DataError(f"{path}: cannot read as a workbook: {exc}") from exc
    try:
        sheet = wb["Taul1"] if "Taul1" in wb.sheetnames else wb.worksheets[0]
        rows = list(sheet.iter_rows(values_only=True))
    finally:
        wb.close()
    if len(rows) < 4:
        raise DataError(f"{path}: expected a name row, a unit row and data rows; found {len(rows)} rows")
    names = [str(v).strip() if v is not None else "" for v in rows[0]]
    units = [str(v).strip() if v is not None else "" for v in rows[1]]
    data = [r for r in rows[2:] if any(v is not None for v in r)]
    return _from_workbook_columns(str(path), names, units, data, clock)


def _workbook_column(source: str, data: list[tuple[Any, ...]], index: int, name: str) -> Array:
    out = np.empty(len(data))
    for i, row in enumerate(data):
        value = row[index] if index < len(row) else None
        try:
            out[i] = float(value) if value is not None and value != "" else np.nan
        except (TypeError, ValueError) as exc:
            raise DataError(f"{source}: column {name!r}, row {WORKBOOK_FIRST_ROW + i}: "
                            f"{value!r} is not a number") from exc
    return out


def _workbook_stamps(source: str, data: list[tuple[Any, ...]], name: str) -> list[datetime]:
    stamps = []
    for i, row in enumerate(data):
        value = row[0]
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                value = datetime.fromisoformat(value)
        if not isinstance(value, datetime):
            raise DataError(f"{source}: column {name!r}, row {WORKBOOK_FIRST_ROW + i}: "
                            f"{value!r} is not a timestamp")
        stamps.append(value)
    return stamps


def _from_workbook_columns(source: str, names: list[str], units: list[str],
                           data: list[tuple[Any, ...]], clock: SiteClock) -> RecordedData:
    cols: dict[str, Array] = {}
    col_units: dict[str, str] = {}
    for index, (name, unit) in enumerate(zip(names, units, strict=False)):
        key = _workbook_key(name.lower())
        if key:
            cols[key] = _workbook_column(source, data, index, name)
            col_units[key] = unit.lower().replace(" ", "")
    stamps = _workbook_stamps(source, data, names[0] or "Time stamp")
    _require(source, cols, ["level", "volume", "outflow", "inflow"], WORKBOOK_COLUMNS)
    if col_units["inflow"] in ("m3/15min",):
        cols["inflow"] = cols["inflow"] * PER_STEP_TO_PER_HOUR
    elif col_units["inflow"] != "m3/h":
        raise DataError(f"{source}: column 'Inflow to tunnel F1': unknown unit {col_units['inflow']!r}")
    for key, unit in col_units.items():
        if key.startswith("power:") and unit != "kw":
            raise DataError(f"{source}: column for pump {key[6:]} power: unit {unit!r} is not kW; "
                            "an efficiency in % cannot give the energy")
    return build(source, stamps, cols, WORKBOOK_FIRST_ROW, price_unit="EUR/kWh", clock=clock)


def _workbook_key(name: str) -> str | None:
    for key, pattern in WORKBOOK_COLUMNS.items():
        if pattern.match(name):
            return key
    if m := PUMP_COLUMN.match(name):
        kind = {"flow": "flow", "efficiency": "power", "frequency": "freq"}[m.group(1)]
        return f"{kind}:{m.group(2)}"
    if m := PRICE_COLUMN.match(name):
        return f"price:{m.group(1)}"
    return None


def _require(source: str, cols: dict[str, Array], keys: list[str], hints: dict[str, Any]) -> None:
    missing = [k for k in keys if k not in cols]
    if missing:
        wanted = ", ".join(getattr(hints.get(k), "pattern", k) for k in missing)
        raise DataError(f"{source}: missing column(s) for {', '.join(missing)} (looked for {wanted})")


# ---------------------------------------------------------------- tidy CSV

TIDY_FIXED = {"L1_m": "level", "V_m3": "volume", "F2_m3h": "outflow", "F1_m3h": "inflow",
              "F1_m3_per_15min": "inflow_per_step"}
TIDY_PUMP = re.compile(r"^(Q|P|f)_(\d+)_(\d+)_(m3h|kW|Hz)$")
TIDY_PRICE = re.compile(r"^price_(\w+?)_(c|eur)_per_kWh$")
TIDY_UNITS = {"Q": "m3h", "P": "kW", "f": "Hz"}


def load_tidy_csv(path: Path, clock: SiteClock = UTC_CLOCK) -> RecordedData:
    """Comma-separated with decimal points, or what a spreadsheet set to Finnish (and most of
    Europe) exports: semicolons with decimal commas. The header line tells which."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # -sig: a spreadsheet's byte-order mark
    except UnicodeDecodeError as exc:
        raise DataError(f"{source}: not a UTF-8 text file ({exc.reason} at byte {exc.start})") from exc
    first_line = text.split("\n", 1)[0]
    delimiter = ";" if first_line.count(";") > first_line.count(",") else ","
    try:
        rows = list(csv.reader(text.splitlines(), delimiter=delimiter))
    except csv.Error as exc:
        raise DataError(f"{source}: not a readable CSV: {exc}") from exc
    header, body = (rows[0] if rows else None), rows[1:]
    if not header or header[0].strip() != "timestamp":
        raise DataError(f"{source}: first column must be 'timestamp' (found {(header or [''])[0]!r})")
    header = [h.strip() for h in header]
    if delimiter == ";":  # a decimal comma is the reason for semicolons
        body = [[row[0], *(v.replace("\u00a0", "").replace(" ", "").replace(",", ".") for v in row[1:])]
                for row in body]
    cols, price_units = _tidy_columns(source, header, body)
    stamps = _tidy_stamps(source, body)
    if "inflow_per_step" in cols:
        per_hour = cols.pop("inflow_per_step") * PER_STEP_TO_PER_HOUR
        if "inflow" in cols and not np.allclose(cols["inflow"], per_hour, rtol=0.01, atol=1.0, equal_nan=True):
            bad = int(np.flatnonzero(~np.isclose(cols["inflow"], per_hour, rtol=0.01, atol=1.0))[0])
            raise DataError(f"{source}: columns 'F1_m3h' and 'F1_m3_per_15min' disagree from row {bad + 2} "
                            f"({cols['inflow'][bad]:g} vs 4 x {per_hour[bad] / 4:g}); which unit is right?")
        cols.setdefault("inflow", per_hour)
    _require(source, cols, ["level", "outflow", "inflow"], {})
    for name, unit in price_units.items():
        if unit == "c":
            cols[f"price:{name}"] = cols[f"price:{name}"] / 100.0
    return build(source, stamps, cols, 2, price_unit=None, clock=clock)


def _tidy_columns(source: str, header: list[str],
                  body: list[list[str]]) -> tuple[dict[str, Array], dict[str, str]]:
    cols: dict[str, Array] = {}
    price_units: dict[str, str] = {}
    for index, name in enumerate(header[1:], start=1):
        key = TIDY_FIXED.get(name)
        if m := TIDY_PUMP.match(name):
            if TIDY_UNITS[m.group(1)] != m.group(4):
                raise DataError(f"{source}: column {name!r}: unit {m.group(4)!r} cannot be right "
                                f"for {m.group(1)} (expected {TIDY_UNITS[m.group(1)]})")
            kind = {"Q": "flow", "P": "power", "f": "freq"}[m.group(1)]
            key = f"{kind}:{m.group(2)}.{m.group(3)}"
        elif m := TIDY_PRICE.match(name):
            key = f"price:{m.group(1)}"
            price_units[m.group(1)] = m.group(2)
        if key is None:
            raise DataError(f"{source}: column {name!r} is not part of the tidy format (README, Data formats)")
        cols[key] = _tidy_column(source, body, index, name)
    return cols, price_units


def _tidy_column(source: str, body: list[list[str]], index: int, name: str) -> Array:
    out = np.empty(len(body))
    for i, row in enumerate(body):
        text = row[index].strip() if index < len(row) else ""
        try:
            out[i] = float(text) if text else np.nan
        except ValueError as exc:
            raise DataError(f"{source}: column {name!r}, row {i + 2}: {text!r} is not a number") from exc
    return out


def _tidy_stamps(source: str, body: list[list[str]]) -> list[datetime]:
    stamps = []
    for i, row in enumerate(body):
        try:
            stamps.append(datetime.fromisoformat(row[0].strip()))
        except (ValueError, IndexError) as exc:
            raise DataError(f"{source}: column 'timestamp', row {i + 2}: "
                            f"{row[0] if row else ''!r} is not an ISO 8601 time") from exc
    return stamps


# ---------------------------------------------------------------- shared validation

def build(source: str, stamps: list[datetime], cols: dict[str, Array], first_row: int,
          price_unit: str | None, clock: SiteClock = UTC_CLOCK) -> RecordedData:
    """Check and assemble; ``price_unit`` is the label the file claims (None: already EUR/kWh)."""
    stamps = clock.plant_times(source, "timestamp", stamps, first_row)
    check_timestamps(source, "timestamp", stamps, first_row)
    for key, values in cols.items():
        check_finite(source, key, values, first_row)
    level = clamp_small_negatives(source, "level", cols["level"], first_row, 0.05)
    check_range(source, "level", level, first_row, 0.0, 20.0, "m")
    pump_ids = sorted({k.split(":", 1)[1] for k in cols if k.startswith(("flow:", "power:", "freq:"))})
    flows = {p: _pump_col(source, cols, "flow", p, first_row, 0.0, 20000.0, "m3/h") for p in pump_ids}
    powers = {p: _pump_col(source, cols, "power", p, first_row, 0.0, 2000.0, "kW") for p in pump_ids}
    freqs = {p: _pump_col(source, cols, "freq", p, first_row, 0.0, 70.0, "Hz") for p in pump_ids}
    outflow = clamp_small_negatives(source, "outflow", cols["outflow"], first_row, 1.0)
    check_range(source, "outflow", outflow, first_row, 0.0, 100000.0, "m3/h")
    prices = {k[6:]: _price(source, k, v, first_row, price_unit) for k, v in cols.items()
              if k.startswith("price:")}
    volume = cols.get("volume", np.full(len(stamps), np.nan))
    data = RecordedData(source, stamps, level, volume, cols["inflow"], outflow, flows, powers,
                        freqs, prices)
    if "volume" in cols:
        check_inflow_unit(source, "inflow", data, first_row)
    return data


def _pump_col(source: str, cols: dict[str, Array], kind: str, pump: str, first_row: int,
              lo: float, hi: float, unit: str) -> Array:
    key = f"{kind}:{pump}"
    if key not in cols:
        raise DataError(f"{source}: pump {pump} has no {kind} column")
    values = clamp_small_negatives(source, key, cols[key], first_row, 0.05 * max(1.0, hi / 1000))
    check_range(source, key, values, first_row, lo, hi, unit)
    return values


def _price(source: str, key: str, values: Array, first_row: int, claimed: str | None) -> Array:
    """The workbook labels c/kWh prices as EUR/kWh; above the 4 EUR/kWh market cap can't be right."""
    if claimed == "EUR/kWh" and float(np.max(np.abs(values))) > PRICE_EUR_MAX:
        warnings.warn(f"{source}: column {key!r}: labelled EUR/kWh but reaches "
                      f"{np.max(values):g}, above the market cap: read as c/kWh and divided by 100",
                      DataRepairWarning, stacklevel=3)
        values = values / 100.0
    check_range(source, key, values, first_row, -5.0, 5.0, "EUR/kWh")
    return values
