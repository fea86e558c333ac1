"""Time: recorded files with UTC offsets, wall-clock times across DST, and what a Finnish
spreadsheet exports (semicolons, decimal commas) all load and replay; inside, every time is
the site's standard time, and outputs carry its offset."""

from __future__ import annotations

import csv
import json
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from kernel.clock import SiteClock, TimeZoneWarning
from kernel.errors import ConfigError, DataError
from kernel.recorded import DataRepairWarning
from kernel.site import load_site, parse_site
from scenarios.loaders import load_recorded
from tests.conftest import EXCERPT
from tunneltwin import cli

HELSINKI = SiteClock("Europe/Helsinki")
STEP = timedelta(minutes=15)


def _rows() -> list[list[str]]:
    with EXCERPT.open() as fh:
        return list(csv.reader(fh))


def _with_times(tmp_path: Path, times: list[str], name: str = "data.csv", delimiter: str = ",",
                decimal: str = ".") -> Path:
    rows = _rows()
    body = [[t, *(v.replace(".", decimal) for v in row[1:])] for t, row in zip(times, rows[1:], strict=False)]
    path = tmp_path / name
    with path.open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh, delimiter=delimiter).writerows([rows[0], *body])
    return path


def _utc_times(first_utc: datetime, n: int) -> list[datetime]:
    return [first_utc + k * STEP for k in range(n)]


def _load(path: Path, clock: SiteClock = HELSINKI) -> object:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataRepairWarning)
        return load_recorded(path, clock)


def test_the_clock_is_standard_time_a_fixed_offset_from_utc() -> None:
    assert HELSINKI.offset == timedelta(hours=2)
    summer = datetime(2025, 7, 1, 12, 0, tzinfo=ZoneInfo("Europe/Helsinki"))  # 12:00 EEST = 09:00 UTC
    assert HELSINKI.from_aware(summer) == datetime(2025, 7, 1, 11, 0)
    assert HELSINKI.stamp(datetime(2025, 7, 1, 11, 0)) == "2025-07-01T11:00:00+02:00"
    assert HELSINKI.plant(datetime(2025, 7, 1, 9, 0, tzinfo=UTC)) == datetime(2025, 7, 1, 11, 0)
    assert HELSINKI.plant(datetime(2025, 7, 1, 11, 0)) == datetime(2025, 7, 1, 11, 0)  # naive: plant time


def test_offsets_z_and_winter_wall_clock_load_as_the_same_times(tmp_path: Path) -> None:
    n = len(_rows()) - 1
    utc = _utc_times(datetime(2025, 1, 13, 22, 0, tzinfo=UTC), n)
    naive = _load(_with_times(tmp_path, [(t + timedelta(hours=2)).strftime("%Y-%m-%d %H:%M:%S") for t in utc], "a.csv"))
    zulu = _load(_with_times(tmp_path, [t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in utc], "b.csv"))
    east = _load(_with_times(tmp_path, [t.astimezone(ZoneInfo("Europe/Helsinki")).isoformat() for t in utc], "c.csv"))
    assert naive.timestamps == zulu.timestamps == east.timestamps  # type: ignore[attr-defined]
    assert naive.timestamps[0] == datetime(2025, 1, 14, 0, 0)  # type: ignore[attr-defined]


