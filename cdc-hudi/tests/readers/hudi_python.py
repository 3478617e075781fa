"""Independent reader: the Python `hudi` package (hudi-rs's Python binding) reads a Hudi table
and writes what it read to Parquet.

usage: hudi_python.py <table dir> <out.parquet> snapshot
       hudi_python.py <table dir> <out.parquet> as_of <instant>
       hudi_python.py <table dir> <out.parquet> incremental <start instant> <end instant>

The test then compares the Parquet file with the expected state, so the comparison sees only
what the Python package made of the timeline and base files. Prints the row count.
"""
import sys

import pyarrow as pa
import pyarrow.parquet as pq
from hudi import HudiQueryType, HudiReadOptions, HudiTableBuilder

table_uri, out, mode = sys.argv[1], sys.argv[2], sys.argv[3]
table = HudiTableBuilder.from_base_uri(table_uri).build()
options = HudiReadOptions()
if mode == "as_of":
    options = options.with_as_of_timestamp(sys.argv[4])
elif mode == "incremental":
    options = (
        options.with_query_type(HudiQueryType.Incremental)
        .with_start_timestamp(sys.argv[4])
        .with_end_timestamp(sys.argv[5])
    )
elif mode != "snapshot":
    sys.exit(f"unknown mode {mode}")
batches = table.read(options)
schema = table.get_schema_with_meta_fields()
rows = pa.Table.from_batches(batches) if batches else schema.empty_table()
pq.write_table(rows, out)
print(rows.num_rows)
