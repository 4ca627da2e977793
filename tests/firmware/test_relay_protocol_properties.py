"""Property tests of the relay board protocol: damage never acts, every frame is answered.

Most properties run in-process against the real firmware modules (a
:class:`FirmwareImage`, with a hand-driven clock), so hypothesis can try many
cases quickly; the last one goes over the real pty. Frames are built and
checked with the host driver's own CRC code, not the firmware's, so the two
implementations check each other.
"""

from __future__ import annotations

import time

import serial
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from interlock.drivers.relay_board import frame, unframe
from interlock.sim.relay_board import FirmwareImage, SimulatedRelayBoard

IMAGE = FirmwareImage()
rb_core = IMAGE["rb_core"]
rb_protocol = IMAGE["rb_protocol"]

WATCHDOG_MS = 500


class Board:
    """Core + protocol + line reader, fed bytes as rb_loop feeds them."""

    def __init__(self) -> None:
        self.now = 10_000
        self.estop = False
        self.core = rb_core.Interlock(8, WATCHDOG_MS)
        self.proto = rb_protocol.Protocol(self.core, "RB8-PROP", "RB8")
        self.reader = rb_protocol.LineReader()
        self.core.poll(self.now, False, 0)

    def feed(self, data: bytes) -> list[str]:
        replies = []
        for line in self.reader.feed(data):
            self.core.poll(self.now, self.estop, self.core.commanded)
            reply = self.proto.handle(line, self.now)
            self.core.poll(self.now, self.estop, self.core.commanded)
            if reply is not None:
                text = unframe(reply.rstrip(b"\n"))
                assert text is not None, reply
                replies.append(text)
        return replies

    def snapshot(self) -> tuple:
        c = self.core
        return (c.commanded, c.cause, tuple(c.forbidden), c.watchdog_ms, c.estop)


def prepared_board() -> Board:
    board = Board()
    assert board.feed(frame(1, "FORBID 30"))[0].startswith("0001|ACK ")
    assert board.feed(frame(2, "SET F"))[0].startswith("0002|ACK R=F ")
    return board


masks = st.integers(0, 0xFF)
commands = st.one_of(
    st.just("GET"),
    st.just("HB"),
    st.just("ID"),
    st.just("RESET"),
    masks.map(lambda m: f"SET {m:X}"),
    st.lists(st.integers(1, 0xFF), max_size=4).map(
        lambda ms: " ".join(["FORBID", *(f"{m:X}" for m in ms)])
    ),
    st.integers(0, 6000).map(lambda ms: f"WD {ms}"),
    # Things a broken host might send: unknown, lower case, bad arguments.
    st.sampled_from(["FIRE", "set 1", "SET", "SET 1 2", "SET XYZ", "WD -5", "GET 1", "SET  1"]),
)
# Commands that would change the prepared board if they were executed.
changing_commands = st.one_of(
    masks.filter(lambda m: m != 0xF and m & 0x30 != 0x30).map(lambda m: f"SET {m:X}"),
    st.just("FORBID 1"),
    st.just("FORBID"),
    st.just("WD 100"),
)


@st.composite
def corrupted(draw, original: bytes) -> bytes:
    """``original`` (a frame without newline) damaged in one of the ways a line is."""
    kind = draw(st.sampled_from(["flip", "delete", "insert", "truncate", "crc", "swap"]))
    i = draw(st.integers(0, len(original) - 1))
    if kind == "flip":
        bit = draw(st.integers(0, 7))
        return original[:i] + bytes([original[i] ^ (1 << bit)]) + original[i + 1 :]
    if kind == "delete":
        return original[:i] + original[i + 1 :]
    if kind == "insert":
        byte = draw(st.integers(0, 255).filter(lambda b: b != 0x0A))
        return original[:i] + bytes([byte]) + original[i:]
    if kind == "truncate":
        return original[:i]
    if kind == "crc":
        crc = draw(st.text("0123456789ABCDEF", min_size=4, max_size=4))
        return original[:-4] + crc.encode()
    j = draw(st.integers(0, len(original) - 1))
    swapped = bytearray(original)
    swapped[i], swapped[j] = swapped[j], swapped[i]
    return bytes(swapped)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=300))
def test_random_bytes_never_change_a_relay(data: bytes) -> None:
    # A random line with a valid CRC is a real frame, not noise.
    assume(not any(unframe(line.rstrip(b"\r")) for line in data.split(b"\n")))
    board = prepared_board()
    before = board.snapshot()
    replies = board.feed(data + b"\n")
    assert board.snapshot() == before
    assert all(reply[5:] == "NAK CRC" for reply in replies), replies


