"""SCPI as bench instruments speak it: header tree, parameters, error queue.

Only the server side lives here (what an instrument does with a line it
received). A line is split into program message units at ``;`` (outside
quotes and parentheses); each unit is a header and optional parameters. Headers
match a tree of nodes written the way programming guides print them::

    [SOURce:]VOLTage[:LEVel][:IMMediate][:AMPLitude]

Upper-case letters are the short form, the whole word the long form; either is
accepted, in any case, and nothing in between (``VOLTA`` is an error, as on
real instruments). Bracketed nodes are optional. A node written with ``#``
takes a numeric suffix (``[SOURce#:]VOLTage`` matches ``SOUR2:VOLT``, ``CH#:VOLTage``
matches ``CH1:VOLT``); the handler finds the numbers in ``Parameters.suffixes``,
None where the suffix was left out. After a unit, the parser's
current path is the header without its last node, so ``SOUR:VOLT 5;CURR 1``
sets the current of ``SOUR``; a leading ``:`` goes back to the root. Common
commands (``*IDN?``) leave the path alone.

Errors never escape as exceptions from :meth:`CommandSet.execute`: they land
in the instrument's :class:`ErrorQueue` with their standard SCPI code, the way
an instrument reports them (``SYST:ERR?``), and the next unit runs anyway.
"""

from __future__ import annotations

import math
import re
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

# SCPI-99 / IEEE 488.2 standard error messages used by the simulated instruments.
STANDARD_ERRORS: dict[int, str] = {
    0: "No error",
    -100: "Command error",
    -101: "Invalid character",
    -102: "Syntax error",
    -103: "Invalid separator",
    -104: "Data type error",
    -108: "Parameter not allowed",
    -109: "Missing parameter",
    -113: "Undefined header",
    -114: "Header suffix out of range",
    -120: "Numeric data error",
    -123: "Exponent too large",
    -131: "Invalid suffix",
    -138: "Suffix not allowed",
    -141: "Invalid character data",
    -151: "Invalid string data",
    -200: "Execution error",
    -221: "Settings conflict",
    -222: "Data out of range",
    -223: "Too much data",
    -224: "Illegal parameter value",
    -300: "Device-specific error",
    -350: "Queue overflow",
    -400: "Query error",
}

# Bits of the standard event status register (*ESR?) set by each error class.
_ESR_QUERY_ERROR = 4
_ESR_DEVICE_ERROR = 8
_ESR_EXECUTION_ERROR = 16
_ESR_COMMAND_ERROR = 32

# What a real instrument returns for an overload or a value it cannot show.
OVERLOAD = 9.9e37


class ScpiError(Exception):
    """Raised inside command handlers; the dispatcher queues it as an SCPI error."""

    def __init__(self, code: int, detail: str = "") -> None:
        self.code = code
        self.detail = detail
        super().__init__(f"{code},{STANDARD_ERRORS.get(code, 'Error')}")


class ErrorQueue:
    """The instrument's error/event queue (first in, first out).

    When full, the newest entry is replaced by -350 "Queue overflow", as
    SCPI-99 prescribes: the oldest errors are the interesting ones.
    """

    def __init__(self, capacity: int = 20) -> None:
        self.capacity = capacity
        self._entries: deque[tuple[int, str]] = deque()
        self.event_status = 0  # *ESR? bits

    def push(self, code: int, detail: str = "") -> None:
        if -199 <= code <= -100:
            self.event_status |= _ESR_COMMAND_ERROR
        elif -299 <= code <= -200:
            self.event_status |= _ESR_EXECUTION_ERROR
        elif -499 <= code <= -400:
            self.event_status |= _ESR_QUERY_ERROR
        else:
            self.event_status |= _ESR_DEVICE_ERROR
        if len(self._entries) >= self.capacity:
            self._entries[-1] = (-350, "")
            return
        self._entries.append((code, detail))

    def pop(self) -> str:
        if not self._entries:
            return '+0,"No error"'
        code, detail = self._entries.popleft()
        message = STANDARD_ERRORS.get(code, "Error")
        if detail:
            message = f"{message};{detail}"
        return f'{code:+d},"{message}"'

    def count(self) -> int:
        return len(self._entries)

    def codes(self) -> list[int]:
        return [code for code, _ in self._entries]

    def clear(self) -> None:
        self._entries.clear()
        self.event_status = 0

    def take_event_status(self) -> int:
        value, self.event_status = self.event_status, 0
        return value


