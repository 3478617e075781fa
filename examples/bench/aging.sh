#!/usr/bin/env bash
# Does a commit get dearer as the table ages? The backlog of throughput.sh fed in STEPS steps
# (the S3 sink's files appearing a few at a time), each step synced with small batches
# (`--max-batch-events`, several commits per step); prints the seconds of every step per format.
# The first half of the steps is the snapshot (inserts of new keys), the rest changes.
#
#   examples/bench/aging.sh [EVENTS] [STEPS] [BATCH EVENTS] [FORMATS]
#
# BIN_DIR names prebuilt release binaries instead of building them; WORK the scratch directory.
set -euo pipefail
cd "$(dirname "$0")/../.."
EVENTS=${1:-200000}
STEPS=${2:-10}
BATCH=${3:-1300}
FORMATS=${4:-delta iceberg hudi}
WORK=${WORK:-/tmp/cdc-lake-aging}
if [ -z "${BIN_DIR:-}" ]; then
  cargo build --release --quiet -p cdc-lake --features delta,iceberg,hudi --bin cdc-lake \
    -p cdc-lake-examples --bin backlog
  BIN_DIR=${CARGO_TARGET_DIR:-target}/release
fi
rm -rf "$WORK" && mkdir -p "$WORK"
per_file=$(( EVENTS / STEPS / 2 ))
"$BIN_DIR/backlog" "$WORK/src" "$EVENTS" "$per_file" > /dev/null
part=topics/dbserver1.public.customers/partition=0
mapfile -t files < <(ls "$WORK/src/all/$part")

printf '| format | %s |\n|---|%s\n' "$(seq -s ' | ' 1 "$STEPS")" "$(printf -- '---|%.0s' $(seq "$STEPS"))"
for format in $FORMATS; do
  feed="$WORK/feed-$format/$part"
  rm -rf "$WORK/feed-$format" "$WORK/wh-$format" && mkdir -p "$feed"
  row="| $format |"
  for step in $(seq 0 $(( STEPS - 1 ))); do
    for f in "${files[@]:$(( step * 2 )):2}"; do ln "$WORK/src/all/$part/$f" "$feed/$f"; done
    start=$(date +%s.%N)
    "$BIN_DIR/cdc-lake" sync --format "$format" --source "$WORK/feed-$format/topics" \
      --warehouse "$WORK/wh-$format" --key public.customers=id --max-batch-events "$BATCH" > /dev/null
    row="$row $(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }') |"
  done
  echo "$row"
done
