#!/usr/bin/env bash
# Regenerates docs/storm-ensemble/ (sweep.csv, sweep.json with package versions, sweep.md,
# report.html): the bundled storm ensemble, baseline against the MPC with its learnt forecast
# and with a perfect one. With the recorded data present (TUNNELTWIN_RECORDED, default
# ../shared/hsy-data/derived/hsy_timeseries_tidy.csv) it also writes docs/recorded-days/:
# the MPC on the recorded 10 days at both price series, solved to the MIP gap. docs/storm-holdout/:
# the held-out ensemble (scripts/draw-ensemble.py), baseline against the MPC, which no model
# choice was measured on before it was drawn.
# Takes about 30 min on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
tunneltwin sweep storm-ensemble --controllers baseline,mpc --forecast internal,perfect --out docs/storm-ensemble
tunneltwin sweep storm-holdout --controllers baseline,mpc --out docs/storm-holdout
data="${TUNNELTWIN_RECORDED:-../shared/hsy-data/derived/hsy_timeseries_tidy.csv}"
if [ -f "$data" ]; then
  tmp="$(mktemp -d)"
  for prices in normal high; do
    printf 'name = "recorded-%s"\n[source]\nkind = "recorded"\nfile = "%s"\nprices = "%s"\n' \
      "$prices" "$(realpath "$data")" "$prices" > "$tmp/recorded-$prices.toml"
  done
  tunneltwin sweep "$tmp/recorded-normal.toml" "$tmp/recorded-high.toml" --controllers historical,mpc \
    --reproducible --out docs/recorded-days
  rm -rf "$tmp"
else
  echo "recorded data not found at $data: docs/recorded-days not regenerated" >&2
fi
