"""Physical quantities: parsing with explicit units, and SI floats inside.

Configuration files and sequences carry quantities as strings with their
unit (``"28 V"``, ``"500 mA"``, ``"2 V/s"``). They are parsed with pint and
checked for dimension here, once. Everything past the configuration layer
works in plain floats of the SI base unit of that dimension (volts, amperes,
ohms, seconds, watts, V/s), so the limit engine stays fast and pure; the
dimension names below are the only vocabulary.
"""

from __future__ import annotations

import math
import re
import reprlib
from dataclasses import dataclass
from functools import cache

import pint

from interlock.engineering import amount
from interlock.errors import QuantityError


@dataclass(frozen=True)
class Dimension:
    """A kind of quantity and the SI unit its floats are expressed in."""

    name: str  # "voltage": used in messages ("expected a voltage")
    si_unit: str  # pint unit the float is converted to
    symbol: str  # how the float is shown to people
    examples: str = ""  # how a quantity of it is written, for a message that refuses one


VOLTAGE = Dimension("voltage", "volt", "V", '"5 V", "250 mV", "1.5 kV"')
CURRENT = Dimension("current", "ampere", "A", '"2 A", "250 mA", "50 uA"')
RESISTANCE = Dimension("resistance", "ohm", "Ω", '"25 ohm", "4.7 kohm", "10 MΩ"')
POWER = Dimension("power", "watt", "W", '"5 W", "500 mW"')
DURATION = Dimension("duration", "second", "s", '"50 ms", "2 s", "1 min"')
SLEW_RATE = Dimension("slew rate", "volt / second", "V/s", '"2 V/s", "5 V/ms"')
RATIO = Dimension("ratio", "dimensionless", "", '"1 %", "500 ppm"')

DIMENSIONS = {d.name: d for d in (VOLTAGE, CURRENT, RESISTANCE, POWER, DURATION, SLEW_RATE, RATIO)}


_STARTS_WITH_NUMBER = re.compile(r"^[-+]?(\d|\.\d|nan\b|inf)", re.IGNORECASE)
# What pint is given: a plain decimal number, then unit words joined by spaces, "/"
# or "*". pint evaluates expressions: "9**9**9 V" would run for ever, "1 V * 2" is 2 V.
_NUMBER = r"[-+]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|nan|inf(?:inity)?)"
_UNIT = r"(?:[^\W\d_]+|%)"
_QUANTITY = re.compile(rf"{_NUMBER}\s*{_UNIT}(?:\s*[/*]\s*{_UNIT}|\s+{_UNIT})*", re.IGNORECASE)
_NUMBER_ONLY = re.compile(_NUMBER, re.IGNORECASE)
_WORDS = re.compile(r"[^\d()*^]+")  # no digits, no arithmetic: a unit, if an unknown one
# Units are case-sensitive (mV and MV are a million million apart): said with examples.
_UNKNOWN = "unknown unit; units are case-sensitive, as in {}"
#: The longest quantity text parsed ("12.5 mV/ms" is 10 characters).
MAX_QUANTITY_TEXT = 64


@cache
def registry() -> pint.UnitRegistry:
    # pint's default registry already knows "%" and "ppm" (readback tolerances).
    return pint.UnitRegistry()


# What an error shows of a value that is no quantity: one level of a table or an array,
# a few items, each cut (reprlib's). Its default goes six levels deep: tables nested in
# tables filled a screen of one error line.
_SHOWN = reprlib.Repr()
_SHOWN.maxlevel = 1


def _article(name: str) -> str:
    return "an" if name[0] in "aeiou" else "a"


def parse_quantity(text: object, dimension: Dimension) -> float:
    """Parse ``text`` as a quantity of ``dimension`` and return it in SI units.

    Raises :class:`QuantityError` for a bare number (a unit is mandatory,
    ``"%"`` or ``"ppm"`` for ratios), an unknown unit, a wrong dimension, or a value that is
    not finite.
    """
    expected = f"expected {_article(dimension.name)} {dimension.name}"
    if isinstance(text, bool) or not isinstance(text, str | int | float):
        raise QuantityError(f"{expected} with its unit, got {_SHOWN.repr(text)}")
    if not isinstance(text, str):
        # A TOML number: shown as written, and how to write it with its unit.
        raise QuantityError(
            f"{expected}, got {_SHOWN.repr(text)} (a bare number: add its unit, as a text "
            f"such as {dimension.examples})"
        )
    if len(text) > MAX_QUANTITY_TEXT:
        raise QuantityError(
            f"{expected}, got a text of {len(text)} characters (at most {MAX_QUANTITY_TEXT})"
        )
    stripped = text.strip()
    if not _STARTS_WITH_NUMBER.match(stripped):
        # pint would read "V" as 1 V; a quantity must spell out its number.
        raise QuantityError(f'{expected}, got "{text}" (not a number with a unit)')
    if _NUMBER_ONLY.fullmatch(stripped):
        raise QuantityError(f'{expected}, got "{text}" (a bare number: add its unit)')
    if not _QUANTITY.fullmatch(stripped):
        unit = _NUMBER_ONLY.sub("", stripped, count=1)
        why = (
            _UNKNOWN.format(dimension.examples)
            if _WORDS.fullmatch(unit)
            else "not a number with a unit"
        )
        raise QuantityError(f'{expected}, got "{text}" ({why})')
    ureg = registry()
    try:
        quantity = ureg.Quantity(stripped)
    except (pint.errors.UndefinedUnitError, pint.errors.DefinitionSyntaxError) as exc:
        raise QuantityError(
            f'{expected}, got "{text}" ({_UNKNOWN.format(dimension.examples)})'
        ) from exc
    except Exception as exc:  # pint raises a zoo of parser errors for garbage
        raise QuantityError(f'{expected}, got "{text}" (not a quantity)') from exc
    if not isinstance(quantity, pint.Quantity):
        # ureg.Quantity("12") gives a dimensionless quantity; catch it below.
        quantity = ureg.Quantity(quantity)
    if quantity.units == ureg.dimensionless:
        raise QuantityError(f'{expected}, got "{text}" (a bare number: add its unit)')
    try:
        value = float(quantity.to(dimension.si_unit).magnitude)
    except pint.errors.DimensionalityError as exc:
        raise QuantityError(
            f'{expected}, got "{text}" ({quantity.units:~} is not {_article(dimension.name)} '
            f"{dimension.name})"
        ) from exc
    if not math.isfinite(value):
        raise QuantityError(f'{expected}, got "{text}" (not a finite value)')
    return value


def format_quantity(value: float, dimension: Dimension, *, digits: int = 6) -> str:
    """Show an SI float with an engineering prefix: 0.5 A -> ``"500 mA"``.

    ``digits``: significant digits at most (trailing zeros dropped).
    """
    if dimension is RATIO:
        return f"{value * 100:.{digits}g} %"
    # A configuration's bounds go to gigaohms and beyond: every prefix.
    return amount(value, dimension.symbol, digits=digits, largest=math.inf)
