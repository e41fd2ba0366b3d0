"""The web tier: a small HTTP service (Python's standard library only) that keeps its data in Redis.

    GET  /         {"replica": "<hostname>", "visits": N}   (counts every visit in Redis)
    GET  /notes    the notes, oldest first                   POST /notes   adds the request body as a note
    GET  /work     a fixed piece of CPU work (about 25 ms), then the replica's name (for measuring throughput)
    GET  /health   "ok" when Redis answers

Every replica is the same program; what tells them apart is the hostname
(the container's id). Redis is reached by its service name, ``db``, on the
project's network. The Redis protocol (RESP) is spoken here directly: a
request is a list of strings, a reply is one of five typed lines.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

REDIS = (os.environ.get("REDIS_HOST", "db"), int(os.environ.get("REDIS_PORT", "6379")))
REPLICA = socket.gethostname()
_local = threading.local()


class RedisError(Exception):
    """Redis answered with an error, or could not be reached."""


def redis(*args: str) -> object:
    """Send one command on this thread's connection (made on first use, made again after a failure)."""
    for attempt in (1, 2):
        try:
            if getattr(_local, "conn", None) is None:
                _local.conn = socket.create_connection(REDIS, timeout=5)
                _local.file = _local.conn.makefile("rb")
            payload = f"*{len(args)}\r\n" + "".join(f"${len(a.encode())}\r\n{a}\r\n" for a in args)
            _local.conn.sendall(payload.encode())
            return _reply(_local.file)
        except OSError as exc:
            _local.conn = None
            if attempt == 2:
                raise RedisError(f"redis at {REDIS[0]}:{REDIS[1]}: {exc}") from exc
    raise AssertionError("unreachable")


def _reply(stream) -> object:  # type: ignore[no-untyped-def]
    """One RESP reply: +simple, -error, :integer, $bulk, *array."""
    line = stream.readline()
    if not line:
        raise ConnectionResetError("redis closed the connection")
    kind, rest = line[:1], line[1:-2].decode()
    if kind == b"+":
        return rest
    if kind == b"-":
        raise RedisError(rest)
    if kind == b":":
        return int(rest)
    if kind == b"$":
        return None if rest == "-1" else stream.read(int(rest) + 2)[:-2].decode()
    if kind == b"*":
        return [] if rest == "-1" else [_reply(stream) for _ in range(int(rest))]
    raise RedisError(f"unexpected reply {line!r}")


class Handler(BaseHTTPRequestHandler):
    """The routes above; every answer says which replica gave it (header X-Replica, and in the body)."""

    def do_GET(self) -> None:  # noqa: N802 - the standard library's name
        try:
            if self.path == "/":
                self._send(200, {"replica": REPLICA, "visits": redis("INCR", "visits")})
            elif self.path == "/notes":
                self._send(200, {"replica": REPLICA, "notes": redis("LRANGE", "notes", "0", "-1")})
            elif self.path == "/work":
                digest = b"work"
                for _ in range(50000):  # about 25 ms of one core: the cost of a real request's logic
                    digest = hashlib.sha256(digest).digest()
                self._send(200, {"replica": REPLICA})
            elif self.path == "/health":
                self._send(200 if redis("PING") == "PONG" else 503, "ok")
            else:
                self._send(404, {"error": "not found"})
        except RedisError as exc:
            self._send(503, {"replica": REPLICA, "error": str(exc)})

    def do_POST(self) -> None:  # noqa: N802
        if self.path != "/notes":
            self._send(404, {"error": "not found"})
            return
        note = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
        try:
            self._send(201, {"replica": REPLICA, "count": redis("RPUSH", "notes", note)})
        except RedisError as exc:
            self._send(503, {"replica": REPLICA, "error": str(exc)})

    def _send(self, status: int, body: object) -> None:
        data = (json.dumps(body) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Replica", REPLICA)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the standard library's name
        pass  # one line per request would drown the logs during a load test


if __name__ == "__main__":
    server = ThreadingHTTPServer(("0.0.0.0", int(os.environ.get("PORT", "8000"))), Handler)
    server.daemon_threads = True
    print(f"web {REPLICA} listening on :{server.server_port}, redis at {REDIS[0]}:{REDIS[1]}", flush=True)
    server.serve_forever()
