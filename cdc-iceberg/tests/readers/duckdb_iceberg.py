"""Independent reader: DuckDB's iceberg extension scans a table's metadata file and writes the
rows to Parquet.

usage: duckdb_iceberg.py <metadata.json> <out.parquet>

Needs the PyPI packages duckdb, duckdb-extension-iceberg and duckdb-extension-avro (the iceberg
extension reads manifests through the avro one and would otherwise try to download it).
"""
import glob
import os
import sys

import duckdb
import duckdb_extension_avro
import duckdb_extension_iceberg


def extension(module, name):
    ext_dir = os.path.dirname(module.__file__)
    return glob.glob(os.path.join(ext_dir, "extensions", "*", f"{name}.duckdb_extension"))[0]


metadata, out = sys.argv[1], sys.argv[2]
con = duckdb.connect(config={"autoinstall_known_extensions": False})
con.load_extension(extension(duckdb_extension_avro, "avro"))
con.load_extension(extension(duckdb_extension_iceberg, "iceberg"))
con.execute(f"COPY (SELECT * FROM iceberg_scan('{metadata}')) TO '{out}' (FORMAT parquet)")
print(con.execute(f"SELECT count(*) FROM read_parquet('{out}')").fetchone()[0])
