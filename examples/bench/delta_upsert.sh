#!/usr/bin/env bash
# The Delta upsert benchmark of docs/BENCHMARKS.md: for each key distribution, build one base
# table, then apply the same change batch with the floor (raw Parquet rewrite of touched files),
# cdc-delta, and a plain delta-rs MERGE, each in its own process on its own copy of the table.
#
#   examples/bench/delta_upsert.sh [ROWS] [CHANGES] [WORKDIR]
set -euo pipefail
ROWS=${1:-10000000}
CHANGES=${2:-1000000}
WORK=${3:-/tmp/cdc-lake-delta-bench}
cd "$(dirname "$0")/../.."
cargo build --release -p cdc-lake-examples --bin delta_bench >&2
BIN="${CARGO_TARGET_DIR:-target}/release/delta_bench"
for dist in uniform skewed recent; do
  rm -rf "$WORK/$dist" && mkdir -p "$WORK/$dist"
  "$BIN" setup "$WORK/$dist" "$ROWS" "$CHANGES" "$dist" >&2
  for mode in floor cdc merge; do
    cp -r "$WORK/$dist/base" "$WORK/$dist/t_$mode"
    sync
    echo "{\"distribution\":\"$dist\",\"rows\":$ROWS,\"changes\":$CHANGES,\"result\":$("$BIN" "$mode" "$WORK/$dist/t_$mode" "$WORK/$dist")}"
    if [ "$mode" != floor ]; then
      echo "{\"distribution\":\"$dist\",\"mode\":\"$mode\",\"digest\":$("$BIN" digest "$WORK/$dist/t_$mode")}"
    fi
    rm -rf "$WORK/$dist/t_$mode"
  done
  rm -rf "$WORK/$dist"
done
