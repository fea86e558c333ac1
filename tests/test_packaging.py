"""The Dockerfile, checked where no Docker engine exists: non-root, and its command is ours."""

from __future__ import annotations

import json
from pathlib import Path

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
