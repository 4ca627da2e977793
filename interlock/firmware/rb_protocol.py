"""Relay board protocol: framing, CRC, sequence numbers, command dispatch.

A frame is one ASCII line ``SSSS|CMD ARGS*CCCC\\n``: a 4-hex-digit sequence
number, the command, and a CRC-16/CCITT-FALSE over everything before ``*``.
Replies echo the sequence number; unsolicited events start with ``!``. The
rules (replays, what counts as damaged) are in PROTOCOL.md; this module is
their only implementation on the board.

No I/O here: the main loop feeds bytes in and writes the returned bytes out.
This file must stay valid MicroPython.
"""

import rb_core

MAKER = "interlock"
FIRMWARE_VERSION = "1.1.0"

# Longest frame the board accepts. The longest legal one (FORBID with 16
# masks) is about 100 characters; anything longer is noise or a broken host.
MAX_LINE = 120

CRC = "CRC"
SEQ = "SEQ"
UNKNOWN = "UNKNOWN"

_HEX = "0123456789ABCDEF"
_DIGITS = "0123456789"


def crc16(data):
    """CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, no xorout."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            if crc & 0x8000:
                crc = ((crc << 1) ^ 0x1021) & 0xFFFF
            else:
                crc = (crc << 1) & 0xFFFF
    return crc


def seal(body):
    """``body`` (str) -> the framed line (bytes) with CRC and newline."""
    data = body.encode()
    return data + b"*" + ("%04X" % crc16(data)).encode() + b"\n"


def _is_hex(text, max_len):
    if not text or len(text) > max_len:
        return False
    for ch in text:
        if ch not in _HEX:
            return False
    return True


def _parse_hex(text, max_len):
    if not _is_hex(text, max_len):
        raise rb_core.Refused(rb_core.BADARG, "hex")
    return int(text, 16)


def _parse_decimal(text):
    if not text or len(text) > 6:
        raise rb_core.Refused(rb_core.BADARG, "number")
    for ch in text:
        if ch not in _DIGITS:
            raise rb_core.Refused(rb_core.BADARG, "number")
    return int(text)


class LineReader:
    """Splits a byte stream into lines; an over-long line becomes ``None``."""

    def __init__(self, max_line=MAX_LINE):
        self.max_line = max_line
        self._buf = b""
        self._overflow = False

    def feed(self, data):
        lines = []
        buf = self._buf + data
        while True:
            i = buf.find(b"\n")
            if i < 0:
                break
            line = buf[:i]
            buf = buf[i + 1 :]
            if self._overflow or len(line) > self.max_line:
                lines.append(None)
            else:
                lines.append(line)
            self._overflow = False
        if len(buf) > self.max_line:
            # Keep memory bounded: drop the start, remember the line is bad.
            self._overflow = True
            buf = b""
        self._buf = buf
        return lines


def state_text(core):
    return "R=%X C=%X T=%s E=%d M=%X W=%d F=%d" % (
        core.commanded,
        core.contacts,
        core.cause or "-",
        1 if core.estop else 0,
        core.mismatch,
        core.watchdog_ms,
        len(core.forbidden),
    )


class Protocol:
    def __init__(self, core, serial, model):
        self.core = core
        self.identity = "ID maker=%s model=%s serial=%s fw=%s relays=%d" % (
            MAKER,
            model,
            serial,
            FIRMWARE_VERSION,
            core.relays,
        )
        self.event_seq = 0
        # The last accepted frame: its seq, its text, its reply, and the
        # state version the reply described.
        self._last_seq = None
        self._last_body = None
        self._last_reply = None
        self._last_version = None

    def handle(self, line, now):
        """One line from the host (bytes, or None if over-long) -> reply bytes or None."""
        if line is None:
            return seal("????|NAK " + CRC)
        if line[-1:] == b"\r":
            line = line[:-1]
        if not line:
            # Empty lines let a host flush a half-sent line; they get no reply.
            return None
        body = self._check_frame(line)
        if body is None:
            return seal(self._echo_seq(line) + "|NAK " + CRC)
        core = self.core
        core.host_frame(now)
        seq = body[:4]
        if seq == self._last_seq:
            if body == self._last_body and core.version == self._last_version:
                # A retransmission: answer again, never act twice.
                return self._last_reply
            # Same seq but a different frame, or a reply that no longer
            # describes the board: the host must ask afresh with a new seq.
            return seal(seq + "|NAK " + SEQ)
        reply = seal(seq + "|" + self._execute(body[5:]))
        self._last_seq = seq
        self._last_body = body
        self._last_reply = reply
        self._last_version = core.version
        return reply

    def event_lines(self):
        lines = []
        for kind, detail in self.core.take_events():
            text = "EVT " + kind
            if detail:
                text += " " + detail
            lines.append(seal("!%04X|%s %s" % (self.event_seq, text, state_text(self.core))))
            self.event_seq = (self.event_seq + 1) & 0xFFFF
        return lines

    def _check_frame(self, line):
        """The frame's text before ``*`` if it is intact, else None."""
        for byte in line:
            if byte < 0x20 or byte > 0x7E:
                return None
        text = line.decode()
        star = len(text) - 5
        if star < 6 or text[star] != "*" or text[4] != "|":
            return None
        crc = text[star + 1 :]
        if not _is_hex(crc, 4) or not _is_hex(text[:4], 4):
            return None
        body = text[:star]
        if int(crc, 16) != crc16(line[:star]):
            return None
        return body

    def _echo_seq(self, line):
        # A damaged frame's seq may itself be damaged, so it is only echoed
        # when it looks like one; the host treats any NAK CRC as "not done".
        head = line[:5]
        for byte in head:
            if byte < 0x20 or byte > 0x7E:
                return "????"
        head = head.decode()
        if len(head) == 5 and head[4] == "|" and _is_hex(head[:4], 4):
            return head[:4]
        return "????"

    def _execute(self, command):
        words = command.split(" ")
        name = words[0]
        args = words[1:]
        core = self.core
        try:
            for word in args:
                if not word:
                    raise rb_core.Refused(rb_core.BADARG, "spacing")
            if name == "ID":
                _expect_args(args, 0)
                return "ACK " + self.identity
            if name == "HB" or name == "GET":
                _expect_args(args, 0)
            elif name == "SET":
                _expect_args(args, 1)
                core.set_relays(_parse_hex(args[0], 4))
            elif name == "BYE":
                _expect_args(args, 0)
                core.release()
            elif name == "RESET":
                _expect_args(args, 0)
                core.reset()
            elif name == "FORBID":
                core.load_forbidden([_parse_hex(a, 4) for a in args])
            elif name == "WD":
                _expect_args(args, 1)
                core.set_watchdog(_parse_decimal(args[0]))
            else:
                return "NAK " + UNKNOWN
        except rb_core.Refused as refusal:
            reason = refusal.args[0]
            detail = refusal.args[1] if len(refusal.args) > 1 else ""
            if detail:
                return "NAK %s %s" % (reason, detail)
            return "NAK " + reason
        return "ACK " + state_text(core)


def _expect_args(args, count):
    if len(args) != count:
        raise rb_core.Refused(rb_core.BADARG, "count")
