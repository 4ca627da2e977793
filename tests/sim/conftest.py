"""Helpers for the simulator's own tests: plain pyvisa and plain pyserial clients.

They deliberately use no interlock driver code: the simulator must work with
any client that speaks SCPI over a raw socket and the relay board's framed
line protocol.
"""

from __future__ import annotations

import contextlib
import re
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import pyvisa
import serial

Resource = pyvisa.resources.MessageBasedResource
ROOT_BENCH = Path(__file__).resolve().parents[2] / "bench.toml"


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE, as the relay board's PROTOCOL.md specifies."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


class RelayLink:
    """A minimal host for the relay board: framed commands, replies, events skipped."""

    def __init__(self, port: str) -> None:
        self.port = serial.Serial(port, timeout=2)
        self.seq = 0
        # a generous watchdog, so a test that pauses does not trip the board
        self.command("WD 5000")

    def command(self, body: str) -> str:
        self.seq = (self.seq + 1) & 0xFFFF
        data = f"{self.seq:04X}|{body}".encode()
        self.port.write(data + b"*" + f"{crc16(data):04X}".encode() + b"\n")
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            line = self.port.readline().decode().strip()
            if line.startswith(f"{self.seq:04X}|"):
                return line[5:line.rindex("*")]
        raise TimeoutError(f"relay board did not answer {body!r}")

    def set(self, *channels: int) -> str:
        mask = sum(1 << (c - 1) for c in channels)
        reply = self.command(f"SET {mask:04X}")
        time.sleep(0.01)  # let the contact listener run
        return reply

    def close(self) -> None:
        self.port.close()


def nodelay(resource: Resource) -> None:
    """TCP_NODELAY on pyvisa-py's socket: without it, write-then-query stalls ~40 ms."""
    session = resource.visalib.sessions[resource.session]
    session.interface.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


@pytest.fixture
def visa() -> Iterator[Callable[..., Resource]]:
    """Open a resource with the pyvisa-py backend; everything is closed afterwards."""
    rm = pyvisa.ResourceManager("@py")
    opened = []

    def open_resource(resource: str, timeout_ms: int = 2000) -> Resource:
        inst = rm.open_resource(resource, read_termination="\n", write_termination="\n",
                                timeout=timeout_ms)
        nodelay(inst)
        opened.append(inst)
        return inst

    yield open_resource
    for inst in opened:
        with contextlib.suppress(pyvisa.errors.Error):  # already gone (a dropped connection)
            inst.close()
    rm.close()


@pytest.fixture
def relay_link() -> Iterator[Callable[[str], RelayLink]]:
    links = []

    def connect(port: str) -> RelayLink:
        link = RelayLink(port)
        links.append(link)
        return link

    yield connect
    for link in links:
        link.close()


def write_bench(directory: Path, loads: dict[str, str] | None = None) -> Path:
    """A copy of the root bench.toml in ``directory`` with other DUT loads."""
    text = ROOT_BENCH.read_text(encoding="utf-8")
    text = text.replace('profile = "profiles/', f'profile = "{ROOT_BENCH.parent}/profiles/')
    for net, value in (loads or {}).items():
        text, count = re.subn(rf"(?m)^{net} = \{{[^}}]*\}}", f"{net} = {{ {value} }}", text)
        assert count == 1, net
    path = directory / "bench.toml"
    path.write_text(text, encoding="utf-8")
    return path
