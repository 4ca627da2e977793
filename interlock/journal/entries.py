"""Journal entries: the kinds, the payload conventions, and the hash over them.

Every event of a bench becomes one :class:`Entry`. The fields common to all
kinds are fixed columns; what differs between kinds lives in ``payload``, a
JSON object. The controller writes these payloads and the post-mortem reads
them, so both follow the conventions below. Keys not listed are allowed and
are shown as they are; values are SI floats (volts, amperes, ohms, seconds),
never strings with units, because units were checked and removed at the
configuration layer (:mod:`interlock.units`).

Kinds and their payloads (``?`` marks an optional key):

``request``   something a client asked for (or marked: ``"action": "note"``,
              ``{"text": ..., "step"?: 8}``, a step begun; a note whose text
              begins ``FAIL `` says the measurement just before it failed
              its window, see :data:`FAILED_NOTE_PREFIX`). ``actor`` is *who* (user or
              operator name). ``{"client": "pytest-plugin", "action": "set",
              "net"?: "VBUS", "quantity"?: "voltage" | "current_limit" |
              "output" | "relay", "value"?: 5.0 | true, "relay"?: "K3"}``
``verdict``   the limit engine's answer to a request. ``{"allowed": false,
              "request"?: <seq of the request>, "rule"?: "nets.VBUS.max_voltage",
              "where"?: "profiles/motor.toml: nets.VBUS.max_voltage",
              "reason"?: "5.5 V above 5.25 V"}``
``command``   bytes about to be sent to an instrument (the write-ahead
              intent, see :mod:`interlock.journal.intent`). ``{"instrument":
              "psu", "data": "VOLT 5,(@1)\\n", "net"?, "quantity"?, "value"?}``;
              bytes that are not UTF-8 are stored as ``"data_hex"`` instead
              of ``"data"``.
``readback``  what an instrument reported back for a setting. ``{"instrument":
              "psu", "query": "VOLT? (@1)", "reply": "5.000", "net"?,
              "quantity"?, "value"?: 5.0, "expected"?: 5.0, "ok"?: true}``;
              ``"data"?``: the exact bytes of a pure query whose answer took
              its ``command`` entry's place (and time) before they were written
              (:meth:`~interlock.journal.store.Journal.answer`)
``measurement`` what was measured on a net. ``{"net": "VBUS", "voltage"?: 24.01,
              "current"?: 0.2, "resistance"?: ...}``; or, for the nets of one
              supply read in one exchange (the monitor's pass, since entries
              came one per net before), ``{"instrument": "psu1", "nets":
              {"VBUS": {"voltage": 24.01, "current": 0.2}, ...}}``. Readers
              take both forms through :func:`net_readings`.
``state``     a state-machine transition. ``{"from": "armed", "to": "live",
              "trigger": "energise"}``
``fault``     a fault (latched by the controller). ``{"cause": "readback",
              "detail": "psu VOLT? read 5.4 V, commanded 5.0 V", "rule"?:
              "readback.voltage", "where"?: "profiles/mdb24.toml: ..."}``: the
              limit engine's rule, when the fault is one of its findings
``operator``  an operator action; ``actor`` is the operator. ``{"action":
              "arm" | "reset" | "estop" | "confirm" | ..., "detail"?: ...}``
``identity``  an identity check. ``{"instrument": "psu" | "dut", "expected":
              "KEYSIGHT,E36312A,MY123", "seen": "...", "ok": true}``
``config``    configuration pinned at arming. ``{"files": {"bench": {"path":
              "bench.toml", "sha256": "..."}, "profile": {...}}, "limits"?:
              {"VBUS": {"max_voltage": 5.25, "max_current": 0.5}}}``
``journal``   the journal's own maintenance, outside any run. ``{"action":
              "prune", "removed": 120, "ranges": [[1, 120]], "policy": {...}}``;
              the service's start-up check ``{"action": "check", "after": 0,
              "entries": 120, "breaks"?: [{"seq": 5, "problem": ..., "mark":
              ...}]}``; an operator's acknowledgement of those breaks
              (``"acknowledge"``, ``actor`` the operator) or a journal's
              adoption (``"adopt"``), both with ``"breaks"``. ``"witnessed"?:
              [seq, hash]``: the witness was made durable there first
              (:mod:`interlock.journal.witness`).

The hash of an entry is SHA-256 over a canonical JSON array of every field,
the previous entry's hash included, so changing, removing or reordering an
entry breaks the chain from that entry on (see :mod:`interlock.journal.verify`).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from interlock.errors import JournalError

# The "previous hash" of the very first entry of a journal.
GENESIS_HASH = "0" * 64


class Kind(StrEnum):
    REQUEST = "request"
    VERDICT = "verdict"
    COMMAND = "command"
    READBACK = "readback"
    MEASUREMENT = "measurement"
    STATE = "state"
    FAULT = "fault"
    OPERATOR = "operator"
    IDENTITY = "identity"
    CONFIG = "config"
    JOURNAL = "journal"


KINDS = frozenset(k.value for k in Kind)


# The encoders behind canonical_payload() and entry_hash(), built once (json.dumps
# with options builds a new one on every call).
_encode_payload = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
).encode
_encode_hashed = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
# JSON's string quoting as the encoders above do it (no ASCII escaping).
_quote = json.encoder.encode_basestring


# The C encoder under _encode_payload, made once instead of per call (JSONEncoder.encode
# makes it anew each time: half the cost of a small payload). Without the check for
# circular references, which ends in a RecursionError instead (refused all the same);
# JSONEncoder's own default refuses what JSON cannot hold (TypeError), as before.
_payload_chunks = (
    json.encoder.c_make_encoder(  # type: ignore[attr-defined]
        None, json.JSONEncoder().default, _quote, None, ":", ",", True, False, False
    )
    if getattr(json.encoder, "c_make_encoder", None) is not None
    else None
)

# A runner's note that the measurement just journaled failed its window.
FAILED_NOTE_PREFIX = "FAIL "

# Setpoint-type requests and commands name one of these in "quantity".
QUANTITIES = ("voltage", "current_limit", "output", "relay")


@dataclass(frozen=True)
class Entry:
    """One journal entry as stored.

    ``payload_json`` is the exact stored text; the hash is computed over it,
    so it is kept alongside the decoded ``payload`` rather than re-encoded.
    """

    seq: int
    wall_time: str  # UTC, ISO 8601, e.g. 2026-11-26T01:56:16.123456Z
    mono_time: float  # time.monotonic() of the writer; orders events within a run
    bench: str
    run_id: str  # "" outside of a run
    kind: str
    actor: str
    payload_json: str
    prev_hash: str
    hash: str

    @property
    def payload(self) -> dict[str, Any]:
        return json.loads(self.payload_json)

    def as_dict(self) -> dict[str, Any]:
        """The entry as a JSON-ready dict (payload decoded), as exported."""
        return {
            "seq": self.seq,
            "wall_time": self.wall_time,
            "mono_time": self.mono_time,
            "bench": self.bench,
            "run_id": self.run_id,
            "kind": self.kind,
            "actor": self.actor,
            "payload": self.payload,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


def canonical_payload(payload: Mapping[str, Any] | None) -> str:
    """Encode a payload the one way it is stored and hashed.

    NaN and infinity are refused: they are not JSON, and a journal that
    cannot be read back by other tools is no record. So is text that is not
    Unicode (lone surrogates, as JSON's ``"\\udcff"`` or a file name's
    undecodable bytes become): it cannot be stored as UTF-8.
    """
    plain = payload if type(payload) is dict else dict(payload or {})
    try:
        if _payload_chunks is not None:
            text = "".join(_payload_chunks(plain, 0))
        else:
            text = _encode_payload(plain)
        text.encode("utf-8")
    except RecursionError as exc:
        raise JournalError(f"payload is not plain JSON: {exc} (circular?)") from exc
    except (TypeError, ValueError) as exc:  # UnicodeEncodeError is a ValueError
        raise JournalError(f"payload is not plain JSON: {exc}") from exc
    return text


def writable_text(value: str, what: str) -> str:
    """``value``, if it can be stored (as UTF-8); JournalError otherwise."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise JournalError(f"{what} is not Unicode text: {value!r}") from exc
    return value


