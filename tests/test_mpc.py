"""The MPC in closed loop on the twin, its forecasts, dispatch, the oracle and `compare`."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from controller.baseline import BaselineController
from controller.dispatch import Preference, choose_pumps, cost_rank, dispatch
from controller.emptying import Landings
from controller.forecast import ExternalInflow, ForecastSettings, InflowForecaster, PriceBook
from controller.milp import Group, Plan
from controller.mpc import MpcController, start_counts
from controller.oracle import OracleController
from controller.settings import MpcSettings
from controller.uncertainty import QUANTILES, Spread
from kernel.contracts import PriceCurve, PumpSetpoint, Setpoints, Telemetry
from kernel.errors import DataError
from kernel.site import Site
from scenarios.replay import ReplaySetup, run_controller
from scenarios.rules import check
from scenarios.runner import CONTROLLERS, evaluate
from scenarios.scenario import load_scenario
from tests.conftest import EXCERPT
from tests.helpers import station, telemetry
from tunneltwin import cli
from tunneltwin.settings import Settings

T0 = datetime(2025, 1, 6)
STEP = 900.0


@pytest.fixture(scope="module")
def two_days(site: Site) -> ReplaySetup:
    with pytest.warns(Warning):
        return load_scenario(str(EXCERPT), site, "normal")


def test_mpc_two_days_closed_loop_keeps_every_rule_and_beats_the_baseline(two_days: ReplaySetup) -> None:
    """Solved to the gap, not the clock: with time limits the plan depends on the machine's load,
    and this window holds a 44 % one-interval inflow drop near the bottom."""
    _, mpc = evaluate(two_days, "mpc", Settings().mpc().reproducible())
    _, base = evaluate(two_days, "baseline")
    assert mpc["hard_violations"] == 0, mpc["violations"]
    assert mpc["cost_eur"] < 0.8 * base["cost_eur"]
    assert mpc["fallbacks"] == 0
    assert set(mpc["forecast_error_by_lead_h"]) >= {"0.25", "1", "24"}
    assert mpc["landings"]["attempts"] >= 1  # each dispatched landing is on its record


def test_landings_learn_how_often_they_miss(site: Site) -> None:
    """A landing counts as made if the level at its interval's end (an estimate's high end) is at
    or under the emptying level. First landings and retries (right after a missed one) are
    counted apart; each chance of a miss starts at its prior (one in four first landings, three
    in four retries) and follows its record.
    An interval not dispatched as a landing is not counted, and ends a run of retries."""
    landings = Landings(site.rules.emptying_level_m)
    assert (landings.miss, landings.retry_miss) == (0.25, 0.75)
    landings.update(telemetry(site, level_m=0.6))  # nothing pending
    assert landings.attempts == 0
    landings.dispatched(True)
    landings.update(telemetry(site, level_m=0.8))  # a first landing, missed
    landings.dispatched(True)
    landings.update(telemetry(site, level_m=0.6).model_copy(update={"level_high_m": 0.75}))  # its retry: missed
    landings.dispatched(True)
    landings.update(telemetry(site, level_m=0.6))  # the next retry: made
    assert (landings.first, landings.retry) == ([0, 1], [1, 1])
    landings.dispatched(True)
    landings.update(telemetry(site, level_m=0.8))  # first again (the last one was made): missed
    landings.dispatched(False)  # the plan moves on; the next landing is a first one
    landings.dispatched(True)
    landings.update(telemetry(site, level_m=0.6))
    assert (landings.first, landings.retry) == ([1, 2], [1, 1])
    assert (landings.attempts, landings.misses) == (5, 3)
    assert (landings.miss, landings.retry_miss) == (3 / 7, 4 / 6)


def test_a_forecast_without_spread_lands_where_it_aims(site: Site) -> None:
    """The oracle's spread, or a perfect external forecast's, is zero: its landings are taken to
    end where they aim (no chance of a miss); a learnt spread takes the record's, here the prior."""
    mpc = MpcController(site)
    inflow = np.full(8, 3000.0)
    known = Spread("known", {p: inflow for p in QUANTILES})
    assert mpc.landing_miss(known) == (0.0, 0.0) and mpc.landing_miss(None) == (0.0, 0.0)
    assert mpc.landing_miss(mpc.spread.spread("dry", inflow)) == (0.25, 0.75)


def test_reproducible_mpc_runs_repeat_exactly(two_days: ReplaySetup) -> None:
    """The validation mode a plant engineer can re-run and get the same trajectory."""
    n = 24
    short = ReplaySetup(two_days.name, two_days.site, two_days.start, two_days.inflow_m3h[:n],
                        two_days.price_eur_per_kwh[:n], two_days.level_m, two_days.running)
    cfg = Settings().mpc().reproducible()
    first, second = (run_controller(short, MpcController(short.site, cfg)) for _ in range(2))
    assert len(first) == n
    assert np.array_equal(first.col("level_m"), second.col("level_m"))
    assert np.array_equal(first.arr("pump_freq_hz"), second.arr("pump_freq_hz"))


