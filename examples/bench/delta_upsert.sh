#!/usr/bin/env bash
# The Delta upsert benchmark of docs/BENCHMARKS.md: for each key distribution, build one base
# table, then apply the same change batch with the floor (raw Parquet rewrite of touched files),
# cdc-delta (deletion vectors, the default), cdc-delta without deletion vectors (cdc-cow) and a
# plain delta-rs MERGE, each in its own process on its own copy of the table. After each table
# mode, a full DataFusion scan of the result is timed (read-after-write) and its digest must
# equal the MERGE table's.
#
#   examples/bench/delta_upsert.sh [ROWS] [CHANGES] [WORKDIR] [DISTRIBUTIONS]
#
# NO_BUILD=1 runs the delta_bench binary already built (release) instead of building it first.
set -euo pipefail
ROWS=${1:-10000000}
CHANGES=${2:-1000000}
WORK=${3:-/tmp/cdc-lake-delta-bench}
DISTS=${4:-uniform skewed recent}
cd "$(dirname "$0")/../.."
if [ -z "${NO_BUILD:-}" ]; then
  cargo build --release -p cdc-lake-examples --bin delta_bench >&2
fi
BIN="${CARGO_TARGET_DIR:-target}/release/delta_bench"
for dist in $DISTS; do
  rm -rf "$WORK/$dist" && mkdir -p "$WORK/$dist"
  "$BIN" setup "$WORK/$dist" "$ROWS" "$CHANGES" "$dist" >&2
  # The base table's scan: the same 100-file layout without deletion vectors.
  echo "{\"distribution\":\"$dist\",\"mode\":\"base\",\"scan\":$("$BIN" scan "$WORK/$dist/base")}"
  digests=()
  for mode in floor cdc cdc-cow merge; do
    cp -r "$WORK/$dist/base" "$WORK/$dist/t_$mode"
    sync
    echo "{\"distribution\":\"$dist\",\"rows\":$ROWS,\"changes\":$CHANGES,\"result\":$("$BIN" "$mode" "$WORK/$dist/t_$mode" "$WORK/$dist")}"
    if [ "$mode" != floor ]; then
      echo "{\"distribution\":\"$dist\",\"mode\":\"$mode\",\"scan\":$("$BIN" scan "$WORK/$dist/t_$mode")}"
      digest=$("$BIN" digest "$WORK/$dist/t_$mode" | sed 's/,"peak_rss_mib":[^,}]*//')
      echo "{\"distribution\":\"$dist\",\"mode\":\"$mode\",\"digest\":$digest}"
      digests+=("$digest")
    fi
    rm -rf "$WORK/$dist/t_$mode"
  done
  for d in "${digests[@]}"; do
    if [ "$d" != "${digests[0]}" ]; then
      echo "digest mismatch in $dist: ${digests[*]}" >&2
      exit 1
    fi
  done
  rm -rf "$WORK/$dist"
done
