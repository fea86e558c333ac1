"""Tag maps and the daemon's TOML: every mistake is named with file, field and value."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.tagmap import Binding, Tag, load_tagmap
from kernel.errors import ConfigError, PlantError, TagMapError
from kernel.settings import CONFIG_DIR
from tunneltwin.daemon.config import load_daemon, with_overrides

MINIMAL = """transport = "opcua"
[station]
level_m = { path = "S/L", unit = "m" }
inflow_m3h = { path = "S/F1", unit = "m3/15min" }
[pump]
running = { path = "P/{id}/Run", unit = "bool" }
freq_hz = { path = "P/{id}/Hz", unit = "Hz" }
flow_m3h = { path = "P/{id}/Q", unit = "l/s" }
power_kw = { path = "P/{id}/P", unit = "kW" }
[setpoint]
on = { path = "C/{id}/Start", unit = "bool" }
freq_hz = { path = "C/{id}/SetHz", unit = "Hz" }
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tags.toml"
    path.write_text(text)
    return path


def test_shipped_maps_load() -> None:
    for name in ("tags-opcua.toml", "tags-mqtt.toml", "tags-opcua-field.toml"):
        load_tagmap(CONFIG_DIR / name)


def test_units_convert_both_ways(tmp_path: Path) -> None:
    tags = load_tagmap(_write(tmp_path, MINIMAL))
    inflow = Binding("station", "inflow_m3h", None, tags.station["inflow_m3h"])
    assert inflow.decode(250.0) == 1000.0  # 250 m3 per 15 min is 1000 m3/h
    assert inflow.encode(1000.0) == 250.0
    flow = Binding("pump", "flow_m3h", "1.1", tags.pump["flow_m3h"].at("1.1"))
    assert flow.tag.path == "P/1.1/Q" and flow.decode(1000.0) == pytest.approx(3600.0)
    price = Binding("station", "prices", None, Tag(path="S/Pr", unit="c/kWh"))
    assert price.decode([5.0, 10.0]) == pytest.approx([0.05, 0.10])


def test_times_on_the_wire_become_plant_time_and_go_out_as_instants() -> None:
    """An OPC UA DateTime (UTC) and a gateway's naive summer wall clock both become the site's
    standard time (Helsinki: UTC+2 all year); written back, the time carries that offset."""
    from datetime import UTC, datetime, timedelta

    from kernel.clock import SiteClock

    clock = SiteClock("Europe/Helsinki")
    t = Binding("station", "time", None, Tag(path="S/T", unit="datetime"), "Europe/Helsinki", clock)
    assert t.decode(datetime(2025, 7, 1, 9, 0, tzinfo=UTC)) == datetime(2025, 7, 1, 11, 0)
    assert t.decode(datetime(2025, 7, 1, 12, 0)) == datetime(2025, 7, 1, 11, 0)  # 12:00 EEST is 09:00 UTC
    assert t.decode("2025-01-10T06:00:00+02:00") == datetime(2025, 1, 10, 6, 0)
    out = t.encode(datetime(2025, 7, 1, 11, 0))
    assert out.utcoffset() == timedelta(hours=2) and out == datetime(2025, 7, 1, 9, 0, tzinfo=UTC)
    assert t.decode(out) == datetime(2025, 7, 1, 11, 0)  # the round trip


def test_a_bad_value_on_the_wire_names_the_tag(tmp_path: Path) -> None:
    tags = load_tagmap(_write(tmp_path, MINIMAL))
    level = Binding("station", "level_m", None, tags.station["level_m"])
    with pytest.raises(PlantError, match=r"\[station\] level_m read nan"):
        level.decode(float("nan"))


@pytest.mark.parametrize(("change", "message"), [
    (('unit = "m3/15min"', 'unit = "m3/fortnight"'), r"inflow_m3h: unknown unit 'm3/fortnight'"),
    (('unit = "l/s"', 'unit = "kW"'), r"\[pump\] flow_m3h: unit 'kW' is a power, the field needs a flow"),
    (('level_m = { path = "S/L", unit = "m" }\n', ""), r"missing required field 'level_m'"),
    (('running = { path', 'runing = { path'), r"unknown field 'runing'"),
    (('path = "S/L"', 'topic = "S/L"'), r"level_m: give exactly one of 'node' or 'path'"),
])
def test_tag_map_mistakes_are_named(tmp_path: Path, change: tuple[str, str], message: str) -> None:
    path = _write(tmp_path, MINIMAL.replace(*change))
    with pytest.raises(TagMapError, match=message) as err:
        load_tagmap(path)
    assert str(path) in str(err.value)


def test_daemon_config_errors_name_file_field_and_value(tmp_path: Path) -> None:
    path = tmp_path / "daemon.toml"
    path.write_text('[daemon]\nplant = "modbus"\n')
    with pytest.raises(ConfigError, match=r"daemon.toml: daemon.plant = 'modbus'"):
        load_daemon(path)
    path.write_text('[sim]\nsped = 900\n')
    with pytest.raises(ConfigError, match=r"sim.sped = 900: Extra inputs"):
        load_daemon(path)


def test_flags_override_the_file_and_paths_are_the_files() -> None:
    cfg = load_daemon(CONFIG_DIR / "daemon.toml")
    assert cfg.opcua.tags == CONFIG_DIR / "tags-opcua.toml"  # relative to the file, not the cwd
    cfg = with_overrides(cfg, {"daemon": {"plant": "mqtt", "controller": None}})
    assert (cfg.daemon.plant, cfg.daemon.controller) == ("mqtt", "mpc")
    with pytest.raises(ConfigError, match=r"command line: daemon.duration_h = -1"):
        with_overrides(cfg, {"daemon": {"duration_h": -1}})
