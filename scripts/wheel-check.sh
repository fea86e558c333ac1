#!/usr/bin/env bash
# Build the wheel, install it into a fresh venv (no extras), and run the commands from a
# directory outside the source tree: the packaged configuration and scenarios must be found.
set -euo pipefail
cd "$(dirname "$0")/.."
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
set +x
# without the [opcua] extra: one line saying what to install, exit 3 (configuration)
rc=0; out="$("$tt" run --plant opcua --duration-h 1 2>&1)" || rc=$?
[ "$rc" -eq 3 ] || { echo "expected exit 3, got $rc: $out"; exit 1; }
grep -q "pip install 'tunneltwin\[opcua\]'" <<<"$out" || { echo "no extra hint: $out"; exit 1; }
echo "wheel check: ok"
