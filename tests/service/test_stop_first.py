"""The stop first: while a stop is under way, the service starts nothing new but stops.

A request that arrives during a stop (on the command channel or HTTP) waits
for the stop to end, and so does the monitor's next pass; another stop, and a
lease's heartbeat, go through at once. Timings here only ever assert that
something *waited* (a loaded machine makes waits longer, never shorter) or
that it finished before the stop was let go (order, not speed).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest

from interlock.controller import stop_first
from tests.service.conftest import Served, bring_up
from tests.service.test_channel import Line

# Long enough that a request which does not wait is answered well before it on any machine
# this suite runs on (a channel status is answered in about a millisecond).
HELD_S = 0.3


@pytest.fixture
def held() -> Iterator[Callable[[], threading.Event]]:
    """hold(): a stop under way in a thread of its own until the returned event is set."""
    releases: list[threading.Event] = []
    threads: list[threading.Thread] = []

    def hold() -> threading.Event:
        entered, release = threading.Event(), threading.Event()

        def stop() -> None:
            with stop_first.stopping():
                entered.set()
                release.wait(10)

        thread = threading.Thread(target=stop, daemon=True)
        thread.start()
        assert entered.wait(5)
        releases.append(release)
        threads.append(thread)
        return release

    yield hold
    for release in releases:
        release.set()
    for thread in threads:
        thread.join(5)


def started(call: Callable[[], Any]) -> Future[Any]:
    pool = ThreadPoolExecutor(1)
    future = pool.submit(call)
    pool.shutdown(wait=False)
    return future


# -- the part itself -------------------------------------------------------------------


def test_other_work_waits_for_the_stop_and_goes_on_when_it_ends(held):
    assert stop_first.yield_to_stop() and not stop_first.under_way()
    release = held()
    assert stop_first.under_way()
    waiting = started(stop_first.yield_to_stop)
    time.sleep(HELD_S)
    assert not waiting.done()
    release.set()
    assert waiting.result(5) is True
    assert not stop_first.under_way()


def test_the_stopping_thread_never_waits_for_itself_nor_for_a_stop_it_nests():
    with stop_first.stopping():
        begun = time.monotonic()
        with stop_first.stopping():
            assert stop_first.yield_to_stop(timeout=5)
        assert stop_first.yield_to_stop(timeout=5)
        assert time.monotonic() - begun < 4  # not the 5 s timeout: it did not wait
    assert not stop_first.under_way()


def test_a_stop_that_never_ends_holds_nobody_longer_than_the_bound(held):
    held()
    begun = time.monotonic()
    assert stop_first.yield_to_stop(timeout=0.2) is False
    assert time.monotonic() - begun >= 0.2


def test_an_error_in_a_stop_still_lets_the_others_go():
    with pytest.raises(RuntimeError), stop_first.stopping():
        raise RuntimeError("the stop failed")
    assert not stop_first.under_way()


# -- where the service yields -----------------------------------------------------------


def test_a_channel_request_waits_for_a_stop_under_way(served: Served, held):
    line = Line(served)
    assert line.hello(served.token("viewer"))["ok"]["role"] == "viewer"
    release = held()
    answer = started(lambda: line.call({"op": "status"}))
    time.sleep(HELD_S)
    assert not answer.done(), "a status was served while a stop was under way"
    release.set()
    assert "ok" in answer.result(10)
    line.close()


def test_an_http_request_waits_for_a_stop_under_way(served: Served, held):
    viewer = served.client("viewer")
    viewer.status()  # connected before the stop: only the request is timed
    release = held()
    answer = started(viewer.status)
    time.sleep(HELD_S)
    assert not answer.done(), "a status was served while a stop was under way"
    release.set()
    assert answer.result(10)["state"]


@pytest.mark.parametrize("way", ["channel", "http"])
def test_a_stop_goes_through_while_another_is_under_way(served: Served, held, way):
    served.client("operator").arm()
    script = served.client("script")
    with script.lease():
        bring_up(script)
    line = Line(served)
    line.hello(served.token("viewer"))
    viewer = served.client("viewer")
    release = held()
    stop = started(lambda: line.call({"op": "estop"}) if way == "channel" else viewer.estop())
    # Answered while the other stop is still held: it waited for nothing.
    assert stop.result(10) is not None
    assert served.controller.state == "fault"
    release.set()
    line.close()


def test_a_leases_heartbeat_goes_on_through_a_stop(served: Served, held):
    script = served.client("script")
    with script.lease() as lease:
        line = Line(served)
        line.hello(served.token("script"))
        release = held()
        beat = started(lambda: line.call({"op": "heartbeat", "lease_id": lease.id}))
        assert "ok" in beat.result(10)
        release.set()
        line.close()


def test_the_monitor_starts_no_pass_during_a_stop(served: Served, held):
    served.client("operator").arm()
    script = served.client("script")
    with script.lease():
        bring_up(script)
        monitor = served.controller.monitor
        deadline = time.monotonic() + 10
        while monitor.passes < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        release = held()
        time.sleep(0.1)  # a pass under way when the stop began may still finish
        before = monitor.passes
        time.sleep(HELD_S)
        assert monitor.passes == before, "a monitor pass began during a stop"
        release.set()
        deadline = time.monotonic() + 10
        while monitor.passes == before and time.monotonic() < deadline:
            time.sleep(0.01)
        assert monitor.passes > before, "the monitor did not go on after the stop"
