#!/usr/bin/env bash
# Build the wheel, install it into a fresh venv (no extras), and run the commands from a
# directory outside the source tree: the packaged configuration and scenarios must be found.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 -m pip wheel --quiet --disable-pip-version-check --no-deps -w "$work/dist" . >/dev/null
rm -rf build
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --disable-pip-version-check "$work"/dist/tunneltwin-*.whl
cd "$work"
tt="$work/venv/bin/tunneltwin"
set -x
"$tt" --version
"$work/venv/bin/python" -m tunneltwin --version
"$tt" scenarios
"$tt" run --duration-h 2 --audit "$work/audit.db"
"$tt" audit "$work/audit.db" | tail -3
"$tt" explain "$work/audit.db" --tick 2025-01-06T01:00:00 --out "$work/tick" | head -3
test -s "$work/tick.lp" && test -s "$work/tick.mps"
"$tt" replay storm --controller baseline --out "$work/storm"
test -s "$work/storm/report.html"
data="$root/tests/data/hsy_excerpt_2days.csv"  # a recorded file from anywhere: the excerpt
"$tt" compare "$data" --controllers historical,baseline --out "$work/cmp" | tail -2
"$tt" calibrate "$data" --out "$work/site.toml" | tail -1
"$tt" --site "$work/site.toml" fidelity "$data" | tail -1
"$tt" fit-generator "$data" --out "$work/generator.toml" | tail -1
"$tt" sweep dry-week --controllers baseline --workers 1 --out "$work/sweep" | tail -1
set +x
# without the [opcua] extra: one line saying what to install, exit 3 (configuration)
rc=0; out="$("$tt" run --plant opcua --duration-h 1 2>&1)" || rc=$?
[ "$rc" -eq 3 ] || { echo "expected exit 3, got $rc: $out"; exit 1; }
grep -q "pip install 'tunneltwin\[opcua\]'" <<<"$out" || { echo "no extra hint: $out"; exit 1; }
# with the extra: certificates, and the twin served over OPC UA driven by the daemon
"$work/venv/bin/pip" install --quiet --disable-pip-version-check "$(ls "$work"/dist/tunneltwin-*.whl)[opcua]"
set -x
"$tt" certs --out "$work/pki" | tail -1
port="$("$work/venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
endpoint="opc.tcp://127.0.0.1:$port/tunneltwin/"
"$tt" simulate dry-week --opcua "$endpoint" --exit-at-end > "$work/simulate.log" 2>&1 &
sim=$!
"$tt" run --plant opcua --endpoint "$endpoint" --duration-h 2 | head -1
kill "$sim" 2>/dev/null || true
set +x
echo "wheel check: ok"