def entry_hash(
    seq: int,
    wall_time: str,
    mono_time: float,
    bench: str,
    run_id: str,
    kind: str,
    actor: str,
    payload_json: str,
    prev_hash: str,
) -> str:
    """SHA-256 (hex) over the canonical encoding of all fields of an entry.

    The fields in the order of an entry (positionally in the writer's inner loop).
    """
    if not math.isfinite(mono_time):
        raise JournalError(f"monotonic time must be finite, got {mono_time!r}")
    # A JSON array rather than a joined string: no separator can be forged
    # by putting it inside a field.
    if (
        type(seq) is int
        and type(mono_time) is float
        and type(wall_time) is type(bench) is type(run_id) is str
        and type(kind) is type(actor) is type(payload_json) is type(prev_hash) is str
    ):
        # The very text _encode_hashed makes of these types, at two thirds of its cost.
        encoded = (
            f"[{seq},{_quote(wall_time)},{mono_time!r},{_quote(bench)},{_quote(run_id)},"
            f"{_quote(kind)},{_quote(actor)},{_quote(payload_json)},{_quote(prev_hash)}]"
        )
    else:
        encoded = _encode_hashed(
            [seq, wall_time, mono_time, bench, run_id, kind, actor, payload_json, prev_hash]
        )
    return hashlib.sha256(encoded.encode("utf-8")).hexdigest()


def computed_hash(entry: Entry) -> str:
    return entry_hash(
        seq=entry.seq,
        wall_time=entry.wall_time,
        mono_time=entry.mono_time,
        bench=entry.bench,
        run_id=entry.run_id,
        kind=entry.kind,
        actor=entry.actor,
        payload_json=entry.payload_json,
        prev_hash=entry.prev_hash,
    )


def net_readings(payload: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """A ``measurement`` payload's readings by net, whichever form it has: one net's
    (``"net"`` and its values) or several (``"nets"``). Anything else reads as none."""
    nets = payload.get("nets")
    if isinstance(nets, Mapping):
        return {
            str(net): dict(values) for net, values in nets.items() if isinstance(values, Mapping)
        }
    net = payload.get("net")
    if isinstance(net, str):
        return {net: {k: v for k, v in payload.items() if k != "net"}}
    return {}


def data_fields(data: bytes) -> dict[str, str]:
    """How the exact bytes of a command are put in a payload (see module doc)."""
    try:
        return {"data": data.decode("utf-8")}
    except UnicodeDecodeError:
        return {"data_hex": data.hex()}


def payload_data(payload: Mapping[str, Any]) -> bytes:
    """The exact bytes a ``command`` payload records (inverse of :func:`data_fields`)."""
    if "data" in payload:
        return str(payload["data"]).encode("utf-8")
    if "data_hex" in payload:
        return bytes.fromhex(str(payload["data_hex"]))
    return b""


def file_digest(path: str | Path) -> str:
    """SHA-256 (hex) of a file's bytes, for the ``config`` entry."""
    try:
        with open(path, "rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError as exc:
        raise JournalError(f"cannot hash {path}: {exc}") from exc