def test_oracle_one_day_is_told_the_future_and_keeps_every_rule(two_days: ReplaySetup) -> None:
    day = ReplaySetup(two_days.name, two_days.site, two_days.start, two_days.inflow_m3h[:96],
                      two_days.price_eur_per_kwh[:96], two_days.level_m, two_days.running)
    oracle = OracleController(day.site, day.start, day.inflow_m3h, day.price_eur_per_kwh,
                              Settings().mpc().reproducible())
    traj = run_controller(day, oracle)
    base = run_controller(day, BaselineController(day.site))
    assert check(traj, day.site.rules).hard_violations == 0
    assert traj.col("cost_eur").sum() < base.col("cost_eur").sum()
    told = oracle.log[10].inflow_forecast_m3h
    assert len(told) == 192  # 48 h: past the day's end, the day again
    assert np.allclose(told[:86], day.inflow_m3h[10:]) and np.allclose(told[86:182], day.inflow_m3h)


def test_mpc_plans_around_a_pump_out_of_service(site: Site) -> None:
    mpc = MpcController(site)
    tel = telemetry(site, on={"1.2": 49.0}, unavailable=("2.2",))
    assert all(2 not in g.members and 5 not in g.members for g in mpc.builder.groups(tel))  # 1.3 and 2.2


def test_mpc_locks_follow_the_pump_timers(site: Site) -> None:
    mpc = MpcController(site)
    tel = telemetry(site, on={"1.2": 49.0}, timers={"1.2": 1800.0, "2.2": 3600.0})
    groups = mpc.builder.groups(tel)
    on, off = mpc.builder.locks(tel, groups)
    large = next(g for g, group in enumerate(groups) if 1 in group.members)
    assert list(on[large, :7]) == [1] * 6 + [0]  # 90 min left of 2 h: six 15-min steps
    assert list(off[large, :5]) == [1] * 4 + [0]  # 2.2 rested 1 h: four more steps


def test_dispatch_starts_the_least_used_rested_pump_and_stops_the_most_used(site: Site) -> None:
    tel = telemetry(site, on={"1.2": 49.0, "2.3": 49.0})  # run hours equal the pump's index
    large = Group("large", (1, 3, 5, 6, 7))
    assert choose_pumps(tel, large, 3, site.rules) == [1, 6, 3]
    assert choose_pumps(tel, large, 1, site.rules) == [1]


SMALL = Group("small", (0, 4))  # 1.1 and 2.1: by site.toml's scales 2.1 pumps a m3 on 4.3 % less energy


def _prefer(swappable: frozenset[str] = frozenset()) -> Preference:
    return Preference(price_h=(0.4,) * 8, run_hour_eur=0.02, swap_eur=1.0, swappable=swappable)


def _with_run_hours(tel: Telemetry, hours: dict[int, float]) -> Telemetry:
    pumps = tuple(p.model_copy(update={"run_hours_h": hours.get(i, p.run_hours_h)}) for i, p in enumerate(tel.pumps))
    return tel.model_copy(update={"pumps": pumps})


def test_dispatch_starts_the_cheaper_pump_until_it_leads_by_its_gain_in_run_hours(site: Site) -> None:
    """0.4 EUR/kWh x h of planned run (0.05 EUR/kWh for 8 h): 2.1's energy gain over 1.1, at
    0.02 EUR per run hour, lets it run that gain / 0.02 hours ahead before 1.1 takes a turn."""
    model = station(site)
    tel = telemetry(site, on={"1.2": 49.0})
    (q0, p0), (q4, p4) = (model.pump_flow_power(i, 48.9, 3.0) for i in SMALL.members)
    kwh = 0.4 * 0.5 * (q0 + q4) * (p0 / q0 - p4 / q4)  # EUR, the typical flow on each pump's kWh/m3
    assert 2.0 < kwh < 4.0
    lead = kwh / 0.02
    for hours, chosen in ((lead - 1.0, [4]), (lead + 1.0, [0])):
        tel = _with_run_hours(tel, {0: 0.0, 4: hours})
        assert choose_pumps(tel, SMALL, 1, site.rules, cost_rank(tel, model, _prefer(), 3.0)) == chosen


def test_dispatch_hands_over_to_a_cheaper_rested_pump_only_where_the_plan_allows(site: Site) -> None:
    model = station(site)

    def chosen(swappable: frozenset[str], timers: dict[str, float] | None = None) -> list[int]:
        tel = _with_run_hours(telemetry(site, on={"1.1": 48.0}, timers=timers), {0: 0.0, 4: 0.0})
        sp = dispatch(tel, model, (SMALL,), [1], [1500.0], 3.0, _prefer(swappable))
        return [i for i, p in enumerate(sp.pumps) if p.on]

    assert chosen(frozenset({"small"})) == [4]
    assert chosen(frozenset()) == [0]
    assert chosen(frozenset({"small"}), {"1.1": 3600.0}) == [0]  # 1.1 inside its 2 h run
    assert chosen(frozenset({"small"}), {"2.1": 1800.0}) == [0]  # 2.1 inside its 2 h rest


