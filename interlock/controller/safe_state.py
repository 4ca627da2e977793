"""The safe-state procedure: outputs off in power-off order, relays open, verified.

It carries on past individual errors and reports what it could not verify.
When a supply does not answer, the relays are opened before trying to reach
it again: they disconnect the DUT whatever the supply is doing. When the
journal itself fails, commands cannot be sent (nothing goes out unjournaled),
so the procedure stops heartbeating the relay board instead, and the board's
own watchdog opens every relay.
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


def drive_safe(ctl: Controller, reason: str) -> SafeStateReport:
    report = SafeStateReport(reason=reason, started=time.monotonic())
    journal_failed = False
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
        except JournalError as error:
            journal_failed = True
            report.unverified.append(f"{supply}: cannot journal the off command: {error}")
            break
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
        if not journal_failed:
            ctl.journal.command_intent(board.name, "SET 0\n", purpose="safe-state")
        state = board.open_all()
        report.done.append("relays commanded open")
    except JournalError as error:
        journal_failed = True
        report.unverified.append(f"relays: cannot journal: {error}")
    except InstrumentError as error:
        report.unverified.append(f"relays: {error}")

    if journal_failed:
        # Starve the board's watchdog: it opens every relay on its own.
        ctl.supervisor.stop_heartbeat(f"journal failed during safe state ({reason})")
        report.unverified.append("journal failed: relay board left to its watchdog")

    # A supply that stopped answering: reconnect, re-identify, then turn it off.
    for supply in sorted(unreachable) if not journal_failed else []:
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
    if journal_failed:
        report.unverified += [f"{s}: unreachable ({why})" for s, why in sorted(unreachable.items())]

    # Verify by reading back: outputs and relay contacts.
    if not journal_failed:
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
            reason=reason,
            done=report.done,
            unverified=report.unverified,
            duration=round(report.finished - report.started, 6),
        )
    if report.unverified:
        log.error("safe state not fully verified (%s): %s", reason, "; ".join(report.unverified))
    return report
