"""What the writer stores and hashes, byte for byte, however it gets there.

The reference below is the definition (see interlock.journal.entries): the
payload is ``json.dumps`` with sorted keys, compact separators, no ASCII
escaping and no NaN; the hash is SHA-256 over the compact JSON array of all
fields. Journals written before must keep verifying, so the writer's text
must stay exactly this, staged or not.
"""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from interlock.errors import JournalError
from interlock.journal import Journal, JournalReader, Kind, store, verify_journal
from interlock.journal.entries import canonical_payload, entry_hash
from interlock.journal.store import WALL_FORMAT, format_wall


def reference_payload(payload) -> str:
    return json.dumps(
        dict(payload or {}),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    )


def reference_hash(row) -> str:
    seq, wall, mono, bench, run_id, kind, actor, payload, prev, _ = row
    encoded = json.dumps(
        [seq, wall, mono, bench, run_id, kind, actor, payload, prev],
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(encoded.encode("utf-8")).hexdigest()


def rows(path):
    conn = sqlite3.connect(path)
    try:
        return conn.execute(
            "SELECT seq, wall_time, mono_time, bench, run_id, kind, actor, payload, prev_hash, "
            "hash FROM entries ORDER BY seq"
        ).fetchall()
    finally:
        conn.close()


class Float(float):
    pass


ODD = {
    "ü": 'ñ\u2028\x00"\\/',
    "none": None,
    "yes": True,
    "big": 2**70,
    "negzero": -0.0,
    "huge": 1e300,
    "tiny": 1e-300,
    "nested": (1, 2, [3, {"z": 1, "a": Float(0.1)}]),
    "int_keys": {3: "x", 10: "y", 2: "z"},
    "emoji": "😀",
}


def write_scenario(journal: Journal, clock) -> None:
    """Staged and durable entries of every helper, a request named by its verdict."""
    for i in range(3):
        clock.advance(0.123457)
        request = journal.request(
            "me", "client x pid 1", "set", durable=False, net="N01", value=3.0 + i
        )
        journal.verdict(True, request=request, steps=1, durable=False)
        journal.command_intent("psu1", "VOLT 3,(@1)\n", net="N01", quantity="voltage", value=3.0)
        clock.advance(0.01)
        journal.readback("psu1", "VOLT? (@1)", "+3.000000E+00", durable=False, net="N01")
        journal.query_intent("psu1", "MEAS:VOLT? (@1)\n")
        journal.measurement("N01", voltage=3.0, current=0.001, durable=False)
    journal.begin_run("run-1")
    journal.stage(Kind.MEASUREMENT, ODD)
    journal.stage("fault", None)
    journal.stage("operator", {}, actor="olga")
    first = journal.request("alice", "c", "set", durable=False)
    second = journal.request("bob", "c", "set", durable=False)
    journal.verdict(False, request=second, rule="x", reason="z", durable=False, other=first)
    journal.flush()
    journal.state("a", "b", "go", note=[1, 2])
    third = journal.request("carl", "c", "set", durable=False)
    journal.verdict(True, request=third)  # durable, naming a staged request
    journal.actor = "someone-else"
    journal.measurement("V", voltage=1.0, durable=False)
    journal.identity("psu", expected="A", seen="B", ok=False)
    journal.end_run()


def test_every_entry_is_the_reference_encoding_and_hash(journal, journal_path, clock):
    write_scenario(journal, clock)
    journal.flush()
    stored = rows(journal_path)
    assert len(stored) == 29
    prev = "0" * 64
    for row in stored:
        assert row[8] == prev
        assert row[9] == reference_hash(row)
        if "int_keys" not in row[7]:  # read back, int keys are text and sort otherwise
            assert row[7] == reference_payload(json.loads(row[7]))
        prev = row[9]
    by_seq = {row[0]: row for row in stored}
    # Verdicts name the seq their request was written with.
    assert json.loads(by_seq[2][7])["request"] == 1
    assert json.loads(by_seq[24][7]) == {
        "allowed": False,
        "other": 22,
        "reason": "z",
        "request": 23,
        "rule": "x",
    }
    assert json.loads(by_seq[27][7])["request"] == 26
    assert by_seq[19][7] == reference_payload(ODD)
    assert verify_journal(journal_path).entries == 29


def test_the_chain_is_the_one_journals_were_always_written_with(journal, journal_path, clock):
    # Written by the writer as it was before its write path was reworked:
    # the same entries must give the same chain, to the last hash.
    write_scenario(journal, clock)
    journal.flush()
    assert rows(journal_path)[-1][9] == (
        "8e67785ce81344deec0e059c71d971d8a634faab71158637328e5326866a217e"
    )


def test_canonical_payload_and_entry_hash_are_the_reference():
    for payload in (ODD, {}, None, {"a": [{"b": {"c": [None, 1.5]}}]}, {1.5: 1, 0.25: 2}):
        assert canonical_payload(payload) == reference_payload(payload)
    row = (7, "2026-03-14T09:30:00.000000Z", 1000.5, "bänch", "", "request", "me", "{}", "ab")
    fields = [
        "seq",
        "wall_time",
        "mono_time",
        "bench",
        "run_id",
        "kind",
        "actor",
        "payload_json",
        "prev_hash",
    ]
    assert entry_hash(**dict(zip(fields, row, strict=True))) == reference_hash((*row, None))


def test_unwritable_payloads_are_refused_as_before():
    circular: dict = {}
    circular["self"] = circular
    for bad in ({"x": float("nan")}, {"x": float("-inf")}, {"x": object()}, circular):
        with pytest.raises(JournalError, match="not plain JSON"):
            canonical_payload(bad)


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2026, 3, 14, 9, 30, tzinfo=UTC),
        datetime(2026, 3, 14, 9, 30, 0, 1, tzinfo=UTC),
        datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2026, 1, 1, 0, 30, 0, 5, tzinfo=timezone(timedelta(hours=1))),
        datetime(1000, 1, 1, tzinfo=UTC),
        datetime(999, 12, 31, 23, 59, 59, tzinfo=UTC),
        datetime(5, 1, 1, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    ],
)
def test_wall_times_are_strftime_text(moment):
    assert format_wall(moment) == moment.astimezone(UTC).strftime(WALL_FORMAT)

    class Moment(datetime):
        def isoformat(self, *args, **kwargs):  # a subclass is formatted by strftime
            return "not this"

    subclass = Moment(
        moment.year,
        moment.month,
        moment.day,
        moment.hour,
        moment.minute,
        moment.second,
        moment.microsecond,
        tzinfo=moment.tzinfo,
    )
    assert format_wall(subclass) == moment.astimezone(UTC).strftime(WALL_FORMAT)


