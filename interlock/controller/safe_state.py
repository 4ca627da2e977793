"""The safe-state procedure: outputs off in power-off order, relays open, verified.

It is given what it acts on (:class:`OffPlan`: the power-off steps, each
supply with its wired channels, the board, the other switch units) and the
journal, and reaches into nothing else. The steps go in order; within a step the supplies are sent
their off commands side by side (:func:`power_off_steps` says what may go
together). It carries on past individual errors and reports what it could
not verify. When a supply does not answer, the relays are opened before
trying to reach it again: they disconnect the DUT whatever the supply is
doing. When the journal itself cannot be written, the off commands go out all
the same (failing safe comes before journaling: see
:meth:`~interlock.journal.store.Journal.safe_off_intent`), are logged at once
and journaled, flagged, when the journal writes again; the procedure also
stops heartbeating the relay board, whose own watchdog then opens every
relay whatever happened to the command.

Each supply is turned off by :func:`_turn_off` and verified by
:func:`_verify_off`, neither touching another supply nor the report: each
returns its :class:`SupplyOutcome`, which the procedure merges.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from interlock.config import WiredChannel
from interlock.controller.side_by_side import SideBySide
from interlock.errors import InstrumentError, InterlockError, JournalError
from interlock.journal import Journal
from interlock.protocols import PowerSupply, RelayBank, SwitchUnit

log = logging.getLogger(__name__)

# A journal that was only busy (a slow commit, another process's write) gets this
# long, once the outputs are off, to take the records the off commands went without.
LATE_RECORD_WAIT_S = 1.0


@dataclass
class SafeStateReport:
    reason: str
    started: float
    finished: float = 0.0
    outputs_off_at: float | None = None  # monotonic time all outputs were confirmed off
    done: list[str] = field(default_factory=list)
    unverified: list[str] = field(default_factory=list)
    journal_down: bool = False  # off commands went out before their record could be written

    @property
    def verified(self) -> bool:
        return not self.unverified


@dataclass(frozen=True)
class SupplyOff:
    """One supply and its wired channels in power-off order: off in one exchange (the
    supply executes a channel list in order, and reads it back in the same line)."""

    name: str
    supply: PowerSupply
    channels: tuple[int, ...]
    nets: tuple[str, ...]


@dataclass
class SupplyOutcome:
    """What one supply's step of the safe state found: merged into the report by the
    procedure, so that supplies could be handled side by side."""

    done: list[str] = field(default_factory=list)
    unverified: list[str] = field(default_factory=list)
    unreachable: str | None = None  # why it did not answer

    def into(self, report: SafeStateReport) -> None:
        report.done.extend(self.done)
        report.unverified.extend(self.unverified)


@dataclass(frozen=True)
class OffPlan:
    """What the safe state acts on. ``trusted(name)`` is asked as each step runs: an
    instrument that is not the one bench.toml names is never commanded, not even off."""

    steps: tuple[tuple[SupplyOff, ...], ...]  # in power-off order; one step's supplies at once
    all_supplies: tuple[str, ...]
    board: RelayBank
    trusted: Callable[[str], bool]
    identify: Callable[[PowerSupply], None]  # raises unless it is the one named
    relays_of: Callable[[Iterable[int]], frozenset[str]]
    units: tuple[SwitchUnit, ...] = ()  # switch units besides the board

    @property
    def supplies(self) -> tuple[SupplyOff, ...]:
        """Each supply once with all its wired channels, in the order the steps name them."""
        merged: dict[str, list[SupplyOff]] = {}
        for step in self.steps:
            for target in step:
                merged.setdefault(target.name, []).append(target)
        return tuple(
            SupplyOff(
                name,
                parts[0].supply,
                tuple(c for part in parts for c in part.channels),
                tuple(n for part in parts for n in part.nets),
            )
            for name, parts in merged.items()
        )


def power_off_steps(
    channels: Sequence[WiredChannel],
    supplies: Mapping[str, PowerSupply],
    steps: Sequence[Collection[str]],
) -> tuple[tuple[SupplyOff, ...], ...]:
    """The safe state's steps, from ``channels`` in power-off order and the profile's
    ``steps`` (its ``power_off``: a net, or an array of nets that go off together).

    A step goes only once the one before it is done; the supplies of one step are sent
    their off commands at once. Consecutive steps of one supply alone share its exchange
    (it executes a channel list in order). The wired nets the profile does not name are
    one last step: nothing says which of them comes first.
    """
    step_of = {net: i for i, step in enumerate(steps) for net in step}
    grouped: dict[int, dict[str, list[WiredChannel]]] = {}
    for channel in channels:
        index = step_of.get(channel.net, len(steps))
        grouped.setdefault(index, {}).setdefault(channel.supply, []).append(channel)
    merged: list[dict[str, list[WiredChannel]]] = []
    for index in sorted(grouped):
        step = grouped[index]
        last = merged[-1] if merged and index < len(steps) else None
        if last is not None and len(last) == 1 and list(last) == list(step):
            next(iter(last.values())).extend(next(iter(step.values())))
        else:
            merged.append(step)
    return tuple(
        tuple(
            SupplyOff(
                name,
                supplies[name],
                tuple(c.channel for c in chans),
                tuple(c.net for c in chans),
            )
            for name, chans in step.items()
        )
        for step in merged
    )


def drive_safe(
    reason: str,
    plan: OffPlan,
    journal: Journal,
    *,
    stop_heartbeat: Callable[[str], None],
    state: Callable[[], str],
    side_by_side: SideBySide | None = None,
) -> SafeStateReport:
    together = side_by_side.all if side_by_side is not None else _one_after_another
    report = SafeStateReport(reason=reason, started=time.monotonic())
    unjournaled_before = journal.unjournaled
    unreachable: dict[str, str] = {}  # supply -> why it did not answer

    for name in sorted(n for n in plan.all_supplies if not plan.trusted(n)):
        report.unverified.append(f"{name}: not the instrument bench.toml names; not commanded")
    for step in plan.steps:
        # A supply that did not answer in an earlier step is not waited for again here:
        # it is reconnected once the relays are open.
        targets = [t for t in step if plan.trusted(t.name) and t.name not in unreachable]
        for target, outcome in zip(targets, together(_turn_off, targets), strict=True):
            outcome.into(report)
            if outcome.unreachable is not None:
                unreachable[target.name] = outcome.unreachable

    board = plan.board
    try:
        if not plan.trusted(board.name):
            raise InstrumentError(board.name, "not the board bench.toml names; not commanded")
        board.open_all(purpose="safe-state")  # journaled by the driver, even with it down
        report.done.append("relays commanded open")
    except InstrumentError as error:
        report.unverified.append(f"relays: {error}")
    for unit in plan.units:
        _open_unit(unit, plan.trusted).into(report)

    journal_down = journal.unjournaled > unjournaled_before
    # A supply that stopped answering: reconnect, re-identify, then turn it off. Not
    # with the journal down: its identity check would wait for the journal, and the
    # relays are open already.
    targets_by_supply = {target.name: target for target in plan.supplies}
    for name in sorted(unreachable):
        if journal_down:
            report.unverified.append(f"{name}: unreachable ({unreachable[name]}); not retried")
        else:
            target = targets_by_supply[name]
            _reconnect_and_turn_off(target, unreachable[name], plan.identify).into(report)

    # Verify by reading back (pure queries: journaled with the next commit): outputs
    # and relay contacts.
    outputs_ok = True
    trusted = [target for target in targets_by_supply.values() if plan.trusted(target.name)]
    for outcome in together(_verify_off, trusted):
        outcome.into(report)
        outputs_ok = outputs_ok and not outcome.unverified
    if outputs_ok:
        report.outputs_off_at = time.monotonic()
    if journal_down:
        journal_down = not _records_written_late(journal, report)
    report.journal_down = journal_down
    if journal_down:
        # Defence in depth: starve the board's watchdog, which opens every relay on its own.
        stop_heartbeat(f"journal failed during safe state ({reason})")
        report.unverified.append(
            "journal cannot be written: off commands sent unjournaled (journaled, flagged, "
            "when it writes again); relay board heartbeat stopped"
        )
    with contextlib.suppress(InstrumentError):
        if not plan.trusted(board.name):
            raise InstrumentError(board.name, "untrusted")
        contacts = board.get_state().contacts
        if contacts:
            welded = ", ".join(sorted(plan.relays_of(contacts)))
            report.unverified.append(f"relay contacts still closed: {welded}")
    report.finished = time.monotonic()
    with contextlib.suppress(JournalError):
        now = state()
        journal.state(
            now,
            now,
            "safe-state",
            durable=not report.journal_down,  # staged: a held journal holds nothing up
            reason=reason,
            done=report.done,
            unverified=report.unverified,
            duration=round(report.finished - report.started, 6),
        )
    if report.unverified:
        log.error("safe state not fully verified (%s): %s", reason, "; ".join(report.unverified))
    return report


def _one_after_another(
    work: Callable[[SupplyOff], SupplyOutcome], targets: Sequence[SupplyOff]
) -> list[SupplyOutcome]:
    return [work(target) for target in targets]


def _open_unit(unit: SwitchUnit, trusted: Callable[[str], bool]) -> SupplyOutcome:
    """Every relay of a switch unit besides the board open, read back by its driver."""
    outcome = SupplyOutcome()
    if not trusted(unit.name):
        outcome.unverified.append(f"{unit.name}: not the unit bench.toml names; not commanded")
        return outcome
    try:
        unit.open_all(purpose="safe-state")
        outcome.done.append(f"{unit.name}: relays open")
    except InterlockError as error:  # a journal that cannot be written included
        outcome.unverified.append(f"{unit.name} relays: {error}")
    return outcome


def _turn_off(target: SupplyOff) -> SupplyOutcome:
    """Every wired channel of one supply off, in one exchange."""
    outcome = SupplyOutcome()
    try:
        still_on = target.supply.outputs_off(list(target.channels), purpose="safe-state")
    except JournalError as error:  # not the journal being down: that does not stop this
        outcome.unverified.append(f"{target.name}: off command refused: {error}")
        return outcome
    except InstrumentError as error:
        outcome.unreachable = str(error)
        return outcome
    for channel, net, on in zip(target.channels, target.nets, still_on, strict=True):
        (outcome.unverified if on else outcome.done).append(
            f"{net} ({target.name} CH{channel}) output {'still on' if on else 'off'}"
        )
    return outcome


def _reconnect_and_turn_off(
    target: SupplyOff, why: str, identify: Callable[[PowerSupply], None]
) -> SupplyOutcome:
    """A supply that did not answer: reconnect, identify it again, then turn it off."""
    outcome = SupplyOutcome()
    psu = target.supply
    try:
        psu.open()
        identify(psu)
        channels = list(target.channels)
        still_on = [
            c
            for c, on in zip(channels, psu.outputs_off(channels, purpose="safe-state"), strict=True)
            if on
        ]
        outcome.done.append(
            f"{target.name}: did not answer ({why}); reconnected, identified, outputs off"
        )
        if still_on:
            outcome.unverified.append(f"{target.name}: channels {still_on} still on")
    except (InstrumentError, JournalError) as error:
        outcome.unverified.append(f"{target.name}: unreachable ({why}; then {error})")
    return outcome


def _verify_off(target: SupplyOff) -> SupplyOutcome:
    """Read one supply's wired outputs back: all off?"""
    outcome = SupplyOutcome()
    channels = sorted(target.channels)
    try:
        settings = target.supply.settings(channels)
    except (InstrumentError, JournalError) as error:
        outcome.unverified.append(f"{target.name}: cannot verify outputs: {error}")
        return outcome
    for channel, held in zip(channels, settings, strict=True):
        if held.output:
            outcome.unverified.append(f"{target.name} CH{channel} reads on after safe state")
    return outcome


def _records_written_late(journal: Journal, report: SafeStateReport) -> bool:
    try:
        with journal.waiting_at_most(LATE_RECORD_WAIT_S):
            journal.flush()
    except JournalError:
        return False
    report.done.append(
        "journal was busy: off commands went out first, journaled after (flagged unjournaled)"
    )
    return True