def test_mpc_lets_a_group_hand_over_only_on_a_kept_count_clear_of_the_bottom(site: Site) -> None:
    mpc = MpcController(site)
    tel = telemetry(site, on={"1.2": 49.0, "1.1": 48.0})
    prices = np.full(mpc.steps, 0.1)
    problem = mpc.problem(tel, np.full(mpc.steps, 4000.0), prices)
    small = next(g for g, group in enumerate(problem.groups) if group.name == "small")
    counts = np.ones((len(problem.groups), mpc.steps), dtype=np.int64)
    counts[1 - small, 4:] = 0  # the large group keeps its count 1 h only

    def prefer(level_m: float) -> Preference:
        plan = Plan(counts, np.zeros(counts.shape), np.full(mpc.steps, mpc.model.volume(level_m)),
                    np.zeros(mpc.steps), "optimal", 0.0, 0.0, 0.0, 0.0, 0)
        return mpc.dispatcher.preference(problem, plan)

    high = prefer(3.0)
    assert high.swappable == {"small"}
    assert high.price_h[0] == pytest.approx(0.1 * 24)  # small: kept the whole 24 h horizon
    assert high.price_h[1] == pytest.approx(0.1 * 2)  # large: 1 h planned, priced as a 2 h minimum run
    assert prefer(0.9).swappable == frozenset()  # under guard_level_m (1.0 m): nothing hands over


def test_forecast_learns_the_daily_cycle_and_reacts_to_rain() -> None:
    f = InflowForecaster(STEP)
    def shape(t: datetime) -> float:
        return float(4000 + 1500 * np.sin(2 * np.pi * (t.hour + t.minute / 60) / 24))

    for k in range(3 * 96):
        t = T0 + timedelta(seconds=(k + 1) * STEP)
        f.observe(t, float(shape(t)))
    now = T0 + timedelta(days=3)
    expected = np.array([shape(now + timedelta(seconds=(k + 1) * STEP)) for k in range(96)])
    assert np.allclose(f.forecast(now, 96), expected, rtol=0.01)
    for k in range(4):  # rain: an hour at twice the usual inflow
        t = now + timedelta(seconds=(k + 1) * STEP)
        f.observe(t, 2 * float(shape(t)))
    rain = f.forecast(now + timedelta(hours=1), 96)
    assert rain[0] > 1.8 * shape(now + timedelta(hours=1, minutes=15))
    # wet weather: the correction fades like the rain's recession (wet_decay_h, 24 h): at 24 h
    # ahead 1 + e^-1 of the profile is left; in dry weather it fades in decay_h (6 h)
    assert f.weather(now + timedelta(hours=1)) == "rising"
    assert rain[-1] == pytest.approx((1 + np.exp(-1.0)) * shape(now + timedelta(days=1, hours=1)), rel=0.02)
    dry = InflowForecaster(STEP)
    for k in range(3 * 96 + 4):  # the same days, the last hour 10 % over: dry noise
        t = T0 + timedelta(seconds=(k + 1) * STEP)
        dry.observe(t, float(shape(t)) * (1.1 if k >= 3 * 96 else 1.0))
    assert dry.weather(now + timedelta(hours=1)) == "dry"
    bump = dry.forecast(now + timedelta(hours=1), 96)
    assert bump[-1] == pytest.approx((1 + 0.1 * np.exp(-4.0)) * shape(now + timedelta(days=1, hours=1)), rel=0.01)


def test_forecast_judges_a_reading_against_the_days_before_it() -> None:
    """With one day of history, an hour at twice the day before reads as twice: the reading is
    not part of the profile it is judged against (the median of the day before and itself
    would read 2 / 1.5, hiding a third of a rain's onset)."""
    f = InflowForecaster(STEP)
    def shape(t: datetime) -> float:
        return float(4000 + 1500 * np.sin(2 * np.pi * (t.hour + t.minute / 60) / 24))

    for k in range(96 + 4):
        t = T0 + timedelta(seconds=(k + 1) * STEP)
        f.observe(t, shape(t) * (2.0 if k >= 96 else 1.0))
    now = T0 + timedelta(days=1, hours=1)
    assert f.weather(now) == "rising"
    ahead = now + timedelta(seconds=STEP)
    assert f.forecast(now, 96)[0] == pytest.approx((1 + np.exp(-0.25 / 24)) * shape(ahead), rel=1e-6)


