"""Build config/site.toml's geometry and pump-curve tables from the plant's derived CSVs.

Run once when a new plant's datasheets arrive; the TOML it writes is what the project
reads, so the project runs without the CSVs.  Usage:
    python scripts/make_site_toml.py ../shared/hsy-data/derived > config/tables.toml
"""

import csv
import sys
from pathlib import Path


def _column(rows: list[dict[str, str]], name: str) -> list[float]:
    return [float(r[name]) for r in rows]


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def _fmt(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:g}" for v in values) + "]"


def main(derived: Path) -> None:
    table = _read(derived / "volume_level_table.csv")
    print("[tunnel]")
    print(f"level_m = {_fmt(_column(table, 'level_m'))}")
    print(f"volume_m3 = {_fmt(_column(table, 'volume_m3'))}")
    for kind in ("large", "small"):
        rows = _read(derived / f"pump_curve_{kind}_50Hz.csv")
        print(f"\n[pump_types.{kind}.curve_50hz]")
        print(f"flow_m3h = {_fmt(_column(rows, 'Q_m3h'))}")
        print(f"head_m = {_fmt(_column(rows, 'H_m'))}")
        print(f"power_kw = {_fmt(_column(rows, 'P1_input_kW'))}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
