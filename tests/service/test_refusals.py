"""Refusals of access: counted, journaled in aggregate, never in the way of the stop."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from interlock.journal import Journal, JournalReader
from interlock.service import refusals as refusals_module
from interlock.service.access import UNIX_PEER, identity_of
from interlock.service.refusals import OTHERS, RefusalLog, RefusalSource
from tests.service.conftest import Served, assert_bench_safe, bring_up


def _entries(path: Path) -> list:
    with JournalReader(path) as reader:
        return list(reader.entries())


def _refusals(entries: list) -> list:
    return [e for e in entries if e.kind == "verdict" and e.payload.get("rule") == "access"]


def _source(who: str, client: str = "tool", role: str | None = None) -> RefusalSource:
    identity = identity_of(role, who, client)
    return RefusalSource(identity.role, identity.who, identity.client, UNIX_PEER)


def test_many_refusals_of_few_sources_are_a_few_entries(tmp_path):
    path = tmp_path / "journal.sqlite"
    with Journal(path, bench="b") as journal:
        log = RefusalLog(lambda: journal, interval=3600)
        for i in range(1000):
            log.record(_source(f"caller{i % 3}"), "invalid token", method="GET", path="/status")
        log.record(_source("caller0"), "no token", method="POST", path="/estop")
        log.stop()
    entries = _entries(path)
    assert len(entries) == 8  # a request and a verdict per source and reason
    verdicts = _refusals(entries)
    counts = {(e.payload["reason"], e.payload["count"]) for e in verdicts}
    assert counts == {("invalid token", 334), ("invalid token", 333), ("no token", 1)}
    requests = {e.seq: e for e in entries if e.kind == "request"}
    for verdict in verdicts:
        request = requests[verdict.payload["request"]]
        assert request.payload["action"] == "access"
        assert request.payload["count"] == verdict.payload["count"]
        assert request.payload["peer"] == UNIX_PEER
    assert requests[verdicts[-1].payload["request"]].payload["path"] == "/estop"


def test_sources_beyond_the_cap_are_counted_as_others(tmp_path):
    path = tmp_path / "journal.sqlite"
    with Journal(path, bench="b") as journal:
        log = RefusalLog(lambda: journal, interval=3600, max_sources=4)
        for i in range(100):
            log.record(_source(f"caller{i}"), "invalid token")
        counted = log.flush()
    assert len(counted) == 5
    others = [c for c in counted if c.source == OTHERS]
    assert others and others[0].count == 96
    assert sum(c.count for c in counted) == 100


def test_the_first_refusal_is_journaled_within_an_interval(tmp_path):
    path = tmp_path / "journal.sqlite"
    with Journal(path, bench="b") as journal:
        log = RefusalLog(lambda: journal, interval=0.05)
        log.record(_source("mallory"), "no token", method="POST", path="/arm")
        deadline = time.monotonic() + 10
        while not _refusals(_entries(path)):
            assert time.monotonic() < deadline, "not journaled"
            time.sleep(0.02)
        log.stop()
    assert [e.payload["count"] for e in _refusals(_entries(path))] == [1]


texts = st.text(max_size=300)  # any text a header or a hello may carry


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    refused=st.lists(
        st.tuples(
            st.sampled_from([None, "viewer", "script"]),
            texts,
            texts,
            st.sampled_from(["no token", "invalid token", "the viewer role may not do this"]),
        ),
        max_size=200,
    ),
    cap=st.integers(min_value=1, max_value=8),
)
def test_nothing_is_lost_and_the_journal_grows_by_the_sources_only(tmp_path_factory, refused, cap):
    """Whatever the callers say: every refusal counted once, at most cap + 1 sources journaled."""
    path = tmp_path_factory.mktemp("refusals") / "journal.sqlite"
    with Journal(path, bench="b") as journal:
        log = RefusalLog(lambda: journal, interval=3600, max_sources=cap)
        for role, who, client, reason in refused:
            log.record(_source(who, client, role), reason, channel="command", op="hello")
        log.stop()
        assert log.total == len(refused)
    verdicts = _refusals(_entries(path))
    assert sum(e.payload["count"] for e in verdicts) == len(refused)
    assert len(verdicts) <= cap + 1
    assert len(_entries(path)) == 2 * len(verdicts)


# -- a flood of wrong tokens against a running service ----------------------------------------


FLOODERS = 4


def _flood(served: Served, stop: threading.Event, sent: list[int], index: int) -> None:
    transport = httpx.HTTPTransport(uds=str(served.service.settings.socket))
    with httpx.Client(transport=transport, base_url="http://interlock", timeout=30) as raw:
        while not stop.is_set():
            response = raw.post(
                "/arm",
                headers={"Authorization": f"Bearer wrong-{index}", "X-Interlock-User": "mallory"},
            )
            assert response.status_code == 401
            sent[index] += 1


def test_a_flood_of_wrong_tokens_neither_grows_the_journal_nor_holds_the_stop(
    serve_bench, monkeypatch
):
    monkeypatch.setattr(refusals_module, "INTERVAL_S", 0.25)
    served = serve_bench()
    operator = served.client("operator")
    operator.arm()
    script = served.client("script")
    with script.lease():
        bring_up(script)
        stop, sent = threading.Event(), [0] * FLOODERS
        flooders = [
            threading.Thread(target=_flood, args=(served, stop, sent, i), daemon=True)
            for i in range(FLOODERS)
        ]
        for flooder in flooders:
            flooder.start()
        try:
            while sum(sent) < 200:  # the flood is well under way
                time.sleep(0.01)
            before_stop = sum(sent)
            stopped_at = time.monotonic()
            served.client("viewer").estop()
            while sum(sent) < before_stop + 200:  # and goes on after the stop
                time.sleep(0.01)
        finally:
            stop.set()
            for flooder in flooders:
                flooder.join(30)
        flood_ended = time.monotonic()
    assert served.controller.state == "fault"
    truth = served.truth()
    assert_bench_safe(truth)
    offs = [c["monotonic"] for c in truth["instruments"]["psu"]["commands"]]
    offs = [t for t, c in zip(offs, truth["instruments"]["psu"]["commands"], strict=True)
            if t >= stopped_at and c["line"].startswith("OUTP OFF")]  # fmt: skip
    assert offs and offs[0] < flood_ended  # the stop did not wait for the flood

    served.thread.gate.refusals.flush()
    entries = _entries(served.service.settings.journal)
    verdicts = _refusals(entries)
    refused = sum(sent)
    assert sum(e.payload["count"] for e in verdicts) == refused  # every refusal counted
    # One entry per source per interval, not one per refusal.
    assert len(verdicts) < refused / 10, (len(verdicts), refused)
    seconds = flood_ended - stopped_at + 5
    assert len(verdicts) <= FLOODERS * (seconds / refusals_module.INTERVAL_S + 2)
    # The stop is on the record in its order: asked, latched, outputs off.
    estop = next(e for e in entries if e.kind == "operator" and e.payload["action"] == "estop")
    fault = next(e for e in entries if e.kind == "fault" and e.seq > estop.seq)
    off = next(
        e
        for e in entries
        if e.kind == "command" and str(e.payload.get("data", "")).startswith("OUTP OFF")
        and e.seq > estop.seq
    )  # fmt: skip
    assert estop.seq < fault.seq < off.seq
    assert estop.mono_time - stopped_at < 5
