"""Reading dialect files: TOML in, :class:`~interlock.dialects.model.Dialect` out.

Every key is checked, unknown keys are refused, quantities carry units, each
template is compiled once (its fields checked against what the operation
supplies) and each reply pattern compiled once; a mistake is a
:class:`~interlock.errors.ConfigError` naming the file and the key.
"""

from __future__ import annotations

import math
import re
import string
import tomllib
from itertools import pairwise
from pathlib import Path
from typing import Any

from interlock.dialects.model import (
    FRAMINGS,
    KINDS,
    LINK_KINDS,
    REPLY_KINDS,
    Capabilities,
    Command,
    Dialect,
    IdentityQuery,
    Link,
    MeterModel,
    Model,
    Query,
    SupplyChannel,
    SupplyModel,
    SupplyRange,
    SwitchModel,
)
from interlock.errors import ConfigError
from interlock.units import (
    CURRENT,
    DURATION,
    POWER,
    RESISTANCE,
    VOLTAGE,
    Dimension,
    parse_quantity,
)

# The fields each template may use: a channel, a channel list, a value, an on/off word,
# an output range's name.
_FIELDS = {"ch", "chs", "value", "state", "range"}
# An output range's name goes into a line as it is: a word, nothing a line could break on.
_RANGE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,15}")
_MAX_TEMPLATE = 200


class _Table:
    """A TOML table that knows its file and key path and refuses keys nobody read."""

    def __init__(self, data: dict[str, Any], file: str, key: str = "") -> None:
        self.data = data
        self.file = file
        self.key = key
        self._read: set[str] = set()

    def error(self, key: str, problem: str) -> ConfigError:
        where = ".".join(k for k in (self.key, key) if k)
        return ConfigError(self.file, where, problem)

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
        self._read.add(key)
        if key not in self.data:
            if default is ...:
                raise self.error(key, "missing")
            return default
        value = self.data[key]
        if isinstance(value, bool) and kind is not bool and bool not in _tuple(kind):
            raise self.error(key, f"expected {_names(kind)}, got {value!r}")
        if not isinstance(value, kind):
            raise self.error(key, f"expected {_names(kind)}, got {value!r}")
        return value

    def choice(self, key: str, choices: tuple[str, ...], default: Any = ...) -> str:
        value = self.get(key, str, default)
        if value not in choices and value is not default:
            raise self.error(key, f'expected one of {", ".join(choices)}, got "{value}"')
        return value

    def quantity(self, key: str, dimension: Dimension, default: Any = ...) -> float:
        text = self.get(key, str, default)
        if text is default:
            return default
        try:
            return parse_quantity(text, dimension)
        except ValueError as exc:
            raise self.error(key, str(exc)) from None

    def strings(self, key: str) -> tuple[str, ...]:
        values = self.get(key, list, [])
        if not all(isinstance(v, str) for v in values):
            raise self.error(key, "expected a list of strings")
        return tuple(values)

    def table(self, key: str, required: bool = True) -> _Table | None:
        value = self.get(key, dict, ... if required else None)
        if value is None:
            return None
        return _Table(value, self.file, ".".join(k for k in (self.key, key) if k))

    def finish(self) -> None:
        stray = sorted(set(self.data) - self._read)
        if stray:
            raise self.error(stray[0], "unknown key")


def _tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _names(kind: type | tuple[type, ...]) -> str:
    return " or ".join(k.__name__ for k in _tuple(kind))


def load_dialect(path: Path) -> Dialect:
    shown = f"{path.parent.name}/{path.name}"
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(shown, "", f"cannot read: {exc}") from None
    root = _Table(data, shown)
    head = root.table("dialect")
    name = head.get("name", str)
    if name != path.stem.replace("_", "-"):
        raise head.error("name", f'must be the file\'s name ("{path.stem.replace("_", "-")}")')
    kind = head.choice("kind", KINDS)
    title = head.get("title", str)
    driver = head.get("driver", str)
    hook = head.get("hook", str, None)
    sources = head.strings("sources")
    unconfirmed = head.strings("unconfirmed")
    on_word = head.get("on", str, "ON")
    off_word = head.get("off", str, "OFF")
    separator = head.get("list_separator", str, ",")
    maker = head.get("maker", str)
    head.finish()
    if hook is not None and not (path.parent / f"{hook}.py").is_file():
        raise ConfigError(shown, "dialect.hook", f'no module "{hook}.py" beside the file')

    link = _link(root.table("link"))
    capabilities = _capabilities(root.table("capabilities", required=False))
    commands = _commands(root.table("commands", required=False))
    queries = _queries(root.table("queries", required=False), link)
    identity = _identity(root.table("identity", required=False), link)
    models = _models(root.table("models"), kind, maker, name)
    root.finish()
    dialect = Dialect(
        name=name,
        kind=kind,
        title=title,
        driver=driver,
        path=shown,
        link=link,
        identity=identity,
        capabilities=capabilities,
        commands=commands,
        queries=queries,
        models=models,
        hook=hook,
        sources=sources,
        unconfirmed=unconfirmed,
        on_word=on_word,
        off_word=off_word,
        list_separator=separator,
    )
    _check_capabilities(dialect)
    return dialect


