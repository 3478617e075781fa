#!/usr/bin/env bash
# The Hudi upsert benchmark: for each key distribution, build one base table, then apply the
# same change batch with the floor (raw Parquet rewrite of the touched base files) and with
# cdc-hudi, each in its own process on its own copy of the table.
#
#   cdc-hudi/bench/hudi_upsert.sh [ROWS] [CHANGES] [WORKDIR]
set -euo pipefail
ROWS=${1:-10000000}
CHANGES=${2:-1000000}
WORK=${3:-/tmp/cdc-lake-hudi-bench}
cd "$(dirname "$0")/../.."
cargo build --release -p cdc-hudi --features bench --bin hudi_bench >&2
BIN="${CARGO_TARGET_DIR:-target}/release/hudi_bench"
for dist in uniform skewed recent; do
  rm -rf "$WORK/$dist" && mkdir -p "$WORK/$dist"
  "$BIN" setup "$WORK/$dist" "$ROWS" "$CHANGES" "$dist" >&2
  for mode in floor cdc; do
    cp -r "$WORK/$dist/base" "$WORK/$dist/t_$mode"
    sync
    echo "{\"distribution\":\"$dist\",\"rows\":$ROWS,\"changes\":$CHANGES,\"result\":$("$BIN" "$mode" "$WORK/$dist/t_$mode" "$WORK/$dist")}"
    rm -rf "$WORK/$dist/t_$mode"
  done
  rm -rf "$WORK/$dist"
done