def test_a_wet_day_in_a_short_history_does_not_become_the_profile() -> None:
    """A day with an afternoon storm (3x for six hours), then a dry night: the next afternoon is
    forecast dry. Days not yet seen count as the site's diurnal shape at the dry level (the
    median of the dry readings over the shape: the storm's are not), so the median of one
    stormy day and six such days is dry weather; the profile of the stormy day alone forecast
    the storm again."""
    prior = tuple(float(1.0 + 0.3 * np.sin(2 * np.pi * h / 24)) for h in range(24))
    f = InflowForecaster(STEP, ForecastSettings(prior_hourly=prior))
    def dry(t: datetime) -> float:
        return 3000.0 * prior[t.hour]  # the forecaster files an interval by its end

    for k in range(96 + 24):  # a day and the next night
        t = T0 + timedelta(seconds=(k + 1) * STEP)
        storm = 12 <= (t - timedelta(seconds=1)).hour < 18 and k < 96
        f.observe(t, dry(t) * (3.0 if storm else 1.0))
    now = T0 + timedelta(days=1, hours=6)
    assert f.weather(now) == "dry"
    assert f.dry_level_m3h == pytest.approx(3000.0)
    fc = f.forecast(now, 96)
    ends = [now + timedelta(seconds=(k + 1) * STEP) for k in range(96)]
    assert np.allclose(fc, [dry(t) for t in ends], rtol=1e-9)  # 12:00-18:00 too: not 9,000 x shape


def test_first_readings_at_a_fault_do_not_lock_the_dry_level_low() -> None:
    """A run's first two readings at a third of the flow (an F1 reading fault, or a dip; a
    closed loop reads the first interval twice), another at eight hours, then dry weather:
    the dry level is the dry weather's, and a rain at four times it is forecast as such. When
    each reading was judged against a level resting on the first one, every later reading
    looked wet and was kept out, and the level stayed at a third for days (a held-out ensemble
    run: a 5x rain forecast at 1.4x, capped at RATIO_MAX over a third of the profile; the
    tunnel filled over the alarm where the baseline stayed at 5.3 m)."""
    prior = tuple(float(1.0 + 0.3 * np.sin(2 * np.pi * h / 24)) for h in range(24))
    f = InflowForecaster(STEP, ForecastSettings(prior_hourly=prior))
    def dry(t: datetime) -> float:
        return 3000.0 * prior[t.hour]

    for k in range(48):
        t = T0 + timedelta(seconds=(k + 1) * STEP)
        f.observe(t, dry(t) * (0.33 if k in (0, 1, 32) else 1.0))
    assert f.dry_level_m3h == pytest.approx(3000.0)
    for k in range(48, 52):  # an hour of rain at 4x
        t = T0 + timedelta(seconds=(k + 1) * STEP)
        f.observe(t, dry(t) * 4.0)
    now = T0 + timedelta(seconds=52 * STEP)
    ahead = now + timedelta(seconds=STEP)
    assert f.forecast(now, 96)[0] == pytest.approx(dry(ahead) * (1 + 3.0 * np.exp(-0.25 / 24)), rel=0.02)


def test_prices_beyond_publication_repeat_the_day_before() -> None:
    book = PriceBook()
    book.observe(PriceCurve(start=T0, step_s=STEP, eur_per_kwh=tuple(float(k) for k in range(96))))
    prices, published = book.horizon(T0 + timedelta(hours=12), 96, STEP)
    assert published == 48
    assert list(prices[:48]) == list(range(48, 96))
    assert list(prices[48:]) == list(range(48))


def test_external_forecast_errors_name_file_row_and_column(tmp_path: Path) -> None:
    bad = tmp_path / "forecast.csv"
    bad.write_text("time,inflow_m3h\n2025-01-06T00:15:00,4000\n2025-01-06T00:30:00,lots\n")
    with pytest.raises(DataError, match=r"forecast.csv: row 3, column inflow_m3h: 'lots'"):
        ExternalInflow.from_csv(bad)
    bad.write_text("when,inflow_m3h\n")
    with pytest.raises(DataError, match="missing column"):
        ExternalInflow.from_csv(bad)


def test_external_forecast_is_used_where_it_covers_the_horizon(tmp_path: Path) -> None:
    path = tmp_path / "forecast.csv"
    rows = [f"{(T0 + timedelta(seconds=k * STEP)).isoformat()},{1000 + k}" for k in range(200)]
    path.write_text("time,inflow_m3h\n" + "\n".join(rows) + "\n")
    f = InflowForecaster(STEP)
    f.external = ExternalInflow.from_csv(path)
    assert f.forecast(T0, 4).tolist() == [1001.0, 1002.0, 1003.0, 1004.0]


def test_cli_controller_names_match_the_runner() -> None:
    assert tuple(CONTROLLERS) == cli.CONTROLLERS


def test_compare_writes_one_report_for_all_controllers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cmp"
    code = cli.main(["compare", str(EXCERPT), "--prices", "normal", "--end", "2024-11-15T12:00:00",
                     "--controllers", "historical,baseline,mpc", "--out", str(out)])
    assert code == 0
    result = json.loads((out / "comparison.json").read_text())
    assert [r["controller"] for r in result["runs"]] == ["historical", "baseline", "mpc"]
    assert all("cost_adjusted_eur" in r for r in result["runs"])
    page = (out / "report.html").read_text()
    data = json.loads(page.split("<script id='data' type='application/json'>")[1].split("</script>")[0])
    assert list(data["runs"]) == ["historical", "baseline", "mpc"]  # one page, the runs overlaid
    assert "mpc" in capsys.readouterr().out


