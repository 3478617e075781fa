"""The job a user would write instead of cdc-lake: pyarrow's JSON reader with an explicit payload
schema, the newest change per key, and a delta-rs MERGE (a plain write when the table is new).
Each run takes the raw files not yet in its state file, as `cdc-lake sync` takes the files after
its checkpoint.

usage: peer_merge.py <topics dir> <table dir> [--schemaless]
Prints {"seconds": ..., "events": ..., "files": ...} as JSON.
"""
import base64
import glob
import json
import os
import sys
import time
from decimal import Decimal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj
from deltalake import DeltaTable, write_deltalake

ROW = pa.struct([
    ("id", pa.int32()), ("name", pa.string()), ("email", pa.string()),
    ("balance", pa.string()), ("updated_at", pa.int64()),
])
PAYLOAD = pa.struct([("before", ROW), ("after", ROW), ("op", pa.string())])


def read_changes(files, schemaless):
    schema = pa.schema(PAYLOAD) if schemaless else pa.schema([("payload", PAYLOAD)])
    opts = pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
    tables = [pj.read_json(f, parse_options=opts) for f in files]
    t = pa.concat_tables(tables)
    payload = t if schemaless else pa.Table.from_struct_array(t.column("payload").combine_chunks())
    return payload


def newest_per_key(payload):
    after, before = payload.column("after"), payload.column("before")
    key = pc.coalesce(pc.struct_field(after, "id"), pc.struct_field(before, "id"))
    indexed = pa.table({"key": key, "i": pa.array(range(len(key)), pa.int64())})
    last = indexed.group_by("key").aggregate([("i", "max")]).column("i_max")
    newest = payload.take(last)
    after = newest.column("after").combine_chunks()
    ids = pc.coalesce(pc.struct_field(after, "id"), pc.struct_field(newest.column("before"), "id"))
    balance = [
        None if b is None else Decimal(int.from_bytes(base64.b64decode(b), "big", signed=True)).scaleb(-2)
        for b in pc.struct_field(after, "balance").to_pylist()
    ]
    return pa.table({
        "id": ids,
        "name": pc.struct_field(after, "name"),
        "email": pc.struct_field(after, "email"),
        "balance": pa.array(balance, pa.decimal128(12, 2)),
        "updated_at": pc.struct_field(after, "updated_at").cast(pa.timestamp("us")),
        "_op": newest.column("op"),
    })


def main():
    topics, table_dir = sys.argv[1], sys.argv[2]
    schemaless = "--schemaless" in sys.argv
    state_file = os.path.join(table_dir + ".peer-state.json")
    done = set(json.load(open(state_file))) if os.path.exists(state_file) else set()
    start = time.perf_counter()
    files = sorted(f for f in glob.glob(os.path.join(topics, "**", "*.json"), recursive=True)
                   if os.path.basename(f) not in done)
    payload = read_changes(files, schemaless)
    changes = newest_per_key(payload)
    if DeltaTable.is_deltatable(table_dir):
        (
            DeltaTable(table_dir)
            .merge(changes, predicate="t.id = s.id", source_alias="s", target_alias="t")
            .when_matched_delete(predicate="s._op = 'd'")
            .when_matched_update_all(predicate="s._op != 'd'", except_cols=["_op"])
            .when_not_matched_insert_all(predicate="s._op != 'd'", except_cols=["_op"])
            .execute()
        )
    else:
        rows = changes.filter(pc.not_equal(changes.column("_op"), "d")).drop_columns(["_op"])
        write_deltalake(table_dir, rows)
    secs = time.perf_counter() - start
    json.dump(sorted(done | {os.path.basename(f) for f in files}), open(state_file, "w"))
    print(json.dumps({"seconds": secs, "events": payload.num_rows, "files": len(files)}))


if __name__ == "__main__":
    main()
