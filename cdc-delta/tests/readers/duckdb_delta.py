"""Independent reader: DuckDB's delta extension reads a Delta table and writes it to Parquet.

usage: duckdb_delta.py <table dir or s3 url> <out.parquet>

The test then compares the Parquet file with the fixture's expected state, so the comparison
sees only what DuckDB made of the Delta log and data files.
"""
import glob
import os
import sys

import duckdb
import duckdb_extension_delta

table, out = sys.argv[1], sys.argv[2]
ext_dir = os.path.dirname(duckdb_extension_delta.__file__)
ext = glob.glob(os.path.join(ext_dir, "extensions", "*", "delta.duckdb_extension"))[0]
con = duckdb.connect()
con.load_extension(ext)
con.execute(f"COPY (SELECT * FROM delta_scan('{table}')) TO '{out}' (FORMAT parquet)")
print(con.execute(f"SELECT count(*) FROM read_parquet('{out}')").fetchone()[0])
