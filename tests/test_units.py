"""Quantities: units are mandatory, dimensions are checked, conversions agree."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from interlock.units import (
    CURRENT,
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
    ],
)
def test_refused(value, dimension, words):
    with pytest.raises(QuantityError, match=words):
        parse_quantity(value, dimension)