# --- header tree -------------------------------------------------------------


# A header suffix has at most this many digits: enough for any channel or slot.
_MAX_SUFFIX_DIGITS = 3
_SUFFIX = re.compile(rf"([A-Z*]+?)([0-9]{{1,{_MAX_SUFFIX_DIGITS}}})")
_NO_MATCH = object()


@dataclass(frozen=True)
class Node:
    short: str
    long: str
    optional: bool
    numbered: bool = False  # takes a numeric suffix (``SOURce#``)

    def matches(self, word: str) -> bool:
        return self.suffix(word) is not _NO_MATCH

    def suffix(self, word: str) -> object:
        """The word's numeric suffix (None if absent), or ``_NO_MATCH``."""
        if word == self.short or word == self.long:
            return None
        if self.numbered:
            found = _SUFFIX.fullmatch(word)
            if found and found.group(1) in (self.short, self.long):
                return int(found.group(2))
        return _NO_MATCH


_PATTERN_NODE = re.compile(r"\[:?(\*?[A-Za-z]+#?)\]|:?(\*?[A-Za-z]+#?)")


def parse_pattern(pattern: str) -> tuple[Node, ...]:
    """``"[SOURce:]VOLTage[:LEVel]"`` -> nodes with short/long forms and optionality."""
    nodes = []
    position = 0
    compact = pattern.replace(":]", "]")
    while position < len(compact):
        match = _PATTERN_NODE.match(compact, position)
        if not match:
            raise ValueError(f"bad SCPI header pattern {pattern!r} at {position}")
        word = match.group(1) or match.group(2)
        numbered = word.endswith("#")
        word = word.rstrip("#")
        short = "".join(c for c in word if c.isupper() or c == "*")
        nodes.append(Node(short=short or word.upper(), long=word.upper(),
                          optional=match.group(1) is not None, numbered=numbered))
        position = match.end()
    return tuple(nodes)


def _match_nodes(nodes: tuple[Node, ...], words: list[str]) -> tuple[int | None, ...] | None:
    """The suffixes of the numbered nodes if ``words`` match ``nodes``, else None."""

    # Small backtracking match: optional nodes may be skipped or consumed.
    def walk(n: int, w: int) -> tuple[int | None, ...] | None:
        if n == len(nodes):
            return () if w == len(words) else None
        node = nodes[n]
        if w < len(words):
            found = node.suffix(words[w])
            if found is not _NO_MATCH:
                rest = walk(n + 1, w + 1)
                if rest is not None:
                    return (found, *rest) if node.numbered else rest  # type: ignore[misc]
        if not node.optional:
            return None
        rest = walk(n + 1, w)
        if rest is None:
            return None
        return (None, *rest) if node.numbered else rest

    return walk(0, 0)


@dataclass(frozen=True)
class Parameters:
    """The comma-separated parameters of one unit, raw (handlers parse them)."""

    items: tuple[str, ...]
    # One per numbered header node (``SOURce#``), in order; None where left out.
    suffixes: tuple[int | None, ...] = ()

    def __len__(self) -> int:
        return len(self.items)

    def at_most(self, count: int) -> None:
        if len(self.items) > count:
            raise ScpiError(-108)

    def split_channels(self) -> tuple[Parameters, str | None]:
        """Detach a trailing channel list ``(@...)``, as most commands accept one."""
        if self.items and self.items[-1].startswith("("):
            return Parameters(self.items[:-1], self.suffixes), self.items[-1]
        return self, None


Handler = Callable[[Parameters], "str | None"]


@dataclass(frozen=True)
class _Entry:
    nodes: tuple[Node, ...]
    query: bool
    handler: Handler


# Headers whose lookup is remembered per command set: a poll repeats a few headers
# (the monitor's five queries, the setpoints) and a walk of the tree costs more than
# the rest of the exchange. Bounded, as headers come from the wire.
_LOOKUPS_KEPT = 256

