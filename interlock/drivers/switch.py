"""One driver for every switch-unit dialect but the RB8 board (which has its own).

Relays are addressed by 1-based channel; the dialect's hook says how the unit
names one (``address``: ``101`` on a DAQ970A's slot 1, ``0`` on a Numato). A
change is break-before-make: the relays to open first, then those to close,
then the whole unit read back. A unit without contact sense reports only what
it was commanded (``SwitchState.contacts`` is None), and the readback must
equal the command, or the unit is not where we think.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

from interlock.dialects import hook_of
from interlock.dialects.model import SwitchModel
from interlock.drivers.device import DialectDevice, make_link
from interlock.errors import IdentityMismatch, ProtocolError
from interlock.protocols import Identified, SwitchState, SwitchUnit


class DialectSwitch(DialectDevice):
    """A switch unit speaking its dialect; implements :class:`~interlock.protocols.SwitchUnit`."""

    kind: ClassVar[str] = "switch"
    implements: ClassVar[type] = SwitchUnit

    def __init__(self, name, dialect, link, journal, model: str = "") -> None:  # type: ignore[no-untyped-def]
        super().__init__(name, dialect, link, journal)
        self.contact_sense = dialect.capabilities.contact_sense
        self._hook = hook_of(dialect)
        found = dialect.models.get(model)
        if not isinstance(found, SwitchModel):  # unknown: the smallest of the family
            found = min(dialect.models.values(), key=lambda m: m.relays)  # type: ignore[union-attr]
        self.model: SwitchModel = found  # type: ignore[assignment]
        self.channels = tuple(range(1, self.model.relays + 1))

    @classmethod
    def build(cls, spec: Any) -> DialectSwitch:
        return cls(spec.name, spec.dialect, make_link(spec), spec.journal, spec.model)

    # -- addressing ------------------------------------------------------------------------

    def _address(self, channel: int) -> str:
        if channel not in self.channels:
            raise ProtocolError(
                self.name, f"no relay {channel} on the {self.model.model} (1..{len(self.channels)})"
            )
        return self._hook.address(channel) if self._hook else str(channel)

    def _lines(self, key: str, channels: Iterable[int]) -> list[str]:
        """The lines of one operation for ``channels``: one per list, or one per channel."""
        wanted = sorted(channels)
        if not wanted:
            return []
        template = self.dialect.commands.get(key) or self.dialect.queries.get(key)
        assert template is not None, key
        if template.per_channel_list:
            chs = self.dialect.list_separator.join(self._address(c) for c in wanted)
            return [template.line(chs=chs)]
        return [template.line(ch=self._address(c)) for c in wanted]

    # -- lines -----------------------------------------------------------------------------

    def _act(self, line: str, **context: Any) -> None:
        if getattr(self._hook, "ECHO", False):  # every line answers: its echo, then a prompt
            self._echoed(line, self.set_and_ask(line, **context))
        else:
            self.command(line, **context)

    def reply_to(self, line: str) -> str:
        """A query's answer (its echo removed where the dialect echoes)."""
        reply = self.ask(line)
        return self._echoed(line, reply) if getattr(self._hook, "ECHO", False) else reply

    def _echoed(self, line: str, reply: str) -> str:
        """What follows the echo of ``line``; a reply that does not echo it is a fault."""
        if not reply.startswith(line):
            raise ProtocolError(self.name, f"{line!r}: echoed {reply[: len(line) + 8]!r}")
        return reply[len(line) :].strip("\r\n")

    # -- the protocol ----------------------------------------------------------------------

    def identify(self) -> Identified:
        if self._hook is not None and hasattr(self._hook, "identify"):
            return Identified(*self._hook.identify(self))
        identified = super().identify()
        check = self.dialect.queries.get("module?")
        if check is not None and self._hook is not None:
            (model,) = self.fields(check, self.ask_query(check), 1)
            problem = self._hook.module_problem(model.strip())
            if problem is not None:
                raise IdentityMismatch(self.name, "an actuator module", problem)
        return identified

    def get_state(self) -> SwitchState:
        query = self.dialect.queries["closed?"]
        closed = set()
        if query.per_channel_list:
            (line,) = self._lines("closed?", self.channels)
            flags = self.fields(query, self.reply_to(line), len(self.channels))
        else:
            lines = self._lines("closed?", self.channels)
            flags = [self.fields(query, self.reply_to(line), 1)[0] for line in lines]
        for channel, text in zip(self.channels, flags, strict=True):
            if self.flag(query, text):
                closed.add(channel)
        return SwitchState(frozenset(closed), None)

    def set_relays(self, closed: Iterable[int], **context: Any) -> SwitchState:
        wanted = frozenset(closed)
        for channel in wanted:
            self._address(channel)  # every channel checked before anything goes out
        for line in self._lines("open", set(self.channels) - wanted):
            self._act(line, **context)
        for line in self._lines("close", wanted):
            self._act(line, **context)
        state = self.get_state()
        if state.commanded != wanted:
            raise ProtocolError(
                self.name,
                f"set_relays: commanded {sorted(wanted)} but reports {sorted(state.commanded)}",
            )
        return state

    def open_all(self, **context: Any) -> SwitchState:
        """Every relay open, then read back."""
        for line in self._lines("open", self.channels):
            if getattr(self._hook, "ECHO", False):
                self._act(line, **context)
            else:  # the off line goes out even when the journal cannot take it
                self.send_off(line, **context)
        state = self.get_state()
        if state.commanded:
            raise ProtocolError(self.name, f"open_all: still closed {sorted(state.commanded)}")
        return state
