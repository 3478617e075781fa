#!/usr/bin/env bash
# End-to-end throughput of `cdc-lake sync` against the job a user would write instead
# (peer_merge.py: pyarrow's JSON reader + delta-rs MERGE), on one generated backlog.
#
#   examples/bench/throughput.sh [EVENTS] [FORMATS]
#
# Generates EVENTS Debezium events shaped like the crud fixture's public.customers (half snapshot,
# then 70 % updates, 20 % inserts, 10 % deletes) in the S3 sink's layout, syncs the snapshot's
# files and then the rest with each format and with the peer, checks that every table holds the
# same rows (read by DuckDB, pyiceberg and hudi-rs), and prints one markdown row per writer:
# seconds per phase (process wall time for cdc-lake, the script's own timer for the peer, so its
# interpreter start is not counted against it), peak RSS, and the peer's time over ours.
# SCHEMALESS=1 writes bare payloads; WORK (default /tmp/cdc-lake-throughput) holds everything;
# BIN_DIR names prebuilt release binaries instead of building them; PYTHON the interpreter with
# pyarrow, deltalake, duckdb + its delta extension, pyiceberg and hudi.
set -euo pipefail
cd "$(dirname "$0")/../.."
EVENTS=${1:-200000}
FORMATS=${2:-delta iceberg hudi}
WORK=${WORK:-/tmp/cdc-lake-throughput}
PYTHON=${PYTHON:-${CDC_LAKE_VENV:-$HOME/.cache/cdc-lake/venv}/bin/python}
if [ -z "${BIN_DIR:-}" ]; then
  cargo build --release --quiet -p cdc-lake --features delta,iceberg,hudi --bin cdc-lake \
    -p cdc-lake-examples --bin backlog
  BIN_DIR=${CARGO_TARGET_DIR:-target}/release
fi
schemaless=()
if [ -n "${SCHEMALESS:-}" ]; then schemaless=(--schemaless); fi

rm -rf "$WORK" && mkdir -p "$WORK"
"$BIN_DIR/backlog" "$WORK/src" "$EVENTS" 10000 "${schemaless[@]}" > "$WORK/backlog.json"
echo "backlog: $(cat "$WORK/backlog.json")"
live_rows=$("$PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))["live_rows"])' "$WORK/backlog.json")

# Runs a command under /usr/bin/time; prints "<wall seconds> <peak RSS MB>" and keeps its stdout.
timed() {
  local out=$1; shift
  /usr/bin/time -f '%e %M' -o "$out.time" "$@" > "$out" 2> "$out.err" || { cat "$out.err" >&2; exit 1; }
  awk '{printf "%s %d\n", $1, $2 / 1024}' "$out.time"
}

declare -A secs rss digest
for phase in snapshot all; do
  read -r s m < <(timed "$WORK/peer-$phase.out" "$PYTHON" examples/bench/peer_merge.py \
    "$WORK/src/$phase/topics" "$WORK/peer/customers" "${schemaless[@]}")
  secs[peer,$phase]=$("$PYTHON" -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["seconds"], 2))' "$WORK/peer-$phase.out")
  rss[peer,$phase]=$m
done
digest[peer]=$("$PYTHON" examples/bench/table_digest.py delta "$WORK/peer/customers")

for format in $FORMATS; do
  wh="$WORK/wh-$format"
  for phase in snapshot all; do
    read -r s m < <(timed "$WORK/$format-$phase.out" "$BIN_DIR/cdc-lake" sync --format "$format" \
      --source "$WORK/src/$phase/topics" --warehouse "$wh" --key public.customers=id)
    secs[$format,$phase]=$s
    rss[$format,$phase]=$m
  done
  case "$format" in
    delta) digest[$format]=$("$PYTHON" examples/bench/table_digest.py delta "$wh/public/customers") ;;
    iceberg) digest[$format]=$("$PYTHON" examples/bench/table_digest.py iceberg "$wh/catalog.db" cdc_lake public.customers) ;;
    hudi) digest[$format]=$("$PYTHON" examples/bench/table_digest.py hudi "$wh/public/customers") ;;
  esac
done

echo "| writer | snapshot run (s) | change run (s) | peak RSS (MB) | peer / writer, snapshot | peer / writer, changes |"
echo "|---|---|---|---|---|---|"
status=0
for w in peer $FORMATS; do
  peak=$(( rss[$w,snapshot] > rss[$w,all] ? rss[$w,snapshot] : rss[$w,all] ))
  ratio() { awk -v p="${secs[peer,$1]}" -v s="${secs[$w,$1]}" 'BEGIN { printf "%.2f", p / s }'; }
  echo "| $w | ${secs[$w,snapshot]} | ${secs[$w,all]} | $peak | $(ratio snapshot)× | $(ratio all)× |"
  rows=$("$PYTHON" -c 'import json,sys; print(json.loads(sys.argv[1])["rows"])' "${digest[$w]}")
  if [ "${digest[$w]}" != "${digest[peer]}" ] || [ "$rows" != "$live_rows" ]; then
    echo "MISMATCH: $w read back as ${digest[$w]}, the peer as ${digest[peer]}, expected $live_rows rows" >&2
    status=1
  fi
done
[ $status = 0 ] && echo "all tables equal: $live_rows rows, ${digest[peer]}"
exit $status
