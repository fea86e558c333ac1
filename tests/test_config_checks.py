"""Every site, scenario and MPC value is checked where it enters: a bad one is an error naming
the file, the key and the value, never a crash or a hang later (the "trust nothing" findings)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from controller.config import load_mpc
from kernel.errors import ConfigError
from kernel.settings import read_toml
from kernel.site import DEFAULT_SITE, Site, parse_site
from scenarios.scenario import load_scenario
from tunneltwin.cli import main

SITE = read_toml(DEFAULT_SITE)


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(data: dict[str, Any]) -> None:
        *keys, last = path.split(".")
        for k in keys:
            data = data[k] if not k.isdigit() else data[int(k)]  # type: ignore[index]
        data[last] = value

    return edit


def _no_pumps(data: dict[str, Any]) -> None:
    data["pumps"] = []


def _all_out(data: dict[str, Any]) -> None:
    for p in data["pumps"]:
        p["available"] = False


@pytest.mark.parametrize(("edit", "says"), [
    (_set("rules.min_level_m", 7.5), "min_level_m < emptying_level_m < alarm_level_m"),
    (_set("rules.min_freq_hz", 51.0), "min_freq_hz 51.0 must be below max_freq_hz 50.0"),
    (_set("rules.min_on_s", -1.0), "rules.min_on_s = -1.0"),
    (_set("rules.max_outflow_m3h", 0.0), "rules.max_outflow_m3h = 0.0"),
    (_set("pump_types.large.curve_50hz.head_m", [-1.0] * 101), "head_m and power_kw must be positive"),
    (_set("pump_types.small.drive_min_hz", 55.0), "drive_min_hz 55.0 must be below drive_max_hz"),
    (_set("tunnel.volume_m3", [350.0] * len(SITE["tunnel"]["level_m"])), "volume that grows with the level"),
    (_no_pumps, "at least one pump"),
    (_all_out, "one of them available"),
])
def test_a_bad_site_is_refused_naming_the_key(edit: Callable[[dict[str, Any]], None], says: str) -> None:
    data = copy.deepcopy(SITE)
    edit(data)
    with pytest.raises(ConfigError, match=r"site\.toml: ") as err:
        parse_site(data, Path("site.toml"))
    assert says in str(err.value)


@pytest.mark.parametrize(("body", "says"), [
    ("[source]\ndays = 0.001\n", "source.days = 0.001"),
    ("[source]\ndays = 1e7\n", "source.days = 10000000.0"),
    ("[source]\ndays = 1\n[initial]\nrunning = { \"9.9\" = 49.0 }\n", "initial.running.9.9: no such pump"),
    ("[source]\ndays = 1\n[initial]\nrunning = { \"1.4\" = 500.0 }\n", "initial.running.1.4 = 500.0 Hz: outside"),
])
def test_a_bad_scenario_is_refused_naming_the_key(tmp_path: Path, site: Site, body: str, says: str) -> None:
    path = tmp_path / "s.toml"
    path.write_text('name = "s"\n' + body)
    with pytest.raises(ConfigError, match=r"s\.toml: ") as err:
        load_scenario(str(path), site, None, None, None)
    assert says in str(err.value)


def test_a_pump_the_site_has_out_of_service_cannot_run_at_the_start(tmp_path: Path, site: Site) -> None:
    pumps = [p.model_copy(update={"available": p.id != "1.4"}) for p in site.pumps]
    path = tmp_path / "s.toml"
    path.write_text('name = "s"\n[source]\ndays = 1\n[initial]\nrunning = { "1.4" = 49.0 }\n')
    with pytest.raises(ConfigError, match=r"initial.running.1.4: the site has this pump out of service"):
        load_scenario(str(path), site.model_copy(update={"pumps": pumps}), None, None, None)


@pytest.mark.parametrize(("body", "says"), [
    ("horizon_h = 0", "mpc.horizon_h = 0.0: must be between 0.25 and 168.0"),
    ("horizon_h = 1e9", "mpc.horizon_h = 1000000000.0: must be between"),
    ("storm_risk = 0.7", "mpc.storm_risk = 0.7: must be between 0.0 and 0.5"),
    ("block_steps = 4", "[mpc] unknown key 'block_steps'"),
    ("weights.reserve_eur_per_m3 = 100.0", "[mpc.weights] reserve_eur_per_m3: not a setting; the storm reserve is "
                                           "priced by its expected overflow since 0.2.0: weights.overflow_eur_per_m3h"),
    ("weights.overflow_eur_per_m3h = -1.0", "mpc.weights.overflow_eur_per_m3h"),
])
def test_mpc_settings_out_of_bounds_are_refused(tmp_path: Path, body: str, says: str) -> None:
    path = tmp_path / "mpc.toml"
    path.write_text(f"[mpc]\n{body}\n")
    with pytest.raises(ConfigError, match=r"mpc\.toml: ") as err:
        load_mpc(path)
    assert says in str(err.value)


@pytest.mark.parametrize(("flags", "says"), [
    (["--plant", "opcua", "--endpoint", "not a url"], "opcua.endpoint = 'not a url'"),
    (["--plant", "mqtt", "--url", "mqtt://h:99999"], "mqtt.url = 'mqtt://h:99999'"),
])
def test_a_bad_address_on_the_command_line_is_an_error_not_a_traceback(
        flags: list[str], says: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", *flags, "--duration-h", "1"]) == 3
    assert says in capsys.readouterr().err
