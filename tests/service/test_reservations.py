"""[service] reservations = "labgrid": only the place's holder changes the bench; anyone stops it.

A real service on the simulated bench, with the coordinator replaced by a
place source the test sets (:class:`Places`); the same service against a
real labgrid coordinator is in tests/labgrid. The gate's decision itself is
checked over every operation, role, name and state of the place.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from interlock.config import load_bench
from interlock.errors import AccessDenied, ConfigError, StateError
from interlock.journal import JournalReader
from interlock.service.reservations import (
    GATED,
    CoordinatorUnknown,
    PlaceInfo,
    ReservationGate,
)
from interlock.service.runtime import Service
from interlock.service.schema import OPERATIONS
from interlock.service.server import ServiceThread
from interlock.sim.host import SimulatorHost
from tests.service.conftest import (
    LEASE_TIMEOUT,
    Served,
    assert_bench_safe,
    bring_up,
    write_bench,
)

ALICE, BOB = "ws-a/alice", "ws-b/bob"
PLACE = "bench-7"


class Places:
    """The coordinator as a test sets it: one place, its holder, up or down."""

    def __init__(self, acquired: str | None = ALICE) -> None:
        self.info: PlaceInfo | None = PlaceInfo(PLACE, acquired, changed=1.0)
        self.down: str | None = None
        self.on_change: Any = lambda old, new: None

    def place(self, name: str) -> PlaceInfo | None:
        if self.down is not None:
            raise CoordinatorUnknown(self.down)
        return self.info if self.info is not None and self.info.name == name else None

    def set(self, acquired: str | None, allowed: frozenset[str] = frozenset()) -> None:
        old = self.info
        self.info = PlaceInfo(PLACE, acquired, allowed, changed=(old.changed if old else 0) + 1)
        self.on_change(old, self.info)


def journal_entries(served: Served) -> list:
    with JournalReader(served.service.settings.journal) as reader:
        return list(reader.entries())


def reserved_bench(directory: Path) -> Path:
    path = write_bench(directory)
    text = path.read_text().replace(
        'io_timeout = "1 s"',
        f'io_timeout = "1 s"\nreservations = "labgrid"\ncoordinator = "127.0.0.1:9"\n'
        f'place = "{PLACE}"',
        1,
    )
    path.write_text(text)
    return path


@pytest.fixture
def reserved(short_dir: Path):
    directory = short_dir / "r"
    directory.mkdir()
    path = reserved_bench(directory)
    places = Places()
    host = SimulatorHost(load_bench(path)).start()
    thread = ServiceThread(Service(path, places=places)).start()
    served = Served(path, thread, host=host, simulator=host.simulator)
    served.places = places  # type: ignore[attr-defined]
    yield served
    served.stop()


# -- the decision, over everything ----------------------------------------------------------

NAMES = st.sampled_from([ALICE, BOB, "alice", "", "ws-a/alice ", "ws-a/ALICE"]) | st.text(
    max_size=12
)
STATES = st.one_of(
    st.none(),
    st.just("down"),
    st.builds(
        PlaceInfo,
        st.just(PLACE),
        st.one_of(st.none(), NAMES),
        st.frozensets(NAMES, max_size=3),
        st.floats(allow_nan=False),
    ),
)


@given(
    role=st.sampled_from(["viewer", "script", "operator"]),
    who=NAMES,
    operation=st.sampled_from([op.name for op in OPERATIONS]) | st.text(max_size=10) | st.none(),
    state=STATES,
)
def test_the_gate_lets_only_the_holder_change_the_bench_and_anyone_stop_it(
    role, who, operation, state
):
    places = Places()
    places.info = state if isinstance(state, PlaceInfo) else None
    places.down = "frozen" if state == "down" else None
    decision = ReservationGate(places, PLACE).decide(role, who, operation)
    holds = (
        isinstance(state, PlaceInfo)
        and state.acquired is not None
        and (who == state.acquired or who in state.allowed)
    )
    if operation in ("estop", "status", "measure", "events") or role == "viewer":
        assert decision.allowed  # anyone may stop; everyone may watch
    if operation in GATED and role != "viewer":
        assert decision.allowed == holds, decision
        if not holds:
            assert PLACE in decision.reason


# -- the service -----------------------------------------------------------------------------


def test_another_user_is_refused_while_the_holder_acts_and_may_still_stop(reserved):
    bob = reserved.client("operator", who=BOB)
    with pytest.raises(AccessDenied, match=f"place {PLACE} is held by {ALICE} in labgrid, not by"):
        bob.arm()
    bob_script = reserved.client("script", who=BOB)
    with pytest.raises(AccessDenied, match="held by ws-a/alice"):
        bob_script.set_voltage("VLOGIC", 1.0)  # over the command channel
    with pytest.raises(AccessDenied, match="held by ws-a/alice"):
        bob_script.lease().acquire()
    assert bob.status()["reservations"]["holder"] == ALICE  # watching is open

    alice = reserved.client("operator", who=ALICE)
    alice.arm()
    lease = alice.lease().acquire()
    bring_up(alice, "VLOGIC", 5.0, 0.3)
    assert reserved.truth()["nets"]["VLOGIC"]["voltage"] > 4.5
    bob.estop()  # anyone may stop the bench
    assert reserved.controller.state == "fault"
    assert_bench_safe(reserved.truth())
    lease.release()

    # Refusals are journaled in aggregate under the reservations' rule, with the reason.
    reserved.thread.gate.refusals.flush()
    verdicts = [e.payload for e in journal_entries(reserved) if e.kind == "verdict"]
    refused = [v for v in verdicts if v.get("rule") == "reservations.labgrid"]
    assert refused and all("held by ws-a/alice" in v["reason"] for v in refused)


def test_a_place_lease_outlives_its_client_and_a_release_of_the_place_drives_the_bench_safe(
    reserved,
):
    alice = reserved.client("operator", who=ALICE)
    alice.arm()
    lease_id = alice.place_lease(PLACE).id
    bring_up(alice, "VLOGIC", 5.0, 0.3)
    alice.close()  # as labgrid-client exits after `power on`
    time.sleep(3 * LEASE_TIMEOUT)  # no heartbeat: a client's lease would be lost by now
    assert reserved.controller.state == "live"
    assert reserved.service.leases.holder().place == PLACE

    # The same holder, from another process, gets the same lease (labgrid's `power off`).
    again = reserved.client("operator", who=ALICE)
    assert again.place_lease(PLACE).id == lease_id

    reserved.places.set(None)  # `labgrid-client release`
    assert reserved.controller.state == "fault"
    assert "place bench-7 released" in reserved.controller.fault_cause
    assert_bench_safe(reserved.truth())
    places = [e.payload for e in journal_entries(reserved) if e.payload.get("action") == "place"]
    assert places[-1]["event"] == "released"


def test_a_place_held_by_someone_else_takes_the_lease_back(reserved):
    alice = reserved.client("operator", who=ALICE)
    alice.arm()
    alice.place_lease(PLACE)
    reserved.places.set(BOB)
    assert reserved.service.leases.holder() is None
    assert reserved.controller.state == "fault"  # armed: a lost lease trips
    assert "now held by ws-b/bob" in reserved.controller.fault_cause


def test_a_coordinator_out_of_reach_grants_nothing_and_takes_nothing(reserved):
    alice = reserved.client("operator", who=ALICE)
    alice.arm()
    alice.place_lease(PLACE)
    bring_up(alice, "VLOGIC", 5.0, 0.3)
    reserved.places.down = "UNAVAILABLE: ping timeout"
    with pytest.raises(AccessDenied, match="nobody can tell who holds place bench-7"):
        alice.set_voltage("VLOGIC", 4.0)
    time.sleep(2 * LEASE_TIMEOUT)
    assert reserved.controller.state == "live"  # no outage trips a bench
    assert (
        reserved.client("viewer", who=BOB).status()["reservations"]["coordinator_reachable"]
        is False
    )
    reserved.client("viewer", who=BOB).estop()
    assert_bench_safe(reserved.truth())


def test_a_place_lease_needs_reservations(served):
    client = served.client("operator")
    with pytest.raises(StateError, match="place leases need"):
        client.place_lease("anything")


def test_a_place_lease_names_this_benchs_place(reserved):
    alice = reserved.client("operator", who=ALICE)
    with pytest.raises(AccessDenied, match="is place bench-7 in labgrid, not bench-8"):
        alice.place_lease("bench-8")


@pytest.mark.parametrize(
    ("lines", "key", "problem"),
    [
        ('reservations = "labgrid"', "service.coordinator", "missing"),
        ('reservations = "ldap"', "service.reservations", "expected one of none, labgrid"),
        ('coordinator = "c:20408"', "service.coordinator", 'only with reservations = "labgrid"'),
        ('reservations = "labgrid"\ncoordinator = "c"', "service.coordinator", "HOST:PORT"),
        (
            'reservations = "labgrid"\ncoordinator = "c:1"\nplace = "a b"',
            "service.place",
            "expected 1 to 64",
        ),
    ],
)
def test_reservation_keys_are_checked_naming_file_and_key(short_dir, lines, key, problem):
    path = write_bench(short_dir)
    path.write_text(path.read_text().replace('io_timeout = "1 s"', f'io_timeout = "1 s"\n{lines}'))
    with pytest.raises(ConfigError) as error:
        load_bench(path)
    assert error.value.key == key and problem in str(error.value)