def test_compare_oracle_ends_no_fuller_than_the_mpc_and_bounds_its_cost(tmp_path: Path) -> None:
    """In compare the oracle's last step ends no fuller than the MPC's run, so it cannot look
    cheap by pumping less. Both minimise energy plus the price on F2 changes, so that sum is
    what the oracle bounds: over this day, with the water left valued (cost_adjusted) and
    0.005 EUR per m3/h of change, 292.22 EUR against the MPC's 300.95 (energy alone 200.87
    against 195.45: the oracle buys a steadier feed). A whole day, since a window that ends in
    the middle of one cuts the MPC's drawdown to its landing short: the oracle must then end as
    low at an hour it would not pump (12 h: 91.16 against 81.47 EUR, once the MPC landed earlier
    in the day to leave retries). Not a proof: both are one path of a closed loop."""
    from controller.settings import MpcSettings
    code = cli.main(["compare", str(EXCERPT), "--prices", "normal", "--end", "2024-11-16T00:00:00",
                     "--controllers", "mpc,oracle", "--reproducible", "--out", str(tmp_path)])
    assert code == 0
    runs = {r["controller"]: r for r in json.loads((tmp_path / "comparison.json").read_text())["runs"]}
    mpc, oracle = runs["mpc"], runs["oracle"]
    assert oracle["end_level_m"] <= mpc["end_level_m"] + 0.01
    price = MpcSettings().weights.smooth_eur_per_m3h

    def priced(run: dict[str, float]) -> float:
        return run["cost_adjusted_eur"] + price * run["f2_mean_abs_step_change_m3h"] * (run["steps"] - 1)

    assert priced(oracle) <= priced(mpc)
    assert oracle["hard_violations"] == 0


def test_compare_rejects_an_unknown_controller(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["compare", str(EXCERPT), "--controllers", "mpc,genius", "--out", str(tmp_path)])
    assert code == 3
    assert "genius" in capsys.readouterr().err


def test_mpc_config_defaults_match_the_code_and_bad_keys_are_named(tmp_path: Path) -> None:
    import dataclasses

    from controller.config import DEFAULT_MPC, load_mpc
    from controller.settings import MpcSettings
    from kernel.errors import ConfigError

    loaded = load_mpc(DEFAULT_MPC)
    assert len(loaded.forecast.prior_hourly) == 24  # the plant's diurnal shape lives in config only
    assert dataclasses.replace(loaded, forecast=MpcSettings().forecast) == MpcSettings()
    good = tmp_path / "ok.toml"
    good.write_text("[mpc]\nhorizon_h = 12\n[mpc.weights]\nswitch_eur = 2\n")
    loaded = load_mpc(good)
    assert loaded.horizon_h == 12.0 and loaded.weights.switch_eur == 2.0
    bad = tmp_path / "mpc.toml"
    for body, says in (
        ("[mpc]\nhorizon_hours = 12", r"mpc.toml: \[mpc\] unknown key 'horizon_hours'"),
        ("[mpc.weights]\nswitch_eur = 'cheap'", r"mpc.weights.switch_eur = 'cheap'"),
        ("[mpc]\nfloor_margin_m = -0.05", r"mpc.toml: mpc.floor_margin_m = -0.05: must be >= 0"),
        ("[mpc]\ninteger_h = 'none'", r"mpc.toml: \[mpc\] unknown key 'integer_h'"),  # the solver's, not a setting
        ("[mpc.solver]\ninteger_h = 2", r"mpc.toml: \[mpc\] solver: not a setting; the solver's tuning is measured"),
        ("[mpc.weights]\nterminal_eur_per_m3 = 0.1", r"\[mpc.weights\] terminal_eur_per_m3: not a setting"),
    ):
        bad.write_text(body + "\n")
        with pytest.raises(ConfigError, match=says):
            load_mpc(bad)


def test_default_mpc_toml_lists_every_setting() -> None:
    import dataclasses
    import tomllib

    from controller.config import DEFAULT_MPC, SECTIONS
    from controller.settings import MpcSettings

    table = tomllib.loads(DEFAULT_MPC.read_text())["mpc"]
    assert {f.name for f in dataclasses.fields(MpcSettings)} - {"solver"} == set(table)
    for name, cls in SECTIONS.items():
        assert {f.name for f in dataclasses.fields(cls)} - {"terminal_eur_per_m3"} == set(table[name])
    keys = [k for k in table if k not in SECTIONS] + [k for name in SECTIONS for k in table[name]]
    assert len(keys) <= 20, keys  # each one an operator understands: a risk, a margin, a price, a memory
    # the file's values are the defaults a partial file gets, but for the site's diurnal shape
    default = MpcSettings()
    differ = {f"{name}.{k}" for name in SECTIONS for k, v in table[name].items()
              if (tuple(v) if isinstance(v, list) else v) != getattr(getattr(default, name), k)}
    differ |= {k for k, v in table.items() if k not in SECTIONS and v != getattr(default, k)}
    assert differ == {"forecast.prior_hourly"} and default.forecast.prior_hourly == ()


