"""The rows of a `public.customers` table as an independent reader returns them, as a digest the
throughput benchmark compares across writers: Delta through DuckDB's delta extension
(delta-kernel-rs), Iceberg through pyiceberg's SqlCatalog, Hudi through hudi-rs's Python package.
Only generic conversions: timestamps to naive ISO text (UTC for zoned ones), decimals to text.

usage: table_digest.py delta <table dir>
       table_digest.py iceberg <catalog.db> <catalog name> <namespace.table>
       table_digest.py hudi <table dir>
Prints {"rows": ..., "sha256": ...} as JSON.
"""
import datetime
import glob
import hashlib
import json
import os
import sys

COLUMNS = ["id", "name", "email", "balance", "updated_at"]


def read_delta(path):
    import duckdb
    import duckdb_extension_delta

    ext_dir = os.path.dirname(duckdb_extension_delta.__file__)
    ext = glob.glob(os.path.join(ext_dir, "extensions", "*", "delta.duckdb_extension"))[0]
    con = duckdb.connect()
    con.load_extension(ext)
    return con.sql(f"SELECT {', '.join(COLUMNS)} FROM delta_scan('{path}')").fetchall()


def read_iceberg(db, name, table):
    from pyiceberg.catalog.sql import SqlCatalog

    rows = SqlCatalog(name, uri=f"sqlite:///{db}").load_table(table).scan().to_arrow()
    return [tuple(r[c] for c in COLUMNS) for r in rows.select(COLUMNS).to_pylist()]


def read_hudi(path):
    import pyarrow as pa
    from hudi import HudiReadOptions, HudiTableBuilder

    table = HudiTableBuilder.from_base_uri(path).build()
    rows = pa.Table.from_batches(table.read(HudiReadOptions())).select(COLUMNS)
    return [tuple(r[c] for c in COLUMNS) for r in rows.to_pylist()]


def text(value):
    if isinstance(value, datetime.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(datetime.timezone.utc).replace(tzinfo=None)
        return value.isoformat(timespec="microseconds")
    return None if value is None else str(value)


def main():
    kind, args = sys.argv[1], sys.argv[2:]
    rows = {"delta": read_delta, "iceberg": read_iceberg, "hudi": read_hudi}[kind](*args)
    lines = sorted(json.dumps([text(v) for v in r], ensure_ascii=False) for r in rows)
    digest = hashlib.sha256("\n".join(lines).encode()).hexdigest()
    print(json.dumps({"rows": len(lines), "sha256": digest}))


if __name__ == "__main__":
    main()
