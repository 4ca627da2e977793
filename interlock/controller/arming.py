"""Start-up, arming and stopping: what the bench is found in, and what it is left in.

- at connect: what is really there (outputs on, protection trips, relays
  closed), whatever anyone believes, and how the last controller on this
  journal stopped;
- the relay board's own rules (its watchdog, the never-together pairs),
  loaded at connect, arming and reset;
- at arming: the files read again and pinned, every instrument identified
  again, everything found off (the engine's all-off rules), each net's supply
  programmed to 0 V with its current limit and protections, all read back;
- at reset: the supplies' latched protection trips cleared;
- at a stop: whether it is clean enough to release the board.

The Controller runs these in the order of its state machine; every finding is
the engine's (:mod:`interlock.limits.measurements`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from interlock.config import Bench, Configuration, load_configuration
from interlock.controller.actuation import Actuation
from interlock.controller.commanded import Commanded
from interlock.controller.instruments import BenchInstruments
from interlock.controller.safe_state import SafeStateReport
from interlock.errors import ConfigError, InstrumentError, JournalError
from interlock.journal import Journal
from interlock.limits import BenchState, NetState, PinnedLimits
from interlock.limits.measurements import check_channel_off, check_off_voltage, check_relays_open


@dataclass(frozen=True)
class Found:
    """What start-up (or arming, or a reset) found on the bench with nothing live."""

    energised: list[str]  # outputs on, relays closed
    tripped: list[str]  # supply protection trips latched
    coupled: list[str]  # supply channels tracking another (set at the front panel)


class Arming:
    def __init__(
        self,
        *,
        journal: Journal,
        instruments: BenchInstruments,
        actuation: Actuation,
        commanded: Commanded,
        limits: Callable[[], PinnedLimits],
        bench: Bench,
        trip: Callable[..., object],
    ) -> None:
        self._journal = journal
        self._instruments = instruments
        self._actuation = actuation
        self._commanded = commanded
        self._limits = limits
        self._bench = bench
        self._trip = trip

    # -- what is there ----------------------------------------------------------------

    def found(self) -> Found:
        """What is energised right now, whatever anyone believes, and which supply
        channels have a protection trip latched: one settings exchange per supply."""
        energised, tripped, coupled = [], [], []
        lists = {"all-off.protection": tripped, "all-off.coupling": coupled}
        for name, channels in self._instruments.supply_channels().items():
            settings_of = self._instruments.supplies[name].settings(channels, coupling=True)
            for channel, settings in zip(channels, settings_of, strict=True):
                for finding in check_channel_off(
                    name,
                    channel,
                    output=settings.output,
                    voltage=settings.voltage,
                    tripped=settings.tripped,
                    coupled=settings.coupled,
                ):
                    lists.get(finding.rule, energised).append(finding.problem)
        state = self._instruments.board.get_state()
        relays = set(self._instruments.relays_of(state.commanded | state.contacts))
        for name, unit in self._instruments.units.items():
            if self._instruments.trusted(name):  # what it commands: it senses nothing
                relays |= self._instruments.relays_of(unit.get_state().commanded, name)
        closed = check_relays_open(sorted(relays))
        if closed is not None:
            energised.append(closed.problem)
        return Found(energised, tripped, coupled)

    def previous_stop(self) -> str:
        """How the last controller on this journal stopped, as a clause for a finding.

        A clean stop leaves a ``disconnect`` transition as its last state change;
        anything else (a crash, a kill, a power cut) leaves whatever came before.
        """
        try:
            last = self._journal.last(kind="state")
        except JournalError:
            return ""
        if last is None:
            return ""
        payload = last.payload
        when = f"{last.wall_time} (journal seq {last.seq})"
        if payload.get("trigger") == "disconnect":
            if payload.get("stop") == "clean":
                return f"; the last service stopped cleanly at {when}"
            return f"; the last service stopped at {when} with {payload.get('why', 'no reason')}"
        return (
            f"; the last service did not stop cleanly: its last state change was "
            f"{payload.get('trigger')} to {payload.get('to')} at {when}"
        )

    def verify_identities(self, when: str) -> None:
        """Every instrument, the relay board included, is who bench.toml says, now.

        A unit swapped behind an unbroken link (a LAN or GPIB gateway, a switch)
        answers on the same resource: only asking again finds it. One that is not
        who it should be is never commanded again (not even "off") until a reset
        identifies it, and the bench trips.
        """
        failures = self._instruments.verify_identities()
        if failures:
            cause = self._instruments.failure_cause(failures)
            self._trip(cause, f"at {when}: " + "; ".join(str(f) for f in failures))
            raise failures[0]

    # -- the board's own rules ------------------------------------------------------------

    def program_board(self) -> None:
        """The board's own rules: its watchdog and the profile's never-together pairs.

        Loaded at connect, again at arming (the profile may have changed) and at reset
        (a board that rebooted has forgotten them): the board's defence must match the
        limits in force.
        """
        board = self._instruments.board
        board.set_watchdog(self._bench.service.relay_watchdog)
        board.load_forbidden(self._forbidden_masks())

    def _forbidden_masks(self) -> list[int]:
        """The profile's never-together groups as the board's pairwise masks (defence in depth)."""
        masks = set()
        for group in self._limits().never_together:
            relays = sorted(group.relays)
            for i, a in enumerate(relays):
                for b in relays[i + 1 :]:
                    mask = self._instruments.mask({a, b})
                    if mask.bit_count() == 2:  # both on the board: its table holds it too
                        masks.add(mask)
        return sorted(masks)

    # -- arming ----------------------------------------------------------------------------

    def pin(self, configuration: Configuration) -> Configuration:
        """Re-read the files at arming: edits take effect now, never while armed."""
        fresh = load_configuration(self._bench.path, configuration.profile.path)
        if fresh.bench.sha256 != self._bench.sha256:
            raise ConfigError(
                self._bench.shown_path,
                "",
                "changed since the controller connected: restart it to use the new bench",
            )
        return fresh

    def verify_all_off(self) -> None:
        found = self.found()
        problems = found.energised + found.tripped + found.coupled
        limits = self._limits()
        for name, channels in self._instruments.supply_channels().items():
            readings = self._instruments.supplies[name].measure(channels)
            for channel, reading in zip(channels, readings, strict=True):
                net = self._instruments.net_at(name, channel)
                finding = check_off_voltage(limits, name, channel, net, reading.volts)
                if finding is not None:
                    problems.append(finding.problem)
        if problems:
            raise InstrumentError("bench", "not everything is off: " + "; ".join(problems))

    def program_protection(self) -> None:
        """Each channel: its output range where it has several, 0 V, current limit and OVP
        at the profile, OCP armed, all read back, where the supply has them (its dialect's
        capabilities).

        With OCP armed the supply turns its output off itself when the load would
        pull it into current limiting (a short, an overload), before the monitor's
        next pass sees it; the interlock then trips on the protection it finds tripped.
        A supply without OCP leaves that to the monitor (a profile may refuse it by
        requiring ``ocp``: see the configuration's capability check).
        """
        limits = self._limits()
        nets = {}
        for net, net_limits in limits.nets.items():
            if net in limits.supply_ranges:  # first: in another range a setting is refused
                self._actuation.select_range(net)
            caps = self._instruments.capabilities(net)
            settings = [("voltage", 0.0), ("current_limit", net_limits.max_current)]
            if caps.has("ovp"):
                settings.append(("ovp", limits.ovp_levels[net]))
            for quantity, value in settings:
                self._actuation.program(net, quantity, value)
            if caps.has("ocp"):
                self._actuation.arm_protection(net)
            nets[net] = NetState(voltage=0.0, current_limit=net_limits.max_current)
        self._commanded.set(BenchState(nets=nets))

    def lock_panels(self, locked: bool, purpose: str) -> list[str]:
        """Lock the front panel of every wired supply that can be locked (or give it back),
        so that nobody turns a knob behind the interlock's back while it is armed.

        Locking raises on the first supply that fails (arming must not go on); giving
        back never does, since it follows a stop: it returns what failed, and a panel
        left locked is the safe side.
        """
        failed = []
        for name in self._instruments.supply_channels():
            psu = self._instruments.supplies[name]
            if not psu.capabilities.panel_lock:
                continue
            try:
                psu.lock_panel(locked, purpose=purpose)
            except InstrumentError as error:
                if locked:
                    raise
                failed.append(f"{name}: front panel not given back: {error}")
        return failed

    # -- reset and stop ----------------------------------------------------------------------

    def clear_protection_trips(self) -> None:
        """Acknowledging a fault includes a supply's latched OVP/OCP (outputs stay off)."""
        for name, channels in self._instruments.supply_channels().items():
            self._instruments.supplies[name].clear_trips(channels, purpose="reset")

    def release(self, report: SafeStateReport | None, fault: str | None) -> str | None:
        """Release the board if this stop is clean; else why it is not."""
        board = self._instruments.board
        if fault is not None:
            return f"fault latched: {fault}"
        if report is None or not report.verified:
            unverified = "; ".join(report.unverified) if report else "not driven safe"
            return f"safe state not verified: {unverified}"
        if not self._instruments.trusted(board.name):
            return f"{board.name}: not the board bench.toml names"
        try:
            board.release()
        except InstrumentError as error:
            return f"the relay board did not take the release: {error}"
        return None


def limits_summary(limits: PinnedLimits) -> dict[str, dict[str, float]]:
    """The pinned limits of each net, as the journal's config entry records them."""
    return {
        net: {
            "min_voltage": n.min_voltage,
            "max_voltage": n.max_voltage,
            "max_current": n.max_current,
            "max_step": n.max_step,
            "max_slew": n.max_slew,
            "live_min_current": n.live_min_current,
            "live_max_current": n.live_max_current,
        }
        for net, n in limits.nets.items()
    }
