"""The Dockerfile, checked where no Docker engine exists: non-root, and its command is ours."""

from __future__ import annotations

import json
import subprocess
import sys
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


def test_image_points_at_its_bundled_config() -> None:
    env = instructions()["ENV"]
    assert "TUNNELTWIN_SITE=/app/config/site.toml" in DOCKERFILE.read_text()
    assert "TUNNELTWIN_MPC=/app/config/mpc.toml" in DOCKERFILE.read_text()
    assert "TUNNELTWIN_DAEMON=/app/config/daemon.toml" in DOCKERFILE.read_text()
    assert env


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
    # a configuration error exits 2; restarting every 5 s forever cannot mend it
    assert lines["RestartPreventExitStatus"] == "2"
    assert cli.main(["--mpc", "/nonexistent/mpc.toml", "run", "--duration-h", "1"]) == 2


def test_a_missing_extra_is_one_line_saying_what_to_install(monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """Without the [opcua] extra, plant = opcua names the extra instead of a traceback."""
    monkeypatch.setitem(sys.modules, "asyncua", None)  # an import of asyncua now fails as if not installed
    for name in [m for m in sys.modules if m.startswith(("adapters.client.opcua", "adapters.opcua_common"))]:
        monkeypatch.delitem(sys.modules, name)
    assert cli.main(["run", "--plant", "opcua", "--duration-h", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("tunneltwin: error: run needs asyncua, which comes with the opcua extra: "
                   "pip install 'tunneltwin[opcua]'")


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