@pytest.mark.parametrize("given", ["csv", "perfect"])
def test_replay_uses_an_external_inflow_forecast(tmp_path: Path, two_days: ReplaySetup, given: str) -> None:
    """A perfect external forecast (the scenario's own inflow, as a CSV or by name) makes the
    15-min error vanish."""
    rows = [f"{(two_days.start + timedelta(seconds=(k + 1) * STEP)).isoformat()},{q}"
            for k, q in enumerate(two_days.inflow_m3h)]
    forecast = tmp_path / "forecast.csv"
    forecast.write_text("time,inflow_m3h\n" + "\n".join(rows) + "\n")
    out = tmp_path / "run"
    code = cli.main(["replay", str(EXCERPT), "--prices", "normal", "--end", "2024-11-15T04:00:00",
                     "--controller", "mpc", "--inflow-forecast", str(forecast) if given == "csv" else "perfect",
                     "--out", str(out)])
    assert code == 0
    error = json.loads((out / "summary.json").read_text())["forecast_error_by_lead_h"]
    assert error["0.25"]["mae_m3h"] < 1.0


@pytest.mark.parametrize("stop_levels", [False, True])
def test_an_emptying_step_lands_above_the_floor_if_the_inflow_falls_short(site: Site, stop_levels: bool) -> None:
    """A storm-day landing (measured in the storm scenario: 25 % less inflow than forecast took
    the level from 0.84 to 0.40 m). At 85 % of the lower of forecast and measured inflow the
    dispatched step must end above 0.55 m; with stop levels, where the PLC stops the pumps past
    their run at 0.55 m (simulated), at or above 0.5 m, and it may then run faster."""
    mpc = MpcController(site, MpcSettings(stop_levels=stop_levels))
    model = mpc.model
    tel = telemetry(site, level_m=0.835, inflow_m3h=5776.0, on={"1.4": 49.0, "2.2": 49.0, "2.3": 49.0})
    groups = mpc.builder.groups(tel)
    counts = np.array([3 if g.name == "large" else 0 for g in groups])
    flows = np.array([6631.0 if g.name == "large" else 0.0 for g in groups])
    v_empty = model.volume(0.62)
    sp = mpc.dispatcher.step(tel, groups, counts, flows, v_empty, 5961.0, v_empty)
    freqs = {i: p.freq_hz for i, p in enumerate(sp.pumps) if p.on}
    assert len(freqs) == 3
    stops = mpc.supervisor.floor.plc_stops(tel, {p.id: p.stop_below_m for p in sp.pumps})
    assert bool(stops) == stop_levels
    end = model.level(model.end_volume(freqs, tel.volume_m3, 0.85 * 5776.0, STEP, stops=stops))
    assert end >= (0.5 if stop_levels else 0.55) - 1e-3
    no_plc = model.level(model.end_volume(freqs, tel.volume_m3, 0.85 * 5776.0, STEP))
    assert (no_plc < 0.55) == stop_levels


def _landing(site: Site, stop_levels: bool,
             timers: dict[str, float] | None = None) -> tuple[MpcController, dict[int, float]]:
    """Landing from 0.81 m with a small (2.1) and a large pump (2.4) on 2,100 m3/h (the
    recorded day-2 case), the plan aiming at 0.62 m."""
    mpc = MpcController(site, MpcSettings(stop_levels=stop_levels))
    model = mpc.model
    tel = telemetry(site, level_m=0.81, inflow_m3h=2100.0, on={"2.1": 49.8, "2.4": 49.8}, timers=timers)
    groups = mpc.builder.groups(tel)
    counts = np.array([1 for _ in groups])
    flows = np.array([1000.0 if g.name == "small" else 2000.0 for g in groups])
    v_empty = model.volume(0.62)
    sp = mpc.dispatcher.step(tel, groups, counts, flows, v_empty, 2100.0, v_empty)
    return mpc, {i: p.freq_hz for i, p in enumerate(sp.pumps) if p.on}


def test_an_emptying_landing_is_safe_to_hold_for_a_second_interval(site: Site) -> None:
    """A refused write leaves the plant on its last command. Without stop levels, held for two
    intervals on 85 % of the inflow the level must still end at or above 0.5 m (or the pumps
    are at their minimum frequency)."""
    mpc, freqs = _landing(site, stop_levels=False)
    model, volume = mpc.model, mpc.model.volume(0.81)
    assert len(freqs) == 2
    held = model.end_volume(freqs, volume, 0.85 * 2100.0, 2 * STEP)
    assert model.level(held) >= 0.5 - 1e-3 or min(freqs.values()) == site.rules.min_freq_hz


