"""Writes the fuzz targets' seed corpora from the Avro captures: for avro_decode
(fuzz/corpus/avro_decode/) framed values (path 0), container files (1) and ByteArrayFormat
files (2), scenario n's schema ids made n * 100 + id as the target's registry has them; for
parquet_file (fuzz/corpus/parquet_file/) the captures' ParquetFormat files."""

import base64
import json
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent
DATA = ROOT.parent / "cdc-core/tests/data/avro"
SCENARIOS = ["crud", "pk_change", "schema_change", "toast", "truncate", "types"]
OUT = ROOT / "corpus/avro_decode"
PARQUET = ROOT / "corpus/parquet_file"


def long(n):
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def container(schema, datums):
    sync = b"0123456789abcdef"
    meta = {b"avro.schema": schema.encode(), b"avro.codec": b"null"}
    out = b"Obj\x01" + long(len(meta))
    for k, v in meta.items():
        out += long(len(k)) + k + long(len(v)) + v
    body = b"".join(datums)
    return out + long(0) + sync + long(len(datums)) + long(len(body)) + body + sync


OUT.mkdir(parents=True, exist_ok=True)
PARQUET.mkdir(parents=True, exist_ok=True)
for n, scenario in enumerate(SCENARIOS):
    schemas = json.loads((DATA / scenario / "schemas.json").read_text())
    values = []
    for line in (DATA / scenario / "events.jsonl").read_text().splitlines():
        value = json.loads(line)["value"]
        if value is not None:
            v = base64.b64decode(value)
            values.append(b"\x00" + (n * 100 + int.from_bytes(v[1:5], "big")).to_bytes(4, "big") + v[5:])
    for i, v in enumerate(values[:20]):
        (OUT / f"{scenario}-value-{i}").write_bytes(b"\x00" + v)
    first = values[0]
    same = [v[5:] for v in values if v[:5] == first[:5]][:10]
    schema = schemas[str(int.from_bytes(first[1:5], "big") - n * 100)]
    (OUT / f"{scenario}-container").write_bytes(b"\x01" + container(schema, same))
    for i, path in enumerate(sorted((DATA / scenario / "s3-parquet").rglob("*.parquet"))[:2]):
        (PARQUET / f"{scenario}-{i}").write_bytes(path.read_bytes())
    (OUT / f"{scenario}-bytearray").write_bytes(b"\x02" + b"".join(v + b"\n" for v in values[:10]))
print(len(list(OUT.iterdir())), "seeds in", OUT)
