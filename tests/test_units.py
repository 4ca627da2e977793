"""Quantities: units are mandatory, dimensions are checked, conversions agree."""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from interlock.units import (
    CURRENT,
    DIMENSIONS,
    DURATION,
    RATIO,
    RESISTANCE,
    SLEW_RATE,
    VOLTAGE,
    QuantityError,
    format_quantity,
    parse_quantity,
)

magnitudes = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


@given(magnitudes)
def test_millivolts_volts_kilovolts_agree(x):
    volts = parse_quantity(f"{x!r} V", VOLTAGE)
    assert math.isclose(
        parse_quantity(f"{x * 1000!r} mV", VOLTAGE), volts, rel_tol=1e-12, abs_tol=1e-12
    )
    assert math.isclose(
        parse_quantity(f"{x / 1000!r} kV", VOLTAGE), volts, rel_tol=1e-12, abs_tol=1e-12
    )


@given(magnitudes)
def test_milliamps_amps_agree(x):
    assert math.isclose(
        parse_quantity(f"{x!r} mA", CURRENT),
        parse_quantity(f"{x / 1000!r} A", CURRENT),
        rel_tol=1e-12,
        abs_tol=1e-15,
    )


@given(st.floats(min_value=1e-8, max_value=1e5))
def test_format_then_parse_round_trips(x):
    for dimension in (VOLTAGE, CURRENT, RESISTANCE):
        assert math.isclose(
            parse_quantity(format_quantity(x, dimension), dimension), x, rel_tol=1e-5
        )


@pytest.mark.parametrize(
    ("text", "dimension", "expected"),
    [
        ("28 V", VOLTAGE, 28.0),
        ("500 mA", CURRENT, 0.5),
        ("2 V/s", SLEW_RATE, 2.0),
        ("2 mV/ms", SLEW_RATE, 2.0),
        ("10 kohm", RESISTANCE, 10_000.0),
        ("50 ms", DURATION, 0.05),
        ("0.5 %", RATIO, 0.005),
    ],
)
def test_parse(text, dimension, expected):
    assert math.isclose(parse_quantity(text, dimension), expected)


@pytest.mark.parametrize(
    ("value", "dimension", "words"),
    [
        ("12", VOLTAGE, "bare number"),
        (12, VOLTAGE, "bare number"),
        (12.5, CURRENT, "bare number"),
        (True, VOLTAGE, "with its unit"),
        ("5 A", VOLTAGE, "A is not a voltage"),
        ("3 blargs", VOLTAGE, "unknown unit"),
        ("V", VOLTAGE, "not a number with a unit"),
        ("nan V", VOLTAGE, "not a finite value"),
        ("inf A", CURRENT, "not a finite value"),
        ("0.5", RATIO, "bare number"),
        ("5 V", SLEW_RATE, "not a slew rate"),
        # pint evaluates arithmetic: only a number and unit words reach it.
        ("9**9**9 V", VOLTAGE, "not a number with a unit"),
        ("1 V * 2", VOLTAGE, "not a number with a unit"),
        ("(1+2) V", VOLTAGE, "not a number with a unit"),
        ("25 volts-ish", VOLTAGE, "unknown unit"),
        ("1" * 100 + " V", VOLTAGE, r"a text of 102 characters \(at most 64\)"),
        (["5 V"] * 1000, VOLTAGE, r"got \['5 V', '5 V', '5 V', '5 V', '5 V', '5 V', \.\.\.\]$"),
    ],
)
def test_refused(value, dimension, words):
    with pytest.raises(QuantityError, match=words):
        parse_quantity(value, dimension)


@pytest.mark.parametrize(
    ("text", "dimension", "expected"),
    [
        ("1e+06 kV", VOLTAGE, 1e9),
        ("-0 V", VOLTAGE, 0.0),
        ("5e-324 s", DURATION, 5e-324),
        ("2 mV/ms", SLEW_RATE, 2.0),
        ("1 volt / second", SLEW_RATE, 1.0),
        ("1 MΩ", RESISTANCE, 1e6),
        ("10 µA", CURRENT, 1e-5),
        ("100 ppm", RATIO, 1e-4),
    ],
)
def test_numbers_and_unit_words_still_parse(text, dimension, expected):
    assert parse_quantity(text, dimension) == pytest.approx(expected)


def test_large_values_are_shown_with_their_prefix():
    assert format_quantity(1e9, RESISTANCE) == "1 GΩ"
    assert format_quantity(2.5e6, VOLTAGE) == "2.5 MV"


@pytest.mark.parametrize("dimension", list(DIMENSIONS.values()), ids=lambda d: d.name)
def test_the_examples_a_refusal_gives_are_quantities_of_its_dimension(dimension):
    examples = re.findall(r'"([^"]+)"', dimension.examples)
    assert len(examples) >= 2
    for example in examples:
        parse_quantity(example, dimension)  # raises if the advice itself were wrong
    with pytest.raises(QuantityError, match="unknown unit; units are case-sensitive") as unknown:
        parse_quantity("25 blargs", dimension)
    assert dimension.examples in str(unknown.value)
    with pytest.raises(QuantityError) as bare:
        parse_quantity(25, dimension)  # a TOML number: shown as the file has it, no quotes
    assert str(bare.value).endswith(
        f"got 25 (a bare number: add its unit, as a text such as {dimension.examples})"
    )


def test_a_table_nested_deep_is_shown_short_in_the_refusal():
    """A fuzzed profile put tables six deep where a voltage goes: the error, one line of
    the CLI's output, showed all of it (over 1000 characters)."""
    value: object = 1e308
    for level in range(8):
        value = {f"key{level}-{i}" * 5: value for i in range(6)} | {"x" * 200: [value] * 9}
    with pytest.raises(QuantityError) as refused:
        parse_quantity(value, VOLTAGE)
    text = str(refused.value)
    assert text.startswith("expected a voltage with its unit, got {")
    assert text.isprintable() and len(text) < 300, text
