#!/usr/bin/env bash
# Regenerates docs/front/ (sweep.csv, sweep.json with package versions, sweep.md and
# report.html with the front per scenario): the recorded 10 days at both price series, the
# recorded operation and the baseline as references, and the MPC at six prices on F2 changes
# (weights.smooth_eur_per_m3h), solved to the MIP gap. Needs the recorded data
# (TUNNELTWIN_RECORDED, default ../shared/hsy-data/derived/hsy_timeseries_tidy.csv).
# Takes about 12 min on 2 cores (714 s on 2026-12-06).
set -euo pipefail
cd "$(dirname "$0")/.."
data="${TUNNELTWIN_RECORDED:-../shared/hsy-data/derived/hsy_timeseries_tidy.csv}"
if [ ! -f "$data" ]; then
  echo "recorded data not found at $data (set TUNNELTWIN_RECORDED): docs/front not regenerated" >&2
  exit 1
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
for prices in normal high; do
  printf 'name = "recorded-%s"\n[source]\nkind = "recorded"\nfile = "%s"\nprices = "%s"\n' \
    "$prices" "$(realpath "$data")" "$prices" > "$tmp/recorded-$prices.toml"
done
tunneltwin sweep "$tmp/recorded-normal.toml" "$tmp/recorded-high.toml" --controllers historical,baseline,mpc \
  --reproducible --vary weights.smooth_eur_per_m3h=0.0002,0.002,0.005,0.01,0.02,0.05 --out docs/front
