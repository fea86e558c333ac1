"""Replays end to end: bundled scenarios, the recorded operation, the CLI and its outputs."""

import dataclasses
import io
import json
import sys
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from controller.baseline import BaselineController
from kernel.errors import ConfigError
from kernel.physics import PumpHydraulics
from kernel.recorded import RecordedData
from kernel.site import Site, load_site
from scenarios.fidelity import calibrate, fidelity, meter_checks
from scenarios.replay import run_controller, run_historical
from scenarios.rules import check
from scenarios.scenario import bundled_names, load_scenario
from tests.conftest import EXCERPT, SHARED_TIDY, needs_shared
from tunneltwin.cli import main

# Recorded data carries documented repairs (a -0.016 m level); their warnings are tested in test_loaders.
pytestmark = pytest.mark.filterwarnings("ignore::kernel.recorded.DataRepairWarning")


def recorded_cost(data: RecordedData, key: str) -> float:
    """The plant's own cost formula: sum of pump kW x 0.25 h x price, row by row."""
    hours = data.step_s / 3600
    price = data.prices_eur_per_kwh[key][1:]
    return float(sum((data.pump_power_kw[p][1:] * price).sum() for p in data.pump_power_kw) * hours)


@pytest.mark.parametrize("name", ["dry-week", "storm", "pump-outage"])
def test_baseline_keeps_every_hard_rule_on_bundled_scenarios(site: Site, name: str) -> None:
    assert name in bundled_names()
    setup = load_scenario(name, site)
    traj = run_controller(setup, BaselineController(setup.site))
    report = check(traj, setup.site.rules)
    assert report.counts() == {r: {"count": 0, "first": None} for r in report.counts()}
    assert traj.col("level_m").max() < setup.site.rules.alarm_level_m


def test_storm_scenario_really_storms(site: Site) -> None:
    setup = load_scenario("storm", site)
    assert setup.inflow_m3h.max() > 2.5 * np.median(setup.inflow_m3h)


def test_historical_on_excerpt_reproduces_recorded_cost(site: Site) -> None:
    setup = load_scenario(str(EXCERPT), site, prices="normal")
    traj = run_historical(setup)
    assert setup.recorded is not None
    assert traj.col("cost_eur").sum() == pytest.approx(recorded_cost(setup.recorded, "normal"), rel=0.03)
    np.testing.assert_allclose(traj.col("level_m"), setup.recorded.level_m[1:])  # tracking mode