def test_with_stop_levels_a_landing_need_only_be_safe_for_the_pumps_the_plc_cannot_stop(site: Site) -> None:
    """Both pumps are past their 2 h run: at 0.55 m the PLC stops the large one and keeps the
    small one (never the last pump; it has the least flow). Simulating that, the landing may go
    deeper than without stop levels and still end at or above 0.5 m, held for a second interval
    too. If the large pump started an hour ago, it runs on under its stop level (the PLC stops
    the small one instead), and the slower landing keeps the held level at or above 0.5 m."""
    mpc, free = _landing(site, stop_levels=True)
    _, strict = _landing(site, stop_levels=False)
    model, volume, sup = mpc.model, mpc.model.volume(0.81), mpc.supervisor
    small, large = site.pump_ids.index("2.1"), site.pump_ids.index("2.4")
    assert set(free) == {small, large} and free[small] > strict[small]
    tel = telemetry(site, level_m=0.81, inflow_m3h=2100.0, on={"2.1": 49.8, "2.4": 49.8})
    stops = sup.floor.plc_stops(tel, {"2.1": 0.55, "2.4": 0.55})
    assert stops == {small: (sup.floor.volume_m3(), 0.0), large: (sup.floor.volume_m3(), 0.0)}
    assert model.end_volume(free, volume, 0.85 * 2100.0, STEP) < sup.floor.volume_m3()  # without the PLC
    for seconds in (STEP, 2 * STEP):
        assert model.level(model.end_volume(free, volume, 0.85 * 2100.0, seconds, stops=stops)) >= 0.5
    tel = telemetry(site, level_m=0.81, inflow_m3h=2100.0, on={"2.1": 49.8, "2.4": 49.8}, timers={"2.4": 3600.0})
    stops = sup.floor.plc_stops(tel, {"2.1": 0.55, "2.4": 0.55})
    assert stops[large][1] == pytest.approx(site.rules.min_on_s - 3600.0) and stops[small][1] == 0.0
    _, young = _landing(site, stop_levels=True, timers={"2.4": 3600.0})
    assert young[large] < free[large]
    held = model.level(model.end_volume(young, volume, 0.85 * 2100.0, 2 * STEP, stops=stops))
    assert held >= 0.5 - 1e-3 or young[large] == site.rules.min_freq_hz


def test_the_warm_start_is_the_previous_plan_shifted_to_now(site: Site) -> None:
    mpc = MpcController(site, Settings().mpc().with_solver(warm_start=True))
    tel = telemetry(site)
    problem = mpc.problem(tel, np.full(mpc.steps, 3000.0), np.full(mpc.steps, 0.05))
    counts = np.vstack([np.arange(mpc.steps), np.arange(mpc.steps) + 100]).astype(np.int64)[:len(problem.groups)]
    zeros = np.zeros((len(problem.groups), mpc.steps))
    mpc.plan = Plan(counts, zeros, np.zeros(mpc.steps), np.zeros(mpc.steps), "optimal", 0.0, 0.0, 0.0, 0.0, 0)
    start = start_counts(mpc.plan, 2, problem)  # made two steps ago
    assert start is not None and start.shape == counts.shape
    assert np.array_equal(start[:, 0], counts[:, 2]) and np.array_equal(start[:, -3:], counts[:, -1:].repeat(3, 1))
    assert start_counts(mpc.plan, -1, problem) is None and start_counts(None, 0, problem) is None


def test_the_oracle_sees_every_price_and_caps_the_scenarios_last_step(site: Site) -> None:
    """Prices are known past the day-ahead publication, the 48 h horizon runs past the
    scenario's end on its last steps again, free of charge under the cap, and in compare the
    cap sits on the scenario's last step."""
    tel = telemetry(site)
    prices = np.linspace(0.01, 1.0, 300)
    oracle = OracleController(site, tel.time, np.full(300, 3000.0), prices, end_volume_max_m3=5000.0)
    assert oracle.steps == 192  # 48 h ahead
    seen, _ = oracle.prices.horizon(tel.time + timedelta(hours=70), oracle.steps, STEP)
    assert np.allclose(seen[:20], prices[280:]) and np.all(seen[20:] == 0.0)
    uncapped = OracleController(site, tel.time, np.full(300, 3000.0), prices)
    free, _ = uncapped.prices.horizon(tel.time + timedelta(hours=70), oracle.steps, STEP)
    assert np.allclose(free[:20], prices[280:]) and np.allclose(free[20:], prices[108:280])
    later = tel.model_copy(update={"time": tel.time + timedelta(hours=70)})
    p = oracle.problem(later, np.full(oracle.steps, 3000.0), seen)
    assert (p.v_end_max_m3, p.v_end_step) == (5000.0, 19)
    assert oracle.problem(tel, np.full(oracle.steps, 3000.0), seen).v_end_max_m3 is None