def test_naive_wall_times_are_refused():
    with pytest.raises(JournalError, match="timezone-aware"):
        format_wall(datetime(2026, 3, 14))


def test_a_staged_payload_is_recorded_as_it_was_when_staged(journal, journal_path):
    payload = {"voltage": 1.0, "seen": [1]}
    journal.stage("measurement", payload)
    payload["voltage"] = 2.0
    payload["seen"].append(2)
    journal.flush()
    with JournalReader(journal_path) as reader:
        assert [e.payload for e in reader.entries()] == [{"voltage": 1.0, "seen": [1]}]


def test_a_staged_payload_spoiled_afterwards_poisons_no_commit(journal, journal_path):
    payload = {"voltage": 1.0}
    journal.stage("measurement", payload)
    payload["voltage"] = float("nan")
    journal.flush()
    journal.measurement("VBUS", voltage=3.0)
    with JournalReader(journal_path) as reader:
        assert [e.payload["voltage"] for e in reader.entries()] == [1.0, 3.0]
    assert journal.staged == 0


def test_unwritable_staged_entries_are_refused_when_staged(journal_path):
    class Clock:
        wall_time = datetime(2026, 3, 14, tzinfo=UTC)
        mono = 1.0

        def wall(self):
            return self.wall_time

        def monotonic(self):
            return self.mono

    clock = Clock()
    with Journal(journal_path, bench="b", clock=clock) as journal:
        with pytest.raises(JournalError, match="not plain JSON"):
            journal.measurement("VBUS", voltage=float("nan"), durable=False)
        with pytest.raises(JournalError, match="not plain JSON"):
            journal.stage("verdict", {"request": [store.Pending("request", {}, None, "", 0, 0)]})
        clock.wall_time = datetime(2026, 3, 14)
        with pytest.raises(JournalError, match="timezone-aware"):
            journal.measurement("VBUS", voltage=1.0, durable=False)
        clock.wall_time = datetime(2026, 3, 14, tzinfo=UTC)
        clock.mono = float("nan")
        with pytest.raises(JournalError, match="finite"):
            journal.measurement("VBUS", voltage=1.0, durable=False)
        clock.mono = 2.0
        assert journal.staged == 0
        journal.measurement("VBUS", voltage=1.0, durable=False)
        journal.measurement("VBUS", voltage=2.0)
    assert verify_journal(journal_path).entries == 2


