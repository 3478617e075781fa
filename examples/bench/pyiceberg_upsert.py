"""The peer of examples/iceberg_bench.rs: pyiceberg applies the same change batch to a table
built by `iceberg_bench setup`: `Table.upsert` of the updated and inserted rows, then
`Table.delete` of the deleted keys (two commits; pyiceberg has no single row-delta commit).

usage: pyiceberg_upsert.py <catalog.db> <changes.parquet>

Prints one JSON line: seconds, peak RSS (MiB), rows after, sum(id), sum(amount).
"""
import json
import resource
import sys
import time

import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.expressions import In

db, changes_path = sys.argv[1], sys.argv[2]
catalog = SqlCatalog("cdc_lake", uri=f"sqlite:///{db}")
table = catalog.load_table("bench.accounts")
changes = pq.read_table(changes_path)
ups = changes.filter(pc.equal(changes["op"], "u")).drop_columns(["op"])
dels = changes.filter(pc.equal(changes["op"], "d"))["id"].to_pylist()
ups = ups.cast(table.schema().as_arrow())

start = time.perf_counter()
table.upsert(ups, join_cols=["id"])
table = catalog.load_table("bench.accounts")
table.delete(In("id", dels))
secs = time.perf_counter() - start

rows = catalog.load_table("bench.accounts").scan().to_arrow()
print(json.dumps({
    "mode": "pyiceberg",
    "apply_s": round(secs, 3),
    "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    "rows_after": rows.num_rows,
    "sum_id": pc.sum(rows["id"]).as_py(),
    "sum_amount": round(pc.sum(rows["amount"]).as_py(), 2),
}))
