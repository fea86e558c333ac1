"""The sweep runner: the same runs on a local process pool and on a Dask cluster give the same
rows; a failing run is a row, not the end; the ensemble file spans what it promises."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest

from controller.config import DEFAULT_MPC, load_mpc
from kernel.errors import ConfigError
from kernel.site import DEFAULT_SITE
from kernel.site_io import write_text
from scenarios import front, sweep
from scenarios.ensemble import Member, members
from scenarios.sweep_report import write_sweep
from tunneltwin.cli import main

TINY = """
name = "tiny"
[[scenario]]
name = "calm"
source = {{ kind = "synthetic", days = 0.25, seed = 3 }}
[[scenario]]
name = "wet"
source = {{ kind = "synthetic", days = 0.25, seed = 4, rain = true, rain_per_week = 20 }}
initial = {{ level_m = 5.0 }}
storm = [{{ start_h = 1, duration_h = 2, multiplier = 3.0 }}]
{extra}
"""


def _ensemble(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY.format(extra=extra))
    return path


def _jobs(path: Path) -> list[sweep.Job]:
    return sweep.jobs(members([str(path)]), ["baseline", "mpc"], {"weights.switch_eur": [0.5, 2.0]},
                      DEFAULT_SITE, DEFAULT_MPC)


def _key(rows: list[dict[str, object]]) -> list[tuple[object, ...]]:
    return [(r["scenario"], r["controller"], r["settings"], r["status"], r["cost_eur"], r["level_max_m"])
            for r in rows]


def test_jobs_cross_members_controllers_and_settings(tmp_path: Path) -> None:
    batch = _jobs(_ensemble(tmp_path))
    # the baseline reads no MPC setting: once per scenario; the MPC once per value
    assert [(j.member.name, j.controller, j.label) for j in batch] == [
        ("calm", "baseline", "default"), ("calm", "mpc", "weights.switch_eur=0.5"),
        ("calm", "mpc", "weights.switch_eur=2.0"), ("wet", "baseline", "default"),
        ("wet", "mpc", "weights.switch_eur=0.5"), ("wet", "mpc", "weights.switch_eur=2.0")]


def test_local_pool_and_dask_give_the_same_rows(tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed", reason="the dask extra is not installed")
    batch = [j for j in _jobs(_ensemble(tmp_path)) if j.label != "weights.switch_eur=2.0"]
    batch = [sweep.Job(j.member, j.controller, j.settings, j.site_path, j.mpc_path, reproducible=True)
             for j in batch]
    seen: list[int] = []
    pooled = sweep.sweep(batch, sweep.local(workers=2), lambda done, total, row: seen.append(done))
    assert seen == [1, 2, 3, 4] and all(r["status"] == "ok" for r in pooled)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        clustered = sweep.sweep(batch, sweep.dask(cluster), lambda *_: None)
    assert _key(clustered) == _key(pooled)
    wet, calm = (next(r for r in pooled if r["scenario"] == s and r["controller"] == "baseline")
                 for s in ("wet", "calm"))
    assert wet["level_max_m"] > calm["level_max_m"] + 2 and wet["f2_max_m3h"] > calm["f2_max_m3h"]
    assert all(0.0 < r["level_min_m"] < r["level_max_m"] for r in pooled)
    planned = next(r for r in pooled if r["controller"] == "mpc")
    assert 0.0 <= planned["cover_p10_1h"] <= planned["cover_p90_1h"] <= 1.0 and planned["cover_n"] > 0
    assert "cover_n" not in wet  # the baseline forecasts nothing


def test_a_failing_run_is_a_row_and_the_sweep_goes_on(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n[[scenario]]\nname = "broken"\nsource = { kind = "recorded", file = "none.csv" }\n'
                   '[[scenario]]\nname = "fine"\nsource = { days = 0.25 }\n')
    batch = sweep.jobs(members([str(bad)]), ["baseline"], {}, DEFAULT_SITE, DEFAULT_MPC)
    rows = sweep.sweep(batch, sweep.local(workers=1), lambda *_: None)
    assert [r["status"] for r in rows] == ["failed", "ok"]
    assert "none.csv" in rows[0]["error"]
    summary = write_sweep(rows, tmp_path / "out", 7.2, 16000.0, wall_s=1.0)
    assert summary["failed"] == 1
    with (tmp_path / "out" / "sweep.csv").open() as f:
        table = list(csv.DictReader(f))
    assert [r["status"] for r in table] == ["failed", "ok"] and table[1]["cost_eur"] != ""
    assert json.loads((tmp_path / "out" / "sweep.json").read_text())["versions"]["numpy"]


def test_storm_safety_compares_each_run_with_the_baseline() -> None:
    def row(controller: str, peak: float, above: float, f2: float = 15000.0, breaches: int = 0) -> dict[str, object]:
        return {"scenario": "s", "controller": controller, "settings": "default", "status": "ok",
                "level_max_m": peak, "m3h_above_max_level": 0.0, "m3h_above_alarm": above,
                "f2_max_m3h": f2, "hard_violations": breaches}

    base_under = row("baseline", 6.0, 0.0)
    assert sweep.storm_safety([base_under, row("mpc", 7.1, 0.0)], 7.2, 16000.0)[0].ok
    failed = sweep.storm_safety([base_under, row("mpc", 7.3, 10.0)], 7.2, 16000.0)[0]
    assert not failed.checks["highest_level"] and not failed.checks["m3h_above_alarm"]
    base_over = row("baseline", 8.0, 500.0, breaches=3)
    assert sweep.storm_safety([base_over, row("mpc", 8.1, 400.0, breaches=5)], 7.2, 16000.0)[0].ok
    assert not sweep.storm_safety([base_over, row("mpc", 8.11, 400.0)], 7.2, 16000.0)[0].checks["highest_level"]
    assert not sweep.storm_safety([base_over, row("mpc", 8.0, 400.0, f2=16100.0)], 7.2, 16000.0)[0].ok


def test_bundled_ensemble_spans_what_it_promises() -> None:
    from kernel.site import load_site
    from scenarios.scenario import ScenarioFile

    found = members(["storm-ensemble"])
    inline = [ScenarioFile.model_validate(m.inline) for m in found if m.inline is not None]
    assert {"dry-week", "storm", "pump-outage"} <= {m.name for m in found}
    assert len(inline) >= 24
    storms = [s for sc in inline for s in sc.storm]
    assert min(s.multiplier for s in storms) == 1.5 and max(s.multiplier for s in storms) == 4.0
    assert min(s.duration_h for s in storms) == 4 and max(s.duration_h for s in storms) == 16
    assert len({s.start_h % 24 for s in storms}) >= 4
    assert len({sc.source.start.weekday() for sc in inline}) >= 5
    assert {len(sc.outage) for sc in inline} == {0, 1, 2, 3}
    assert {sc.initial.level_m for sc in inline} >= {1.0, 6.0}
    assert len({sc.source.rain_per_week for sc in inline}) >= 3
    site = load_site()
    large = {p.id for p in site.pumps if p.type == "large"}
    assert all(o.pump in large for sc in inline for o in sc.outage)
    Member(inline[0].name, inline=found[-1].inline, source=found[-1].source).load(site)


def test_overrides_are_checked_like_the_file() -> None:
    assert load_mpc(DEFAULT_MPC, {"weights.switch_eur": 2.0}).weights.switch_eur == 2.0
    with pytest.raises(ConfigError, match="switch_eur"):
        load_mpc(DEFAULT_MPC, {"weights.switch_eur": -1.0})
    with pytest.raises(ConfigError, match="no_such_key"):
        load_mpc(DEFAULT_MPC, {"no_such_key": 1})


def test_cli_refuses_a_bad_vary_before_running(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sweep", str(_ensemble(tmp_path)), "--out", str(tmp_path / "o"), "--vary", "horizon_h=0"]) == 3
    assert "horizon_h" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    assert main(["sweep", str(_ensemble(tmp_path)), "--out", str(tmp_path / "o"), "--vary", "nothing"]) == 3


def test_each_varies_one_key_at_a_time(tmp_path: Path) -> None:
    batch = sweep.jobs(members([str(_ensemble(tmp_path))])[:1], ["mpc"], {"a": [1, 2], "b": [True]},
                       DEFAULT_SITE, DEFAULT_MPC, each=True)
    assert [j.label for j in batch] == ["a=1", "a=2", "b=True"]


@pytest.mark.filterwarnings("ignore::kernel.recorded.DataRepairWarning")
def test_a_recorded_scenario_file_keeps_the_recorded_operation(tmp_path: Path) -> None:
    """A scenario of recorded days, with nothing added, starts from their first state and can
    be compared with the operation recorded on them ('historical' in a sweep)."""
    from tests.conftest import EXCERPT

    path = tmp_path / "rec.toml"
    path.write_text(f'name = "rec"\n[source]\nkind = "recorded"\nfile = "{EXCERPT}"\nprices = "high"\n')
    rows = sweep.sweep(sweep.jobs(members([str(path)]), ["historical"], {}, DEFAULT_SITE, DEFAULT_MPC),
                       sweep.local(workers=1), lambda *_: None)
    assert rows[0]["status"] == "ok", rows[0]["error"]
    from kernel.site import load_site
    from scenarios.scenario import load_scenario

    setup = load_scenario(str(path), load_site())
    assert setup.recorded is not None and setup.price_key == "high"
    assert setup.level_m == pytest.approx(float(setup.recorded.level_m[0]))
    storm = tmp_path / "rec-storm.toml"
    storm.write_text(path.read_text() + "[[storm]]\nstart_h = 1\nduration_h = 2\nmultiplier = 2.0\n")
    assert load_scenario(str(storm), load_site()).recorded is None  # changed days: no recorded run to compare


def test_the_front_marks_the_runs_another_beats_on_cost_and_roughness(tmp_path: Path) -> None:
    """Four MPC settings: (cost, mean |dF2|) 100/400, 120/250, 130/300 (beaten by 120/250 on
    both), 160/150. The recorded operation (200/200) is drawn but never dominates nor is dominated."""
    def row(controller: str, settings: str, cost: float, step: float, starts: int) -> dict[str, object]:
        return {"scenario": "days", "controller": controller, "settings": settings, "status": "ok",
                "cost_eur": cost, "f2_mean_abs_step_change_m3h": step, "f2_jumps": 1, "f2_std_m3h": 1.0,
                "f2_max_hourly_swing_m3h": 1.0, "pump_starts": starts, "run_hour_spread_h": 1.0,
                "hard_violations": 0, "level_min_m": 0.6, "level_max_m": 3.0, "m3h_above_alarm": 0.0,
                "m3h_above_max_level": 0.0,
                "f2_max_m3h": 9000.0, "decision_max_s": 1.0, "wall_s": 1.0}
    rows = [row("historical", "default", 200, 200, 10), row("mpc", "s=1", 100, 400, 50),
            row("mpc", "s=2", 120, 250, 40), row("mpc", "s=3", 130, 300, 30), row("mpc", "s=4", 160, 150, 45)]
    by_step = {p.label: p for p in front.points(rows, "days", "f2_mean_abs_step_change_m3h")}
    assert [lbl for lbl, p in by_step.items() if p.dominated] == ["mpc s=3"]
    assert by_step["historical default"].reference and not by_step["historical default"].dominated
    by_starts = {p.label: p for p in front.points(rows, "days", "pump_starts")}
    assert [lbl for lbl, p in by_starts.items() if p.dominated] == ["mpc s=4"]  # 120/40 beats 160/45
    write_sweep(rows, tmp_path, 7.2, 16000.0, wall_s=1.0)
    page = (tmp_path / "report.html").read_text()
    assert "Front on days" in page and page.count("<svg") == 2 and "historical default" in page
    table = (tmp_path / "sweep.md").read_text()
    assert "| mpc s=3 | 130 | 300 | 1 | 1.0 | 1.0 | 30 | 1.0 | yes | no |" in table
    assert "| historical default | 200 | 200 |" in table and "reference | reference |" in table


def test_sweep_files_are_readable_like_any_written_file_and_a_failed_write_keeps_the_old(tmp_path: Path) -> None:
    """The report files are written through a temp file and a rename; the temp file's 0600 must
    not reach them (a web server or a colleague reads the report). Under umask 022: 0644."""
    old = os.umask(0o022)
    try:
        write_sweep([], tmp_path, 7.2, 16000.0, wall_s=1.0)
        modes = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()}
        assert modes and set(modes.values()) == {0o644}, modes
        with pytest.raises(TypeError):
            write_text(tmp_path / "sweep.md", None)  # type: ignore[arg-type]
    finally:
        os.umask(old)
    assert (tmp_path / "sweep.md").read_text(encoding="utf-8").startswith("0 runs")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(modes)
