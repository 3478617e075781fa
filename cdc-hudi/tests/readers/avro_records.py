"""Prints the records of Avro object container files (fastavro), one JSON line per file:
{"file": ..., "schema": <writer schema name>, "records": [...]}."""
import json
import sys

import fastavro

for path in sys.argv[1:]:
    with open(path, "rb") as f:
        reader = fastavro.reader(f)
        name = reader.writer_schema.get("name")
        records = list(reader)
    print(json.dumps({"file": path, "schema": name, "records": records}, default=str))
