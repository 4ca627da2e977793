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
import sys
from collections.abc import Callable
from pathlib import Path

from benchmarks.overhead import RawVisa


class Relay:
    """The raw variant's exchanges and commit (c+), answered over a socket."""

    def __init__(self, resource: str, database: Path) -> None:
        self.raw = RawVisa(resource, database)

    def answer(self, request: dict) -> dict:
        if request["op"] == "set":
            volts = float(request["volts"])
            self.raw.commit(volts)
            try:
                return {"ok": self.raw.set(volts)}
            except RuntimeError as error:  # the readback differs
                return {"error": str(error)}
        volts, amps = self.raw.measure()
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


def serve_lines(conn: socket.socket, answer: Callable[[dict], dict]) -> None:
    """One JSON line in, ``answer``'s JSON line out, until the client closes."""
    buffer = b""
    with conn:
        while True:
            while b"\n" not in buffer:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buffer += chunk
            line, buffer = buffer.split(b"\n", 1)
            conn.sendall(json.dumps(answer(json.loads(line))).encode() + b"\n")


def main(argv: list[str]) -> int:
    path, resource, database = Path(argv[0]), argv[1], Path(argv[2])
    relay = Relay(resource, database)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)
    print("ready", flush=True)
    conn, _ = listener.accept()
    listener.close()
    serve_lines(conn, relay.answer)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
