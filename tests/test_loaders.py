"""Each loader failure is an error naming file, column and row, or a warned, documented repair."""

import csv
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import openpyxl
import pytest

from kernel.errors import DataError
from kernel.recorded import DataRepairWarning
from scenarios.loaders import load_recorded
from tests.conftest import EXCERPT, SHARED_WORKBOOK, load_quietly, needs_shared


def _rows() -> list[list[str]]:
    with EXCERPT.open() as fh:
        return list(csv.reader(fh))


def _write(tmp_path: Path, rows: list[list[str]]) -> Path:
    path = tmp_path / "data.csv"
    with path.open("w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    return path


def _edit(tmp_path: Path, row: int, column: str, value: str) -> Path:
    rows = _rows()
    rows[row][rows[0].index(column)] = value
    return _write(tmp_path, rows)


def test_excerpt_loads_in_canonical_units() -> None:
    data = load_quietly(EXCERPT)
    assert len(data) == 192
    assert data.inflow_m3h[1] == pytest.approx(4 * 1454.53, rel=1e-4)  # m3/15 min -> m3/h
    assert 0.001 < data.prices_eur_per_kwh["normal"].mean() < 1  # c/kWh -> EUR/kWh
    assert sorted(data.pump_flow_m3h) == ["1.1", "1.2", "1.3", "1.4", "2.1", "2.2", "2.3", "2.4"]


def test_nan_names_file_column_row(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"data.csv: column 'level', row 11: value is missing"):
        load_recorded(_edit(tmp_path, 10, "L1_m", ""))


def test_non_number_names_file_column_row(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"column 'F2_m3h', row 6: 'abc' is not a number"):
        load_recorded(_edit(tmp_path, 5, "F2_m3h", "abc"))


def test_duplicate_timestamp(tmp_path: Path) -> None:
    rows = _rows()
    rows[8][0] = rows[7][0]
    with pytest.raises(DataError, match=r"data.csv: column .timestamp., row 9: duplicate timestamp"):
        load_recorded(_write(tmp_path, rows))


def test_non_monotonic_timestamp(tmp_path: Path) -> None:
    rows = _rows()
    rows[8][0], rows[9][0] = rows[9][0], rows[8][0]
    with pytest.raises(DataError, match=r"row 10: timestamp .* is earlier than the row before"):
        load_recorded(_write(tmp_path, rows))


def test_gap(tmp_path: Path) -> None:
    rows = _rows()
    del rows[20]
    with pytest.raises(DataError, match=r"row 21: gap of 0:30:00"):
        load_recorded(_write(tmp_path, rows))


def test_missing_column(tmp_path: Path) -> None:
    rows = [[c for i, c in enumerate(r) if i != _rows()[0].index("F2_m3h")] for r in _rows()]
    with pytest.raises(DataError, match=r"missing column\(s\) for outflow"):
        load_recorded(_write(tmp_path, rows))


def test_unknown_column_is_not_silently_ignored(tmp_path: Path) -> None:
    rows = _rows()
    rows[0][1] = "L1_ft"
    with pytest.raises(DataError, match=r"column 'L1_ft' is not part of the tidy format"):
        load_recorded(_write(tmp_path, rows))


def test_unit_that_cannot_be_right_for_a_pump_column(tmp_path: Path) -> None:
    rows = _rows()
    rows[0][rows[0].index("P_1_1_kW")] = "P_1_1_Hz"
    with pytest.raises(DataError, match=r"unit 'Hz' cannot be right for P"):
        load_recorded(_write(tmp_path, rows))


def test_inflow_per_hour_labelled_per_step_breaks_the_balance(tmp_path: Path) -> None:
    rows = _rows()
    drop = rows[0].index("F1_m3h")
    rows = [[c for i, c in enumerate(r) if i != drop] for r in rows]
    col = rows[0].index("F1_m3_per_15min")
    for r in rows[1:]:
        r[col] = str(float(r[col]) * 4)
    with pytest.raises(DataError, match=r"inflow does not close the volume balance"):
        load_quietly(_write(tmp_path, rows))


def test_two_inflow_columns_that_disagree(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"'F1_m3h' and 'F1_m3_per_15min' disagree from row 6"):
        load_quietly(_edit(tmp_path, 5, "F1_m3h", "99999"))


def test_out_of_range_level_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"column 'level', row 4: 250 m is outside"):
        load_quietly(_edit(tmp_path, 3, "L1_m", "250"))


def test_small_negative_readings_are_repaired_with_a_warning(tmp_path: Path) -> None:
    path = _edit(tmp_path, 3, "L1_m", "-0.01")
    expected = r"column 'level': 2 small negative readings set to 0 \(first at row 4: -0.01\)"
    with pytest.warns(DataRepairWarning, match=expected):
        data = load_recorded(path)
    assert data.level_m[2] == 0.0


def test_not_utf8_text(tmp_path: Path) -> None:
    path = tmp_path / "binary.csv"
    path.write_bytes(b"timestamp\n\xff\xfe\x00")
    with pytest.raises(DataError, match="not a UTF-8 text file"):
        load_recorded(path)


def test_unknown_file_type(tmp_path: Path) -> None:
    path = tmp_path / "x.parquet"
    path.write_bytes(b"")
    with pytest.raises(DataError, match="unknown data file type"):
        load_recorded(path)


def _workbook(tmp_path: Path, power_unit: str = "kW", price: float = 8.7) -> Path:
    """A small workbook in the plant's layout, with its traps."""
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Taul1"
    ws.append(["Time stamp", "Water level in tunnel L2", "Water volume in tunnel V",
               "Sum of pumped flow to WWTP F2", "Inflow to tunnel F1", "Pump flow 1.1",
               "Pump efficiency 1.1", "Pump frequency 1.1", "Electricity price 2: normal"])
    ws.append([None, "m", "m3", "m3/h", "m3/15 min", "m3/h", power_unit, "Hz", "EUR/kWh"])
    level, t = 2.0, datetime(2030, 1, 1)
    for k in range(8):
        volume = 350 + 2500 * (level - 0.4) ** 2
        ws.append([t + timedelta(minutes=15 * k), level, volume, 3000.0, 0.0, 3000.0, 360.0, 49.0, price])
    wb.save(tmp_path / "plant.xlsx")
    return tmp_path / "plant.xlsx"


def test_workbook_traps_are_handled(tmp_path: Path) -> None:
    with pytest.warns(DataRepairWarning, match="above the market cap: read as c/kWh"):
        data = load_recorded(_workbook(tmp_path))
    assert data.pump_power_kw["1.1"][0] == 360.0  # 'efficiency' column with unit kW is power
    assert data.prices_eur_per_kwh["normal"][0] == pytest.approx(0.087)


def test_workbook_efficiency_in_percent_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"pump 1\.1 power: unit '%' is not kW"):
        load_recorded(_workbook(tmp_path, power_unit="%"))


def test_broken_workbook(tmp_path: Path) -> None:
    path = tmp_path / "broken.xlsx"
    path.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DataError, match="cannot read as a workbook"):
        load_recorded(path)


@needs_shared
def test_full_workbook_and_tidy_csv_agree() -> None:
    from tests.conftest import SHARED_TIDY

    a, b = load_quietly(SHARED_WORKBOOK), load_quietly(SHARED_TIDY)
    assert len(a) == len(b) and a.timestamps == b.timestamps
    np.testing.assert_allclose(a.inflow_m3h, b.inflow_m3h, atol=0.01)
    np.testing.assert_allclose(a.prices_eur_per_kwh["high"], b.prices_eur_per_kwh["high"], atol=1e-6)
