"""The digest of a Delta table read by DuckDB's delta extension (delta-kernel-rs), in the form
upsert_bench's `digest` prints: what the benchmark compares across modes. (delta-rs 0.32's own
DataFusion scan applies deletion vectors to the wrong rows of tables like these; see
docs/BENCHMARKS.md.)

usage: duckdb_delta_digest.py <table dir>
"""
import glob
import json
import os
import sys
import time

import duckdb
import duckdb_extension_delta

ext = glob.glob(os.path.join(os.path.dirname(duckdb_extension_delta.__file__), "extensions", "*", "delta.duckdb_extension"))[0]
con = duckdb.connect()
con.load_extension(ext)
start = time.perf_counter()
n, keys, id_sum, amount, names = con.sql(
    f"SELECT count(*), count(DISTINCT id), sum(id), sum(amount), count(name) FROM delta_scan('{sys.argv[1]}')"
).fetchone()
secs = time.perf_counter() - start
print(json.dumps({
    "scan_seconds": secs, "rows": str(n), "keys": str(keys), "id_sum": str(id_sum),
    "amount_sum": f"{amount:.2f}", "names": str(names), "format": "delta",
}))
