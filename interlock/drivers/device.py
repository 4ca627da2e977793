"""What every dialect-speaking driver shares: journaled lines, strict replies, identity.

One :class:`DialectDevice` per instrument: its dialect (the lines and how
replies read), its link (VISA or raw serial) and the journal. Every line out
is journaled first (a pure query staged, anything that sets durably on
disk); every reply is parsed strictly, and anything else is a ProtocolError.
Several lines go out as one exchange where the dialect joins them (``;``),
else one exchange each.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from interlock.dialects import Dialect, match_identity
from interlock.dialects.model import Query
from interlock.drivers.serial_link import SerialLink
from interlock.drivers.visa import VisaTransport
from interlock.errors import JournalError, ProtocolError
from interlock.journal import DurableIntent, Journal, is_pure_query
from interlock.journal.intent import is_off_only
from interlock.posted import Owed, Posted
from interlock.protocols import Identified

if TYPE_CHECKING:
    from interlock.drivers.registry import DriverSpec

log = logging.getLogger(__name__)


class Link(Protocol):
    """What a driver needs of its transport (VisaTransport, SerialLink)."""

    name: str
    resource: str

    def open(self) -> None: ...

    def close(self) -> None: ...

    @property
    def is_open(self) -> bool: ...

    def send(self, intent: DurableIntent) -> None: ...

    def exchange(
        self, intent: DurableIntent, width: int | None = None, trailing: int = 0
    ) -> str: ...

    def send_off(self, data: bytes) -> None: ...

    def post(self, intent: DurableIntent, width: int | None = None, trailing: int = 0) -> Owed: ...

    def collect(self, token: int) -> str: ...

    def reply_ready(self, token: int) -> bool: ...

    def fileno(self) -> int | None: ...

    def wait_gap(self) -> None: ...


_PARITY = {"N": "none", "E": "even", "O": "odd"}
_STOP_BITS = {1: 10, 2: 20}  # pyvisa's StopBits: tenths of a bit
_FLOW = {"none": 0, "xon-xoff": 1, "rts-cts": 2, "dtr-dsr": 4}  # pyvisa's ControlFlow


def make_link(spec: DriverSpec) -> Link:
    """The transport a dialect names: a VISA socket, a VISA serial port or raw pyserial."""
    link = spec.dialect.link
    if link.kind == "serial":
        return SerialLink(spec.name, spec.resource, link, timeout=spec.timeout)
    serial = None
    if link.kind == "visa-serial":
        import pyvisa.constants as c

        serial = {
            "baud_rate": link.baud,
            "data_bits": link.data_bits,
            "parity": getattr(c.Parity, _PARITY[link.parity]),
            "stop_bits": c.StopBits(_STOP_BITS[link.stop_bits]),
            "flow_control": _FLOW[link.flow],
        }
    return VisaTransport(
        spec.name,
        spec.resource,
        timeout=spec.timeout,
        read_termination=link.read_termination,
        serial=serial,
        gap=link.min_gap,
    )


def joined(lines: Sequence[str]) -> str:
    """Lines as one compound line: each unit after the first starts at the root."""
    return lines[0] + "".join(";" + (u if u.startswith(":") else ":" + u) for u in lines[1:])


class DialectDevice:
    kind: ClassVar[str] = ""

    def __init__(self, name: str, dialect: Dialect, link: Link, journal: Journal) -> None:
        self.name = name
        self.dialect = dialect
        self.transport = link
        self.journal = journal
        self.capabilities = dialect.capabilities
        self._end = dialect.link.write_termination
        self._compound = dialect.capabilities.compound

    @classmethod
    def build(cls, spec: DriverSpec) -> DialectDevice:
        """The driver for one instrument of bench.toml, over its dialect's link."""
        return cls(spec.name, spec.dialect, make_link(spec), spec.journal)

    def open(self) -> None:
        self.transport.open()
        # A family that wants a line before anything else (SYST:REM over RS-232).
        setup = self.dialect.command("remote")
        if setup is not None:
            self.command(setup.line(), purpose="setup")

    def close(self) -> None:
        self.transport.close()

    @property
    def is_open(self) -> bool:
        """Connected, and not poisoned by a timeout or a lost connection."""
        return self.transport.is_open

    # -- journaled lines ---------------------------------------------------------------

    def command(self, text: str, **context: Any) -> None:
        intent = self.journal.command_intent(self.name, text + self._end, **context)
        self.transport.send(intent)

    def ask(self, text: str, width: int | None = None, trailing: int = 0, **context: Any) -> str:
        """A line that only asks: its record staged for the next commit, and the answer
        in its place while it waits there (see Journal.answer). ``trailing``: the query's."""
        intent = self._asking(text, **context)
        reply = self.transport.exchange(intent, width, trailing)
        self.journal.answer(intent, text, reply, **context)
        return reply

    def ask_query(self, query: Query, line: str | None = None, **context: Any) -> str:
        """:meth:`ask` ``line`` of ``query`` (else its only line), the reply framed as the
        query says: its width, and the bytes that may trail it."""
        text = query.line() if line is None else line
        return self.ask(text, query.width, query.trailing, **context)

    def post(
        self, text: str, width: int | None = None, trailing: int = 0, **context: Any
    ) -> Posted[str]:
        """:meth:`ask`, its reply read later: whatever goes next on this link reads it
        first, so the line's reply still answers it."""
        intent = self._asking(text, **context)
        transport = self.transport
        owed = transport.post(intent, width, trailing)

        def reply() -> str:
            answer = transport.collect(owed.token)
            self.journal.answer(intent, text, answer, **context)
            return answer

        token = owed.token
        return Posted(owed.fileno, owed.due, reply, lambda: transport.reply_ready(token))

    def _asking(self, text: str, **context: Any) -> DurableIntent:
        data = text + self._end
        if is_pure_query(data.encode("ascii", "replace")):
            return self.journal.query_intent(self.name, data, **context)
        return self.journal.command_intent(self.name, data, **context)

    def set_and_ask(self, text: str, width: int | None = None, **context: Any) -> str:
        """A line that sets something and reads it back: on disk before it goes out."""
        intent = self.journal.command_intent(self.name, text + self._end, **context)
        reply = self.transport.exchange(intent, width)
        self.journal.readback(self.name, text, reply, durable=False, **context)
        return reply

    def send_off(self, text: str, **context: Any) -> None:
        """A line that only turns outputs off: it goes out even when the journal cannot be
        written (failing safe comes first; see Journal.safe_off_intent)."""
        data = text + self._end
        if is_off_only(data.encode("ascii", "replace")):
            self.transport.send(self.journal.safe_off_intent(self.name, data, **context))
            return
        # The journal's off-only check knows the SCPI channel-list form only: the line is
        # recorded (or flagged for the next commit) as an off command, then written.
        self.journal.safe_off_record(self.name, data, **context)
        self.transport.send_off(data.encode("ascii"))

    def turn_off_and_ask(self, text: str, **context: Any) -> str:
        """:meth:`send_off` and its readback in one line (``OUTP OFF,(@1);:OUTP? (@1)``)."""
        intent = self.journal.safe_off_intent(self.name, text + self._end, **context)
        reply = self.transport.exchange(intent)
        try:
            self.journal.readback(self.name, text, reply, durable=False, **context)
        except JournalError as error:  # the reply matters more now than its record
            log.error("%s: reply to %r not journaled: %s", self.name, text, error)
        return reply

    def ask_all(self, queries: Sequence[tuple[Query, Sequence[int]]]) -> list[list[str]]:
        """Each query's fields for its channels: one line per channel list (or per channel),
        all lines in one exchange where the dialect joins them."""
        lines, found, tell = self._lines(queries)
        if self._compound and len(lines) > 1:
            return found(self._parts(self.ask(joined([line for _, line, _ in lines])), lines))
        return found(self._ask_each(lines, tell=tell))

    def post_all(
        self,
        queries: Sequence[tuple[Query, Sequence[int]]],
        between: Callable[[], None] | None = None,
    ) -> Posted[list[list[str]]]:
        """:meth:`ask_all`, its reply read later where its lines go out as one exchange;
        else (several exchanges) asked in full when the result is read, ``between`` called
        before each line after the first: what it raises ends the asking there (the
        monitor's, once a stop is under way: a line more would only make the stop's lines
        wait behind it)."""
        lines, found, tell = self._lines(queries)
        if len(lines) == 1:
            query, line, _ = lines[0]
            return self.post(line, query.width, query.trailing).then(lambda r: found([r]))
        if self._compound and lines:
            posted = self.post(joined([line for _, line, _ in lines]))
            return posted.then(lambda reply: found(self._parts(reply, lines)))
        return Posted(None, 0.0, lambda: found(self._ask_each(lines, between, tell)))

    def _ask_each(
        self,
        lines: Sequence[tuple[Query, str, int]],
        between: Callable[[], None] | None = None,
        tell: Callable[[str, str], None] | None = None,
    ) -> list[str]:
        """Each line's reply, one exchange each (a dialect that joins none); ``between``
        called before each line after the first, once the instrument's gap has passed
        (a stop that comes during the gap stops the line); ``tell`` (see :meth:`_lines`)
        given each reply as it comes: the pass may end before its last line."""
        replies = []
        for query, line, _ in lines:
            if replies and between is not None:
                self.transport.wait_gap()
                between()
            reply = self.ask_query(query, line)
            if tell is not None:
                tell(line, reply)
            replies.append(reply)
        return replies

    def _lines(
        self, queries: Sequence[tuple[Query, Sequence[int]]]
    ) -> tuple[
        list[tuple[Query, str, int]],
        Callable[[list[str]], list[list[str]]],
        Callable[[str, str], None],
    ]:
        """The lines that ask ``queries`` (query, line, how many channels it answers), each
        once; how their replies read as each query's fields; and ``tell(line, reply)``,
        which hands the driver (:meth:`_told`), once, the reply to a line whose read cleared
        what it reports, before anything else of its pass is read (``found`` tells those
        not told yet)."""
        lines: list[tuple[Query, str, int]] = []
        clearing: dict[str, list[tuple[Query, Sequence[int]]]] = {}  # line -> its readers
        for query, channels in queries:
            if query.per_channel_list:
                chs = self.dialect.list_separator.join(map(str, channels))
                answers = [(query.line(chs=chs), list(channels))]
            else:
                answers = [(query.line(ch=c), [c]) for c in channels]
            for line, answered in answers:
                lines.append((query, line, len(answered)))
                if query.clears_on_read:
                    clearing.setdefault(line, []).append((query, answered))
        # Two queries reading one line (an OVP bit and an OCP bit of one status register)
        # ask it once and read the same reply: a second read may find the register
        # cleared by the first (an event register), or changed since.
        asked: list[tuple[Query, str, int]] = []
        at: dict[str, int] = {}
        for entry in lines:
            if entry[1] not in at:
                at[entry[1]] = len(asked)
                asked.append(entry)

        def tell(line: str, reply: str) -> None:
            for query, channels in clearing.pop(line, ()):
                self._told(query, reply, channels)

        def found(parts: list[str]) -> list[list[str]]:
            # What a read cleared is kept first, whatever else of the pass cannot be read.
            for line in list(clearing):
                tell(line, parts[at[line]])
            fields: dict[int, list[str]] = {}
            for query, line, count in lines:
                fields.setdefault(id(query), []).extend(self.fields(query, parts[at[line]], count))
            return [fields[id(query)] for query, _ in queries]

        return asked, found, tell

    def _told(self, query: Query, reply: str, channels: Sequence[int]) -> None:
        """``reply`` to a query whose read cleared what it reports (``clears_on_read``),
        for the channels its line answers: given before anything else of its pass is read,
        for a driver to keep. Nothing here."""

    def _parts(self, reply: str, lines: Sequence[object]) -> list[str]:
        """A compound line's reply, one part per line."""
        parts = reply.split(";")
        if len(parts) != len(lines):
            raise ProtocolError(self.name, f"expected {len(lines)} replies, got {reply!r}")
        return parts

    # -- replies -------------------------------------------------------------------------

    def fields(self, query: Query, reply: str, count: int) -> list[str]:
        """The ``count`` values of one reply (``count`` x ``query.count`` for "numbers")."""
        if query.pattern is not None:
            match = query.pattern.fullmatch(reply.strip())
            if match is None:
                raise ProtocolError(self.name, f"{query.template}: unexpected reply {reply!r}")
            reply = match.group("value")
        if query.reply == "bit":
            return [reply] * count if count == 1 else self._split(query, reply, count)
        per = query.count or 1
        return self._split(query, reply, count * per)

    def _split(self, query: Query, reply: str, count: int) -> list[str]:
        parts = reply.split(",")
        if len(parts) != count:
            raise ProtocolError(
                self.name, f"{query.template}: expected {count} values, got {reply!r}"
            )
        return parts

    def number(self, query: Query, text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise ProtocolError(self.name, f"{query.template}: not a number: {text!r}") from None
        if not math.isfinite(value):  # NaN/INF: no instrument reading can be trusted
            raise ProtocolError(self.name, f"{query.template}: not a finite number: {text!r}")
        return value

    def flag(self, query: Query, text: str, channel: int | None = None) -> bool:
        """A reply read as on/off; ``channel`` picks its bit of a status word shared by
        every channel (the query's ``bits``)."""
        if query.reply == "bit":
            bit = query.bits.get(channel, query.bit) if channel is not None else query.bit
            if bit is None:
                raise ProtocolError(self.name, f"{query.template}: no status bit for {channel}")
            if query.width is not None and len(text) == query.width == 1:
                word = ord(text)  # a binary status byte
            else:
                try:
                    word = int(text.strip(), 0)
                except ValueError:
                    raise ProtocolError(
                        self.name, f"{query.template}: not a status word: {text!r}"
                    ) from None
            return bool(word >> bit & 1)
        token = text.strip()
        if token in query.true:
            return True
        if token in query.false:
            return False
        raise ProtocolError(
            self.name,
            f"{query.template}: expected {'/'.join(query.true + query.false)}, got {text!r}",
        )

    # -- identity ------------------------------------------------------------------------

    def identify(self) -> Identified:
        """Who the instrument says it is, read by its dialect's identity query and pattern."""
        identity = self.dialect.identity
        if identity is None:
            raise ProtocolError(self.name, "its dialect has no identity query")
        reply = self.ask(identity.query.template, identity.query.width)
        match = match_identity(self.dialect, reply)
        if match is None:
            # Another model altogether (the wrong instrument at this address): say who it
            # is, for the identity check to refuse by name.
            fields = [f.strip() for f in reply.split(",")]
            if len(fields) == 4 and all(fields[:3]):
                return Identified(*fields)
            raise ProtocolError(
                self.name,
                f"{identity.query.template} reply is not a {self.dialect.title}'s: {reply!r}",
            )
        groups = match.groupdict()
        model = self.dialect.models.get(groups["model"])
        # A family whose reply leaves out its maker (or spells it its own way) is named
        # by its dialect file.
        maker = groups.get("maker") or (model.maker if model is not None else "")
        return Identified(
            maker, groups["model"], groups.get("serial") or "", groups.get("firmware") or ""
        )
