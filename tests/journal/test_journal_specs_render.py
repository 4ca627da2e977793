"""What people type (--since, --max-age, --max-bytes) and how entries read back to them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

import interlock.journal
from interlock.journal.render import describe
from interlock.journal.specs import parse_duration, parse_since, parse_size

NOW = datetime(2026, 3, 14, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "text, seconds",
    [
        ("30s", 30),
        ("10m", 600),
        ("2h", 7200),
        ("7d", 604800),
        ("1h30m", 5400),
        ("1.5h", 5400),
        ("2w", 1209600),
    ],
)
def test_durations(text, seconds):
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "10", "m", "10 minutes", "-5m", "10m x"])
def test_bad_durations(text):
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


def test_since_relative_or_iso():
    assert parse_since("10m", NOW) == NOW - timedelta(minutes=10)
    assert parse_since("2026-03-14T09:30:00Z", NOW) == datetime(2026, 3, 14, 9, 30, tzinfo=UTC)
    # Naive times are UTC, as everything in the journal.
    assert parse_since("2026-03-14 09:30", NOW) == datetime(2026, 3, 14, 9, 30, tzinfo=UTC)
    with pytest.raises(ValueError, match="not a time"):
        parse_since("yesterday", NOW)


@pytest.mark.parametrize(
    "text, size",
    [
        ("500", 500),
        ("500b", 500),
        ("500k", 500_000),
        ("50M", 50_000_000),
        ("2G", 2 * 10**9),
        ("1KiB", 1024),
        ("3MiB", 3 * 1024**2),
    ],
)
def test_sizes(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "lots", "5 T", "-1"])
def test_bad_sizes(text):
    with pytest.raises(ValueError, match="not a size"):
        parse_size(text)


def test_describe_every_kind(journal):
    journal.begin_run("r")
    lines = [
        describe(journal.identity("dut", expected="ID 10 kOhm", seen="ID 4.7 kOhm", ok=False)),
        describe(journal.append("command", {"instrument": "relays", "data_hex": "02ff03"})),
        describe(
            journal.request("bob", "console", "set", relay="K3", quantity="relay", value=True)
        ),
        describe(journal.operator("olga", "estop")),
        describe(
            journal.append("journal", {"action": "prune", "removed": 3, "ranges": [[1, 2], [5, 5]]})
        ),
        describe(journal.measurement("VBUS", voltage=24.0, temperature=31.5)),
    ]
    assert lines == [
        "dut MISMATCH: expected 'ID 10 kOhm', seen 'ID 4.7 kOhm'",
        "relays <- '02 ff 03'",
        "set K3 relay=closed (via console)",
        "estop",
        "pruned 3 entries (1..2, 5)",
        "VBUS 24 V  [temperature=31.5]",
    ]


def test_public_api_is_exported():
    for name in interlock.journal.__all__:
        assert hasattr(interlock.journal, name), name
    assert set(interlock.journal.__all__) >= {
        "Journal",
        "DurableIntent",
        "JournaledWriter",
        "send_journaled",
        "verify_journal",
        "JournalReader",
        "Kind",
        "Entry",
    }
