"""`tunneltwin explain`: an audited tick's MILP rebuilt, written as .lp/.mps, read back by HiGHS."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import highspy
import numpy as np
import pytest

from controller.explain import explain, problem_from_json, problem_to_json
from controller.milp import build, coefficients
from controller.model import StationModel
from kernel.errors import ConfigError
from kernel.site import Site
from tunneltwin.cli import main
from tunneltwin.daemon.audit import read_problem, read_ticks

TICK = "2025-01-06T01:00:00"


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two plant hours of the daemon (MPC on the embedded twin), audited."""
    db = tmp_path_factory.mktemp("explain") / "audit.db"
    assert main(["run", "--controller", "mpc", "--duration-h", "2", "--audit", str(db)]) == 0
    return db


def test_every_mpc_tick_records_its_problem(audited: Path, site: Site) -> None:
    ticks = list(read_ticks(audited))
    assert len(ticks) == 8 and all(t["controller"] == "mpc" for t in ticks)
    for t in ticks:
        _, data = read_problem(audited, datetime.fromisoformat(t["plant_time"]))
        p = problem_from_json(data)
        assert problem_to_json(p) == data  # the JSON round trip is exact
        assert p.volume0_m3 == pytest.approx(t["telemetry"]["volume_m3"])


def test_explain_writes_an_lp_that_highs_reads_back_to_the_same_objective(audited: Path, tmp_path: Path,
                                                                          site: Site,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "tick"
    assert main(["explain", str(audited), "--tick", TICK, "--out", str(out), "--mip-gap", "1e-9"]) == 0
    printed = capsys.readouterr().out
    assert "objective" in printed and "binding constraints" in printed and "energy (flow)" in printed
    lp, mps = out.with_suffix(".lp"), out.with_suffix(".mps")
    assert lp.stat().st_size > 10_000 and mps.stat().st_size > 10_000
    text = lp.read_text()
    assert "floor_0" in text and "balance_0" in text and " n_0_0" in text  # named rows and columns

    _, data = read_problem(audited, datetime.fromisoformat(TICK))
    ours = explain(problem_from_json(data), StationModel(site), None, mip_gap=1e-9)
    for path in (lp, mps):
        h = highspy.Highs()  # type: ignore[no-untyped-call]
        h.setOptionValue("output_flag", False)
        h.setOptionValue("mip_rel_gap", 1e-9)
        assert h.readModel(str(path)) == highspy.HighsStatus.kOk
        h.run()
        theirs = h.getInfo().objective_function_value
        assert abs(theirs - ours.objective_eur) <= 1e-6 * abs(ours.objective_eur), path.suffix


def test_every_row_and_column_is_named_by_its_family(audited: Path, site: Site) -> None:
    _, data = read_problem(audited, datetime.fromisoformat(TICK))
    p = problem_from_json(data)
    m, _ = build(p, coefficients(StationModel(site), p.groups, p.level_guess_m))
    rows, cols = m.row_names(), m.col_names()
    assert len(rows) == len(set(rows)) == len(m.row_lo) and len(cols) == len(set(cols)) == m.n_cols
    families = {r.rpartition("_")[0] for r in rows}
    assert "row" not in families  # no row outside a named family
    assert {"flow_band", "switching", "timers", "min_pumps", "max_outflow", "balance", "smooth", "floor"} <= families
    H = p.horizon
    assert sum(r.startswith("floor_") for r in rows) == H  # one floor row per step: floor_k is step k
    assert sum(r.startswith("balance_") for r in rows) == 2 * H  # balance_2k the mass balance, 2k+1 its ceiling


def test_the_objective_terms_add_up_to_the_objective(audited: Path, site: Site) -> None:
    _, data = read_problem(audited, datetime.fromisoformat(TICK))
    ex = explain(problem_from_json(data), StationModel(site), None)
    assert sum(ex.terms_eur.values()) == pytest.approx(ex.objective_eur, rel=1e-9)
    assert ex.plan is not None and np.all(ex.plan.counts.sum(axis=0) >= 1)  # a pump runs at every step
    assert all(b.side in ("lower", "upper") for b in ex.binding)


def test_a_tick_the_audit_lacks_is_a_clear_error(audited: Path) -> None:
    with pytest.raises(ConfigError, match="no tick at plant time 2031-01-01T00:00:00"):
        read_problem(audited, datetime(2031, 1, 1))
    assert main(["explain", str(audited), "--tick", "2031-01-01T00:00:00"]) == 3
