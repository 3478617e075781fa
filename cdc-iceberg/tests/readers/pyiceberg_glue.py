"""Independent reader: pyiceberg's GlueCatalog finds a table in the Glue Data Catalog (moto's, at
the AWS_ENDPOINT_URL of the environment), scans it from S3 and writes it to Parquet.

usage: pyiceberg_glue.py <database> <table> <out.parquet>

Nothing of ours is involved: pyiceberg reads the Glue table's parameters (table_type,
metadata_location), then the metadata, manifests, data and delete files.
"""
import os
import sys

import pyarrow.parquet as pq
from pyiceberg.catalog.glue import GlueCatalog

database, table, out = sys.argv[1:4]
env = {
    "glue.endpoint": os.environ.get("AWS_ENDPOINT_URL"),
    "glue.region": os.environ.get("AWS_REGION"),
    "glue.access-key-id": os.environ.get("AWS_ACCESS_KEY_ID"),
    "glue.secret-access-key": os.environ.get("AWS_SECRET_ACCESS_KEY"),
    "s3.endpoint": os.environ.get("AWS_ENDPOINT_URL"),
    "s3.access-key-id": os.environ.get("AWS_ACCESS_KEY_ID"),
    "s3.secret-access-key": os.environ.get("AWS_SECRET_ACCESS_KEY"),
    "s3.region": os.environ.get("AWS_REGION"),
}
catalog = GlueCatalog("glue", **{k: v for k, v in env.items() if v})
rows = catalog.load_table(f"{database}.{table}").scan().to_arrow()
pq.write_table(rows, out)
print(rows.num_rows)
