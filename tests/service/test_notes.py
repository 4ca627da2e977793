"""A client's marker in the run's journal (``note``): what the runner sends before each step."""

from __future__ import annotations

import pytest

from interlock.errors import AccessDenied, InvalidRequest
from interlock.journal import JournalReader
from interlock.service.schema import MAX_NOTE, NOTE


def _notes(served):
    with JournalReader(served.service.settings.journal) as reader:
        return [
            (entry.actor, entry.payload)
            for entry in reader.entries()
            if entry.kind == "request" and entry.payload.get("action") == "note"
        ]


@pytest.mark.parametrize("over_http", [False, True], ids=["channel", "http"])
def test_a_note_is_journaled_with_its_step_by_either_way_in(served, over_http):
    client = served.client(who="tester")
    arguments = {"text": "step 3/5: set VLOGIC to 5 V", "step": 3}
    with client.lease():
        if over_http:  # the client sends it on the command channel when it can
            client._request(NOTE, arguments)
        else:
            client._call(NOTE, **arguments)
        client.note("soak begins")
    served.service.journal.flush()
    notes = _notes(served)
    assert [payload for _, payload in notes] == [
        {
            "step": 3,
            "text": "step 3/5: set VLOGIC to 5 V",
            "client": notes[0][1]["client"],
            "action": "note",
        },
        {"text": "soak begins", "client": notes[1][1]["client"], "action": "note"},
    ]
    assert {actor for actor, _ in notes} == {"tester"}


@pytest.mark.parametrize(
    ("text", "step"),
    [("x" * (MAX_NOTE + 1), None), ("ok", 0), ("ok", -1), ("ok", 10**7), ("\udcff", None)],
    ids=["long", "step 0", "negative", "huge", "surrogate"],
)
def test_a_note_is_bounded(served, text, step):
    client = served.client()
    with pytest.raises(InvalidRequest):
        client.note(text, step)
    assert _notes(served) == []


def test_a_note_is_the_lease_holders_and_a_scripts(served):
    holder, other = served.client(), served.client()
    with holder.lease(), pytest.raises(Exception, match="lease"):
        other.note("not my run")
    with pytest.raises(AccessDenied):
        served.client(role="viewer").note("a viewer writes nothing")
    # The refusal is journaled, as every refusal is: the request, then its verdict.
    served.service.journal.flush()
    with JournalReader(served.service.settings.journal) as reader:
        entries = list(reader.entries())
    (refused,) = [e for e in entries if e.payload.get("action") == "note"]
    assert refused.payload["text"] == "not my run"
    verdict = next(e for e in entries if e.kind == "verdict" and e.seq > refused.seq)
    assert verdict.payload["allowed"] is False and verdict.payload["rule"] == "lease"
