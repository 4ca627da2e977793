"""Sequence files: the model and the TOML loader.

A sequence names the DUT type it was written for and lists its steps in
order. Every quantity carries its unit; every error names the file and the
key, a step by its number (1-based, as a run shows it) and its label
(``sequences/x.toml: step 4 [bus on].voltage: expected a voltage, got
"5"``). Every error of a file is reported at once, in one ConfigError: the
file, then each error's key and problem.
The loader knows nothing of any bench: nets and relays are checked against
a bench and its profile when the sequence is bound (:mod:`.binding`).

::

    [sequence]
    name = "MDB-24 power-up"
    profile = "MDB-24"              # the [device] name of the profile

    [[steps]]
    action = "set"
    net = "VLOGIC"
    voltage = "5 V"                 # or current_limit = "250 mA"
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from interlock.config.bounds import (
    MAX_MESSAGE,
    MAX_STEPS,
    MAX_TITLE,
    NAME,
    STEP_CURRENT,
    STEP_VOLTAGE,
    WAIT,
    WINDOW,
)
from interlock.config.reader import Table, display_path, read_toml, resolve_file
from interlock.errors import ConfigError
from interlock.units import CURRENT, DURATION, VOLTAGE, format_quantity

ACTIONS = ("set", "ramp", "relay", "output", "measure", "wait", "prompt")
# Only steps that ask the interlock for a change can be refused by it.
ACTUATING = ("set", "ramp", "relay", "output")
QUANTITIES = {"voltage": VOLTAGE, "current": CURRENT}


@dataclass(frozen=True)
class Step:
    """One step. Which fields are set depends on ``action``; the loader checks that."""

    index: int  # 0-based: the position in the file's [[steps]]; people see number
    action: str
    label: str = ""
    expect_refused: bool = False
    net: str | None = None
    voltage: float | None = None  # set / ramp target, V
    current_limit: float | None = None  # set, A
    relay: str | None = None  # the bench's relay name once bound (K3)
    relay_ref: str | None = None  # as written: a role ("MOTOR.power") or a bench relay name
    closed: bool | None = None  # relay
    on: bool | None = None  # output
    quantity: str | None = None  # measure: "voltage" or "current"
    minimum: float | None = None  # measure window, SI
    maximum: float | None = None
    duration: float | None = None  # wait, s
    message: str | None = None  # prompt

    @property
    def number(self) -> int:
        """1-based, as shown to people."""
        return self.index + 1

    @property
    def key(self) -> str:
        """How errors name the step: its number and label (``step 4 [bus on]``)."""
        return step_key(self.index, self.label)

    def describe(self) -> str:
        """What the step does, in a few words (units shown, never bare numbers)."""
        q = format_quantity
        match self.action:
            case "set" if self.voltage is not None:
                text = f"set {self.net} to {q(self.voltage, VOLTAGE)}"
            case "set":
                text = f"set {self.net} current limit to {q(self.current_limit, CURRENT)}"
            case "ramp":
                text = f"ramp {self.net} to {q(self.voltage, VOLTAGE)}"
            case "relay":
                shown = (
                    self.relay
                    if self.relay == self.relay_ref
                    else f"{self.relay} ({self.relay_ref})"
                )
                text = f"{'close' if self.closed else 'open'} relay {shown}"
            case "output":
                text = f"turn {self.net} output {'on' if self.on else 'off'}"
            case "measure":
                text = f"measure {self.net} {self.quantity} {self.window()}"
            case "wait":
                text = f"wait {q(self.duration, DURATION)}"
            case "prompt":
                text = f"operator: {self.message}"
            case _:
                text = self.action
        return text

    def window(self) -> str:
        dimension = QUANTITIES.get(self.quantity or "", VOLTAGE)
        low = format_quantity(self.minimum, dimension) if self.minimum is not None else ""
        high = format_quantity(self.maximum, dimension) if self.maximum is not None else ""
        if low and high:
            return f"{low} .. {high}"
        return f">= {low}" if low else f"<= {high}"

    def shown(self, value: float) -> str:
        """A measured value with just enough digits to tell it from its window's ends.

        ``5.0000104 V`` against ``<= 5.00001 V``, never ``5 V``: a failed
        measurement shows why it failed.
        """
        dimension = QUANTITIES.get(self.quantity or "", VOLTAGE)
        ends = [end for end in (self.minimum, self.maximum) if end is not None]
        text = format_quantity(value, dimension)
        for digits in range(6, 16):
            text = format_quantity(value, dimension, digits=digits)
            if all(
                value == end or text != format_quantity(end, dimension, digits=digits)
                for end in ends
            ):
                break
        return text

    def passes(self, value: float) -> bool:
        """A measured value inside the window (both ends included); NaN is never inside."""
        if not math.isfinite(value):
            return False
        if self.minimum is not None and value < self.minimum:
            return False
        return not (self.maximum is not None and value > self.maximum)


@dataclass(frozen=True)
class Sequence:
    name: str
    description: str
    profile: str  # the device name of the profile it was written for, e.g. "MDB-24"
    path: Path
    steps: tuple[Step, ...]

    @property
    def shown_path(self) -> str:
        return display_path(self.path)

    def where(self, key: str) -> str:
        return f"{self.shown_path}: {key}"

    @property
    def prompts(self) -> list[Step]:
        return [step for step in self.steps if step.action == "prompt"]


def step_key(index: int, label: object = "") -> str:
    """A step as errors name it: 1-based, with its label when it has one (a string)."""
    key = f"step {index + 1}"
    # Only a label that is itself valid: an error about the label never echoes it.
    if isinstance(label, str) and label.strip() and label.isprintable() and len(label) <= MAX_TITLE:
        key += f" [{label.strip()}]"
    return key


# The reader names a step by its place in the array of tables; people count from 1.
_TABLE_KEY = re.compile(r"^steps\[(\d+)\]")


def _renamed(error: ConfigError, index: int, table: Table) -> ConfigError:
    key = _TABLE_KEY.sub(lambda _: step_key(index, table.data.get("label")), error.key)
    renamed = ConfigError(error.file, key, error.problem)
    renamed.__cause__ = error.__cause__
    return renamed


# An error is one line, bounded: a file with thousands of bad steps says how many.
MAX_LISTED = 800


def collected(errors: list[ConfigError]) -> ConfigError:
    """Several errors of one file as one ConfigError: the first one's key and problem,
    then each other's (``x.toml: step 2.voltage: ...; 2 more errors: step 4.net: ...;
    step 5.to: ...``)."""
    first, rest = errors[0], errors[1:]
    if not rest:
        return first
    listed: list[str] = []
    for error in rest:
        item = f"{error.key}: {error.problem}" if error.key else error.problem
        if sum(len(text) + 2 for text in listed) + len(item) > MAX_LISTED:
            listed.append(f"and {len(rest) - len(listed)} more")
            break
        listed.append(item)
    more = f"{len(rest)} more error{'s' if len(rest) > 1 else ''}"
    return ConfigError(first.file, first.key, f"{first.problem}; {more}: {'; '.join(listed)}")


def load_sequence(path: str | Path) -> Sequence:
    """Load and validate a sequence file.

    Raises ConfigError naming file and key: the first error of its header, or
    every error of its steps at once.
    """
    path = resolve_file(path)
    data, _raw = read_toml(path)
    root = Table(data, display_path(path))
    header = root.table("sequence")
    name = header.string("name", max_length=MAX_TITLE)
    # The device name, not a path: a sequence is written for a DUT type, and the
    # profile file of that type may live anywhere on another bench.
    profile = header.string("profile", max_length=MAX_TITLE)
    description = header.string("description", required=False) or ""
    header.finish()
    tables = root.array_of_tables("steps", max_items=MAX_STEPS)
    if not tables:
        raise root.error("steps", "a sequence needs at least one [[steps]]")
    steps, errors = [], []
    for index, table in enumerate(tables):
        try:
            steps.append(_step(index, table))
        except ConfigError as error:
            errors.append(_renamed(error, index, table))
    try:
        root.finish()
    except ConfigError as error:
        errors.append(error)
    if errors:
        raise collected(errors)
    return Sequence(name, description, profile, path, tuple(steps))


def _step(index: int, table: Table) -> Step:
    action = table.string("action", choices=ACTIONS)
    label = table.string("label", required=False) or ""
    expect = table.string("expect", required=False, choices=("allowed", "refused"))
    if expect is not None and action not in ACTUATING:
        raise table.error(
            "expect", f"only a step that asks for a change ({', '.join(ACTUATING)}) can be refused"
        )
    fields: dict[str, object] = {}
    match action:
        case "set":
            fields["net"] = table.name("net")
            voltage = table.bounded("voltage", STEP_VOLTAGE, required=False)
            current = table.bounded("current_limit", STEP_CURRENT, required=False)
            if (voltage is None) == (current is None):
                raise table.error(
                    "",
                    "a set step takes exactly one of voltage, current_limit"
                    + _misspelt(table, "voltage", "current_limit"),
                )
            fields.update(voltage=voltage, current_limit=current)
        case "ramp":
            fields.update(net=table.name("net"), voltage=table.bounded("to", STEP_VOLTAGE))
        case "relay":
            fields["relay"] = fields["relay_ref"] = _relay_reference(table)
            state = table.string("state", choices=("open", "closed"))
            fields["closed"] = state == "closed"
        case "output":
            fields["net"] = table.name("net")
            fields["on"] = table.string("state", choices=("on", "off")) == "on"
        case "measure":
            fields.update(_measure(table))
        case "wait":
            fields["duration"] = table.bounded("duration", WAIT)
        case "prompt":
            fields["message"] = table.string("message", max_length=MAX_MESSAGE)
    table.finish()
    return Step(
        index=index,
        action=action,
        label=label,
        expect_refused=expect == "refused",
        **fields,  # type: ignore[arg-type]
    )


def _relay_reference(table: Table) -> str:
    """A relay as a sequence names it: a bench relay (``K3``) or a role (``MOTOR.power``)."""
    reference = table.string("relay", max_length=65)
    net, dot, role = reference.partition(".")
    for part in (net, role) if dot else (reference,):
        if not NAME.fullmatch(part):
            raise table.error(
                "relay", f'expected a relay name or NET.power / NET.sense, got "{reference}"'
            )
    return reference


def _measure(table: Table) -> dict[str, object]:
    net = table.name("net")
    quantity = table.string("quantity", choices=tuple(QUANTITIES))
    bound = WINDOW[quantity]
    # A window may be negative (a reverse current): no sign check on the limits.
    minimum = table.bounded("min", bound, required=False)
    maximum = table.bounded("max", bound, required=False)
    if minimum is None and maximum is None:
        raise table.error(
            "", "a measure step needs min, max or both" + _misspelt(table, "min", "max")
        )
    if minimum is not None and maximum is not None and minimum > maximum:
        raise table.error("min", "is greater than max")
    return {"net": net, "quantity": quantity, "minimum": minimum, "maximum": maximum}


def _misspelt(table: Table, *keys: str) -> str:
    """Of a step that lacks all of ``keys``: a key it has that looks like one misspelt."""
    for key in keys:
        hint = table.misspelling(key, lambda found, key=key: f' (is "{found}" {key} misspelt?)')
        if hint:
            return hint
    return ""