def test_wall_clock_times_across_both_dst_changes_are_evenly_spaced(tmp_path: Path) -> None:
    """Spring: the file jumps from 02:45 to 04:00. Autumn: 03:00..03:45 come twice, told
    apart by row order, with a warning. Both become 15 min steps of plant time."""
    n = len(_rows()) - 1
    tz = ZoneInfo("Europe/Helsinki")
    for first_utc, label in ((datetime(2025, 3, 29, 12, 0, tzinfo=UTC), "spring"),
                             (datetime(2025, 10, 25, 12, 0, tzinfo=UTC), "autumn")):
        wall = [t.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S") for t in _utc_times(first_utc, n)]
        path = _with_times(tmp_path, wall, f"{label}.csv")
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            data = load_recorded(path, HELSINKI)
        assert len(data) == n
        assert {b - a for a, b in zip(data.timestamps, data.timestamps[1:], strict=False)} == {STEP}
        assert data.timestamps[0] == (first_utc + timedelta(hours=2)).replace(tzinfo=None)
        repeated = [w for w in seen if issubclass(w.category, TimeZoneWarning)]
        if label == "spring":
            assert len(set(wall)) == n and not repeated
        else:
            assert len(set(wall)) == n - 4  # the repeated hour's four times
            assert len(repeated) == 1 and "8 wall-clock times" in str(repeated[0].message)


def test_a_time_the_spring_change_skips_is_an_error_naming_the_row(tmp_path: Path) -> None:
    times = [(datetime(2025, 3, 30, 0, 0) + k * STEP).strftime("%Y-%m-%d %H:%M:%S") for k in range(len(_rows()) - 1)]
    path = _with_times(tmp_path, times)  # naive steps through 03:00..03:45, which Helsinki skips
    with pytest.raises(DataError, match=r"data.csv: column 'timestamp', row 14: 2025-03-30T03:00:00 does not exist "
                                        r"in Europe/Helsinki"):
        load_recorded(path, HELSINKI)


def test_offsets_on_some_rows_only_is_an_error(tmp_path: Path) -> None:
    utc = _utc_times(datetime(2025, 1, 13, 22, 0, tzinfo=UTC), len(_rows()) - 1)
    times = [t.isoformat() for t in utc]
    times[5] = utc[5].replace(tzinfo=None).isoformat()
    with pytest.raises(DataError, match=r"column 'timestamp', row 7: .* has no UTC offset, unlike row 2"):
        load_recorded(_with_times(tmp_path, times), HELSINKI)


def test_semicolon_decimal_comma_csv_loads_as_the_comma_one(tmp_path: Path) -> None:
    times = [r[0] for r in _rows()[1:]]
    plain = _load(_with_times(tmp_path, times, "plain.csv"))
    finnish = _load(_with_times(tmp_path, times, "fi.csv", delimiter=";", decimal=","))
    assert "," in (tmp_path / "fi.csv").read_text().splitlines()[1]
    for name in ("level_m", "volume_m3", "inflow_m3h", "outflow_m3h"):
        np.testing.assert_array_equal(getattr(plain, name), getattr(finnish, name))
    assert plain.prices_eur_per_kwh.keys() == finnish.prices_eur_per_kwh.keys()  # type: ignore[attr-defined]


def test_an_unknown_time_zone_names_the_file_field_and_value(tmp_path: Path) -> None:
    data = load_site().model_dump(mode="json") | {"timezone": "Europe/Helsnki"}
    with pytest.raises(ConfigError, match=r"site.toml.*timezone.*Europe/Helsnki"):
        parse_site(data, tmp_path / "site.toml")


def test_replays_of_offset_dst_and_finnish_files_run_and_write_offsets(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """The done-when: each file replays from the CLI; outputs carry the site's offset."""
    n = len(_rows()) - 1
    tz = ZoneInfo("Europe/Helsinki")
    autumn = _utc_times(datetime(2025, 10, 25, 12, 0, tzinfo=UTC), n)
    files = {
        "offsets": _with_times(tmp_path, [t.astimezone(tz).isoformat() for t in autumn], "offsets.csv"),
        "dst": _with_times(tmp_path, [t.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S") for t in autumn], "dst.csv"),
        "finnish": _with_times(tmp_path, [r[0] for r in _rows()[1:]], "fi.csv", delimiter=";", decimal=","),
    }
    for label, path in files.items():
        out = tmp_path / f"run-{label}"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TimeZoneWarning)
            warnings.simplefilter("ignore", DataRepairWarning)
            assert cli.main(["replay", str(path), "--controller", "baseline", "--out", str(out)]) == 0, label
        summary = json.loads((out / "summary.json").read_text())
        assert summary["start"].endswith("+02:00") and summary["steps"] > 0, summary["start"]
        first = (out / "trajectory.csv").read_text().splitlines()[1].split(",")[0]
        assert datetime.fromisoformat(first).utcoffset() == timedelta(hours=2)
        if label != "finnish":
            assert datetime.fromisoformat(summary["start"]) == autumn[1]  # the same instant (steps end at row 2)
    capsys.readouterr()
