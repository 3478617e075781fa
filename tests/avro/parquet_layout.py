"""Writes the Avro captures as the Confluent S3 sink's ParquetFormat lays them out.

For each capture in cdc-core/tests/data/avro/<scenario>/ this writes
`s3-parquet/<topic>/partition=<p>/<topic>+<p>+<start>.<codec>.parquet` (and `.keys.<codec>.parquet`
beside each when every record of the topic has a key: the sink fails on a null key when it
stores keys, so topics with truncate events are laid out without), the way kafka-connect-s3's
ParquetRecordWriterProvider does: parquet-avro's AvroParquetWriter over each record's Avro
value, the Avro schema in the footer under `parquet.avro.schema` (and `writer.model.name`),
dictionary encoding on, a new file when the value or key schema changes or after PER_FILE
records. Tombstones are left out as Debezium does with `tombstones.on.delete=false` (Parquet
cannot hold a null value), so the remaining records' offsets follow one another.

parquet-avro itself is not installable here (no Maven repository is reachable from this
machine), so its Avro-to-Parquet mapping is reproduced with pyarrow: records are groups,
`["null", T]` unions are OPTIONAL fields and all others REQUIRED, strings are BINARY (STRING),
Connect decimals DECIMAL(precision, scale), arrays of optional items the 3-level LIST that
the connector asks for in that case (`parquet.avro.write-old-list-structure=false`). Values
are decoded from the captured bytes with fastavro, independently of cdc-lake's decoder.

    ~/.cache/cdc-lake/venv/bin/pip install fastavro
    ~/.cache/cdc-lake/venv/bin/python tests/avro/parquet_layout.py
"""

import base64
import io
import json
import pathlib
import shutil

import fastavro
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = pathlib.Path(__file__).resolve().parents[2] / "cdc-core/tests/data/avro"
PER_FILE = 50
# The sink's `parquet.codec` per scenario (snappy is its default), with the name part it adds.
CODECS = {"types": ("gzip", "gz"), "schema_change": ("zstd", "zstd")}


def arrow_type(avro, named):
    """The Arrow type pyarrow writes as parquet-avro's Parquet type for an Avro schema."""
    if isinstance(avro, str):
        if avro in named:
            return arrow_type(named[avro], named)
        return {
            "int": pa.int32(),
            "long": pa.int64(),
            "float": pa.float32(),
            "double": pa.float64(),
            "boolean": pa.bool_(),
            "string": pa.string(),
            "bytes": pa.binary(),
        }[avro]
    if isinstance(avro, list):
        (value,) = [b for b in avro if b != "null"]
        return arrow_type(value, named)
    kind = avro["type"]
    if kind == "record":
        named[avro["name"]] = avro
        if "namespace" in avro:
            named[avro["namespace"] + "." + avro["name"]] = avro
        return pa.struct([arrow_field(f, named) for f in avro["fields"]])
    if kind == "array":
        items = avro["items"]
        return pa.list_(pa.field("element", arrow_type(items, named), nullable=optional(items)))
    if kind == "map":
        return pa.map_(pa.string(), arrow_type(avro["values"], named))
    if kind == "bytes" and avro.get("logicalType") == "decimal":
        precision, scale = avro["precision"], avro.get("scale", 0)
        return (pa.decimal128 if precision <= 38 else pa.decimal256)(precision, scale)
    return arrow_type(kind, named)


def optional(avro):
    return isinstance(avro, list) and "null" in avro


def arrow_field(field, named):
    return pa.field(field["name"], arrow_type(field["type"], named), nullable=optional(field["type"]))


def schema_id(framed):
    return int.from_bytes(framed[1:5], "big") if framed is not None else None


def write_file(directory, topic, partition, records, schemas, codec, keys):
    if not records:
        return
    start = records[0][0]
    name, suffix = codec
    base = f"{topic}+{partition}+{start:010d}"
    parts = [("value", f"{base}.{suffix}.parquet")]
    if keys:
        parts.append(("key", f"{base}.keys.{suffix}.parquet"))
    for part, file_name in parts:
        text = schemas[str(schema_id(records[0][1][part]))]
        datums = [r[part][5:] for _, r in records]
        (directory / file_name).write_bytes(parquet_file(text, datums, name))


def parquet_file(schema_text, datums, compression="snappy"):
    """A Parquet file of Avro `datums` (each one value's binary, without a frame) of the schema
    `schema_text`, as parquet-avro's AvroParquetWriter lays it out (see the module's docstring).
    Also used by tests/e2e/debezium_driver.py."""
    avro = json.loads(schema_text)
    parsed = fastavro.parse_schema(avro)
    rows = [
        fastavro.schemaless_reader(io.BytesIO(d), parsed, return_record_name=False) for d in datums
    ]
    table = pa.Table.from_pylist(rows, schema=pa.schema(list(arrow_type(avro, {}))))
    out = io.BytesIO()
    with pq.ParquetWriter(
        out, table.schema, compression=compression, use_dictionary=True, store_schema=False
    ) as writer:
        writer.write_table(table)
        writer.add_key_value_metadata({"parquet.avro.schema": schema_text, "writer.model.name": "avro"})
    return out.getvalue()


def layout(scenario):
    src = ROOT / scenario
    schemas = json.loads((src / "schemas.json").read_text())
    dest = src / "s3-parquet"
    shutil.rmtree(dest, ignore_errors=True)
    codec = CODECS.get(scenario, ("snappy", "snappy"))
    by_tp = {}
    for line in (src / "events.jsonl").read_text().splitlines():
        e = json.loads(line)
        decode = lambda s: base64.b64decode(s) if s is not None else None
        rec = {"key": decode(e["key"]), "value": decode(e["value"])}
        by_tp.setdefault((e["topic"], e["partition"]), []).append(rec)
    for (topic, partition), records in by_tp.items():
        directory = dest / topic / f"partition={partition}"
        directory.mkdir(parents=True)
        records = [r for r in records if r["value"] is not None]
        keys = all(r["key"] is not None for r in records)
        file, offset = [], 0
        for r in records:
            last = file[-1][1] if file else None
            rotate = last is not None and (
                schema_id(last["value"]) != schema_id(r["value"])
                or (keys and schema_id(last["key"]) != schema_id(r["key"]))
            )
            if rotate or len(file) == PER_FILE:
                write_file(directory, topic, partition, file, schemas, codec, keys)
                file = []
            file.append((offset, r))
            offset += 1
        write_file(directory, topic, partition, file, schemas, codec, keys)
    print(scenario, sum(1 for _ in dest.rglob("*.parquet")), "files")


if __name__ == "__main__":
    for scenario in ["crud", "pk_change", "schema_change", "toast", "truncate", "types"]:
        layout(scenario)
