#!/usr/bin/env bash
# The Iceberg upsert benchmark: for each key distribution, apply the same change batch with the
# floor (raw Parquet: key columns of the candidate files read, a position-delete file and the new
# rows written), cdc-iceberg (position deletes, then copy-on-write), each in its own process on
# its own freshly built table, and (unless PEER=0) with pyiceberg's Table.upsert + delete, the
# peer, on a table built the same way.
#
#   cdc-iceberg/bench/iceberg_upsert.sh [ROWS] [CHANGES] [WORKDIR] [DISTRIBUTIONS...]
#
# Needs the tests' venv (pyiceberg) at $CDC_LAKE_VENV (default ~/.cache/cdc-lake/venv) for the peer.
set -euo pipefail
ROWS=${1:-10000000}
CHANGES=${2:-1000000}
WORK=${3:-/tmp/cdc-lake-iceberg-bench}
shift $(( $# < 3 ? $# : 3 ))
DISTS=("${@:-skewed uniform}")
read -r -a DISTS <<< "${DISTS[*]}"
VENV="${CDC_LAKE_VENV:-$HOME/.cache/cdc-lake/venv}"
cd "$(dirname "$0")/../.."
cargo build --release -p cdc-iceberg --example iceberg_bench >&2
BIN="${CARGO_TARGET_DIR:-target}/release/examples/iceberg_bench"
for dist in "${DISTS[@]}"; do
  for mode in floor cdc cow; do
    rm -rf "$WORK/$dist-$mode" && mkdir -p "$WORK/$dist-$mode"
    sync
    echo "{\"distribution\":\"$dist\",\"result\":$("$BIN" "$mode" "$WORK/$dist-$mode" "$ROWS" "$CHANGES" "$dist")}"
    rm -rf "$WORK/$dist-$mode"
  done
  if [ "${PEER:-1}" != 0 ]; then
    rm -rf "$WORK/$dist-peer" && mkdir -p "$WORK/$dist-peer"
    "$BIN" setup "$WORK/$dist-peer" "$ROWS" "$CHANGES" "$dist" >&2
    sync
    echo "{\"distribution\":\"$dist\",\"result\":$("$VENV/bin/python" cdc-iceberg/examples/pyiceberg_upsert.py "$WORK/$dist-peer/wh/catalog.db" "$WORK/$dist-peer/changes.parquet")}"
    rm -rf "$WORK/$dist-peer"
  fi
done
