"""The relay board of the simulated bench: the real firmware on a pseudo-terminal.

:class:`SimulatedRelayBoard` runs the unchanged files of ``interlock/firmware/`` under
CPython, in a thread, through a HAL shim that stands in for ``rb_hal``: the
relay outputs drive simulated relays, the contact-sense inputs read them back,
the E-stop loop is a flag, and the host link is a pty, so a host opens the
board with pyserial exactly as it would open ``/dev/ttyACM0``.

Each board gets its own copies of the firmware modules (loaded through a
private import hook, never through ``sys.modules``), so several boards in one
process share nothing, just like real ones.

Fault injection: :meth:`~SimulatedRelayBoard.press_estop` opens the E-stop
loop, :meth:`~SimulatedRelayBoard.weld` sticks a contact closed (or open)
whatever its coil does, :meth:`~SimulatedRelayBoard.drop_replies` and
:meth:`~SimulatedRelayBoard.garble_replies` and
:meth:`~SimulatedRelayBoard.garble_requests` add noise on the line.
:meth:`~SimulatedRelayBoard.contacts` is the ground truth: what the contacts
physically are.

A crash of the firmware loop is treated like one on the board: ``main.py``
opens the relays, and after the hardware watchdog timeout the board boots
again (a fresh ``BOOT`` event, the forbidden table gone).
"""

from __future__ import annotations

import builtins
import contextlib
import logging
import math
import os
import select
import threading
import time
import tty
import types
from binascii import crc_hqx
from collections.abc import Callable
from functools import cache
from pathlib import Path

from interlock import catalog
from interlock.errors import InvalidArgument, SimulatorError
from interlock.units import DURATION, QuantityError, parse_quantity

log = logging.getLogger(__name__)

FIRMWARE_DIR = Path(__file__).resolve().parents[1] / "firmware"
# Loaded in dependency order; main.py is run last, as the board does.
_FIRMWARE_MODULES = ("rb_core", "rb_protocol", "rb_loop")

# Longest the firmware loop sleeps when nothing happens. Inputs changed by
# this class wake it at once; this only bounds the watchdog's resolution.
_IDLE_S = 0.002
# The MCU watchdog of rb_hal.HARDWARE_WDT_MS: time from a crash to the reboot.
HARDWARE_WDT_S = 2.0

Listener = Callable[[list[bool], float], None]
# kind (BOOT, TRIP, MISMATCH, ESTOP_CLEAR), detail (e.g. the trip cause), monotonic time
EventListener = Callable[[str, str, float], None]


@cache
def _firmware_code(firmware_dir: Path) -> dict[str, types.CodeType]:
    code = {}
    for name in (*_FIRMWARE_MODULES, "main"):
        path = firmware_dir / f"{name}.py"
        code[name] = compile(path.read_text(encoding="utf-8"), str(path), "exec")
    return code


def _watchdog_ms(watchdog: str | float) -> int:
    if isinstance(watchdog, bool) or not isinstance(watchdog, str | int | float):
        raise InvalidArgument(f"watchdog: expected a duration like '500 ms', got {watchdog!r}")
    if isinstance(watchdog, str):
        try:
            seconds = parse_quantity(watchdog, DURATION)
        except QuantityError as exc:
            raise InvalidArgument(f"watchdog: {exc}") from exc
    else:
        seconds = float(watchdog)
    if not math.isfinite(seconds):
        raise InvalidArgument(f"watchdog: not a finite duration: {watchdog!r}")
    ms = seconds * 1000
    if abs(ms - round(ms)) > 1e-6:
        raise InvalidArgument(f"watchdog: the firmware counts whole milliseconds, got {watchdog!r}")
    return round(ms)


