"""Independent reader: pyiceberg's RestCatalog loads a table from an Iceberg REST catalog, scans
it and writes it to Parquet.

usage: pyiceberg_rest.py <uri> <prefix> <namespace.levels> <table> <token file> <out.parquet>

The token is read from a file so that it never shows in a process list or a failure message.
"""
import sys

import pyarrow.parquet as pq
from pyiceberg.catalog.rest import RestCatalog

uri, prefix, namespace, table, token_file, out = sys.argv[1:7]
with open(token_file) as f:
    token = f.read().strip()
catalog = RestCatalog("rest", uri=uri, prefix=prefix, token=token)
rows = catalog.load_table(tuple(namespace.split(".")) + (table,)).scan().to_arrow()
pq.write_table(rows, out)
print(rows.num_rows)