@settings(max_examples=400, deadline=None)
@given(seq=st.integers(3, 0xFFFF), command=changing_commands, data=st.data())
def test_corrupted_frames_are_never_executed(seq: int, command: str, data) -> None:
    original = frame(seq, command).rstrip(b"\n")
    damaged = data.draw(corrupted(original))
    assume(damaged != original)
    assume(not any(unframe(line.rstrip(b"\r")) for line in damaged.split(b"\n")))
    board = prepared_board()
    before = board.snapshot()
    replies = board.feed(damaged + b"\n")
    assert board.snapshot() == before
    assert all(reply[5:] == "NAK CRC" for reply in replies), replies
    pieces = [p for p in damaged.split(b"\n") if p.rstrip(b"\r")]
    assert len(replies) == len(pieces)


@settings(max_examples=200, deadline=None)
@given(
    frames=st.lists(st.tuples(st.integers(0, 0xFFFF), commands), min_size=1, max_size=20),
    cuts=st.lists(st.integers(0, 2000), max_size=10),
)
def test_every_valid_frame_gets_exactly_one_reply(frames, cuts) -> None:
    board = Board()
    stream = b"".join(frame(seq, command) for seq, command in frames)
    # Arbitrary chunking: lines reassemble whatever the USB packets were.
    replies = []
    start = 0
    for cut in [*sorted({c % (len(stream) + 1) for c in cuts}), len(stream)]:
        replies += board.feed(stream[start:cut])
        start = cut
    assert [r[:5] for r in replies] == [f"{seq:04X}|" for seq, _ in frames]
    assert all(r[5:9] in ("ACK ", "NAK ") for r in replies)


@settings(max_examples=200, deadline=None)
@given(seq=st.integers(0, 0xFFFF), first=changing_commands, second=changing_commands)
def test_reused_seq_is_replayed_or_refused_never_executed_twice(seq, first, second) -> None:
    board = prepared_board()
    assume(seq not in (1, 2))
    reply = board.feed(frame(seq, first))
    after_first = board.snapshot()
    again = board.feed(frame(seq, second))
    assert board.snapshot() == after_first
    if second == first:
        assert again == reply or again == [f"{seq:04X}|NAK SEQ"]
    else:
        assert again == [f"{seq:04X}|NAK SEQ"]


class ProtocolMachine(RuleBasedStateMachine):
    """Sequences of frames, damage, replays, E-stop and time, against the board's rules."""

    @initialize()
    def power_up(self) -> None:
        self.board = Board()
        self.seq = 0
        self.last_frame: bytes | None = None
        self.last_reply: list[str] = []
        self.last_alive: int | None = None  # when the host was last heard

    def send(self, command: str) -> str:
        self.seq = (self.seq + 1) & 0xFFFF
        self.last_frame = frame(self.seq, command)
        before = self.board.snapshot()
        replies = self.board.feed(self.last_frame)
        assert len(replies) == 1 and replies[0].startswith(f"{self.seq:04X}|")
        self.last_alive = self.board.now
        self.last_reply = replies
        payload = replies[0][5:]
        if payload.startswith("NAK "):
            assert self.board.snapshot()[:4] == before[:4], (command, payload)
        return payload

    @rule(mask=masks)
    def set_relays(self, mask: int) -> None:
        payload = self.send(f"SET {mask:X}")
        core = self.board.core
        if payload.startswith("ACK "):
            assert core.commanded == mask
        elif mask:
            assert payload.split(" ")[1] in ("FORBIDDEN", "TRIPPED", "ESTOP_ACTIVE"), payload
        else:
            raise AssertionError(f"SET 0 refused: {payload}")

    @rule(combos=st.lists(st.integers(1, 0xFF), max_size=3))
    def load_forbidden(self, combos: list[int]) -> None:
        self.send(" ".join(["FORBID", *(f"{m:X}" for m in combos)]))

    @rule()
    def reset(self) -> None:
        closed = self.board.core.commanded
        payload = self.send("RESET")
        assert self.board.core.commanded == closed  # a reset never moves a relay
        if self.board.estop:
            assert payload == "NAK ESTOP_ACTIVE"
        else:
            assert self.board.core.cause is None

    @rule()
    def heartbeat(self) -> None:
        assert self.send("HB").startswith("ACK ")

    @precondition(lambda self: self.last_frame is not None)
    @rule()
    def replay_last_frame(self) -> None:
        assert self.last_frame is not None
        before = self.board.snapshot()
        again = self.board.feed(self.last_frame)
        assert self.board.snapshot() == before
        assert again == self.last_reply or again == [f"{self.seq:04X}|NAK SEQ"]
        self.last_alive = self.board.now

    @precondition(lambda self: self.last_frame is not None)
    @rule(command=changing_commands)
    def same_seq_other_frame(self, command: str) -> None:
        assume(frame(self.seq, command) != self.last_frame)
        before = self.board.snapshot()
        assert self.board.feed(frame(self.seq, command)) == [f"{self.seq:04X}|NAK SEQ"]
        assert self.board.snapshot() == before
        self.last_alive = self.board.now

    @rule(command=changing_commands, data=st.data())
    def damaged_frame(self, command: str, data) -> None:
        original = frame((self.seq + 1) & 0xFFFF, command).rstrip(b"\n")
        damaged = data.draw(corrupted(original))
        assume(not any(unframe(line.rstrip(b"\r")) for line in damaged.split(b"\n")))
        before = self.board.snapshot()
        self.board.feed(damaged + b"\n")
        assert self.board.snapshot() == before

    @rule(noise=st.binary(max_size=60))
    def line_noise(self, noise: bytes) -> None:
        assume(not any(unframe(line.rstrip(b"\r")) for line in noise.split(b"\n")))
        before = self.board.snapshot()
        self.board.feed(noise + b"\n")
        assert self.board.snapshot() == before

    @rule(pressed=st.booleans())
    def estop(self, pressed: bool) -> None:
        self.board.estop = pressed
        self.board.core.poll(self.board.now, pressed, self.board.core.commanded)

    @rule(ms=st.integers(0, 700))
    def time_passes(self, ms: int) -> None:
        self.board.now += ms
        core = self.board.core
        core.poll(self.board.now, self.board.estop, core.commanded)
        if self.last_alive is not None and self.board.now - self.last_alive > core.watchdog_ms:
            assert core.cause is not None and core.commanded == 0

    @invariant()
    def estop_or_trip_means_all_open(self) -> None:
        core = self.board.core
        if core.estop or core.cause is not None:
            assert core.commanded == 0

    @invariant()
    def no_forbidden_combination_is_closed(self) -> None:
        core = self.board.core
        for mask in core.forbidden:
            assert core.commanded & mask != mask