def test_the_oracle_empties_exactly_the_days_the_rule_calls_dry(site: Site) -> None:
    """The dry-day limit is 110,000 m3. A day forecast at 115,000 m3 may still be dry on the
    low side of the MPC's learnt spread (its P0.3 is 42-46 % under the forecast),
    so the MPC plans its emptying; the oracle knows the day is wet. The oracle's settings are
    the MPC's (horizon aside): only its spread, zero, differs."""
    tel = telemetry(site).model_copy(update={"time": T0})
    mpc = MpcController(site)
    for total_m3, mpc_days, oracle_days in ((115_000.0, 1, 0), (105_000.0, 1, 2)):  # the oracle sees 2 days
        inflow = np.full(2 * mpc.steps, total_m3 / 24)
        oracle = OracleController(site, T0, inflow, np.full(len(inflow), 0.05))
        spread = mpc.spread_of(tel, inflow[:mpc.steps])
        known = oracle.spread_of(tel, inflow)
        days = (len(mpc.emptying_days(tel, inflow[:mpc.steps], spread=spread)),
                len(oracle.emptying_days(tel, inflow, spread=known)))
        assert days == (mpc_days, oracle_days)
    wet = np.full(mpc.steps, 400_000.0 / 24)  # today's last 12 h: 111,000 m3 even on the P0.3
    assert len(mpc.emptying_days(tel, wet, spread=mpc.spread_of(tel, wet))) == 0  # wet even on its low side
    assert dataclasses.replace(oracle.cfg, horizon_h=mpc.cfg.horizon_h) == mpc.cfg


def test_the_low_side_is_the_learnt_quantile_and_zero_for_the_oracle(site: Site) -> None:
    """The floor, the guards and the dry-day test plan on the floor_risk quantile of the spread;
    the oracle's spread is zero, so its low side is the inflow it is told."""
    mpc = MpcController(site)
    tel = telemetry(site, on={"1.2": 49.0}, inflow_m3h=2134.0)
    forecast = np.full(mpc.steps, 2725.0)
    spread = mpc.spread_of(tel, forecast)
    problem = mpc.problem(tel, forecast, np.full(mpc.steps, 0.1), spread=spread)
    assert problem.inflow_low_m3h is not None
    assert np.allclose(problem.inflow_low_m3h, spread.at(mpc.cfg.floor_risk))
    assert np.all(problem.inflow_low_m3h < forecast) and problem.inflow_low_m3h[-1] < problem.inflow_low_m3h[0]
    oracle = OracleController(site, T0, np.full(2 * mpc.steps, 2725.0), np.full(2 * mpc.steps, 0.05))
    known = oracle.problem(tel, np.full(oracle.steps, 2725.0), np.full(oracle.steps, 0.1),
                           spread=oracle.spread_of(tel, np.full(oracle.steps, 2725.0)))
    assert known.inflow_low_m3h is not None and np.allclose(known.inflow_low_m3h, 2725.0)
    assert mpc.problem(tel, forecast, np.full(mpc.steps, 0.1)).inflow_low_m3h is None  # no spread given


def test_reproducible_flag_solves_to_the_gap() -> None:
    args = cli._parser().parse_args(["replay", "dry-week", "--out", "x", "--controller", "mpc", "--reproducible"])
    mpc = cli._replay_mpc(args, Settings())
    shipped = Settings().mpc()
    assert mpc.solver.time_limit_s >= 60 > shipped.solver.time_limit_s and mpc.solver.step_budget_s >= 180
    assert cli._replay_mpc(cli._parser().parse_args(["replay", "dry-week", "--out", "x"]), Settings()) == shipped


@pytest.mark.parametrize(("now", "fine"), [("10:00", 8), ("10:15", 11), ("10:30", 10), ("10:45", 9)])
def test_blocks_start_on_the_hour(site: Site, now: str, fine: int) -> None:
    """Prices change on the hour: with held flows the fine steps stretch so that every block is
    a clock hour. Without them the blocks start where the fine steps end, as before."""
    mpc = MpcController(site, Settings().mpc().with_solver(block_flows=True))
    t = datetime.fromisoformat(f"2025-01-06T{now}")
    assert mpc.builder.fine_steps(t) == fine
    assert MpcController(site, Settings().mpc().with_solver(block_flows=False)).builder.fine_steps(t) == 8
    assert (t + timedelta(seconds=fine * STEP)).minute == 0


def test_running_pumps_get_the_floor_as_their_stop_level(site: Site) -> None:
    """0.5 m + the 0.05 m floor margin, or the level now where it is lower; none on a stopped pump."""
    mpc = MpcController(site)
    sp = Setpoints(pumps=(PumpSetpoint(id="1.4", on=True, freq_hz=49.0), PumpSetpoint(id="2.2", on=False)))

    def stop(level_m: float) -> float:
        out = mpc.dispatcher.with_stop_levels(telemetry(site, level_m=level_m), sp).as_dict()
        assert out["2.2"].stop_below_m == 0.0
        return out["1.4"].stop_below_m

    assert stop(3.0) == stop(0.6) == 0.55
    assert stop(0.52) == 0.52
    off = MpcController(site, MpcSettings(stop_levels=False))
    assert off.dispatcher.with_stop_levels(telemetry(site, level_m=1.3), sp) == sp
