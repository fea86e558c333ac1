#!/usr/bin/env bash
# The project's test command (README): installs what it needs, then lint, types and tests.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check -e ".[dev,opcua,mqtt]"
# The MQTT adapter's tests use a real broker; install Debian's mosquitto when it is missing.
if ! command -v mosquitto >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  (apt-get update -qq && apt-get install -y -qq mosquitto >/dev/null) || echo "note: mosquitto not installed"
fi
python3 -m ruff check .
python3 -m mypy .
python3 -m pytest -q "$@"
