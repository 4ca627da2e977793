"""What the benchmarks share: generated benches, simulator and service processes, statistics.

A generated bench has ``nets`` DUT nets (``N01``, ``N02``...), each on its
own channel of a Keysight E36312A (three channels per supply, as many
supplies as needed), a 34461A meter and the RB8 relay board. Each net needs
a power relay and, to go live through the interlock (safe-to-mate), a sense
relay: the RB8's 8 relays give at most :data:`RELAY_NETS` = 4 nets that go
live the ordinary way. No bench file may describe more (``bench.toml`` holds
each relay channel against its board's model): the files hold the first 4
nets' wiring, the profile every net, and :func:`load_generated` adds the
nets beyond 4 to the loaded bench, with relays on channels the board does
not have. Those nets can only be *forced* live (see :func:`force_live` and
:mod:`benchmarks.simhost`, which hardwires their relays in the simulator).

Every benchmark runs the simulator in a process of its own
(``interlock sim start``), as real instruments would be, and talks to it
over loopback. :func:`served_bench` writes a second, ``engineering`` bench
file for the same instruments, so that a controller or a service
(``interlock serve``) connects to that simulator instead of starting one of
its own.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from interlock.sim import control

if TYPE_CHECKING:
    from interlock.config import Configuration

PYTHON = sys.executable
# Nets that can go live the ordinary way on one RB8 board (8 relays: power + sense each).
RELAY_NETS = 4
BOARD_RELAYS = 8
# Each net: 5 V into 50 ohm, 100 mA.
NET_VOLTS = 5.0
NET_OHMS = 50.0


# --- statistics and tables -----------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p99 of 100 samples is the 99th smallest)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def load_average() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (5 min {five:.2f}) on {os.cpu_count()} CPUs"


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A Markdown table (readable in a terminal, pasted as is into the README)."""
    cells = [[str(c) for c in header]] + [[_cell(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    print(f"\n### {title}\n", flush=False)

    def line(row: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"

    print(line(cells[0]))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells[1:]:
        print(line(row))
    print(flush=True)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


# --- generated benches ---------------------------------------------------------------


def net_name(i: int) -> str:
    return f"N{i:02d}"


@dataclass(frozen=True)
class GeneratedBench:
    directory: Path
    nets: list[str]
    sim_file: Path  # environment "simulation": what `interlock sim start` serves
    profile_file: Path

    def supply_of(self, net: str) -> tuple[str, int]:
        i = self.nets.index(net)
        return f"psu{i // 3 + 1}", i % 3 + 1


def make_bench(
    directory: Path, nets: int, *, monitor_period: str = "50 ms", power_off: str = "reversed"
) -> GeneratedBench:
    """Write a bench and its profile for ``nets`` nets into ``directory``.

    ``power_off``: ``reversed`` (the profile orders every net, the last on first off:
    each a step of the safe state) or ``together`` (one step of every net, reversed:
    every supply sent its off command at once).
    """
    directory.mkdir(parents=True, exist_ok=True)
    names = [net_name(i + 1) for i in range(nets)]
    supplies = math.ceil(nets / 3)
    lines = [
        "[bench]",
        f'name = "bench-{nets}-nets"',
        'environment = "simulation"',
        'profile = "profile.toml"',
        "",
        "[service]",
        'socket = "run/interlock.sock"',
        'journal = "run/journal.sqlite"',
        'tokens = "run/tokens"',
        f'monitor_period = "{monitor_period}"',
        'heartbeat_period = "100 ms"',
        'lease_timeout = "2 s"',
        'io_timeout = "1 s"',
        "",
    ]
    for s in range(1, supplies + 1):
        lines += [
            f"[instruments.psu{s}]",
            'driver = "scpi-psu"',
            f'resource = "TCPIP::127.0.0.1::{15000 + s}::SOCKET"',
            'identity = { maker = "Keysight Technologies", model = "E36312A", '
            f'serial = "MY5900{s:04d}" }}',
            "",
        ]
    lines += [
        "[instruments.dmm]",
        'driver = "scpi-dmm"',
        'resource = "TCPIP::127.0.0.1::15100::SOCKET"',
        'identity = { maker = "Keysight Technologies", model = "34461A", serial = "MY53005678" }',
        "",
        "[instruments.relays]",
        'driver = "relay-board"',
        'port = "/dev/ttyACM0"',
        'identity = { maker = "interlock", model = "RB8", serial = "RB8-000117" }',
        "",
        "[meter]",
        'instrument = "dmm"',
        "",
    ]
    # The first four nets fit the board (power K1..K4, sense K5..K8); the rest are
    # added by load_generated.
    for i, net in enumerate(names[:RELAY_NETS]):
        power, sense = _relay_channels(i)
        supply, channel = f"psu{i // 3 + 1}", i % 3 + 1
        lines += [
            f"[relays.P{i + 1:02d}]",
            'board = "relays"',
            f"channel = {power}",
            f"[relays.S{i + 1:02d}]",
            'board = "relays"',
            f"channel = {sense}",
            f"[wiring.{net}]",
            f'supply = {{ instrument = "{supply}", channel = {channel} }}',
            f'power_relay = "P{i + 1:02d}"',
            f'sense_relay = "S{i + 1:02d}"',
            "",
        ]
    lines += ["[simulation]", 'latency = "1 ms"', "", "[simulation.loads]"]
    lines += [f'{net} = {{ resistance = "{NET_OHMS:g} ohm" }}' for net in names[:RELAY_NETS]]
    sim_file = directory / "bench.toml"
    sim_file.write_text("\n".join(lines) + "\n", encoding="utf-8")

    profile = [
        "[device]",
        f'name = "BENCH-{nets}"',
        f'description = "{nets} nets of 5 V into 50 ohm"',
        "",
    ]
    for net in names:
        profile += [
            f"[nets.{net}]",
            'min_voltage = "0 V"',
            'max_voltage = "5.5 V"',
            'max_current = "400 mA"',
            'max_slew = "50 V/s"',
            'max_step = "5.5 V"',
            'readback_absolute = "10 mV"',
            'readback_relative = "0.5 %"',
            'settle_time = "20 ms"',
            'live_min_current = "50 mA"',
            'live_max_current = "250 mA"',
            f"[nets.{net}.safe_to_mate]",
            'min_resistance = "40 ohm"',
            'max_resistance = "60 ohm"',
            'max_stray_voltage = "0.2 V"',
            "",
        ]
    order = ", ".join(f'"{n}"' for n in names)
    reverse = ", ".join(f'"{n}"' for n in reversed(names))
    profile += [
        "[sequencing]",
        f"power_on = [{order}]",
        f"power_off = [{reverse if power_off == 'reversed' else f'[{reverse}]'}]",
        "",
        "[rules]",
        f'max_total_power = "{nets * 2.5:g} W"',
    ]
    profile_file = directory / "profile.toml"
    profile_file.write_text("\n".join(profile) + "\n", encoding="utf-8")
    return GeneratedBench(directory, names, sim_file, profile_file)


def _relay_channels(i: int) -> tuple[int, int]:
    """Power and sense relay channels of the net of index ``i`` (beyond 8 for i >= 4)."""
    if i < RELAY_NETS:
        return i + 1, i + 1 + RELAY_NETS
    return BOARD_RELAYS + 2 * (i - RELAY_NETS) + 1, BOARD_RELAYS + 2 * (i - RELAY_NETS) + 2


def load_generated(bench_file: Path) -> Configuration:
    """The configuration of a generated bench (or its served copy), with every net.

    The nets of the profile that the file does not wire (those beyond
    :data:`RELAY_NETS`) are added to the loaded bench, their relays on
    channels beyond the board's, past the checks of ``load_bench``: no file
    could say this. Their loads are added too, for the simulator.
    """
    from interlock.config import (
        Configuration,
        Load,
        NetWiring,
        Relay,
        SupplyRef,
        load_bench,
        load_profile,
        pin_limits,
    )

    bench = load_bench(bench_file)
    profile = load_profile(bench.profile_path)
    relays, wiring = dict(bench.relays), dict(bench.wiring)
    loads = dict(bench.simulation.loads) if bench.simulation else {}
    board = next(iter(bench.instruments_by_driver("relay-board"))).name
    for net in profile.nets:
        if net in wiring:
            continue
        i = int(net[1:]) - 1
        power, sense = _relay_channels(i)
        what = f"{net}: not on the board, hardwired in the simulator"
        relays[f"P{i + 1:02d}"] = Relay(f"P{i + 1:02d}", board, power, what)
        relays[f"S{i + 1:02d}"] = Relay(f"S{i + 1:02d}", board, sense, what)
        supply = SupplyRef(f"psu{i // 3 + 1}", i % 3 + 1)
        wiring[net] = NetWiring(net, supply, f"P{i + 1:02d}", f"S{i + 1:02d}")
        loads[net] = Load(resistance=NET_OHMS)
    simulation = replace(bench.simulation, loads=loads) if bench.simulation else None
    bench = replace(bench, relays=relays, wiring=wiring, simulation=simulation)
    return Configuration(bench, profile, pin_limits(bench, profile))


@contextlib.contextmanager
def generated_arming() -> Iterator[None]:
    """While active, a controller arming re-reads its files as :func:`load_generated` does.

    Arming re-reads the bench and profile files (edits take effect then); a
    generated bench's nets beyond the board are in no file, so the re-read
    must add them again, or arming would refuse the profile's unwired nets.
    """
    from unittest import mock

    import interlock.controller.arming as arming_module

    def reload(bench_path: Path, profile_path: Path | None = None) -> Configuration:
        return load_generated(Path(bench_path))

    with mock.patch.object(arming_module, "load_configuration", reload):
        yield


def served_bench(bench: GeneratedBench, resources: dict[str, str], directory: Path) -> Path:
    """An ``engineering`` copy of ``bench`` pointing at the running simulator's ``resources``.

    A controller or service given it connects to that simulator rather than
    starting its own. Its run directory (socket, journal, tokens) is ``directory/run``.
    """
    directory.mkdir(parents=True, exist_ok=True)
    text = bench.sim_file.read_text(encoding="utf-8")
    text = text.replace('environment = "simulation"', 'environment = "engineering"')
    text = text.replace('profile = "profile.toml"', f'profile = "{bench.profile_file}"')
    text = text.split("[simulation]")[0]
    out = []
    section = None
    for line in text.splitlines():
        if line.startswith("[instruments."):
            section = line[len("[instruments.") : -1]
        if line.startswith("resource = ") and section in resources:
            line = f'resource = "{resources[section]}"'
        if line.startswith("port = ") and section in resources:
            line = f'port = "{resources[section]}"'
        out.append(line)
    path = directory / "bench.toml"
    path.write_text("\n".join(out) + "\n", encoding="utf-8")
    return path


# --- processes -------------------------------------------------------------------------


class SimProcess:
    """``interlock sim start`` of a generated bench, in its own process (a context manager)."""

    def __init__(self, bench: GeneratedBench, hardwire: Sequence[str] = ()) -> None:
        self.bench = bench
        self.hardwire = list(hardwire)
        self.proc: subprocess.Popen[str] | None = None
        self.resources: dict[str, str] = {}
        self.control = ""

    def __enter__(self) -> SimProcess:
        argv = [
            PYTHON,
            "-m",
            "interlock",
            "sim",
            "start",
            "--json",
            "--ports",
            "free",
            "--bench",
            str(self.bench.sim_file),
        ]
        if self.hardwire:  # relays the board does not have: see benchmarks.simhost
            argv = [PYTHON, "-m", "benchmarks.simhost", str(self.bench.sim_file)]
            argv += [arg for relay in self.hardwire for arg in ("--hardwire", relay)]
        self.proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            text=True,
        )  # fmt: skip
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.stop()
            raise RuntimeError(f"the simulator of {self.bench.sim_file} did not start")
        description = json.loads(line)
        self.resources = description["resources"]
        self.control = description["control"]
        return self

    def request(self, **message: Any) -> dict[str, Any]:
        return control.request(self.control, message, timeout=30.0)

    def inject(self, spec: str) -> None:
        self.request(op="inject", spec=spec)

    def clear(self) -> None:
        self.request(op="clear")

    def truth(self) -> dict[str, Any]:
        return self.request(op="truth")["truth"]

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def start_processes(
    stack: contextlib.ExitStack, procs: Sequence[Any], stop: Any, join_s: float
) -> None:
    """Start ``procs`` (multiprocessing); when ``stack`` closes, set ``stop`` and give each
    ``join_s`` to end, then terminate it."""
    for proc in procs:
        proc.start()

    def end() -> None:
        stop.set()
        for proc in procs:
            proc.join(join_s)
            if proc.is_alive():
                proc.terminate()
                proc.join(5)

    stack.callback(end)


def stop_process(proc: subprocess.Popen[Any] | None, timeout: float = 15.0) -> None:
    """SIGTERM one process we started, wait, SIGKILL it if it will not go; close its pipes."""
    if proc is None:
        return
    try:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
    finally:
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


@contextlib.contextmanager
def service_process(bench_file: Path, log: Path, timeout: float = 60.0) -> Iterator[int]:
    """``interlock serve`` of ``bench_file`` in its own process; yields its pid once it answers."""
    from interlock.config import load_bench
    from interlock.service.background import answers

    socket_path = load_bench(bench_file).service.socket
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [PYTHON, "-m", "interlock", "serve", "--bench", str(bench_file)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        deadline = time.monotonic() + timeout
        while not answers(socket_path):
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace").strip().splitlines()[-5:]
                raise RuntimeError("the service did not start: " + " | ".join(tail))
            time.sleep(0.05)
        yield proc.pid
    finally:
        stop_process(proc)


def rss_kib(pid: int) -> int:
    """Resident set size of a process, KiB (Linux /proc)."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


# --- raw VISA ----------------------------------------------------------------------------


def disable_nagle(resource: Any) -> bool:
    """TCP_NODELAY on a pyvisa-py socket session, as the interlock's own transport does.

    Without it a write followed by a query stalls about 40 ms (Nagle against
    delayed ACK). pyvisa-py does not take the VISA attribute; its session
    object holds the socket.
    """
    try:
        backend_session = resource.visalib.sessions[resource.session]
    except (AttributeError, KeyError):
        return False
    sock = getattr(backend_session, "interface", None)
    if isinstance(sock, socket.socket) and sock.type == socket.SOCK_STREAM:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return True
    return False


# --- controllers -----------------------------------------------------------------------------


def force_live(controller: Any, sim: SimProcess, nets: Sequence[str], volts: float) -> None:
    """Make ``nets`` live behind the interlock's back (benchmarks of the monitor only).

    The supply outputs are turned on over a connection of our own and the
    controller's commanded state says they are live. Their power relays are
    beyond the board's channels: the simulator must hardwire them
    (``SimProcess(bench, hardwire=...)``) for the nets to draw current.
    """
    import pyvisa

    rm = pyvisa.ResourceManager("@py")
    by_supply: dict[str, list[int]] = {}
    for net in nets:
        port = controller.ports[net]
        by_supply.setdefault(port.supply, []).append(port.channel)
    for supply, channels in by_supply.items():
        psu = rm.open_resource(sim.resources[supply], read_termination="\n", timeout=5000)
        disable_nagle(psu)
        chs = "(@" + ",".join(str(c) for c in channels) + ")"
        psu.query(f"VOLT {volts:g},{chs};:OUTP ON,{chs};:OUTP? {chs}")
        psu.close()
    commanded = controller.commanded
    for net in nets:
        commanded = commanded.with_net(net, replace(commanded.net(net), voltage=volts, output=True))
    controller.commanded = commanded


class CommitCounter:
    """Counts the commits (each an fsync) on a journal's connection while it is active.

    A look inside the journal (its private connection, traced): where that
    is not there any more, ``commits`` stays None.
    """

    def __init__(self, journal: Any) -> None:
        self.conn = getattr(journal, "_conn", None)
        self.commits: int | None = None

    def _count(self, statement: str) -> None:
        if statement.strip().upper() == "COMMIT":
            self.commits = (self.commits or 0) + 1

    def __enter__(self) -> CommitCounter:
        if self.conn is not None:
            self.commits = 0
            self.conn.set_trace_callback(self._count)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.conn is not None:
            self.conn.set_trace_callback(None)
