"""Quantities as an engineer writes them: the unit with its SI prefix (200 mA, 4.7 kohm).

A refusal reads ``200 mA is above the maximum current limit of 150 mA``, not
``0.2 A ... 0.15 A``: values keep their SI floats everywhere else, and are
shown with the SI prefix that puts the number between 1 and 1000, with the
six significant digits of ``:g``. Zero, non-finite values and magnitudes
beyond the prefixes (a million volts or amperes, a teraohm) are shown as
``:g`` gives them.
"""

from __future__ import annotations

import math

PREFIXES = ((1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, ""), (1e-3, "m"), (1e-6, "µ"), (1e-9, "n"))
DIGITS = 6
# Megavolts and gigamperes are no bench's: a value that large reads plainer as 3e+07 V
# (and "MV" is one letter from "mV"). Resistances go to gigaohms.
LARGEST = {"ohm": 1e12, "Ω": 1e12}


def amount(value: float, unit: str, *, digits: int = DIGITS, largest: float | None = None) -> str:
    """``value`` (in ``unit``, SI) with an engineering prefix: 0.2, "A" -> ``"200 mA"``.

    ``largest``: the magnitude from which no prefix is used (default: by unit, as
    :data:`LARGEST` says, else a million)."""
    if value == 0 or not math.isfinite(value):
        return f"{value:.{digits}g} {unit}"
    magnitude = abs(value)
    if largest is None:
        largest = LARGEST.get(unit.lower(), LARGEST.get(unit, 1e6))
    if magnitude >= largest or magnitude < 1e-9:
        return f"{value:.{digits}g} {unit}"
    for factor, prefix in PREFIXES:
        if factor >= largest:
            continue
        # Rounded as it will be printed: 0.9999999 A is "1 A", not "1000 mA".
        if float(f"{magnitude / factor:.{digits}g}") >= 1:
            return f"{value / factor:.{digits}g} {prefix}{unit}"
    return f"{value / 1e-9:.{digits}g} n{unit}"
