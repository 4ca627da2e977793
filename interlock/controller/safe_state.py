"""The safe-state procedure: outputs off in power-off order, relays open, verified.

It carries on past individual errors and reports what it could not verify.
When a supply does not answer, the relays are opened before trying to reach
it again: they disconnect the DUT whatever the supply is doing. When the
journal itself cannot be written, the off commands go out all the same
(failing safe comes before journaling: see
:meth:`~interlock.journal.store.Journal.safe_off_intent`), are logged at
once and journaled, flagged, when the journal writes again; the procedure
also stops heartbeating the relay board, whose own watchdog then opens
every relay whatever happened to the command.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from interlock.errors import InstrumentError, JournalError

if TYPE_CHECKING:
    from interlock.controller.controller import Controller

log = logging.getLogger(__name__)


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


def _channels_in_power_off_order(ctl: Controller) -> list[tuple[str, int, str]]:
    """(supply, channel, net) for every wired channel: the profile's order first."""
    order = [n for n in ctl.limits.power_off if n in ctl.ports]
    order += [n for n in ctl.ports if n not in order]
    return [
        (ctl.ports[n].supply, ctl.ports[n].channel, n)
        for n in order
        if ctl.ports[n].supply is not None
    ]


# A journal that was only busy (a slow commit, another process's write) gets this
# long, once the outputs are off, to take the records the off commands went without.
LATE_RECORD_WAIT_S = 1.0


def _records_written_late(ctl: Controller, report: SafeStateReport) -> bool:
    try:
        with ctl.journal.waiting_at_most(LATE_RECORD_WAIT_S):
            ctl.journal.flush()
    except JournalError:
        return False
    report.done.append(
        "journal was busy: off commands went out first, journaled after (flagged unjournaled)"
    )
    return True


def drive_safe(ctl: Controller, reason: str) -> SafeStateReport:
    report = SafeStateReport(reason=reason, started=time.monotonic())
    unjournaled_before = ctl.journal.unjournaled
    unreachable: dict[str, str] = {}  # supply -> why it did not answer

    untrusted = ctl.instruments.untrusted
    for supply in sorted(untrusted & set(ctl.instruments.supplies)):
        report.unverified.append(f"{supply}: not the instrument bench.toml names; not commanded")
    # One exchange per supply: its channels in power-off order in one channel
    # list (the supply executes the list in order), read back in the same line.
    by_supply: dict[str, list[tuple[int, str]]] = {}
    for supply, channel, net in _channels_in_power_off_order(ctl):
        if supply not in untrusted:
            by_supply.setdefault(supply, []).append((channel, net))
    for supply, wired in by_supply.items():
        channels = [channel for channel, _ in wired]
        try:
            still_on = ctl.instruments.supplies[supply].outputs_off(channels, purpose="safe-state")
        except JournalError as error:  # not the journal being down: that does not stop this
            report.unverified.append(f"{supply}: off command refused: {error}")
            continue
        except InstrumentError as error:
            unreachable[supply] = str(error)
            continue
        for (channel, net), on in zip(wired, still_on, strict=True):
            (report.unverified if on else report.done).append(
                f"{net} ({supply} CH{channel}) output {'still on' if on else 'off'}"
            )

    board = ctl.instruments.board
    try:
        if board.name in untrusted:
            raise InstrumentError(board.name, "not the board bench.toml names; not commanded")
        ctl.journal.safe_off_record(board.name, "SET 0\n", purpose="safe-state")
        state = board.open_all()
        report.done.append("relays commanded open")
    except InstrumentError as error:
        report.unverified.append(f"relays: {error}")

    journal_down = ctl.journal.unjournaled > unjournaled_before
    # A supply that stopped answering: reconnect, re-identify, then turn it off. Not
    # with the journal down: its identity check would wait for the journal, and the
    # relays are open already.
    for supply in sorted(unreachable) if journal_down else []:
        report.unverified.append(f"{supply}: unreachable ({unreachable[supply]}); not retried")
    for supply in sorted(unreachable) if not journal_down else []:
        psu = ctl.instruments.supplies[supply]
        try:
            psu.open()
            ctl.instruments.verify_identity(psu)
            channels = [c for s, c, _ in _channels_in_power_off_order(ctl) if s == supply]
            still_on = [
                c
                for c, on in zip(
                    channels, psu.outputs_off(channels, purpose="safe-state"), strict=True
                )
                if on
            ]
            report.done.append(
                f"{supply}: did not answer ({unreachable[supply]}); "
                "reconnected, identified, outputs off"
            )
            if still_on:
                report.unverified.append(f"{supply}: channels {still_on} still on")
        except (InstrumentError, JournalError) as error:
            report.unverified.append(f"{supply}: unreachable ({unreachable[supply]}; then {error})")

    # Verify by reading back (pure queries: journaled with the next commit): outputs
    # and relay contacts.
    outputs_ok = True
    for supply, channels in ctl.instruments.supply_channels().items():
        if supply in untrusted:
            continue
        try:
            for channel, settings in zip(
                channels, ctl.instruments.supplies[supply].settings(channels), strict=True
            ):
                if settings.output:
                    outputs_ok = False
                    report.unverified.append(f"{supply} CH{channel} reads on after safe state")
        except (InstrumentError, JournalError) as error:
            outputs_ok = False
            report.unverified.append(f"{supply}: cannot verify outputs: {error}")
    if outputs_ok:
        report.outputs_off_at = time.monotonic()
    if journal_down:
        journal_down = not _records_written_late(ctl, report)
    report.journal_down = journal_down
    if journal_down:
        # Defence in depth: starve the board's watchdog, which opens every relay on its own.
        ctl.supervisor.stop_heartbeat(f"journal failed during safe state ({reason})")
        report.unverified.append(
            "journal cannot be written: off commands sent unjournaled (journaled, flagged, "
            "when it writes again); relay board heartbeat stopped"
        )
    with contextlib.suppress(InstrumentError):
        if board.name in untrusted:
            raise InstrumentError(board.name, "untrusted")
        state = board.get_state()
        if state.contacts:
            welded = ", ".join(sorted(ctl.instruments.relays_of(state.contacts)))
            report.unverified.append(f"relay contacts still closed: {welded}")
    report.finished = time.monotonic()
    with contextlib.suppress(JournalError):
        ctl.journal.state(
            ctl.state,
            ctl.state,
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