_HEADER = re.compile(r"(\*[A-Za-z]+|:?[A-Za-z][A-Za-z0-9]*(?::[A-Za-z][A-Za-z0-9]*)*)(\?)?")


class CommandSet:
    """Commands of one instrument and the dispatcher that runs a line against them."""

    def __init__(self, errors: ErrorQueue, undefined_detail: str = "") -> None:
        self.errors = errors
        self._entries: list[_Entry] = []
        self._looked_up: dict[
            tuple[tuple[str, ...], bool], tuple[Handler, tuple[int | None, ...]] | None
        ] = {}
        # what the family appends to -113 (Rigol: "keyword cannot be found")
        self.undefined_detail = undefined_detail

    def command(self, pattern: str, handler: Handler) -> None:
        self._entries.append(_Entry(parse_pattern(pattern), False, handler))
        self._looked_up.clear()

    def query(self, pattern: str, handler: Handler) -> None:
        self._entries.append(_Entry(parse_pattern(pattern), True, handler))
        self._looked_up.clear()

    def _lookup(
        self, words: list[str], query: bool
    ) -> tuple[Handler, tuple[int | None, ...]] | None:
        key = (tuple(words), query)
        try:
            return self._looked_up[key]
        except KeyError:
            pass
        found = self._walk(words, query)
        if len(self._looked_up) >= _LOOKUPS_KEPT:
            self._looked_up.clear()
        self._looked_up[key] = found
        return found

    def _walk(self, words: list[str], query: bool) -> tuple[Handler, tuple[int | None, ...]] | None:
        for entry in self._entries:
            if entry.query == query:
                suffixes = _match_nodes(entry.nodes, words)
                if suffixes is not None:
                    return entry.handler, suffixes
        return None

    def execute(self, line: str) -> str | None:
        """Run one line; return the response line (``;``-joined) or None if no query."""
        responses: list[str] = []
        path: list[str] = []
        for unit in split_units(line):
            try:
                words, query, params = _parse_unit(unit)
                if words[0].startswith("*"):
                    absolute = words
                elif unit.lstrip().startswith(":"):
                    absolute = words
                    path = words[:-1]
                else:
                    absolute = path + words
                    path = absolute[:-1]
                found = self._lookup(absolute, query)
                if found is None:
                    raise ScpiError(-113, self.undefined_detail)
                handler, suffixes = found
                if suffixes:
                    params = Parameters(params.items, suffixes)
                response = handler(params)
            except ScpiError as error:
                self.errors.push(error.code, error.detail)
                continue
            if response is not None:
                responses.append(response)
        return ";".join(responses) if responses else None


def _split_top_level(text: str, separator: str) -> tuple[list[str], bool, bool, int]:
    """Split at ``separator`` outside quotes and parentheses.

    Returns the parts, whether a ``)`` came before its ``(``, whether a quote
    was left open, and the parentheses left open at the end.
    """
    parts: list[str] = []
    current: list[str] = []
    quote = ""
    depth = 0
    stray_close = False
    for char in text:
        if quote:
            if char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            if depth == 0:
                stray_close = True
            depth = max(0, depth - 1)
        elif char == separator and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return parts, stray_close, bool(quote), depth


def split_units(line: str) -> list[str]:
    """Split at ``;`` outside quotes and parentheses; empty units are dropped."""
    units, *_ = _split_top_level(line, ";")
    return [unit for unit in units if unit.strip()]


def _parse_unit(unit: str) -> tuple[list[str], bool, Parameters]:
    text = unit.strip()
    if any(not (" " <= char <= "~" or char == "\t") for char in text):
        raise ScpiError(-101)
    match = _HEADER.match(text)
    if not match:
        raise ScpiError(-102)
    rest = text[match.end():]
    if rest and not rest[0].isspace():
        # "VOLT5" or "VOLT:5": a header glued to something that is not a header
        raise ScpiError(-113 if rest[0].isalnum() else -102)
    header = match.group(1).lstrip(":").upper()
    words = [header] if header.startswith("*") else header.split(":")
    return words, match.group(2) == "?", Parameters(split_parameters(rest))


