"""Write-ahead: only a durable intent can be sent, exactly once, to its instrument."""

from __future__ import annotations

import sqlite3

import pytest

from interlock.errors import JournalError
from interlock.journal import DurableIntent, JournaledWriter, JournalReader, send_journaled
from interlock.journal.entries import payload_data
from interlock.journal.intent import is_off_only, is_pure_query


def test_intent_is_durable_before_it_is_returned(journal, journal_path):
    intent = journal.command_intent(
        "psu", b"VOLT 5,(@1)\n", net="VBUS", quantity="voltage", value=5.0
    )
    # A second, independent connection sees it: it is committed, not buffered.
    with JournalReader(journal_path) as reader:
        (entry,) = reader.entries()
    assert entry.seq == intent.seq and entry.hash == intent.entry_hash
    assert entry.kind == "command"
    assert entry.payload == {
        "instrument": "psu",
        "data": "VOLT 5,(@1)\n",
        "net": "VBUS",
        "quantity": "voltage",
        "value": 5.0,
    }
    assert payload_data(entry.payload) == intent.data


def test_binary_bytes_are_kept_exactly(journal):
    frame = b"\x02SET K3 1\xff\x9a\x03"
    intent = journal.command_intent("relay", frame)
    entry = journal.last()
    assert "data" not in entry.payload
    assert payload_data(entry.payload) == frame == intent.data


def test_send_writes_exactly_the_journaled_bytes_once(journal):
    intent = journal.command_intent("psu", "OUTP ON,(@1)\n")
    wire: list[bytes] = []
    port = JournaledWriter("psu", wire.append)
    port.send(intent)
    assert wire == [b"OUTP ON,(@1)\n"] and intent.sent
    with pytest.raises(JournalError, match="already sent"):
        port.send(intent)
    assert wire == [b"OUTP ON,(@1)\n"]


def test_raw_bytes_are_refused(journal):
    wire: list[bytes] = []
    with pytest.raises(JournalError, match="only a DurableIntent"):
        send_journaled(b"OUTP ON\n", wire.append)  # type: ignore[arg-type]
    with pytest.raises(JournalError, match="only a DurableIntent"):
        JournaledWriter("psu", wire.append).send("OUTP ON\n")  # type: ignore[arg-type]
    assert wire == []


def test_intent_cannot_be_forged_or_changed(journal):
    with pytest.raises(TypeError, match=r"only made by Journal\.command_intent"):
        DurableIntent(object(), seq=1, instrument="psu", data=b"OUTP ON\n", entry_hash="0" * 64)
    intent = journal.command_intent("psu", b"VOLT 1\n")
    with pytest.raises(AttributeError):
        intent.data = b"VOLT 100\n"
    assert intent.data == b"VOLT 1\n"


def test_intent_goes_only_to_its_instrument(journal):
    intent = journal.command_intent("psu", b"OUTP ON\n")
    wire: list[bytes] = []
    with pytest.raises(JournalError, match="is for 'psu', not 'dmm'"):
        JournaledWriter("dmm", wire.append).send(intent)
    assert wire == [] and not intent.sent


def test_failed_journal_write_yields_no_intent(journal):
    journal.close()
    with pytest.raises(JournalError):
        journal.command_intent("psu", b"OUTP ON\n")


@pytest.mark.parametrize(
    ("line", "off_only"),
    [
        (b"OUTP OFF,(@1,2);:OUTP? (@1,2)\n", True),
        (b"OUTP OFF,(@3)\n", True),
        (b":OUTPut:STATe 0,(@1)\n", True),
        (b"outp off\n", True),
        (b"OUTP ON,(@1)\n", False),
        (b"OUTP OFF,(@1);:VOLT 5,(@1)\n", False),
        (b"VOLT 0,(@1)\n", False),
        (b"OUTP:PROT:CLE (@1)\n", False),
        (b"OUTP\n", False),
        (b"OUTP OFF\nOUTP ON\n", False),
        (b"\xff\n", False),
        (b"\n", False),
        (b"OUTP OFF,(@1)\rOUTP ON,(@1)\n", False),  # CR ends a line for some instruments
        (b"OUTP OFF,(@1) VOLT 30\n", False),
        (b"OUTP\tON,(@1)?\n", False),
        (b"DIG:OUTP?;OUTP 0\n", False),  # relative: would be DIG:OUTP 0
        (b"OUTP OFF,(@1);OUTP? (@1)\n", False),
        (b"OUTP OFF,(@1);:MEAS:VOLT? (@1)\n", False),
        (b"OUTP OFF,(@1:3);:OUTP? (@1:3)\n", True),
    ],
)
def test_off_only_lines(line, off_only):
    assert is_off_only(line) is off_only


def test_a_safe_off_intent_is_journaled_first_when_the_journal_writes(journal, journal_path):
    intent = journal.safe_off_intent("psu", b"OUTP OFF,(@1)\n", purpose="safe-state")
    assert intent.seq > 0
    with JournalReader(journal_path) as reader:
        entry = list(reader.entries())[-1]
    assert entry.seq == intent.seq
    assert "unjournaled" not in entry.payload
    assert journal.unjournaled == 0


def test_a_safe_off_intent_goes_out_when_the_journal_cannot_be_written(journal, journal_path):
    other = sqlite3.connect(journal_path, isolation_level=None, timeout=0)
    other.execute("BEGIN IMMEDIATE")
    try:
        intent = journal.safe_off_intent("psu", b"OUTP OFF,(@1)\n", purpose="safe-state")
        sent = []
        send_journaled(intent, sent.append)  # it may be sent: nothing else could
        assert sent == [b"OUTP OFF,(@1)\n"]
        assert journal.unjournaled == 1
        with pytest.raises(JournalError):  # the exception is for off-only lines alone
            journal.safe_off_intent("psu", b"OUTP ON,(@1)\n")
    finally:
        other.execute("ROLLBACK")
        other.close()
    journal.flush()
    with JournalReader(journal_path) as reader:
        entry = list(reader.entries())[-1]
    assert entry.kind == "command"
    assert entry.payload["data"] == "OUTP OFF,(@1)\n"
    assert "database is locked" in entry.payload["unjournaled"]


def test_an_off_only_check_never_lets_a_setting_line_through_unjournaled(journal):
    journal.close()
    with pytest.raises(JournalError):
        journal.safe_off_intent("psu", b"VOLT 5,(@1)\n")
    intent = journal.safe_off_intent("psu", b"OUTP OFF,(@1)\n")
    assert intent.seq == 0 and journal.unjournaled == 1


@pytest.mark.parametrize(
    "line",
    [b"MEAS:VOLT? (@1)\rOUTP ON,(@1)\n", b"VOLT\t30?\n", b"MEAS?\nOUTP ON\n", b"MEAS?\x00\n"],
)
def test_a_line_hiding_a_second_command_is_no_pure_query(line):
    assert not is_pure_query(line)
