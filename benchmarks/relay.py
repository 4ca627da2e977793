"""The least a checked setpoint change can cost through another process.

A stand-in for any service between a script and its instruments, with none of
the interlock's work: it reads one JSON line from a Unix socket, and for
``{"op": "set", "volts": v}`` makes one durable SQLite commit (WAL,
``synchronous=FULL``) and the same set-and-read-back exchange as the raw
variant, the readback compared; for ``{"op": "measure"}`` the same
measurement exchange. It answers with one JSON line. No limit check, no
journal chain, no access control, no monitor: what is left is the process
boundary (two round trips per change, each waking two processes) on top of
c+ (see :mod:`benchmarks.overhead`, variant r). Run by the overhead
benchmark as::

    python -m benchmarks.relay SOCKET RESOURCE DATABASE

It prints ``ready`` once it listens, serves one connection and exits.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import sys
import time
from pathlib import Path

import pyvisa

from benchmarks.common import disable_nagle
from benchmarks.overhead import MEASURE, SET, TOLERANCE


class Relay:
    def __init__(self, resource: str, database: Path) -> None:
        self.psu = pyvisa.ResourceManager("@py").open_resource(
            resource, read_termination="\n", write_termination="\n", timeout=5000
        )
        if not disable_nagle(self.psu):
            raise RuntimeError("could not set TCP_NODELAY on the pyvisa-py session")
        self.db = sqlite3.connect(database, isolation_level=None)
        self.db.execute("PRAGMA journal_mode = WAL")
        self.db.execute("PRAGMA synchronous = FULL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS entries (seq INTEGER PRIMARY KEY, at REAL, body TEXT)"
        )

    def answer(self, request: dict) -> dict:
        if request["op"] == "set":
            volts = float(request["volts"])
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute(
                "INSERT INTO entries (at, body) VALUES (?, ?)", (time.time(), json.dumps(request))
            )
            self.db.execute("COMMIT")
            readback = float(self.psu.query(SET.format(v=volts)))
            if abs(readback - volts) > TOLERANCE:
                return {"error": f"readback {readback:g} V, set {volts:g} V"}
            return {"ok": readback}
        volts, amps = (float(x) for x in self.psu.query(MEASURE).split(";"))
        return {"ok": {"voltage": volts, "current": amps}}


class RelayClient:
    """The script's side: one JSON line each way, as the interlock's client does."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(str(path))
        self.buffer = b""

    def call(self, request: dict) -> object:
        self.sock.sendall(json.dumps(request).encode() + b"\n")
        while b"\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the relay closed the connection")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(reply["error"])
        return reply["ok"]

    def change(self, volts: float) -> None:
        self.call({"op": "set", "volts": volts})
        self.call({"op": "measure"})

    def close(self) -> None:
        self.sock.close()


def main(argv: list[str]) -> int:
    path, resource, database = Path(argv[0]), argv[1], Path(argv[2])
    relay = Relay(resource, database)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)
    print("ready", flush=True)
    conn, _ = listener.accept()
    listener.close()
    buffer = b""
    with conn:
        while True:
            while b"\n" not in buffer:
                chunk = conn.recv(65536)
                if not chunk:
                    return 0
                buffer += chunk
            line, buffer = buffer.split(b"\n", 1)
            conn.sendall(json.dumps(relay.answer(json.loads(line))).encode() + b"\n")


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
