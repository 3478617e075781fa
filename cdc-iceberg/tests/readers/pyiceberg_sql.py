"""Independent reader: pyiceberg's SqlCatalog opens our SQLite catalog, scans a table and writes
it to Parquet.

usage: pyiceberg_sql.py <catalog.db> <catalog name> <namespace.table> <out.parquet>

The test compares the Parquet file with the fixture's expected state, so the comparison sees only
what pyiceberg made of the catalog, metadata, manifests, data and position-delete files.
"""
import sys

import pyarrow.parquet as pq
from pyiceberg.catalog.sql import SqlCatalog

db, name, table, out = sys.argv[1:5]
catalog = SqlCatalog(name, uri=f"sqlite:///{db}")
rows = catalog.load_table(table).scan().to_arrow()
pq.write_table(rows, out)
print(rows.num_rows)
