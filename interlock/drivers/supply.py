"""One power supply driver for every supply dialect (:mod:`interlock.dialects`).

Each operation is built from the dialect's lines: with channel lists, one line
serves several outputs; where the dialect joins lines (``;``), a setting is
read back in the exchange that sets it (``VOLT 5,(@2);:VOLT? (@2)``) and a
monitor pass is one exchange; otherwise each line is an exchange of its own.
What the supply cannot do (no over-current protection, no trip query) is
reported as such (None), never made up: the rules decide what that means.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from interlock.dialects import Dialect, hook_of
from interlock.dialects.model import Query
from interlock.drivers.device import DialectDevice, Link, joined
from interlock.errors import InstrumentError, ProtocolError
from interlock.journal import Journal
from interlock.posted import Posted
from interlock.protocols import ChannelSettings, Measured, PowerSupply, Reading


class DialectSupply(DialectDevice):
    """A supply speaking its dialect; implements :class:`~interlock.protocols.PowerSupply`."""

    kind: ClassVar[str] = "supply"
    implements: ClassVar[type] = PowerSupply

    def __init__(self, name: str, dialect: Dialect, link: Link, journal: Journal) -> None:
        super().__init__(name, dialect, link, journal)
        q, c = dialect.queries, dialect.commands
        caps = dialect.capabilities
        self._on, self._off = dialect.on_word, dialect.off_word
        self._output = q["output?"]
        self._measure_all = q.get("measure?")
        self._measure = [q[k] for k in ("measure_voltage?", "measure_current?") if k in q]
        self._trips = [q[k] for k in ("tripped?", "ovp_tripped?", "ocp_tripped?") if k in q]
        # Channels whose trip a query that clears on read has told, until cleared here.
        self._trips_told: set[int] = set()
        self._ocp_state = q.get("ocp_state?") if caps.ocp == "trip" else None
        self._ovp = q.get("ovp?") if caps.ovp == "level" else None
        self._range = q.get("range?")  # a supply with output ranges
        # An over-current trip at a level of its own follows the current limit.
        separate = caps.ocp == "trip" and caps.ocp_level == "separate"
        self._ocp_level = q["ocp?"] if separate else None
        self._clears = [c[k] for k in ("clear", "clear_ovp", "clear_ocp") if k in c]
        # Its clear names no output (TRIPRST): one line clears them all.
        self._clears_every_output = not any("{ch" in x.template for x in self._clears)
        self._hook = hook_of(dialect)

    # -- settings, each read back ---------------------------------------------------------

    def _set(self, command: str, query: str, channel: int, amount: Any, **context: Any) -> str:
        line = self.dialect.commands[command].line(
            ch=channel, chs=channel, value=amount, state=self._on
        )
        return self._set_line(line, query, channel, **context)

    def _set_line(self, line: str, query: str, channel: int, **context: Any) -> str:
        ask = self.dialect.queries[query]
        readback = ask.line(ch=channel, chs=channel)
        if self._compound:
            reply = self.set_and_ask(joined([line, readback]), **context)
        else:
            self.command(line, **context)
            reply = self.ask_query(ask, readback)
        return self.fields(ask, reply, 1)[0]

    def program_voltage(self, channel: int, volts: float, **context: Any) -> float:
        """Set the voltage setpoint and return what the supply then holds."""
        text = self._set(
            "set_voltage", "voltage?", channel, volts, quantity="voltage", value=volts, **context
        )
        return self.number(self.dialect.queries["voltage?"], text)

    def select_range(self, channel: int, name: str, **context: Any) -> str:
        """Select an output range by its name (the dialect's ``ranges``) and return the
        range the supply then says it is in."""
        if "set_range" not in self.dialect.commands:
            raise ProtocolError(self.name, f"a {self.dialect.title} has no output ranges")
        line = self.dialect.commands["set_range"].line(ch=channel, chs=channel, range=name)
        text = self._set_line(line, "range?", channel, quantity="range", value=name, **context)
        return text.strip()

    def program_current_limit(self, channel: int, amps: float, **context: Any) -> float:
        """Set the current limit and return what the supply then holds.

        Where over-current protection trips at a level of its own, that level is set to
        the limit too, and the readback further from ``amps`` is returned: the rules
        then judge both.
        """
        text = self._set(
            "set_current",
            "current?",
            channel,
            amps,
            quantity="current_limit",
            value=amps,
            **context,
        )
        limit = self.number(self.dialect.queries["current?"], text)
        if self._ocp_level is None:
            return limit
        text = self._set(
            "set_ocp", "ocp?", channel, amps, quantity="ocp_level", value=amps, **context
        )
        level = self.number(self._ocp_level, text)
        return level if abs(level - amps) > abs(limit - amps) else limit

    def program_ovp(self, channel: int, volts: float, **context: Any) -> float:
        """Program the over-voltage protection's level (and arm it where it must be armed);
        the level read back."""
        if self._ovp is None:
            raise ProtocolError(self.name, f"a {self.dialect.title} has no programmable OVP")
        text = self._set("set_ovp", "ovp?", channel, volts, quantity="ovp", value=volts, **context)
        level = self.number(self._ovp, text)
        if "ovp_on" in self.dialect.commands:  # off after a reset on some families
            armed = self.flag(
                self.dialect.queries["ovp_state?"],
                self._set(
                    "ovp_on",
                    "ovp_state?",
                    channel,
                    True,
                    quantity="ovp_state",
                    value=True,
                    **context,
                ),
            )
            if not armed:
                raise ProtocolError(self.name, f"CH{channel} over-voltage protection reads off")
        return level

    def enable_ocp(self, channel: int, **context: Any) -> bool:
        """Arm over-current protection (the output trips off); True if it reads armed."""
        if self._ocp_state is None and self._ocp_level is not None:
            # No switch of its own (Aim-TTi): armed at its level, which was programmed
            # with the current limit and judged then; it must still read back a level.
            query = self._ocp_level
            reply = self.ask_query(query, query.line(ch=channel, chs=channel), **context)
            self.number(query, self.fields(query, reply, 1)[0])
            return True
        if self._ocp_state is None:
            raise ProtocolError(self.name, f"a {self.dialect.title} has no over-current trip")
        text = self._set(
            "ocp_on", "ocp_state?", channel, True, quantity="ocp", value=True, **context
        )
        return self.flag(self._ocp_state, text)

    def set_output(self, channel: int, on: bool, **context: Any) -> bool:
        """Turn one output on or off; True if it then reads on."""
        key = "output_on" if on else "output_off"
        text = self._set(key, "output?", channel, on, quantity="output", value=on, **context)
        state = self.flag(self._output, text, channel)
        general = self.dialect.commands.get("general_on")
        if on and state and general is not None:
            self.command(general.line(), quantity="output", value=True, **context)
        return state

    def outputs_off(self, channels: Sequence[int], **context: Any) -> list[bool]:
        """Turn several outputs off, in the order given; return their states read back.

        For the safe state: the lines go out even when the journal cannot be written.
        """
        off = self.dialect.commands["output_off"]
        sep = self.dialect.list_separator
        context = {"quantity": "output", "value": False, **context}
        if off.per_channel_list:
            line = off.line(chs=sep.join(map(str, channels)))
            if self._compound and self._output.per_channel_list:
                readback = self._output.line(chs=sep.join(map(str, channels)))
                reply = self.turn_off_and_ask(joined([line, readback]), **context)
                return [
                    self.flag(self._output, f)
                    for f in self.fields(self._output, reply, len(channels))
                ]
            self.send_off(line, **context)
        else:
            for channel in channels:
                self.send_off(off.line(ch=channel, state=self._off), **context)
        (states,) = self.ask_all([(self._output, list(channels))])
        return [self.flag(self._output, f, ch) for f, ch in zip(states, channels, strict=True)]

    def clear_protection(self, channel: int, **context: Any) -> None:
        """Clear a latched protection trip; the output stays off."""
        for clear in self._clears:
            self.command(clear.line(ch=channel, chs=channel), **context)
        if self._clears_every_output:
            self._trips_told.clear()
        else:
            self._trips_told.discard(channel)

    def clear_trips(self, channels: Sequence[int], **context: Any) -> None:
        """Clear the latched trips of ``channels`` (the outputs stay off). A register that
        clears on read is cleared whatever it reads now: a trip it told a process before
        this one (a service since restarted) is latched in the supply still, and reads as
        none here. A line that clears every output goes out once."""
        if any(query.clears_on_read for query in self._trips):
            tripped = list(channels)
        else:
            found = self.settings(channels)
            tripped = [ch for ch, s in zip(channels, found, strict=True) if s.tripped]
        if self._clears_every_output:
            tripped = tripped[:1]
        for channel in tripped:
            self.clear_protection(channel, **context)

    def lock_panel(self, locked: bool, **context: Any) -> None:
        """Lock the front panel (or give it back) where the supply can; else nothing."""
        line = self.dialect.commands.get("lock" if locked else "unlock")
        if line is not None and self.capabilities.panel_lock:
            self.command(line.line(), quantity="panel_lock", value=locked, **context)

    # -- reading --------------------------------------------------------------------------

    def measure(self, channels: Sequence[int]) -> list[Measured]:
        """Measured volts and amps of each channel."""
        return [Measured(v, a) for v, a, *_ in self._read(channels, trips=False, armed=False)]

    def poll(self, channels: Sequence[int]) -> list[Reading]:
        """Measured volts, amps and protection state of each channel (the monitor's pass)."""
        return [Reading(*row) for row in self._read(channels, trips=True, armed=True)]

    def post_poll(
        self, channels: Sequence[int], between: Callable[[], None] | None = None
    ) -> Posted[list[Reading]]:
        """:meth:`poll` asked now, its reply read from the result: the monitor asks every
        supply before it reads any. ``between``: see :meth:`post_all`."""
        queries, rows = self._reading(channels, trips=True, armed=True)
        posted = self.post_all(queries, between)
        return posted.then(lambda found: [Reading(*row) for row in rows(found)])

    def _read(self, channels: Sequence[int], *, trips: bool, armed: bool) -> list[tuple]:
        queries, rows = self._reading(channels, trips=trips, armed=armed)
        return rows(self.ask_all(queries))

    def _reading(
        self, channels: Sequence[int], *, trips: bool, armed: bool
    ) -> tuple[list[tuple[Query, Sequence[int]]], Callable[[list[list[str]]], list[tuple]]]:
        """The queries that read ``channels``, and how their fields read as rows of
        (volts, amps, tripped, protected)."""
        chs = list(channels)
        queries: list[tuple[Query, Sequence[int]]] = []
        if self._measure_all is not None:
            queries.append((self._measure_all, chs))
        else:
            queries += [(q, chs) for q in self._measure]
        trip_queries = self._trips if trips else []
        # Without a trip query, an output that reads off while live is how a trip shows.
        by_output = trips and not trip_queries
        queries += [(q, chs) for q in trip_queries]
        if by_output:
            queries.append((self._output, chs))
        if armed and self._ocp_state is not None:
            queries.append((self._ocp_state, chs))

        def rows(found_all: list[list[str]]) -> list[tuple]:
            answers = iter(found_all)
            if self._measure_all is not None:
                query, found = self._measure_all, next(answers)
                per, at_v, at_a = query.count or 1, query.fields["volts"], query.fields["amps"]
                volts = [self.number(query, found[i * per + at_v]) for i in range(len(chs))]
                amps = [self.number(query, found[i * per + at_a]) for i in range(len(chs))]
            else:
                volts = [self.number(self._measure[0], f) for f in next(answers)]
                amps = [self.number(self._measure[1], f) for f in next(answers)]
            tripped = [False] * len(chs)
            for query in trip_queries:
                for i, found in enumerate(next(answers)):
                    tripped[i] = self._tripped(query, found, chs[i]) or tripped[i]
            if by_output:
                for i, found in enumerate(next(answers)):
                    tripped[i] = not self.flag(self._output, found, chs[i])
            protected: list[bool | None] = [None] * len(chs)
            if armed and self._ocp_state is not None:
                protected = [self.flag(self._ocp_state, f) for f in next(answers)]
            return list(zip(volts, amps, tripped, protected, strict=True))

        return queries, rows

    def _told(self, query: Query, reply: str, channels: Sequence[int]) -> None:
        """A reply of a register its read cleared, kept before anything else of its pass
        is read: a reply of that pass that cannot be read must not lose the trip it told
        (the output stays tripped until cleared, and nothing else would show it)."""
        if query not in self._trips:
            return
        with contextlib.suppress(InstrumentError):  # the pass itself says what is unreadable
            fields = self.fields(query, reply, len(channels))
            for channel, field in zip(channels, fields, strict=True):
                if self.flag(query, field, channel):
                    self._trips_told.add(channel)

    def _tripped(self, query: Query, found: str, channel: int) -> bool:
        """Whether a trip query's reply says ``channel`` tripped. A register its read clears
        tells a trip once, while the output stays tripped until cleared: what it told was
        kept (:meth:`_told`, before any field of its pass was read) until then."""
        if not query.clears_on_read:
            return self.flag(query, found)
        return channel in self._trips_told

    def settings(
        self, channels: Sequence[int], *, ranges: bool = False, coupling: bool = False
    ) -> list[ChannelSettings]:
        """Everything the supply holds for these channels (one exchange where it can);
        with ``ranges``, the output range each is in too, where the supply has ranges;
        with ``coupling``, whether each tracks another channel, where the supply says
        (both asked only before arming or going live: the stop's check has no use for
        them, and a line more would only make it wait)."""
        q = self.dialect.queries
        chs = list(channels)
        queries: list[tuple[Query, Sequence[int]]] = [
            (q["voltage?"], chs),
            (q["current?"], chs),
            (self._output, chs),
        ]
        if self._ovp is not None:
            queries.append((self._ovp, chs))
        if self._ocp_state is not None:
            queries.append((self._ocp_state, chs))
        asks_range = ranges and self._range is not None
        if asks_range:
            queries.append((self._range, chs))
        tracking = q.get("tracking?") if coupling else None
        if tracking is not None:
            queries.append((tracking, chs))
        queries += [(t, chs) for t in self._trips]
        answers = self.ask_all(queries)
        volts, amps, outputs = answers[0], answers[1], answers[2]
        rest = answers[3:]
        ovps = rest.pop(0) if self._ovp is not None else None
        ocps = rest.pop(0) if self._ocp_state is not None else None
        in_range = rest.pop(0) if asks_range else None
        coupled = [False] * len(chs)
        if tracking is not None:
            # A status bit per channel names the channels that can track (the E3631A's
            # P25V and N25V): another channel tracks nothing.
            coupled = [
                (not tracking.bits or ch in tracking.bits) and self.flag(tracking, found, ch)
                for ch, found in zip(chs, rest.pop(0), strict=True)
            ]
        return [
            ChannelSettings(
                voltage=self.number(q["voltage?"], volts[i]),
                current_limit=self.number(q["current?"], amps[i]),
                output=self.flag(self._output, outputs[i], chs[i]),
                ovp=self.number(self._ovp, ovps[i]) if ovps is not None else None,
                ocp=self.flag(self._ocp_state, ocps[i]) if ocps is not None else None,
                tripped=any(
                    self._tripped(t, found[i], chs[i])
                    for t, found in zip(self._trips, rest, strict=True)
                ),
                range=in_range[i].strip() if in_range is not None else None,
                coupled=coupled[i],
            )
            for i in range(len(chs))
        ]
