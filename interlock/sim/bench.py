"""Assembly of a simulated bench from a ``bench.toml``.

:class:`SimulatedBench` builds, from a :class:`~interlock.config.Bench`, the
DUT model (``[simulation.loads]``), one SCPI server per ``scpi-psu`` /
``scpi-dmm`` instrument, one :class:`~interlock.sim.relay_board.SimulatedRelayBoard`
per ``relay-board``, and ties the relay contacts to the DUT model through
``[relays]`` and ``[wiring]``::

    with SimulatedBench(load_bench("bench.toml"), faults=["short:VBUS"]) as sim:
        psu = rm.open_resource(sim.resources["psu"])   # TCPIP::127.0.0.1::PORT::SOCKET
        port = sim.resources["relays"]                 # /dev/pts/N
        sim.inject("weld:K3"); sim.clear("weld:K3")
        sim.truth()["nets"]["VBUS"]["max_voltage"]

``ports="free"`` lets the OS choose every TCP port (tests, several benches at
once); ``ports="bench"`` uses the ports of the resource strings in bench.toml,
so the controller finds the instruments where the file says they are. A relay
board always gets a fresh pseudo-terminal; ``resources`` names it.

``control`` serves the control channel (:mod:`interlock.sim.control`) on a
Unix socket: a bound socket, a path, or ``True`` for one in a private
temporary directory. A simulator of its own process, found by the bench's
service, is :class:`interlock.sim.host.SimulatorHost`.
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import re
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from interlock.catalog import RELAY_BOARDS
from interlock.dialects import dialects
from interlock.errors import SimulatorError
from interlock.sim import dut
from interlock.sim.boards import board_channels, board_state, relay_states, stamp_of, watch_board
from interlock.sim.control import ControlServer, bind_control
from interlock.sim.electrical import ElectricalBench, Route
from interlock.sim.faults import (
    DEFAULT_WRONG_DUT_OHMS,
    Fault,
    parse_fault,
    parse_noise,
    parse_ohms,
    parse_volts,
)
from interlock.sim.instrument import IdentityString, Noise, ScpiInstrument
from interlock.sim.loopthread import EventLoopThread
from interlock.sim.relay_board import SimulatedRelayBoard
from interlock.sim.serial_server import SerialTwinServer
from interlock.sim.server import InstrumentServer
from interlock.sim.truth import SAMPLE_PERIOD, GroundTruth, History
from interlock.sim.twins import TWINS

_SOCKET_RESOURCE = re.compile(r"TCPIP\d*::([^:]+)::(\d+)::SOCKET", re.IGNORECASE)
FIRMWARE_VERSIONS = {
    "keysight-e36300": "2.1.0-1.0.4-1.12",
    "keysight-truevolt": "A.02.14-02.40-02.14-00.49-01-01",
    "keithley-2230": "1.16-1.04",
    "korad-ka": "5.5",
    "rigol-dp800": "00.01.17",
    "rs-hmp": "HW50020003/SW2.70",
    "siglent-spd3303x": "1.01.01.02.05",
    "keysight-daq970": "A.02.04-00.16-11.29-00.02-02-01",
    "numato-relay": "00000008",
    "hp-34401a": "11-5-2",
    "keithley-dmm6500": "1.7.3c",
    "aimtti-plp": "3.05-4.06",
    "keysight-e3631a": "2.1-5.0-1.0",
    "keysight-e3632a": "1.7-5.0-1.0",
}


def _dut_load(load: Any) -> dut.Load:
    # config.Load: a resistance and/or an active load's current window; the
    # active part is modelled as a constant sink at the middle of its window.
    resistance = load.resistance if load.resistance is not None else math.inf
    window = [c for c in (load.min_current, load.max_current) if c is not None]
    sink = sum(window) / len(window) if window else 0.0
    return dut.Load(resistance=resistance, sink=sink)


class SimulatedBench:
    """A running simulated bench (a context manager; or ``start()`` / ``stop()``).

    While running: ``resources`` (instrument name -> VISA resource string or
    pty path), ``inject(spec)`` / ``clear(spec=None)`` / ``faults()``,
    ``truth()`` (JSON-ready ground truth), ``history(net, seconds)`` and
    ``control_address`` (the control socket's path, if started with
    ``control``). For tests that look deeper: ``ground_truth``
    (:class:`~interlock.sim.truth.GroundTruth`), ``electrical`` (the physical
    state), ``instruments`` (the SCPI models), ``servers``, ``relay_boards``.

    ``inject`` acts at once, on the caller's thread; lines a client wrote just
    before may still wait in the server's queue (a write returns when the
    bytes are in the socket). Query the instrument first (``*OPC?``) when
    the order matters.
    """

    def __init__(
        self,
        bench: Any,
        faults: Iterable[str] = (),
        ports: str = "free",
        *,
        latency: float | None = None,
        seed: int | None = None,
        control: bool | str | Path | socket.socket = False,
        relay_watchdog: str | float = "500 ms",
    ) -> None:
        if isinstance(bench, str | Path):
            from interlock.config import load_bench

            bench = load_bench(bench)
        if ports not in ("free", "bench"):
            raise SimulatorError(f'ports: expected "free" or "bench", got {ports!r}')
        if bench.simulation is None:
            raise SimulatorError(
                f'{bench.shown_path}: bench "{bench.name}" is a {bench.environment} bench; '
                "only a simulation bench (with a [simulation] section) can be simulated"
            )
        self.bench = bench
        self._initial_faults = [parse_fault(spec) for spec in faults]
        self._ports = ports
        self._latency = bench.simulation.latency if latency is None else latency
        self._rng = random.Random(seed)
        self._want_control = control
        self._relay_watchdog = relay_watchdog
        self._lock = threading.RLock()  # the bench's one physical lock
        self._faults: dict[tuple[str, str], Fault] = {}
        self._running = False
        self._build()

    # --- assembly --------------------------------------------------------------

    def _build(self) -> None:
        bench = self.bench
        loads = {net: _dut_load(load) for net, load in bench.simulation.loads.items()}
        self.base_loads = dict(loads)
        self.ground_truth = GroundTruth(sorted(set(loads) | set(bench.wiring)),
                                        history=bench.simulation.history)
        routes = [
            Route(
                net=w.net,
                supply=(w.supply.instrument, w.supply.channel) if w.supply else None,
                power_relay=w.power_relay,
                sense_relay=w.sense_relay,
            )
            for w in bench.wiring.values()
        ]
        self.electrical = ElectricalBench(routes, loads, self.ground_truth, self._lock)
        self.instruments: dict[str, ScpiInstrument] = {}
        self.servers: dict[str, InstrumentServer] = {}
        self.relay_boards: dict[str, SimulatedRelayBoard] = {}
        self.serial_servers: dict[str, SerialTwinServer] = {}
        self.switch_units: dict[str, Any] = {}  # switch twins but the RB8 boards
        for name, spec in bench.instruments.items():
            identity = IdentityString(spec.identity.maker, spec.identity.model,
                                      spec.identity.serial,
                                      FIRMWARE_VERSIONS.get(spec.dialect, "1.0.0"))
            rng = random.Random(self._rng.random())
            if spec.kind == "switch" and spec.dialect == "interlock-rb8":
                model = RELAY_BOARDS.get(spec.identity.model)
                self.relay_boards[name] = SimulatedRelayBoard(
                    serial=spec.identity.serial,
                    relays=model.relays if model else 8,
                    watchdog=self._relay_watchdog,
                )
                continue
            twin = TWINS.get(spec.dialect)
            if twin is None:
                raise SimulatorError(
                    f'{bench.shown_path}: instruments.{name}: no simulated twin of the '
                    f'{spec.dialect} dialect (known: {", ".join(sorted(TWINS))})'
                )
            if spec.kind == "switch":
                instrument = twin(name, identity, self.electrical, self.ground_truth,
                                  relays=board_channels(bench.relays, name), rng=rng)
                self.switch_units[name] = instrument
            elif spec.kind == "supply":
                instrument: ScpiInstrument = twin(
                    name, identity, self.electrical, self.ground_truth,
                    model=spec.identity.model, rng=rng)
            else:
                instrument = twin(name, identity, self.electrical, self.ground_truth, rng=rng,
                                  terminals=spec.terminals or "front")
            link = dialects()[spec.dialect].link
            if link.kind != "visa-socket":  # a serial instrument: its twin on a pty
                self.instruments[name] = instrument
                self.serial_servers[name] = SerialTwinServer(
                    instrument, self.ground_truth, link, self._latency
                )
                continue
            self.instruments[name] = instrument
            host, port = "127.0.0.1", 0
            if self._ports == "bench":
                host, port = self._socket_address(name, spec.resource)
            self.servers[name] = InstrumentServer(instrument, self.ground_truth,
                                                  self._latency, host, port,
                                                  terminator=link.read_termination)

    def _socket_address(self, name: str, resource: str | None) -> tuple[str, int]:
        match = _SOCKET_RESOURCE.fullmatch(resource or "")
        if not match or match.group(1) not in ("127.0.0.1", "localhost"):
            raise SimulatorError(
                f"{self.bench.shown_path}: instruments.{name}.resource: the simulator serves "
                f'TCPIP::127.0.0.1::PORT::SOCKET resources, not "{resource}"'
            )
        return "127.0.0.1", int(match.group(2))

    def _relay_listener(self, board: str):  # type: ignore[no-untyped-def]
        channels = board_channels(self.bench.relays, board)

        def listener(contacts: list[bool], monotonic: float) -> None:
            stamp = stamp_of(monotonic)
            for channel, name in sorted(channels.items()):
                if channel <= len(contacts):
                    self.electrical.set_relay(name, contacts[channel - 1], channel, at=stamp)

        return listener

    # --- life cycle ------------------------------------------------------------

    def start(self) -> SimulatedBench:
        if self._running:
            raise SimulatorError("the simulated bench is already running")
        self._loop = EventLoopThread(f"sim-bench-{self.bench.name}")
        self._loop.start()
        self._running = True
        self.control: ControlServer | None = None
        self._control_dir: Path | None = None
        self._sampler: Future[None] | None = None
        self.resources: dict[str, str] = {}
        try:
            for name, server in self.servers.items():
                try:
                    self._loop.run(server.start())
                except OSError as exc:
                    raise SimulatorError(
                        f"instrument {name}: cannot listen on {server.host}:{server.port}: {exc}"
                    ) from exc
                self.resources[name] = server.resource
            for name, twin in self.serial_servers.items():
                twin.start()
                self.resources[name] = twin.resource
            for name, board in self.relay_boards.items():
                board.add_listener(self._relay_listener(name))
                watch_board(self.ground_truth, name, board, self.bench.relays)
                self.resources[name] = board.start()
            self.ground_truth.event("bench-started", self.bench.name,
                                    resources=dict(self.resources))
            for fault in self._initial_faults:
                self._inject(fault)
            self._sampler = asyncio.run_coroutine_threadsafe(self._sample(), self._loop.loop)
            if self._want_control is not False and self._want_control is not None:
                self.control = ControlServer(self.handle_control, self._control_socket())
                self._loop.run(self.control.start())
        except BaseException:
            self.stop()
            raise
        return self

    def _control_socket(self) -> socket.socket:
        wanted = self._want_control
        if isinstance(wanted, socket.socket):
            return wanted
        if wanted is True:
            self._control_dir = Path(tempfile.mkdtemp(prefix="ilk-sim-"))  # 0700
            wanted = self._control_dir / "control.sock"
        return bind_control(wanted)

    async def _sample(self) -> None:
        # Periodic samples beside those taken on every change: a steady state shows too.
        while True:
            await asyncio.sleep(SAMPLE_PERIOD)
            self.ground_truth.sample(self.electrical.net_points())

    def stop(self) -> None:
        if not self._running:
            return
        self._running = False
        errors = []
        for board in self.relay_boards.values():
            try:
                board.stop()
            except SimulatorError as exc:
                errors.append(exc)
        if self.control is not None:
            self._loop.run(self.control.close())
        elif isinstance(self._want_control, socket.socket):
            self._want_control.close()  # handed over, never served: still ours to close
        if self._control_dir is not None:
            shutil.rmtree(self._control_dir, ignore_errors=True)
        if self._sampler is not None:
            self._sampler.cancel()
        for server in self.servers.values():
            self._loop.run(server.close())
        for twin in self.serial_servers.values():
            twin.close()
        self._loop.stop()
        self.ground_truth.event("bench-stopped", self.bench.name)
        if errors:
            raise errors[0]

    def __enter__(self) -> SimulatedBench:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._running

    def control_gone(self) -> bool:
        """Whether the control socket's file went (see :meth:`keep_control`)."""
        control = self.control
        return self._running and control is not None and control.gone()

    def keep_control(self) -> str:
        """Bind the control socket again if its file went; what was made again, or ""."""
        control = self.control
        if control is None or not self.control_gone():
            return ""
        self._loop.run(control.listen_again())
        return control.address

    @property
    def control_address(self) -> str | None:
        return self.control.address if self._running and self.control else None

    # --- faults ------------------------------------------------------------------

    def inject(self, spec: str) -> None:
        """Inject a fault (see :mod:`interlock.sim.faults` for the SPEC syntax)."""
        self._require_running()
        self._inject(parse_fault(spec))

    def clear(self, spec: str | None = None) -> None:
        """Remove the fault matching ``spec`` (kind and target), or all of them."""
        self._require_running()
        if spec is None:
            for fault in reversed(list(self._faults.values())):
                self._remove(fault)
            return
        wanted = parse_fault(spec, for_clear=True)
        fault = self._faults.get(wanted.key)
        if fault is None:
            active = ", ".join(f.spec for f in self._faults.values()) or "none"
            raise SimulatorError(f'fault "{spec}" is not active (active: {active})')
        self._remove(fault)

    def faults(self) -> list[str]:
        return [fault.spec for fault in self._faults.values()]

    def _inject(self, fault: Fault) -> None:
        previous = self._faults.get(fault.key)
        if previous is not None:
            self._remove(previous)
        # Stamped before it acts, so that the history shows it before what it caused.
        stamp = self.ground_truth.now()
        self._apply(fault, True)
        self._faults[fault.key] = fault
        self.ground_truth.event("fault-injected", fault.spec, at=stamp, fault=fault.spec)

    def _remove(self, fault: Fault) -> None:
        stamp = self.ground_truth.now()
        self._apply(fault, False)
        self._faults.pop(fault.key, None)
        self.ground_truth.event("fault-cleared", fault.spec, at=stamp, fault=fault.spec)

    def _apply(self, fault: Fault, on: bool) -> None:
        kind = fault.kind
        if kind in ("short", "open"):
            load = dut.Load(dut.SHORT_RESISTANCE) if kind == "short" else dut.OPEN
            self.electrical.override_load(fault.target, load if on else None)
        elif kind == "swap":
            a, b = fault.nets
            self.electrical.swap(a, b, on)
        elif kind == "stray":
            self.electrical.set_stray(fault.target, parse_volts(fault.value) if on else None)
        elif kind == "wrong-dut":
            ohms = parse_ohms(fault.value) if fault.value else DEFAULT_WRONG_DUT_OHMS
            self.electrical.override_load(self.id_net, dut.Load(ohms) if on else None)
        elif kind == "identity" and fault.target in self.relay_boards:
            parts = [p.strip() for p in fault.value.split(",")]
            if len(parts) < 3:
                raise SimulatorError(f'fault "{fault.spec}": expected MAKER,MODEL,SERIAL')
            self.relay_boards[fault.target].impersonate(tuple(parts[:3]) if on else None)
        elif kind in ("identity", "ignore-setpoint", "noise"):
            instrument = self._scpi_instrument(fault)
            with self._lock:
                if kind == "identity":
                    parts = [p.strip() for p in fault.value.split(",")]
                    instrument.identity_override = IdentityString(*parts) if on else None
                elif kind == "ignore-setpoint":
                    instrument.ignore_setpoints = on
                    instrument.lie_about_setpoints = on and fault.value == "lie"
                    if not on:
                        instrument.forget_lies()
                else:
                    absolute, relative = parse_noise(fault.value)
                    instrument.extra_noise = Noise(absolute, relative) if on else None
        elif kind in ("hang", "drop"):
            server = self.servers.get(fault.target)
            if server is None:
                raise self._unknown_instrument(fault)
            if kind == "hang":
                server.hung = on
                self.ground_truth.event("hang" if on else "unhang", fault.target,
                                        instrument=fault.target)
            elif on:
                self._loop.run(server.drop())
            else:
                self._loop.run(server.undrop())
                self.resources[fault.target] = server.resource
        elif kind == "weld" and fault.target in self.bench.relays and (
            self.bench.relays[fault.target].board in self.switch_units
        ):
            relay = self.bench.relays[fault.target]
            with self._lock:
                self.switch_units[relay.board].relays.weld(relay.channel, on)
        elif kind == "weld":
            board, channel = self._relay(fault.target)
            # never call the board with the bench lock held: its listener takes it
            board.weld(channel) if on else board.unweld(channel)
        elif kind == "estop":
            if not self.relay_boards:
                raise SimulatorError("estop: this bench has no relay board")
            for board in self.relay_boards.values():
                board.press_estop() if on else board.release_estop()

    @property
    def id_net(self) -> str:
        """The net of the DUT's ID resistor: "ID", or the one net no supply feeds."""
        if "ID" in self.bench.wiring:
            return "ID"
        unpowered = [w.net for w in self.bench.wiring.values() if w.supply is None]
        if len(unpowered) != 1:
            raise SimulatorError("wrong-dut: cannot tell which net carries the DUT's ID resistor")
        return unpowered[0]

    def _scpi_instrument(self, fault: Fault) -> ScpiInstrument:
        instrument = self.instruments.get(fault.target)
        if instrument is None:
            raise self._unknown_instrument(fault)
        return instrument

    def _unknown_instrument(self, fault: Fault) -> SimulatorError:
        known = ", ".join(self.instruments) or "none"
        return SimulatorError(
            f'fault "{fault.spec}": "{fault.target}" is not a simulated SCPI instrument '
            f"of this bench (SCPI instruments: {known})"
        )

    def _relay(self, target: str) -> tuple[SimulatedRelayBoard, int]:
        relay = self.bench.relays.get(target)
        if relay is not None:
            return self.relay_boards[relay.board], relay.channel
        if target.isdigit() and len(self.relay_boards) == 1:
            return next(iter(self.relay_boards.values())), int(target)
        known = ", ".join(self.bench.relays) or "none"
        raise SimulatorError(f'weld: no relay "{target}" on this bench (relays: {known})')

    def _require_running(self) -> None:
        if not self._running:
            raise SimulatorError("the simulated bench is not running")

    # --- truth and control ---------------------------------------------------

    def truth(self) -> dict[str, Any]:
        """The ground truth as JSON-ready data (see :mod:`interlock.sim.truth`)."""
        snapshot = self.ground_truth.snapshot()
        snapshot["faults"] = self.faults()
        snapshot["contacts"] = sorted(self.electrical.closed_relays())
        nets = {(w.supply.instrument, w.supply.channel): w.net
                for w in self.bench.wiring.values() if w.supply}
        for name, channels in snapshot["supplies"].items():
            for channel, settings in channels.items():
                settings["net"] = nets.get((name, int(channel)))
        snapshot["relay_states"] = relay_states(self.bench.relays, self.relay_boards)
        for name, relay in self.bench.relays.items():
            unit = self.switch_units.get(relay.board)
            if unit is not None and 1 <= relay.channel <= unit.relays.count:
                snapshot["relay_states"][name] = {
                    "board": relay.board,
                    "channel": relay.channel,
                    "coil": unit.relays.coils()[relay.channel - 1],
                    "contact": unit.relays.contacts()[relay.channel - 1],
                }
        snapshot["boards"] = {name: board_state(b) for name, b in self.relay_boards.items()}
        return snapshot

    def history(self, net: str, seconds: float | None = None) -> History:
        """What ``net`` did over the last ``seconds`` and every change meanwhile."""
        return self.ground_truth.history(net, seconds)

    def describe(self) -> dict[str, Any]:
        """Who this simulator is and where its instruments are (``sim start --json``)."""
        return {
            "bench": self.bench.name,
            "bench_file": str(self.bench.path),
            "bench_sha256": self.bench.sha256,
            "pid": os.getpid(),
            "resources": dict(self.resources),
            "control": self.control_address,
            "faults": self.faults(),
            "history": self.ground_truth.history_seconds,
        }

    def handle_control(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        if op == "inject":
            self.inject(_text(request, "spec"))
            return {"faults": self.faults()}
        if op == "clear":
            spec = request.get("spec")
            self.clear(None if spec is None else _text(request, "spec"))
            return {"faults": self.faults()}
        if op == "truth":
            return {"truth": self.truth()}
        if op == "history":
            seconds = request.get("seconds")
            return {"history": self.history(_text(request, "net"), seconds).as_dict()}
        if op == "faults":
            return {"faults": self.faults()}
        if op in ("describe", "resources"):
            return self.describe()
        raise SimulatorError(
            f'unknown op "{op}" (ops: inject, clear, truth, history, faults, describe)'
        )


def _text(request: dict[str, Any], key: str) -> str:
    value = request.get(key)
    if not isinstance(value, str):
        raise SimulatorError(f'"{key}": expected a string, got {value!r:.100}')
    return value
