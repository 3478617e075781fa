"""Independent reader: DuckDB's delta extension reads a Delta table and writes it to Parquet.

usage: duckdb_delta.py <table dir or s3 url> <out.parquet>

The test then compares the Parquet file with the fixture's expected state, so the comparison
sees only what DuckDB made of the Delta log and data files. An s3:// table is read with
DuckDB's httpfs extension (from PyPI) and an S3 secret made of the usual AWS_* environment
(endpoint, region, keys), as a user would point DuckDB at the location Glue gives.
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
if table.startswith("s3://"):
    import urllib.parse

    import duckdb_extension_httpfs

    httpfs_dir = os.path.dirname(duckdb_extension_httpfs.__file__)
    con.load_extension(
        glob.glob(os.path.join(httpfs_dir, "extensions", "*", "httpfs.duckdb_extension"))[0]
    )
    endpoint = urllib.parse.urlparse(os.environ["AWS_ENDPOINT_URL"])
    def literal(value):
        return "'" + value.replace("'", "''") + "'"

    settings = {
        "KEY_ID": literal(os.environ["AWS_ACCESS_KEY_ID"]),
        "SECRET": literal(os.environ["AWS_SECRET_ACCESS_KEY"]),
        "REGION": literal(os.environ.get("AWS_REGION", "us-east-1")),
        "ENDPOINT": literal(endpoint.netloc),
        "URL_STYLE": "'path'",
        "USE_SSL": str(endpoint.scheme == "https").lower(),
    }
    con.execute(
        "CREATE SECRET lake (TYPE s3, "
        + ", ".join(f"{k} {v}" for k, v in settings.items())
        + ")"
    )
con.execute(f"COPY (SELECT * FROM delta_scan('{table}')) TO '{out}' (FORMAT parquet)")
print(con.execute(f"SELECT count(*) FROM read_parquet('{out}')").fetchone()[0])