def _link(table: _Table) -> Link:
    kind = table.choice("kind", LINK_KINDS)
    link = Link(
        kind=kind,
        port=table.get("port", int, None),
        write_termination=table.get("write_termination", str, "\n"),
        read_termination=table.get("read_termination", str, "\n"),
        framing=table.choice("framing", FRAMINGS, "line"),
        baud=table.get("baud", int, 9600),
        data_bits=table.get("data_bits", int, 8),
        parity=table.choice("parity", ("N", "E", "O"), "N"),
        stop_bits=table.get("stop_bits", int, 1),
        flow=table.choice("flow", ("none", "rts-cts", "dtr-dsr", "xon-xoff"), "none"),
        min_gap=table.quantity("min_gap", DURATION, 0.0),
        idle=table.quantity("idle", DURATION, 0.05),
        after_set=table.quantity("after_set", DURATION, 0.0),
        reached=table.get("reached", str, ""),
    )
    table.finish()
    if kind == "visa-socket" and link.port is None:
        raise table.error("port", "a socket link needs its TCP port")
    if link.framing == "line" and not link.read_termination:
        raise table.error("read_termination", 'line framing needs a terminator (or "fixed")')
    return link


def _capabilities(table: _Table | None) -> Capabilities:
    if table is None:
        return Capabilities()
    caps = Capabilities(
        ovp=table.choice("ovp", ("level", "switch", "none"), "none"),
        ocp=table.choice("ocp", ("trip", "limit", "none"), "none"),
        ocp_level=table.choice("ocp_level", ("current-limit", "separate"), "current-limit"),
        trip_query=table.get("trip_query", bool, False),
        output_query=table.get("output_query", bool, True),
        channel_lists=table.get("channel_lists", bool, False),
        compound=table.get("compound", bool, False),
        panel_lock=table.get("panel_lock", bool, False),
        watchdog=table.get("watchdog", bool, False),
        general_output=table.get("general_output", bool, False),
        common_output=table.get("common_output", bool, False),
        contact_sense=table.get("contact_sense", bool, False),
        unconfirmed=table.strings("unconfirmed"),
    )
    table.finish()
    return caps


def _fields(table: _Table, key: str, template: str) -> set[str]:
    if len(template) > _MAX_TEMPLATE:
        raise table.error(key, f"longer than {_MAX_TEMPLATE} characters")
    try:
        names = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError as exc:
        raise table.error(key, f"not a template: {exc}") from None
    unknown = names - _FIELDS
    if unknown or "" in names:
        raise table.error(key, f"unknown field {{{sorted(unknown or {''})[0]}}}")
    try:  # every format spec must take what the driver gives it
        template.format(ch=1, chs="1", value=1.5, state="ON", range="P15V")
    except (ValueError, TypeError) as exc:
        raise table.error(key, f"cannot be formatted: {exc}") from None
    return names


def _commands(table: _Table | None) -> dict[str, Command]:
    if table is None:
        return {}
    commands = {}
    for key in list(table.data):
        template = table.get(key, str)
        names = _fields(table, key, template)
        if ("range" in names) != (key == "set_range"):  # the range's name, and only there
            problem = "takes {range}" if key == "set_range" else "only set_range takes {range}"
            raise table.error(key, problem)
        commands[key] = Command(key, template, "chs" in names)
    table.finish()
    return commands


