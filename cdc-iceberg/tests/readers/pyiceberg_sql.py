"""Independent reader: pyiceberg's SqlCatalog opens our SQLite catalog, scans a table and writes
it to Parquet.

usage: pyiceberg_sql.py <catalog.db> <catalog name> <namespace.table> <out.parquet>

The test compares the Parquet file with the fixture's expected state, so the comparison sees only
what pyiceberg made of the catalog, metadata, manifests, data and position-delete files. Tables
on S3 are read with the endpoint and credentials of the usual AWS_* environment (never argv).
"""
import os
import sys

import pyarrow.parquet as pq
from pyiceberg.catalog.sql import SqlCatalog

db, name, table, out = sys.argv[1:5]
s3 = {
    "s3.endpoint": os.environ.get("AWS_ENDPOINT_URL"),
    "s3.access-key-id": os.environ.get("AWS_ACCESS_KEY_ID"),
    "s3.secret-access-key": os.environ.get("AWS_SECRET_ACCESS_KEY"),
    "s3.region": os.environ.get("AWS_REGION"),
}
s3["adls.connection-string"] = os.environ.get("AZURE_STORAGE_CONNECTION_STRING")
props = {k: v for k, v in s3.items() if v}
catalog = SqlCatalog(name, uri=f"sqlite:///{db}", **props)
rows = catalog.load_table(table).scan().to_arrow()
pq.write_table(rows, out)
print(rows.num_rows)