class FirmwareImage:
    """One board's copy of the firmware modules, imported from each other only.

    ``import rb_core`` inside the firmware resolves to this image's module;
    ``import rb_hal`` to a shim whose ``Board()`` returns ``hal``. Nothing is
    put in ``sys.modules``, so images (boards) share no state.
    """

    def __init__(
        self, code: dict[str, types.CodeType] | None = None, hal: object | None = None
    ) -> None:
        code = code if code is not None else _firmware_code(FIRMWARE_DIR)
        shim = types.ModuleType("rb_hal")
        shim.Board = lambda: hal  # type: ignore[attr-defined]
        self.modules: dict[str, types.ModuleType] = {"rb_hal": shim}
        modules = self.modules

        def firmware_import(name, globals=None, locals=None, fromlist=(), level=0):
            if level == 0 and name in modules:
                return modules[name]
            return builtins.__import__(name, globals, locals, fromlist, level)

        self.builtins = dict(vars(builtins))
        self.builtins["__import__"] = firmware_import
        for name in _FIRMWARE_MODULES:
            module = types.ModuleType(name)
            module.__dict__["__builtins__"] = self.builtins
            module.__file__ = code[name].co_filename
            exec(code[name], module.__dict__)
            modules[name] = module

    def __getitem__(self, name: str) -> types.ModuleType:
        return self.modules[name]

    def run(self, code: types.CodeType | str, filename: str = "<firmware>") -> dict:
        """Execute ``code`` as ``__main__`` with this image importable; return its globals."""
        if isinstance(code, str):
            code = compile(code, filename, "exec")
        namespace = {
            "__name__": "__main__",
            "__file__": code.co_filename,
            "__builtins__": self.builtins,
        }
        exec(code, namespace)
        return namespace


class _Hal:
    """The shim the firmware sees instead of rb_hal.Board (same methods)."""

    def __init__(self, board: SimulatedRelayBoard) -> None:
        self._board = board

    def config(self) -> dict:
        b = self._board
        return {
            "relays": b.relays,
            "watchdog_ms": b.watchdog_ms,
            "serial": b.serial,
            "model": f"RB{b.relays}",
        }

    def ticks_ms(self) -> int:
        return int(time.monotonic() * 1000)

    def ticks_diff(self, a: int, b: int) -> int:
        return a - b

    def estop_open(self) -> bool:
        # Like rb_hal: open now, or open at any moment since the last call.
        b = self._board
        with b._lock:
            edge, b._estop_edge = b._estop_edge, False
            return b._estop or edge

    def read_contacts(self) -> int:
        return self._board._contact_mask()

    def write_relays(self, mask: int) -> None:
        self._board._drive_coils(mask)

    def read(self) -> bytes:
        if self._board._crash:
            self._board._crash = False
            raise RuntimeError("injected firmware crash")
        try:
            data = os.read(self._board._master, 4096)
        except (BlockingIOError, InterruptedError):
            return b""
        except OSError:
            # EIO: no host side open; a board with an unplugged cable hears nothing.
            return b""
        if data:
            self._board.host_last_heard = time.monotonic()
        return self._board._request_noise(data)

    def write(self, data: bytes) -> None:
        # What the firmware says, before the line can garble it: its own state.
        self._board._firmware_said(data)
        data = self._board._line_noise(data)
        view = memoryview(data)
        while view:
            try:
                sent = os.write(self._board._master, view)
            except BlockingIOError:
                # Nobody reads the port and its buffer is full: like USB CDC
                # without a host, the bytes are lost.
                log.debug("relay board %s: output dropped", self._board.serial)
                return
            except OSError:
                return
            view = view[sent:]

    def feed_wdt(self) -> None:
        self._board._last_wdt_feed = time.monotonic()
        # The end of the first loop pass: the board is up and has said BOOT.
        self._board._booted.set()

    def idle(self) -> None:
        b = self._board
        with contextlib.suppress(OSError, ValueError):
            ready, _, _ = select.select([b._master, b._wake_r], [], [], _IDLE_S)
            if b._wake_r in ready:
                with contextlib.suppress(BlockingIOError):
                    os.read(b._wake_r, 64)

    def running(self) -> bool:
        return not self._board._stopping