def test_a_payload_holding_the_stand_in_for_a_reference_is_kept_as_it_is(journal, journal_path):
    request = journal.request("alice", "c", "set", durable=False)
    stand_in = f"{store._REF_TOKEN}:0"
    journal.verdict(True, request=request, note=stand_in, **{stand_in: stand_in}, durable=False)
    journal.flush()
    with JournalReader(journal_path) as reader:
        verdict = list(reader.entries())[-1]
    assert verdict.payload == {
        "allowed": True,
        "note": stand_in,
        stand_in: stand_in,
        "request": request.seq,
    }
    assert verdict.payload_json == reference_payload(verdict.payload)


def test_a_reference_to_an_entry_never_written_is_null(journal, journal_path):
    never = store.Pending("request", {}, None, "", None, 0.0)
    journal.verdict(False, request=never, durable=False)
    journal.flush()
    assert journal.last().payload == {"allowed": False, "request": None}


# Whatever the fields: the writer's text is the reference's, or both refuse it alike.
_text = st.text(st.characters(codec=None, blacklist_categories=()))
_floats = st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=True) | st.sampled_from(
    [1e308, -1e308, -0.0, 5e-324, -5e-324, 2.2250738585072014e-308]
)
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | _floats | _text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=12,
)


def _outcome(function, *args):
    try:
        return function(*args)
    except (JournalError, ValueError, TypeError) as error:  # UnicodeEncodeError: ValueError
        return type(error)


@given(
    seq=st.integers(min_value=-(2**70), max_value=2**70) | st.booleans(),
    wall=_text,
    mono=_floats | st.integers(min_value=-(2**60), max_value=2**60),
    fields=st.lists(_text, min_size=6, max_size=6),
)
def test_entry_hash_is_the_reference_for_any_fields(seq, wall, mono, fields):
    bench, run_id, kind, actor, payload, prev = fields
    row = (seq, wall, mono, bench, run_id, kind, actor, payload, prev)
    ours = _outcome(entry_hash, *row)
    if isinstance(mono, float) and not math.isfinite(mono):
        assert ours is JournalError
    else:
        assert ours == _outcome(reference_hash, (*row, None))


@given(payload=st.dictionaries(_text | st.integers() | _floats, _json, max_size=6))
def test_canonical_payload_is_the_reference_for_any_payload(payload):
    try:
        expected = reference_payload(payload)
        expected.encode("utf-8")
    except (TypeError, ValueError):
        with pytest.raises(JournalError, match="not plain JSON"):
            canonical_payload(payload)
    else:
        assert canonical_payload(payload) == expected


@given(
    moments=st.lists(
        st.datetimes(
            min_value=datetime(1, 1, 1),
            timezones=st.sampled_from([UTC, timezone(timedelta(hours=-5)), timezone(timedelta(0))]),
        ),
        min_size=1,
        max_size=5,
    )
)
def test_wall_times_are_strftime_text_whatever_came_before(moments):
    # The text of a second is kept from one entry to the next: any sequence of times
    # (the same second, a new one, an older one) must still read as strftime's.
    for moment in moments:
        utc = moment.astimezone(UTC)
        if utc.year >= 1000:
            assert format_wall(moment) == utc.strftime(WALL_FORMAT)
    again = moments[0]
    if again.astimezone(UTC).year >= 1000:
        assert format_wall(again) == again.astimezone(UTC).strftime(WALL_FORMAT)
