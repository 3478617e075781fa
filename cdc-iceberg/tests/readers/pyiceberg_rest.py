"""Independent reader: pyiceberg's RestCatalog loads a table from an Iceberg REST catalog, scans
it and writes it to Parquet.

usage: pyiceberg_rest.py <uri> <prefix> <namespace.levels> <table> <token file> <out.parquet>

The token is read from a file so that it never shows in a process list or a failure message.
Tables on S3 are read with the endpoint and credentials of the usual AWS_* environment.
"""
import os
import sys

import pyarrow.parquet as pq
from pyiceberg.catalog.rest import RestCatalog

uri, prefix, namespace, table, token_file, out = sys.argv[1:7]
with open(token_file) as f:
    token = f.read().strip()
s3 = {
    "s3.endpoint": os.environ.get("AWS_ENDPOINT_URL"),
    "s3.access-key-id": os.environ.get("AWS_ACCESS_KEY_ID"),
    "s3.secret-access-key": os.environ.get("AWS_SECRET_ACCESS_KEY"),
    "s3.region": os.environ.get("AWS_REGION"),
}
props = {k: v for k, v in s3.items() if v}
catalog = RestCatalog("rest", uri=uri, prefix=prefix, token=token, **props)
rows = catalog.load_table(tuple(namespace.split(".")) + (table,)).scan().to_arrow()
pq.write_table(rows, out)
print(rows.num_rows)
