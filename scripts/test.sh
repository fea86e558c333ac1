#!/usr/bin/env bash
# The project's test command (README): installs what it needs, then lint, types and tests.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check -e ".[dev,opcua,mqtt,dask,http,parquet]"
# The MQTT adapter's tests use a real broker; install Debian's mosquitto when it is missing.
if ! command -v mosquitto >/dev/null 2>&1 && ! [ -x /usr/sbin/mosquitto ] && command -v apt-get >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && SUDO="sudo"
  ($SUDO apt-get update -qq && $SUDO apt-get install -y -qq mosquitto >/dev/null) || echo "note: mosquitto not installed"
fi
# The report's tests render it in a real headless browser: Debian's chromium.
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1 \
    && command -v apt-get >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && SUDO="sudo"
  ($SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium >/dev/null) || echo "note: chromium not installed"
fi
export TUNNELTWIN_REQUIRE_MOSQUITTO=1  # from here a missing broker fails the MQTT tests instead of skipping
export TUNNELTWIN_REQUIRE_CHROMIUM=1   # and a missing browser fails the report's
python3 -m ruff check .
python3 -m mypy .
python3 -m pytest -q -rs "$@"  # -rs: each skipped test with its reason
# the whole run (no pytest arguments) also checks the wheel: installed into a fresh venv
# outside the tree, it runs the commands
if [ "$#" -eq 0 ]; then bash scripts/wheel-check.sh; fi
