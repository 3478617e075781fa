#!/usr/bin/env bash
# Two builds of upsert_bench on the same tables: for each format and key distribution, one base
# table and change batch (built by the first), then each build's sink modes applied REPEAT
# times, alternating, each on a fresh copy of the base table (MODES="cdc" to pick). Prints one
# JSON line per run;
# docs/BENCHMARKS.md reports the best of each.
#
#   examples/bench/compare.sh BIN_A BIN_B [ROWS] [CHANGES] [FORMATS] [DISTRIBUTIONS] [REPEAT]
set -euo pipefail
A=$1 B=$2
ROWS=${3:-10000000}
CHANGES=${4:-1000000}
FORMATS=${5:-delta iceberg hudi}
DISTS=${6:-uniform skewed}
REPEAT=${7:-3}
WORK=${WORK:-/tmp/cdc-lake-compare}
modes() {
  if [ -n "${MODES:-}" ]; then echo "$MODES"; return; fi
  case "$1" in
    hudi) echo "cdc" ;;
    *) echo "cdc cow" ;;
  esac
}
for format in $FORMATS; do
  for dist in $DISTS; do
    dir="$WORK/$format-$dist"
    rm -rf "$dir" && mkdir -p "$dir"
    "$A" setup "$format" "$dir" "$ROWS" "$CHANGES" "$dist" > /dev/null
    for r in $(seq "$REPEAT"); do
      for mode in $(modes "$format"); do
        for bin in "$A" "$B"; do
          rm -rf "$dir/t" && cp -r "$dir/base" "$dir/t" && sync
          echo "{\"bin\":\"$bin\",\"distribution\":\"$dist\",\"run\":$r,\"result\":$("$bin" "$mode" "$format" "$dir/t" "$dir")}"
        done
      done
    done
    rm -rf "$dir"
  done
done
