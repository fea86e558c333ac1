"""The synthetic generator: its fit recovers known noise, and its inflow moves like recorded inflow."""

from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from scenarios import synthetic
from scenarios.loaders import load_recorded
from tests.conftest import EXCERPT, SHARED_TIDY, needs_shared
from tunneltwin.cli import main

pytestmark = pytest.mark.filterwarnings("ignore::kernel.recorded.DataRepairWarning")


def test_profile_is_continuous_across_the_hour() -> None:
    """Hour factors 1 then 2: half-way at the hour itself, the factor at each hour's middle."""
    factors = [1.0, 2.0] + [1.0] * 22
    assert synthetic.diurnal(factors, np.array([0.5, 1.0, 1.5, 2.5, 24.5])) == pytest.approx([1, 1.5, 2, 1, 1])


def test_noise_fit_recovers_ar1_and_keeps_jumps_apart() -> None:
    """An AR(1) of sd 0.1 and correlation 0.9; 1 % of steps spike by sd 0.5 (each spike is two jumps)."""
    rng = np.random.default_rng(3)
    kick = rng.normal(0, 0.1 * np.sqrt(1 - 0.9**2), 20_000)
    noise = np.zeros(kick.size)
    for k in range(1, kick.size):
        noise[k] = 0.9 * noise[k - 1] + kick[k]
    noise += (rng.random(kick.size) < 0.01) * rng.normal(0, 0.5, kick.size)
    fit = synthetic._fit_noise(noise)
    assert fit["noise_ar1"] == pytest.approx(0.9, abs=0.03)
    assert fit["noise_rel_sd"] == pytest.approx(0.1, rel=0.25)  # jumps widen the body a little
    assert fit["noise_shock_rate"] == pytest.approx(0.01, abs=0.004)
    assert fit["noise_shock_sd"] == pytest.approx(0.5, rel=0.2)


def test_bundled_generator_drops_as_often_as_recorded_dry_days() -> None:
    """Measured on the recorded dry days: 3.9 % of intervals fall by over 15 %, and the median
    change is 3 %. The moment fit it replaces made those 13.7 % and 10 %, so synthetic weeks
    met three times the inflow drops the plant does."""
    inflow = synthetic.dry_inflow(synthetic.load_params(), datetime(2025, 1, 6), 96 * 200, 900.0,
                                  np.random.default_rng(1))
    stats = synthetic.step_changes(inflow)
    assert 0.02 < stats["falls_15"] < 0.06
    assert stats["median_abs"] < 0.05


@needs_shared
def test_fit_on_recorded_data_matches_its_one_step_drops() -> None:
    data = load_recorded(SHARED_TIDY)
    params = synthetic.fit(data, dry_day_max_inflow_m3=110_000)
    recorded = synthetic.step_changes(np.concatenate(synthetic.dry_days(data, 110_000)))
    made = synthetic.dry_inflow(params, datetime(2025, 1, 6), 96 * 200, 900.0, np.random.default_rng(2))
    assert synthetic.step_changes(made)["falls_15"] == pytest.approx(recorded["falls_15"], abs=0.02)
    assert synthetic.step_changes(made)["median_abs"] == pytest.approx(recorded["median_abs"], abs=0.01)


def test_each_part_draws_its_own_stream() -> None:
    """Rain on or off leaves the prices as they were: each part has its own stream of the seed."""
    params = synthetic.load_params()
    dry, dry_prices = synthetic.generate(params, datetime(2025, 1, 6), 96 * 28, 900.0, seed=5, rain=False)
    wet, wet_prices = synthetic.generate(params, datetime(2025, 1, 6), 96 * 28, 900.0, seed=5, rain=True)
    assert np.array_equal(dry_prices, wet_prices)
    assert np.all(wet >= dry) and wet.sum() > dry.sum()


def test_fit_generator_cli_writes_loadable_params_and_reports_step_changes(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "generator.toml"
    assert main(["fit-generator", str(EXCERPT), "--out", str(out)]) == 0
    params = synthetic.load_params(out)
    assert 0 < params.noise_ar1 < 1 and params.noise_rel_sd > 0
    printed = capsys.readouterr().out
    assert "recorded dry days" in printed and "generated, 200 days" in printed