def _query(table: _Table, key: str, link: Link) -> Query:
    value = table.get(key, (str, dict))
    if isinstance(value, str):
        value = {"send": value}
    spec = _Table(value, table.file, f"{table.key}.{key}")
    template = spec.get("send", str)
    names = _fields(spec, "send", template)
    if "range" in names:
        raise spec.error("send", "only the set_range command takes {range}")
    pattern = spec.get("pattern", str, None)
    try:
        compiled = re.compile(pattern) if pattern is not None else None
    except re.error as exc:
        raise spec.error("pattern", f"not a regular expression: {exc}") from None
    if compiled is not None and "value" not in compiled.groupindex:
        raise spec.error("pattern", 'needs a group "value"')
    fields = spec.get("fields", dict, {})
    bit = spec.get("bit", (int, dict), None)
    bits = {}
    if isinstance(bit, dict):  # { 1 = 4, 2 = 5 }: a status word with a bit per channel
        for ch, at in bit.items():
            if not ch.isdigit() or not isinstance(at, int) or isinstance(at, bool):
                raise spec.error("bit", "expected a bit number or { channel = bit, ... }")
            bits[int(ch)] = at
        bit = None
    query = Query(
        key=key,
        template=template,
        reply=spec.choice("reply", REPLY_KINDS, "number"),
        per_channel_list="chs" in names,
        true=tuple(spec.strings("true")) or ("1",),
        false=tuple(spec.strings("false")) or ("0",),
        bit=bit,
        bits=bits,
        width=spec.get("width", int, None),
        pattern=compiled,
        count=spec.get("count", int, None),
        fields={str(k): int(v) for k, v in fields.items()},
        clears_on_read=spec.get("clears_on_read", bool, False),
        trailing=spec.get("trailing", int, 0),
    )
    spec.finish()
    if query.trailing < 0:
        raise spec.error("trailing", f"expected a number of bytes, 0 or more, got {query.trailing}")
    if query.trailing and link.kind != "serial":
        raise spec.error("trailing", "bytes after a reply are dropped on a serial link only")
    if query.reply == "bit" and query.bit is None and not query.bits:
        raise spec.error("bit", "a status-bit reply names its bit")
    if query.reply == "numbers" and not query.count:
        raise spec.error("count", "a reply of several numbers says how many")
    if link.framing == "fixed" and query.width is None:
        raise spec.error("width", "a fixed-framed link needs each reply's width")
    return query


def _queries(table: _Table | None, link: Link) -> dict[str, Query]:
    if table is None:
        return {}
    queries = {key: _query(table, key, link) for key in list(table.data)}
    table.finish()
    if "range?" in queries and queries["range?"].reply != "text":
        raise table.error("range?", 'a range is read back by its name: reply = "text"')
    return queries


def _identity(table: _Table | None, link: Link) -> IdentityQuery | None:
    if table is None:
        return None
    send = table.get("query", str)
    pattern = table.get("pattern", str)
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise table.error("pattern", f"not a regular expression: {exc}") from None
    if "model" not in compiled.groupindex:
        raise table.error("pattern", 'needs a group "model"')
    width = table.get("width", int, None)
    strip = table.get("strip", str, "")
    table.finish()
    query = Query("identity?", send, "text", False, width=width)
    return IdentityQuery(query, compiled, strip)


def _models(table: _Table, kind: str, maker: str, dialect: str) -> dict[str, Model]:
    models: dict[str, Model] = {}
    for name in list(table.data):
        spec = table.table(name)
        model_maker = spec.get("maker", str, maker)
        unconfirmed = spec.strings("unconfirmed")
        model: Model
        if kind == "supply":
            channels = {}
            chans = spec.table("channels")
            for number in list(chans.data):
                if not number.isdigit() or not 1 <= int(number) <= 99:
                    raise chans.error(number, "a channel is a number 1..99")
                ch = chans.table(number)
                channels[int(number)] = SupplyChannel(
                    max_voltage=ch.quantity("max_voltage", VOLTAGE),
                    max_current=ch.quantity("max_current", CURRENT),
                    max_ovp=ch.quantity("max_ovp", VOLTAGE, 0.0),
                    min_current=ch.quantity("min_current", CURRENT, 0.002),
                    min_voltage=ch.quantity("min_voltage", VOLTAGE, 0.0),
                    ranges=_ranges(ch),
                    max_power=ch.quantity("max_power", POWER, math.inf),
                )
                ch.finish()
                _check_ranges(ch, channels[int(number)])
            chans.finish()
            model = SupplyModel(model_maker, name, channels, dialect, unconfirmed)
        elif kind == "meter":
            model = MeterModel(
                model_maker,
                name,
                max_dc_voltage=spec.quantity("max_dc_voltage", VOLTAGE),
                max_resistance=spec.quantity("max_resistance", RESISTANCE),
                max_dc_current=spec.quantity("max_dc_current", CURRENT),
                dialect=dialect,
                unconfirmed=unconfirmed,
            )
        else:
            model = SwitchModel(
                model_maker,
                name,
                relays=spec.get("relays", int),
                contact_max_voltage=spec.quantity("contact_max_voltage", VOLTAGE),
                contact_max_current=spec.quantity("contact_max_current", CURRENT),
                contact_max_power=spec.quantity("contact_max_power", POWER, math.inf),
                forbidden_pairs=spec.get("forbidden_pairs", int, 0),
                contact_settle_time=spec.quantity("contact_settle_time", DURATION, 0.25),
                watchdog_min=spec.quantity("watchdog_min", DURATION, 0.0),
                watchdog_max=spec.quantity("watchdog_max", DURATION, 0.0),
                watchdog_resolution=spec.quantity("watchdog_resolution", DURATION, 0.001),
                dialect=dialect,
                unconfirmed=unconfirmed,
            )
        spec.finish()
        models[name] = model
    table.finish()
    if not models:
        raise table.error("", "a dialect names at least one model")
    return models