ProtocolMachine.TestCase.settings = settings(
    max_examples=60, stateful_step_count=40, deadline=None
)
TestProtocolMachine = ProtocolMachine.TestCase


# -- the same over the real pty ------------------------------------------------


def read_reply(port: serial.Serial, seq: int, timeout: float = 1.0) -> list[str]:
    """Every line up to and including the reply to ``seq``; events are skipped."""
    deadline = time.monotonic() + timeout
    lines = []
    while time.monotonic() < deadline:
        raw = port.readline()
        if not raw:
            continue
        text = unframe(raw.rstrip(b"\r\n"))
        assert text is not None, raw
        if text.startswith("!"):
            continue
        lines.append(text)
        if text.startswith(f"{seq:04X}|") and text[5:] != "NAK CRC":
            return lines
    raise AssertionError(f"no reply to {seq:04X}; saw {lines}")


_PTY_BOARD: dict[str, object] = {}


def pty_port() -> tuple[SimulatedRelayBoard, serial.Serial]:
    # One board for all examples: starting a thread and a pty per example
    # would dominate the run time.
    if not _PTY_BOARD:
        sim = SimulatedRelayBoard(watchdog="5 s")
        port = serial.Serial(sim.start(), timeout=0.05)
        _PTY_BOARD["sim"], _PTY_BOARD["port"] = sim, port
    return _PTY_BOARD["sim"], _PTY_BOARD["port"]  # type: ignore[return-value]


def teardown_module() -> None:
    if _PTY_BOARD:
        _PTY_BOARD["port"].close()  # type: ignore[attr-defined]
        _PTY_BOARD["sim"].stop()  # type: ignore[attr-defined]
        _PTY_BOARD.clear()


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    mask=st.integers(0, 0xFF),
    command=changing_commands,
    noise=st.binary(max_size=80),
    data=st.data(),
)
def test_over_the_pty_damage_never_moves_a_relay(mask, command, noise, data) -> None:
    assume(not any(unframe(line.rstrip(b"\r")) for line in noise.split(b"\n")))
    sim, port = pty_port()
    seq = data.draw(st.integers(0, 0xFFFF))
    port.reset_input_buffer()
    port.write(frame(seq, "RESET") + frame(seq ^ 1, f"SET {mask:X}"))
    read_reply(port, seq)
    assert read_reply(port, seq ^ 1)[-1][5:].startswith("ACK R=")
    truth = sim.commanded()
    damaged = data.draw(corrupted(frame(seq ^ 2, command).rstrip(b"\n")))
    assume(not any(unframe(line.rstrip(b"\r")) for line in damaged.split(b"\n")))
    port.write(noise + b"\n" + damaged + b"\n" + frame(seq ^ 4, "GET"))
    lines = read_reply(port, seq ^ 4)
    # Exactly one reply to the GET, nothing but NAK CRC for the rest.
    assert all(line[5:] == "NAK CRC" for line in lines[:-1]), lines
    assert lines[-1].startswith(f"{seq ^ 4:04X}|ACK R={mask:X} ")
    assert sim.commanded() == truth
