#!/usr/bin/env python3
"""A small in-memory Confluent Schema Registry: what the AvroConverter's client calls.

usage: registry.py --port P [--host H] [--schemas FILE.json] [--subjects FILE.json] [--user-info USER:PASS]
                   [--bearer TOKEN] [--fail-first N] [--log FILE]

Endpoints (Confluent's paths, answer shapes and error codes):
    POST /subjects/{s}/versions   register {"schema": text} -> {"id": n}; the same text gets the
                                  same id in any subject
    POST /subjects/{s}            look up {"schema": text} -> {"subject", "id", "version", "schema"}
                                  (40403 when the subject has no such schema)
    GET  /schemas/ids/{id}        -> {"schema": text} (40403 "Schema not found" for an unknown id)
    GET  /subjects                -> ["subject", ...]
    GET  /subjects/{s}/versions   -> [1, 2, ...] (40401 "Subject not found")
    GET  /subjects/{s}/versions/{v|latest}   -> {"subject", "version", "id", "schema"} (40402
                                  "Version not found"); not counted by --fail-first, so a client
                                  that must not meet those failures (the e2e driver) reads here
Only plain Avro schemas are accepted (422 / 42201 for another schemaType or for references).

Options:
    --port P           0 picks a free port; either way "listening on PORT" is printed on stdout
                       (and flushed) once the server accepts connections
    --schemas FILE     preload ids from a JSON object {"<id>": "<schema text>"} (the
                       schemas.json of cdc-core/tests/data/avro/<scenario>/); registering one of
                       those texts gives its id, new texts get ids after the largest one
    --subjects FILE    preload subjects from a JSON object {"<subject>": [{"version": v, "id": n},
                       ...]} (the subjects.json beside schemas.json)
    --user-info U:P    every request needs HTTP basic auth U:P (401 otherwise)
    --bearer TOKEN     every request needs "Authorization: Bearer TOKEN" (401 otherwise); with
                       --user-info as well, either one is accepted
    --fail-first N     the first N GET /schemas/ids/* requests that pass authentication get 503
                       (error_code 50002), as a registry that is briefly unavailable
    --log FILE         one JSON line per request: {"method", "path", "status"} (path with its
                       query string), written and flushed as the answer is sent

It serves until it is killed; SIGTERM and SIGINT stop it cleanly.

Importable as well (tests/avro/capture.py): `Registry(port)` is a ThreadingHTTPServer; run
`serve_forever()` in a thread; `texts` (id -> text), `subjects` (subject -> ids of versions
1, 2, ...) and `lock` give what was registered.
"""
from __future__ import annotations

import argparse
import base64
import binascii
import hmac
import json
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlparse


class Registry(ThreadingHTTPServer):
    """In-memory registry. Identical schema text gets the same id, in any subject."""

    daemon_threads = True

    def __init__(self, port: int, host: str = "127.0.0.1", *, schemas: dict[int, str] | None = None,
                 user_info: str | None = None, bearer: str | None = None, fail_first: int = 0,
                 log=None):
        super().__init__((host, port), RegistryHandler)
        self.lock = threading.Lock()
        self.ids: dict[str, int] = {}             # schema text -> id
        self.texts: dict[int, str] = {}           # id -> schema text, as the client sent it
        self.subjects: dict[str, list[int]] = {}  # subject -> ids of version 1, 2, ...
        for sid, text in sorted((schemas or {}).items()):
            self.ids.setdefault(text, int(sid))
            self.texts[int(sid)] = text
        self.user_info = user_info
        self.bearer = bearer
        self.fail_left = fail_first
        self.log = log  # a text file or None

    def register(self, subject: str, text: str) -> int:
        with self.lock:
            sid = self.ids.get(text)
            if sid is None:
                sid = max(self.texts, default=0) + 1
                self.ids[text] = sid
                self.texts[sid] = text
            versions = self.subjects.setdefault(subject, [])
            if sid not in versions:
                versions.append(sid)
            return sid

    def authorized(self, header: str | None) -> bool:
        if self.user_info is None and self.bearer is None:
            return True
        if not header:
            return False
        scheme, _, cred = header.partition(" ")
        cred = cred.strip()
        if self.user_info is not None and scheme.lower() == "basic":
            try:
                given = base64.b64decode(cred, validate=True)
            except (binascii.Error, ValueError):
                return False
            return hmac.compare_digest(given, self.user_info.encode())
        if self.bearer is not None and scheme.lower() == "bearer":
            return hmac.compare_digest(cred.encode(), self.bearer.encode())
        return False

    def take_failure(self) -> bool:
        """Whether this GET /schemas/ids/* request is one of the first --fail-first."""
        with self.lock:
            if self.fail_left > 0:
                self.fail_left -= 1
                return True
            return False

    def record(self, method: str, path: str, status: int) -> None:
        if self.log is None:
            return
        with self.lock:
            self.log.write(json.dumps({"method": method, "path": path, "status": status}) + "\n")
            self.log.flush()


class RegistryHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Registry

    def log_message(self, *args):
        pass

    def reply(self, code: int, obj, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)
        self.server.record(self.command, self.path, code)

    def parts(self) -> list[str]:
        return [unquote(p) for p in urlparse(self.path).path.strip("/").split("/")]

    def body(self) -> bytes:
        # Read it before any answer: on a kept-alive connection, an unread body would be taken
        # for the next request.
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def denied(self) -> bool:
        if self.server.authorized(self.headers.get("Authorization")):
            return False
        challenge = 'Basic realm="registry"' if self.server.user_info is not None else "Bearer"
        self.reply(401, {"error_code": 401, "message": "Unauthorized"}, {"WWW-Authenticate": challenge})
        return True

    def do_GET(self):  # noqa: N802
        if self.denied():
            return
        p = self.parts()
        if len(p) == 3 and p[:2] == ["schemas", "ids"]:  # the deserializer
            if self.server.take_failure():
                return self.reply(503, {"error_code": 50002, "message": "Service unavailable (--fail-first)"})
            with self.server.lock:
                text = self.server.texts.get(int(p[2])) if p[2].isdigit() else None
            if text is not None:
                return self.reply(200, {"schema": text})
            return self.reply(404, {"error_code": 40403, "message": "Schema not found"})
        if p == ["subjects"]:
            with self.server.lock:
                subjects = sorted(self.server.subjects)
            return self.reply(200, subjects)
        if len(p) == 3 and p[0] == "subjects" and p[2] == "versions":
            with self.server.lock:
                versions = list(self.server.subjects.get(p[1], []))
            if versions:
                return self.reply(200, list(range(1, len(versions) + 1)))
            return self.reply(404, {"error_code": 40401, "message": "Subject not found"})
        if len(p) == 4 and p[0] == "subjects" and p[2] == "versions":
            with self.server.lock:
                versions = list(self.server.subjects.get(p[1], []))
                n = len(versions) if p[3] == "latest" else int(p[3]) if p[3].isdigit() else 0
                text = self.server.texts[versions[n - 1]] if 1 <= n <= len(versions) else None
            if not versions:
                return self.reply(404, {"error_code": 40401, "message": "Subject not found"})
            if text is None:
                return self.reply(404, {"error_code": 40402, "message": "Version not found"})
            return self.reply(200, {"subject": p[1], "version": n, "id": versions[n - 1], "schema": text})
        print(f"registry: no answer for GET {self.path}", file=sys.stderr)
        self.reply(404, {"error_code": 404, "message": "not found"})

    def do_POST(self):  # noqa: N802
        raw = self.body()
        if self.denied():
            return
        try:
            req = json.loads(raw or b"{}")
            schema = req["schema"]
        except (ValueError, KeyError, TypeError):
            return self.reply(422, {"error_code": 42201, "message": "Invalid schema"})
        p = self.parts()
        if req.get("schemaType", "AVRO") != "AVRO" or req.get("references"):
            return self.reply(422, {"error_code": 42201, "message": "only plain Avro schemas"})
        if len(p) == 3 and p[0] == "subjects" and p[2] == "versions":  # register (serializer)
            return self.reply(200, {"id": self.server.register(p[1], schema)})
        if len(p) == 2 and p[0] == "subjects":  # look up the version of a schema (deserializer)
            with self.server.lock:
                sid = self.server.ids.get(schema)
                versions = list(self.server.subjects.get(p[1], []))
            if sid in versions:
                return self.reply(200, {"subject": p[1], "id": sid, "version": versions.index(sid) + 1,
                                        "schema": schema})
            if not versions:
                return self.reply(404, {"error_code": 40401, "message": "Subject not found"})
            return self.reply(404, {"error_code": 40403, "message": "Schema not found"})
        print(f"registry: no answer for POST {self.path}", file=sys.stderr)
        self.reply(404, {"error_code": 404, "message": "not found"})


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, required=True, help="0: a free port (printed)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--schemas", help='JSON file {"<id>": "<schema text>"} to preload')
    ap.add_argument("--subjects", help='JSON file {"<subject>": [{"version", "id"}, ...]} to preload')
    ap.add_argument("--user-info", help="USER:PASS: require HTTP basic auth")
    ap.add_argument("--bearer", help="TOKEN: require Authorization: Bearer TOKEN")
    ap.add_argument("--fail-first", type=int, default=0, metavar="N",
                    help="answer the first N GET /schemas/ids/* with 503")
    ap.add_argument("--log", help="one JSON line per request (method, path, status)")
    a = ap.parse_args()
    schemas = None
    if a.schemas:
        with open(a.schemas, encoding="utf-8") as f:
            schemas = {int(k): v for k, v in json.load(f).items()}
    log = open(a.log, "a", encoding="utf-8") if a.log else None  # noqa: SIM115
    server = Registry(a.port, a.host, schemas=schemas, user_info=a.user_info, bearer=a.bearer,
                      fail_first=a.fail_first, log=log)
    if a.subjects:
        with open(a.subjects, encoding="utf-8") as f:
            for subject, versions in json.load(f).items():
                ordered = sorted(versions, key=lambda v: v["version"])
                server.subjects[subject] = [int(v["id"]) for v in ordered]

    def stop(*_):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"listening on {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
        if log:
            log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