def split_parameters(text: str) -> tuple[str, ...]:
    """Comma-separated parameters, commas inside quotes/parentheses kept."""
    text = text.strip()
    if not text:
        return ()
    items, stray_close, open_quote, open_parens = _split_top_level(text, ",")
    if stray_close:
        raise ScpiError(-102)
    if open_quote:
        raise ScpiError(-151)
    if open_parens:
        raise ScpiError(-102)
    items = [item.strip() for item in items]
    if any(not item for item in items):
        raise ScpiError(-102)  # "VOLT 5,,1" or a trailing comma
    return tuple(items)


# --- parameter types ---------------------------------------------------------

# SCPI unit suffixes per quantity; SCPI's own "MA" = mega clash is resolved the
# way instruments do it: MA is milliampere, MOHM is megaohm.
UNITS: dict[str, dict[str, float]] = {
    "V": {"V": 1.0, "MV": 1e-3, "UV": 1e-6, "KV": 1e3},
    "A": {"A": 1.0, "MA": 1e-3, "UA": 1e-6},
    "OHM": {"OHM": 1.0, "KOHM": 1e3, "MOHM": 1e6, "GOHM": 1e9},
    "": {},
}

_NUMBER = re.compile(r"([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*([A-Za-z]*)")


def parse_number(text: str, unit: str = "", keywords: dict[str, float] | None = None) -> float:
    """A numeric parameter with an optional unit suffix, or a keyword (MIN, MAX, DEF).

    Keywords accept their long forms (MINimum, MAXimum, DEFault).
    """
    word = text.strip().upper()
    for key, value in (keywords or {}).items():
        if word in (key, _LONG_KEYWORDS.get(key, key)):
            return value
    match = _NUMBER.fullmatch(word)
    if not match:
        if word[:1].isalpha():
            raise ScpiError(-141 if keywords else -104)
        raise ScpiError(-120)
    number, suffix = match.groups()
    value = float(number)
    if not math.isfinite(value):
        raise ScpiError(-123)
    if suffix:
        factors = UNITS[unit]
        if not factors:
            raise ScpiError(-138)
        if suffix not in factors:
            raise ScpiError(-131)
        value *= factors[suffix]
    return value


_LONG_KEYWORDS = {"MIN": "MINIMUM", "MAX": "MAXIMUM", "DEF": "DEFAULT", "AUTO": "AUTO"}


def parse_bool(text: str) -> bool:
    word = text.strip().upper()
    if word == "ON":
        return True
    if word == "OFF":
        return False
    try:
        value = parse_number(word)
    except ScpiError:
        raise ScpiError(-141) from None
    return round(value) != 0


def parse_choice(text: str, choices: Iterable[str]) -> str:
    """Character data among ``choices`` (written like headers: ``CH1``, ``AUTO``)."""
    word = text.strip().upper()
    for choice in choices:
        short = "".join(c for c in choice if c.isupper() or c.isdigit())
        if word in (choice.upper(), short):
            return choice.upper()
    raise ScpiError(-141 if word[:1].isalpha() else -104)


_CHANNEL_LIST = re.compile(r"\(\s*@([0-9,:\s]+)\)")


def parse_channel_list(text: str, valid: Iterable[int]) -> list[int]:
    """``(@1)``, ``(@1,3)``, ``(@1:3)`` -> channel numbers in the order given."""
    match = _CHANNEL_LIST.fullmatch(text.strip())
    if not match:
        raise ScpiError(-102)
    valid = set(valid)
    channels: list[int] = []
    for part in match.group(1).split(","):
        part = part.strip()
        if not part:
            raise ScpiError(-102)
        try:
            if ":" in part:
                first, last = (int(p) for p in part.split(":", 1))
                step = 1 if last >= first else -1
                span = list(range(first, last + step, step))
            else:
                span = [int(part)]
        except ValueError:
            raise ScpiError(-102) from None
        for channel in span:
            if channel not in valid:
                raise ScpiError(-222)
            channels.append(channel)
    return channels


def parse_string(text: str) -> str:
    text = text.strip()
    if len(text) < 2 or text[0] not in "\"'" or text[-1] != text[0]:
        raise ScpiError(-151)
    return text[1:-1]


def format_number(value: float) -> str:
    """Keysight's response format for a real: ``+5.00000000E+00``."""
    return f"{value:+.8E}"
