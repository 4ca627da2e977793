"""What every SCPI instrument driver shares: journaled commands and queries, strict replies."""

from __future__ import annotations

import logging
import math
from typing import Any

from interlock.config import Identity
from interlock.drivers.visa import VisaTransport
from interlock.errors import JournalError, ProtocolError
from interlock.journal import Journal, is_pure_query

log = logging.getLogger(__name__)

# What a DMM answers for an overload (an open circuit on a resistance range).
SCPI_OVERLOAD = 9.9e37


class ScpiDevice:
    """One SCPI instrument: every line out is journaled first; every reply is parsed strictly."""

    def __init__(self, name: str, transport: VisaTransport, journal: Journal) -> None:
        self.name = name
        self.transport = transport
        self.journal = journal

    def open(self) -> None:
        self.transport.open()

    def close(self) -> None:
        self.transport.close()

    @property
    def is_open(self) -> bool:
        """Connected, and not poisoned by a timeout or a lost connection."""
        return self.transport.is_open

    def command(self, text: str, **context: Any) -> None:
        intent = self.journal.command_intent(self.name, f"{text}\n", **context)
        self.transport.send(intent)

    def query(self, text: str, **context: Any) -> str:
        # A line that only asks goes out with its record staged; one that also sets
        # something (VOLT 5;:VOLT?) waits for its record to be on disk.
        pure = is_pure_query(f"{text}\n".encode("ascii", "replace"))
        return self._exchange(text, pure, context)

    def ask(self, text: str, **context: Any) -> str:
        """:meth:`query` for a line the driver writes as a pure query (``MEAS:VOLT? (@1)``).

        Its record is staged; the journal checks the line itself and refuses one that
        sets anything.
        """
        return self._exchange(text, True, context)

    def set_and_ask(self, text: str, **context: Any) -> str:
        """:meth:`query` for a line the driver writes to set something and read it back
        (``VOLT 5,(@1);:VOLT? (@1)``): its record is on disk before it goes out."""
        return self._exchange(text, False, context)

    def turn_off_and_ask(self, text: str, **context: Any) -> str:
        """:meth:`set_and_ask` for a line that only turns outputs off (``OUTP OFF,(@1)``).

        It goes out even when the journal cannot be written: failing safe comes
        first (see :meth:`~interlock.journal.store.Journal.safe_off_intent`).
        """
        intent = self.journal.safe_off_intent(self.name, f"{text}\n", **context)
        reply = self.transport.exchange(intent)
        try:
            self.journal.readback(self.name, text, reply, durable=False, **context)
        except JournalError as error:  # the reply matters more now than its record
            log.error("%s: reply to %r not journaled: %s", self.name, text, error)
        return reply

    def _exchange(self, text: str, pure: bool, context: dict[str, Any]) -> str:
        data = f"{text}\n"
        if pure:
            intent = self.journal.query_intent(self.name, data, **context)
        else:
            intent = self.journal.command_intent(self.name, data, **context)
        reply = self.transport.exchange(intent)
        # Staged: on disk with the next command, before anything acts on it.
        self.journal.readback(self.name, text, reply, durable=False, **context)
        return reply

    def identify(self) -> tuple[Identity, str]:
        """``*IDN?`` as (maker, model, serial) and the firmware string."""
        reply = self.query("*IDN?")
        fields = [f.strip() for f in reply.split(",")]
        if len(fields) != 4 or not all(fields[:3]):
            raise ProtocolError(
                self.name, f"*IDN? reply is not maker,model,serial,firmware: {reply!r}"
            )
        return Identity(fields[0], fields[1], fields[2]), fields[3]

    def numbers(self, reply: str, count: int, what: str) -> list[float]:
        """Parse ``count`` comma-separated numbers; anything else is garbage."""
        fields = reply.split(",")
        if len(fields) != count:
            raise ProtocolError(self.name, f"{what}: expected {count} values, got {reply!r}")
        values = []
        for field in fields:
            try:
                value = float(field)
            except ValueError:
                raise ProtocolError(self.name, f"{what}: not a number: {reply!r}") from None
            if not math.isfinite(value):  # NaN/INF: no instrument reading can be trusted
                raise ProtocolError(self.name, f"{what}: not a finite number: {reply!r}")
            values.append(value)
        return values

    def flags(self, reply: str, count: int, what: str) -> list[bool]:
        fields = [f.strip() for f in reply.split(",")]
        if len(fields) != count or any(f not in ("0", "1") for f in fields):
            raise ProtocolError(self.name, f"{what}: expected {count} flags (0/1), got {reply!r}")
        return [f == "1" for f in fields]

    def split_compound(self, reply: str, count: int, what: str) -> list[str]:
        """Replies to ``;``-joined queries come back ``;``-joined in one line."""
        parts = reply.split(";")
        if len(parts) != count:
            raise ProtocolError(self.name, f"{what}: expected {count} replies, got {reply!r}")
        return parts