def _ranges(channel: _Table) -> tuple[SupplyRange, ...]:
    """A channel's output ranges, ``[{ name, max_voltage, max_current }, ...]``."""
    found = []
    for i, item in enumerate(channel.get("ranges", list, [])):
        if not isinstance(item, dict):
            raise channel.error(f"ranges[{i}]", "expected { name, max_voltage, max_current }")
        spec = _Table(item, channel.file, f"{channel.key}.ranges[{i}]")
        name = spec.get("name", str)
        if not _RANGE_NAME.fullmatch(name):
            raise spec.error("name", f'"{name}": 1 to 16 letters, digits, _ . + or -')
        found.append(
            SupplyRange(
                name,
                max_voltage=spec.quantity("max_voltage", VOLTAGE),
                max_current=spec.quantity("max_current", CURRENT),
            )
        )
        spec.finish()
    return tuple(found)


def _check_ranges(table: _Table, channel: SupplyChannel) -> None:
    """Ranges are declared smallest first (the first that covers a net is chosen), each
    named once, within the channel's maxima, which are their envelope."""
    ranges = channel.ranges
    if not ranges:
        return
    if len(ranges) == 1:
        raise table.error("ranges", "a channel with ranges has two or more")
    for i, (before, after) in enumerate(pairwise(ranges), start=1):
        if after.max_voltage <= before.max_voltage:
            raise table.error(
                f"ranges[{i}]",
                f"{after.name}: smallest first (by max_voltage), after {before.name}",
            )
    names = [r.name.upper() for r in ranges]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise table.error(f"ranges[{i}].name", f'"{ranges[i].name}" is named twice')
    for field in ("max_voltage", "max_current"):
        envelope = max(getattr(r, field) for r in ranges)
        if envelope != getattr(channel, field):
            raise table.error(
                field,
                f"{getattr(channel, field):g} is not what its ranges reach at most ({envelope:g})",
            )


# What each capability needs from the templates.
_NEEDS = {
    ("ovp", "level"): ("set_ovp", "ovp?"),
    ("ocp", "trip"): ("ocp_on", "ocp_state?"),
    ("ocp_level", "separate"): ("set_ocp", "ocp?"),
    ("panel_lock", True): ("lock", "unlock"),
    ("watchdog", True): ("watchdog_on", "watchdog_off"),
    ("general_output", True): ("general_on", "general_off"),
}
_SUPPLY_NEEDS = (
    "set_voltage",
    "voltage?",
    "set_current",
    "current?",
    "output_on",
    "output_off",
    "output?",
)


def _check_capabilities(dialect: Dialect) -> None:
    """A capability claimed has its lines; a supply has the lines every supply needs."""
    caps = dialect.capabilities
    have = set(dialect.commands) | set(dialect.queries)
    needed: list[tuple[str, str]] = []
    # Over-current protection with a level of its own and no switch (Aim-TTi's OCP1) is
    # armed whenever it holds a level: its level lines are what it needs.
    always_armed = caps.ocp_level == "separate" and not have & {"ocp_on", "ocp_state?"}
    for (flag, value), keys in _NEEDS.items():
        if (flag, value) == ("ocp", "trip") and always_armed:
            continue
        if getattr(caps, flag) == value:
            needed += [(f"capabilities.{flag}", k) for k in keys]
    if dialect.kind == "supply":
        needed += [("commands", k) for k in _SUPPLY_NEEDS]
        if caps.trip_query and not have & {"tripped?", "ovp_tripped?", "ocp_tripped?"}:
            needed.append(("capabilities.trip_query", "tripped?"))
        if "measure?" not in have:
            needed += [("queries", "measure_voltage?"), ("queries", "measure_current?")]
        ranged = [
            name
            for name, model in dialect.models.items()
            if any(c.ranges for c in model.channels.values())  # type: ignore[union-attr]
        ]
        if ranged:
            needed += [(f"models.{ranged[0]}", "set_range"), (f"models.{ranged[0]}", "range?")]
            several = [n for n in ranged if len(dialect.models[n].channels) > 1]  # type: ignore[union-attr]
            line = dialect.commands.get("set_range")
            named = (
                {f for _, f, _, _ in string.Formatter().parse(line.template) if f}
                if line
                else set()
            )
            if several and line is not None and not {"ch", "chs"} & named:
                # Else the range would go to whichever output the supply has selected.
                raise ConfigError(
                    dialect.path,
                    "commands.set_range",
                    f"the {several[0]} has several outputs with ranges: the line names its "
                    "channel ({ch} or {chs})",
                )
    for where, key in needed:
        if key not in have:
            raise ConfigError(dialect.path, where, f'needs the line "{key}"')
    if dialect.kind != "switch" and dialect.identity is None:
        raise ConfigError(dialect.path, "identity", "missing: how a model says who it is")