class SimulatedRelayBoard:
    """The bench relay board, its firmware running on a pty.

    Channels are 1-based, as on the board's connector.
    """

    def __init__(
        self,
        serial: str = "RB8-000117",
        relays: int = 8,
        watchdog: str | float = "500 ms",
        *,
        firmware_dir: str | Path | None = None,
        hardware_watchdog: float = HARDWARE_WDT_S,
    ) -> None:
        if (
            not isinstance(serial, str)
            or not serial
            or len(serial) > 32
            or not all("!" <= ch <= "~" for ch in serial)
        ):
            raise InvalidArgument(f"serial: expected up to 32 printable characters, got {serial!r}")
        if isinstance(relays, bool) or not isinstance(relays, int) or not 1 <= relays <= 16:
            raise InvalidArgument(f"relays: expected 1..16, got {relays!r}")
        self.serial = serial
        self.relays = relays
        self.watchdog_ms = _watchdog_ms(watchdog)
        # The catalogue's range (the firmware's, checked equal by a test), read when used.
        low = round(catalog.RELAY_WATCHDOG_MIN * 1000)
        high = round(catalog.RELAY_WATCHDOG_MAX * 1000)
        if not low <= self.watchdog_ms <= high:
            raise InvalidArgument(
                f"watchdog: the firmware accepts {low} ms..{high / 1000:g} s, got {watchdog!r}"
            )
        self.firmware_dir = Path(firmware_dir) if firmware_dir else FIRMWARE_DIR
        if not isinstance(hardware_watchdog, int | float) or not 0 < hardware_watchdog <= 10:
            raise InvalidArgument(f"hardware_watchdog: expected 0..10 s, got {hardware_watchdog!r}")
        self.hardware_watchdog = float(hardware_watchdog)
        self._crash = False
        self._booted = threading.Event()
        self._lock = threading.Lock()
        self._notify_lock = threading.RLock()
        self._coils = 0
        self._welds: dict[int, bool] = {}
        self._estop = False
        self._estop_edge = False
        self._listeners: list[Listener] = []
        self._coil_listeners: list[Listener] = []
        self._event_listeners: list[EventListener] = []
        self._coils_notified: int | None = None
        # What the firmware last reported of itself (its state payload: T, E, W...).
        self.reported: dict[str, str] = {}
        self.host_last_heard: float | None = None
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._master = -1
        self._slave = -1
        self._wake_r = -1
        self._wake_w = -1
        self._port: str | None = None
        self._last_wdt_feed = 0.0
        self._notified: int | None = None
        self._drop_replies = 0
        self._garble_replies = 0
        self._garble_requests = 0
        self._impostor: tuple[str, str, str] | None = None
        self.boots = 0

    # -- life cycle ------------------------------------------------------------

    def start(self) -> str:
        """Power the board up; return the path of the port a host opens."""
        if self._thread is not None:
            raise SimulatorError(f"relay board {self.serial} is already running")
        code = _firmware_code(self.firmware_dir)
        self._master, self._slave = os.openpty()
        # Raw from the start: no echo or line editing before the host opens it.
        tty.setraw(self._slave)
        os.set_blocking(self._master, False)
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._port = os.ttyname(self._slave)
        try:
            self._power_on(code)
        except SimulatorError:
            self.stop()
            raise
        return self._port

    def _power_on(self, code: dict[str, types.CodeType]) -> None:
        self._stopping = False
        self._crash = False
        self._booted.clear()
        self._thread = threading.Thread(
            target=self._power, args=(code,), name=f"relay-board-{self.serial}", daemon=True
        )
        self._thread.start()
        # Like a USB board that enumerates once it runs: the port is handed
        # out only after the first loop pass, so the power-up BOOT event is
        # already in the port's buffer and a host opening it later flushes it.
        if not self._booted.wait(timeout=5):
            raise SimulatorError(f"relay board {self.serial}: firmware did not boot")

    def _power_off(self) -> None:
        thread = self._thread
        if thread is None:
            return
        self._stopping = True
        self._wake()
        thread.join(timeout=5)
        if thread.is_alive():
            raise SimulatorError(f"relay board {self.serial}: firmware thread did not stop")
        self._thread = None
        # Without power no coil holds: every relay drops open.
        self._drive_coils(0)

    def power_cycle(self, off_time: float = 0.0) -> None:
        """Switch the board off and on again; the port stays (a UART-attached board).

        The firmware boots afresh: relays open, no trip latched, forbidden table
        empty, default watchdog period, a ``BOOT`` event.
        """
        if self._thread is None:
            raise SimulatorError(f"relay board {self.serial} is not running")
        self._power_off()
        if off_time > 0:
            time.sleep(off_time)
        self._power_on(_firmware_code(self.firmware_dir))

    def crash_firmware(self) -> None:
        """Make the firmware loop raise: main.py opens the relays, the MCU
        watchdog reboots the board ``hardware_watchdog`` seconds later."""
        self._crash = True
        self._wake()

    def stop(self) -> None:
        """Power the board down: the firmware stops, the relays open, the port goes."""
        if self._thread is None:
            return
        self._power_off()
        for fd in (self._master, self._slave, self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._master = self._slave = self._wake_r = self._wake_w = -1
        self._port = None

    def __enter__(self) -> SimulatedRelayBoard:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> str | None:
        """The pty path while running, else None."""
        return self._port

    # -- fault injection -------------------------------------------------------

    def press_estop(self) -> None:
        """Open the E-stop loop (the button is pressed or a wire broke)."""
        with self._lock:
            self._estop_edge = True
            self._estop = True
        self._wake()

    def release_estop(self) -> None:
        with self._lock:
            self._estop = False
        self._wake()

    @property
    def estop_pressed(self) -> bool:
        return self._estop

    def weld(self, channel: int, closed: bool = True) -> None:
        """Stick a contact: closed (welded) or open (burnt), whatever its coil does."""
        self._check_channel(channel)
        with self._notify_lock:
            with self._lock:
                self._welds[channel] = bool(closed)
            self._notify()
        self._wake()

    def unweld(self, channel: int) -> None:
        self._check_channel(channel)
        with self._notify_lock:
            with self._lock:
                self._welds.pop(channel, None)
            self._notify()
        self._wake()

    def drop_replies(self, count: int = 1) -> None:
        """Lose the board's next ``count`` reply lines on the wire (events pass)."""
        with self._lock:
            self._drop_replies += count

    def garble_replies(self, count: int = 1) -> None:
        """Flip one bit in each of the board's next ``count`` reply lines."""
        with self._lock:
            self._garble_replies += count

    def garble_requests(self, count: int = 1) -> None:
        """Flip one bit in each of the host's next ``count`` frames to the board."""
        with self._lock:
            self._garble_requests += count

    # -- ground truth ----------------------------------------------------------

    def contacts(self) -> list[bool]:
        """What each contact physically is (index 0 = channel 1)."""
        mask = self._contact_mask()
        return [bool(mask >> i & 1) for i in range(self.relays)]

    def commanded(self) -> list[bool]:
        """What the firmware drives each coil to (index 0 = channel 1)."""
        with self._lock:
            coils = self._coils
        return [bool(coils >> i & 1) for i in range(self.relays)]

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(contacts, time.monotonic())`` on every contact change.

        It runs in the firmware's thread: it must be quick and must not block.
        """
        with self._lock:
            self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        with self._lock:
            self._listeners.remove(listener)

    def add_coil_listener(self, listener: Listener) -> None:
        """Call ``listener(coils, time.monotonic())`` whenever the firmware drives the
        coils to a new state (a welded contact may not follow). Same rules as above."""
        with self._lock:
            self._coil_listeners.append(listener)

    def add_event_listener(self, listener: EventListener) -> None:
        """Call ``listener(kind, detail, time.monotonic())`` for every event the firmware
        announces on its line (BOOT, TRIP WDT, TRIP ESTOP, MISMATCH, ESTOP_CLEAR).
        It runs in the firmware's thread."""
        with self._lock:
            self._event_listeners.append(listener)

    # -- internals -------------------------------------------------------------

    def _check_channel(self, channel: int) -> None:
        if isinstance(channel, bool) or not isinstance(channel, int):
            raise InvalidArgument(f"channel: expected an int, got {channel!r}")
        if not 1 <= channel <= self.relays:
            raise InvalidArgument(f"channel: expected 1..{self.relays}, got {channel}")

    def _contact_mask(self) -> int:
        with self._lock:
            mask = self._coils
            for channel, closed in self._welds.items():
                bit = 1 << (channel - 1)
                mask = mask | bit if closed else mask & ~bit
        return mask

    def _drive_coils(self, mask: int) -> None:
        with self._notify_lock:
            with self._lock:
                self._coils = mask
            self._notify()

    def _notify(self) -> None:
        # Called with _notify_lock held, so listeners see changes in order.
        now = time.monotonic()
        with self._lock:
            coils = self._coils
            coil_listeners = list(self._coil_listeners)
        if coils != self._coils_notified:
            self._coils_notified = coils
            self._call(coil_listeners, [bool(coils >> i & 1) for i in range(self.relays)], now)
        mask = self._contact_mask()
        if mask == self._notified:
            return
        self._notified = mask
        with self._lock:
            listeners = list(self._listeners)
        self._call(listeners, [bool(mask >> i & 1) for i in range(self.relays)], now)

    def _call(self, listeners: list[Listener], states: list[bool], now: float) -> None:
        for listener in listeners:
            try:
                listener(list(states), now)
            except Exception:
                log.exception("relay board %s: listener %r failed", self.serial, listener)

    def impersonate(self, identity: tuple[str, str, str] | None) -> None:
        """Another board answers ID on this link: (maker, model, serial), or None.

        What a gateway or a swapped cable does to a host whose link never broke:
        the firmware keeps running, only the identity on the wire changes.
        """
        with self._lock:
            self._impostor = identity

    def _impersonated(self, data: bytes) -> bytes:
        impostor = self._impostor
        text = data.rstrip(b"\n").decode("ascii", "replace")
        body = text.rpartition("*")[0]
        seq, bar, payload = body.partition("|")
        if impostor is None or not bar or not payload.startswith("ACK ID "):
            return data
        fields = dict(word.partition("=")[::2] for word in payload.split(" ")[2:])
        fields.update(maker=impostor[0], model=impostor[1], serial=impostor[2])
        words = " ".join(f"{key}={value}" for key, value in fields.items())
        sealed = f"{seq}|ACK ID {words}".encode("ascii")
        return sealed + b"*" + f"{crc_hqx(sealed, 0xFFFF):04X}".encode() + b"\n"

    def _firmware_said(self, data: bytes) -> None:
        # Lines are "SSSS|ACK <state>*CCCC" or "!EEEE|EVT KIND [detail] <state>*CCCC";
        # the state is KEY=VALUE words (PROTOCOL.md). Read, never judged: the firmware's own word.
        now = time.monotonic()
        for raw in data.split(b"\n"):
            text = raw.decode("ascii", errors="replace").strip()
            words = text.partition("|")[2].rpartition("*")[0].split()
            state = dict(w.split("=", 1) for w in words if "=" in w)
            if state:
                self.reported = state
            if text.startswith("!") and len(words) >= 2 and words[0] == "EVT":
                kind = words[1]
                detail = " ".join(w for w in words[2:] if "=" not in w)
                with self._lock:
                    listeners = list(self._event_listeners)
                for listener in listeners:
                    try:
                        listener(kind, detail, now)
                    except Exception:
                        log.exception("relay board %s: listener %r failed", self.serial, listener)

    def _line_noise(self, data: bytes) -> bytes:
        if data[:1] == b"!":
            return data
        data = self._impersonated(data)
        with self._lock:
            if self._drop_replies:
                self._drop_replies -= 1
                return b""
            if self._garble_replies:
                self._garble_replies -= 1
                middle = len(data) // 2
                return data[:middle] + bytes([data[middle] ^ 0x04]) + data[middle + 1 :]
        return data

    def _request_noise(self, data: bytes) -> bytes:
        # Flips a bit inside the first non-empty line of the chunk, never a newline.
        start = len(data) - len(data.lstrip(b"\r\n"))
        if start == len(data):
            return data
        with self._lock:
            if not self._garble_requests:
                return data
            self._garble_requests -= 1
        end = data.find(b"\n", start)
        end = len(data) if end < 0 else end
        middle = (start + end) // 2
        return data[:middle] + bytes([data[middle] ^ 0x04]) + data[middle + 1 :]

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    def _power(self, code: dict[str, types.CodeType]) -> None:
        while not self._stopping:
            self.boots += 1
            try:
                self._boot(code)
            except Exception:
                log.exception("relay board %s: firmware crashed", self.serial)
                # main.py has opened the relays; the unfed hardware watchdog
                # resets the MCU after its timeout, and the board boots again.
                deadline = time.monotonic() + self.hardware_watchdog
                while not self._stopping and time.monotonic() < deadline:
                    time.sleep(0.01)
            else:
                return

    def _boot(self, code: dict[str, types.CodeType]) -> None:
        hal = _Hal(self)
        image = FirmwareImage(code, hal)
        image.run(code["main"])