def test_replay_cli_writes_trajectory_summary_and_report(tmp_path: Path) -> None:
    assert main(["replay", str(EXCERPT), "--controller", "baseline", "--out", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["hard_violations"] == 0 and summary["energy_kwh"] > 0
    header = (tmp_path / "trajectory.csv").read_text().splitlines()[0].split(",")
    assert header[:3] == ["timestamp", "level_m", "volume_m3"] and "pump_2.4_flow_m3h" in header
    assert len((tmp_path / "trajectory.csv").read_text().splitlines()) == 192  # 191 steps + header
    assert "<script id='data' type='application/json'>" in (tmp_path / "report.html").read_text()


def test_bad_scenario_file_names_file_and_field(tmp_path: Path, site: Site) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n[initial]\nlevel_m = -3\n')
    with pytest.raises(ConfigError, match=r"bad.toml: initial.level_m = -3"):
        load_scenario(str(bad), site)


def test_unknown_scenario_lists_the_bundled_ones(site: Site) -> None:
    with pytest.raises(ConfigError, match="dry-week"):
        load_scenario("no-such-scenario", site)


def test_cli_reports_errors_without_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", "nope", "--out", str(tmp_path)]) == 3
    assert "tunneltwin: error: nope: not a bundled scenario" in capsys.readouterr().err


def test_bad_site_file_names_field(tmp_path: Path) -> None:
    text = (Path(__file__).parents[1] / "config" / "site.toml").read_text()
    path = tmp_path / "site.toml"
    path.write_text(text.replace('min_freq_hz = 47.8', 'min_freq_hz = "fast"'))
    with pytest.raises(ConfigError, match=r"site.toml: rules.min_freq_hz = 'fast'"):
        load_site(path)


def test_calibrate_writes_a_loadable_site_and_keeps_the_old_one_on_failure(tmp_path: Path) -> None:
    out = tmp_path / "site.toml"
    assert main(["calibrate", str(EXCERPT), "--out", str(out)]) == 0
    calibrated = load_site(out)
    assert 1.0 < calibrated.pump_types["large"].power_factor < 1.3
    before = out.read_text()
    assert main(["calibrate", str(tmp_path / "missing.csv"), "--out", str(out)]) == 4
    assert out.read_text() == before


@needs_shared
@pytest.mark.parametrize(("prices", "target_eur"), [("normal", 14564.65), ("high", 64389.61)])
def test_historical_ten_days_within_3_percent_and_reports_real_breaches(site: Site, prices: str,
                                                                         target_eur: float) -> None:
    setup = load_scenario(str(SHARED_TIDY), site, prices=prices)
    assert setup.recorded is not None
    # the published figure also counts row 0, the step before the replay's first step
    assert recorded_cost(setup.recorded, prices) == pytest.approx(target_eur, rel=1e-4)
    traj = run_historical(setup)
    assert traj.col("cost_eur").sum() == pytest.approx(target_eur, rel=0.03)
    counts = check(traj, site.rules).counts()
    all_off = [t for k, t in enumerate(setup.recorded.timestamps)
               if k > 0 and all(setup.recorded.pump_flow_m3h[p][k] == 0 for p in setup.recorded.pump_flow_m3h)]
    assert counts["no_pump_running"]["count"] == len(all_off) > 0
    assert counts["no_pump_running"]["first"] == all_off[0].isoformat()
    assert counts["min_on_time"]["count"] != 0 and counts["level_below_min"]["count"] != 0


@needs_shared
def test_baseline_on_recorded_ten_days_keeps_every_rule(site: Site) -> None:
    setup = load_scenario(str(SHARED_TIDY), site, prices="normal")
    assert check(run_controller(setup, BaselineController(site)), site.rules).hard_violations == 0


@needs_shared
def test_fidelity_targets(recorded: RecordedData) -> None:
    """Tolerances that still catch a broken model (see README for the measured figures)."""
    site, _ = calibrate(recorded, load_site())
    fi = fidelity(recorded, site)
    assert abs(fi.energy_error_pct) < 2.0
    assert all(fi.power_mape_pct[p] < 5.0 for p, n in fi.points.items() if n >= 20)
    assert all(fi.flow_mape_pct[p] < 8.0 for p, n in fi.points.items() if n >= 20)
    assert float(np.median(fi.level_rmse_m)) < 0.25 and max(fi.level_rmse_m) < 0.35


def test_meter_check_tells_a_drifting_flow_meter_from_a_drifting_pump(excerpt: RecordedData, site: Site) -> None:
    """Readings made exactly by the model, then the second day's flow reads 10 % high with the
    power unchanged: a 5 % daily std (means 1.0 and 1.1) that the power does not show."""
    pid = "1.4"
    pump = next(p for p in site.pumps if p.id == pid)
    hyd = PumpHydraulics(site.pump_types[pump.type], site.discharge_level_m)
    f = excerpt.pump_freq_hz[pid]
    flow = hyd.flow_m3h(f, excerpt.level_m) * pump.flow_scale
    power = hyd.power_kw(f, flow / pump.flow_scale) * pump.power_scale
    day2 = np.array([t.date() > excerpt.timestamps[0].date() for t in excerpt.timestamps])
    exact = dataclasses.replace(excerpt, pump_flow_m3h={**excerpt.pump_flow_m3h, pid: flow},
                                pump_power_kw={**excerpt.pump_power_kw, pid: power})
    drifting = dataclasses.replace(exact, pump_flow_m3h={**exact.pump_flow_m3h, pid: flow * np.where(day2, 1.1, 1.0)})
    before, after = meter_checks(exact, site)[pid], meter_checks(drifting, site)[pid]
    assert before.days == after.days == 2
    assert before.flow_daily_std_pct == pytest.approx(0.0, abs=0.05)
    assert after.flow_daily_std_pct == pytest.approx(5.0, abs=0.05)
    assert after.power_daily_std_pct == pytest.approx(0.0, abs=0.05)
    assert after.flow_seen_in_power_pct == pytest.approx(0.0, abs=0.2)
    assert 0.1 < after.elasticity < 0.5  # power rises with flow along the large pump's curve


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("stream", "flags", "shown"), [
    (_Terminal, [], True),  # on a terminal: a bar per run
    (io.StringIO, [], False),  # piped: quiet
    (_Terminal, ["--log-format", "json"], False),  # logging JSON: quiet, the stream stays JSON
])
def test_long_commands_show_progress_on_a_terminal_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        stream: type[io.StringIO], flags: list[str],
                                                        shown: bool) -> None:
    err = stream()
    monkeypatch.setattr(sys, "stderr", err)
    assert main([*flags, "replay", str(EXCERPT), "--controller", "baseline", "--out", str(tmp_path)]) == 0
    text = err.getvalue()
    assert ("hsy_excerpt_2days / baseline:" in text and "/191 [" in text) is shown, text[-500:]


def test_a_replay_tells_its_listener_each_step() -> None:
    import contextvars

    from scenarios import progress
    from scenarios.runner import evaluate

    heard: list[tuple[str, int, int]] = []
    setup = load_scenario(str(EXCERPT), load_site())

    def run() -> None:
        progress.LISTENER.set(lambda what, done, total: heard.append((what, done, total)))
        evaluate(setup, "baseline")

    contextvars.copy_context().run(run)
    assert [d for _, d, _ in heard] == list(range(setup.steps + 1))
    assert {(w, t) for w, _, t in heard} == {(f"{setup.name} / baseline", setup.steps)}


def test_a_trajectory_can_also_be_written_as_parquet(tmp_path: Path) -> None:
    """--parquet (extra [parquet], installed by the test command): the same columns and rows,
    the time the same instant as the CSV's offset time."""
    import pyarrow.parquet as pq

    assert main(["replay", str(EXCERPT), "--controller", "baseline", "--out", str(tmp_path), "--parquet"]) == 0
    table = pq.read_table(tmp_path / "trajectory.parquet")
    rows = (tmp_path / "trajectory.csv").read_text().splitlines()
    assert table.column_names == rows[0].split(",") and table.num_rows == len(rows) - 1
    first = datetime.fromisoformat(rows[1].split(",")[0])
    assert table.column("timestamp")[0].as_py() == first  # aware, UTC: the same instant
    assert table.column("level_m")[0].as_py() == pytest.approx(float(rows[1].split(",")[1]))
