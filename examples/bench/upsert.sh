#!/usr/bin/env bash
# The upsert benchmark of every format (docs/BENCHMARKS.md), from one generator: for each
# format and key distribution, one base table and one change batch are built
# (`upsert_bench setup`), then every mode applies the same batch in its own process on its own
# copy of the base table: the sink (`cdc`; `cow` = copy-on-write), the peer a user would pick
# instead (delta-rs `merge`; pyiceberg with PEER=1), and the floors (`floor`: a raw Parquet
# rewrite of the touched files; `floor-mor`: their key column read, a position-delete file
# written). After each table mode the result is read with the format's own reader, timed, and
# its digest must equal every other mode's of the same format and distribution.
#
#   examples/bench/upsert.sh [ROWS] [CHANGES] [WORKDIR] [FORMATS] [DISTRIBUTIONS]
#
# NO_BUILD=1 runs the release binary already built; BIN=<path> runs another build of it.
set -euo pipefail
ROWS=${1:-10000000}
CHANGES=${2:-1000000}
WORK=${3:-/tmp/cdc-lake-upsert-bench}
FORMATS=${4:-delta iceberg hudi}
DISTS=${5:-uniform skewed recent}
VENV="${CDC_LAKE_VENV:-$HOME/.cache/cdc-lake/venv}"
cd "$(dirname "$0")/../.."
if [ -z "${NO_BUILD:-}" ] && [ -z "${BIN:-}" ]; then
  cargo build --release -p cdc-lake-examples --bin upsert_bench >&2
fi
BIN=${BIN:-"${CARGO_TARGET_DIR:-target}/release/upsert_bench"}

modes() {
  case "$1" in
    delta) echo "floor cdc cow merge" ;;
    iceberg) echo "floor-mor floor cdc cow" ;;
    hudi) echo "floor cdc" ;;
  esac
}

for format in $FORMATS; do
  for dist in $DISTS; do
    dir="$WORK/$format-$dist"
    rm -rf "$dir" && mkdir -p "$dir"
    echo "{\"format\":\"$format\",\"distribution\":\"$dist\",\"setup\":$("$BIN" setup "$format" "$dir" "$ROWS" "$CHANGES" "$dist")}"
    digests=()
    for mode in $(modes "$format"); do
      cp -r "$dir/base" "$dir/t_$mode"
      sync
      echo "{\"distribution\":\"$dist\",\"rows\":$ROWS,\"changes\":$CHANGES,\"result\":$("$BIN" "$mode" "$format" "$dir/t_$mode" "$dir")}"
      if [[ "$mode" != floor* ]]; then
        if [ "$format" = delta ]; then
          digest=$("$VENV/bin/python" examples/bench/duckdb_delta_digest.py "$dir/t_$mode/bench/accounts")
        else
          digest=$("$BIN" digest "$format" "$dir/t_$mode")
        fi
        echo "{\"distribution\":\"$dist\",\"digest\":$digest}"
        digests+=("$(echo "$digest" | sed 's/"scan_seconds":[^,]*,//; s/,"peak_rss_mib":[^,}]*//; s/"mode":"[^"]*",\?//')")
      fi
      rm -rf "$dir/t_$mode"
    done
    if [ "$format" = iceberg ] && [ "${PEER:-0}" = 1 ]; then
      cp -r "$dir/base" "$dir/t_peer"
      echo "{\"distribution\":\"$dist\",\"result\":$("$VENV/bin/python" examples/bench/pyiceberg_upsert.py "$dir/t_peer/catalog.db" "$dir/changes.parquet")}"
      rm -rf "$dir/t_peer"
    fi
    for d in "${digests[@]}"; do
      if [ "$d" != "${digests[0]}" ]; then
        echo "digest mismatch in $format/$dist: ${digests[*]}" >&2
        exit 1
      fi
    done
    rm -rf "$dir"
  done
done
