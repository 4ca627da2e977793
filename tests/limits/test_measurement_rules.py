"""Measurement-time rules of the engine, against an independent statement of each.

Every reading is drawn over the whole float range (NaN, infinities, 1e308,
subnormals, -0.0) as well as around each limit: a rule either accepts what
its statement accepts, or names a rule it breaks. Nothing that is not a
finite number is ever accepted.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from interlock.limits import BenchState, DutIdentity, NetState, PinnedLimits, SafeToMate
from interlock.limits.measurements import (
    DEFAULT_MAX_STRAY_VOLTAGE,
    check_contacts,
    check_dut_identity,
    check_identity_stray,
    check_live,
    check_live_at_zero,
    check_mate_resistance,
    check_mate_stray,
    check_off_voltage,
    check_output,
    check_protection_armed,
    check_readback,
    ovp_level,
    settling,
)
from interlock.limits.model import CURRENT_READBACK_RESOLUTION, NetLimits
from interlock.limits.registry import rule_named

from .strategies import EXTREMES, near

NOT_NUMBERS = [math.nan, math.inf, -math.inf]
SETTINGS = settings(max_examples=300, deadline=None, database=None)


def anything(*limits: float) -> st.SearchStrategy[float]:
    """The whole float range, values no one would type, and values at each limit."""
    return st.one_of(
        st.floats(),
        st.sampled_from([*NOT_NUMBERS, *EXTREMES, 0.0]),
        *(near(limit) for limit in limits),
    )


@st.composite
def one_net(draw) -> PinnedLimits:
    max_voltage = draw(st.floats(0.5, 1000.0))
    max_current = draw(st.floats(0.01, 100.0))
    live_max = draw(st.floats(0.0, max_current))
    net = NetLimits(
        net="VBUS",
        min_voltage=draw(st.sampled_from([0.0, max_voltage / 4])),
        max_voltage=max_voltage,
        max_current=max_current,
        max_slew=draw(st.floats(0.5, 100.0)),
        max_step=draw(st.floats(0.1, max_voltage)),
        readback_absolute=draw(st.floats(1e-6, 0.1 * max_voltage)),
        readback_relative=draw(st.floats(0.0, 0.1)),
        settle_time=draw(st.floats(0.0, 10.0)),
        live_min_current=draw(st.floats(0.0, live_max)),
        live_max_current=live_max,
        safe_to_mate=SafeToMate(
            min_resistance=draw(st.floats(0.0, 1e3)),
            max_resistance=draw(st.floats(1e3, 1e9)),
            max_stray_voltage=draw(st.floats(0.0, 1000.0)),
        ),
    )
    identity = DutIdentity(
        "ID",
        min_resistance=draw(st.floats(0.0, 1e4)),
        max_resistance=draw(st.floats(1e4, 1e9)),
        max_stray_voltage=draw(st.one_of(st.none(), st.floats(0.0, 1000.0))),
    )
    return PinnedLimits(
        nets={"VBUS": net},
        relays=frozenset(),
        power_relays={},
        never_together=(),
        open_before_change=(),
        power_on=("VBUS",),
        power_off=("VBUS",),
        max_total_power=math.inf,
        profile_file="p.toml",
        bench_file="b.toml",
        identity=identity,
        unlisted_max_stray_voltage=draw(st.one_of(st.none(), st.floats(0.0, 1000.0))),
    )


def fixed(**changes) -> PinnedLimits:
    """One net of the shipped MDB-24 bus's figures."""
    net = NetLimits(
        net="VBUS",
        min_voltage=0.0,
        max_voltage=25.0,
        max_current=0.5,
        max_slew=40.0,
        max_step=4.0,
        readback_absolute=0.02,
        readback_relative=0.005,
        settle_time=0.1,
        live_min_current=0.02,
        live_max_current=0.3,
        safe_to_mate=SafeToMate(100.0, 140.0, 0.5),
    )
    limits = PinnedLimits(
        nets={"VBUS": net},
        relays=frozenset(),
        power_relays={},
        never_together=(),
        open_before_change=(),
        power_on=("VBUS",),
        power_off=("VBUS",),
        max_total_power=18.0,
        profile_file="p.toml",
        bench_file="b.toml",
        identity=DutIdentity("ID", 9800.0, 10200.0),
    )
    return dataclasses.replace(limits, **changes)


def registered(finding) -> None:
    assert finding.rule and finding.where and finding.problem
    assert rule_named(finding.rule) is not None, f"{finding.rule} is not in the registry"


def finite(*values: float) -> bool:
    return all(math.isfinite(v) for v in values)


@st.composite
def live_readings(draw):
    limits = draw(one_net())
    net = limits.nets["VBUS"]
    low = draw(st.floats(net.min_voltage, net.max_voltage))
    high = draw(st.floats(low, net.max_voltage))
    volts = draw(anything(net.max_voltage, low, high, net.max_voltage * 1.1))
    amps = draw(anything(net.live_min_current, net.live_max_current))
    return (
        limits,
        volts,
        amps,
        draw(st.booleans()),
        draw(st.booleans()),
        (low, high),
        draw(st.booleans()),
    )


@SETTINGS
@given(live_readings())
def test_the_live_envelope_accepts_exactly_what_its_statement_accepts(drawn):
    limits, volts, amps, tripped, protected, (low, high), is_settling = drawn
    net = limits.nets["VBUS"]
    tolerance = net.readback_absolute + net.readback_relative * abs(high)
    broken = []
    if tripped:
        broken.append("live.protection_tripped")
    if not protected:
        broken.append("live.protection_off")
    if not finite(volts, amps):
        broken.append("finite-value")
    else:
        if volts > net.max_voltage + tolerance:
            broken.append("live.max_voltage")
        if volts > high + tolerance or (not is_settling and volts < low - tolerance):
            broken.append("live.regulation")
        if amps > net.live_max_current:
            broken.append("nets.VBUS.live_max_current")
        if not is_settling and amps < net.live_min_current:
            broken.append("nets.VBUS.live_min_current")
    finding = check_live(
        limits,
        "VBUS",
        volts,
        amps,
        tripped=tripped,
        protected=protected,
        window=(low, high),
        settling=is_settling,
    )
    if not broken:
        assert finding is None
    else:
        assert finding is not None and finding.rule == broken[0], (broken, finding)
        registered(finding)


@SETTINGS
@given(one_net(), st.sampled_from(["voltage", "current_limit", "ovp"]), st.data())
def test_a_readback_passes_only_within_its_tolerance(limits, quantity, data):
    net = limits.nets["VBUS"]
    commanded = {
        "voltage": data.draw(st.floats(net.min_voltage, net.max_voltage)),
        "current_limit": data.draw(st.floats(0.0, net.max_current)),
        "ovp": ovp_level(net.max_voltage),
    }[quantity]
    if quantity == "current_limit":
        tolerance = max(CURRENT_READBACK_RESOLUTION, net.readback_relative * abs(commanded))
    else:
        tolerance = net.readback_absolute + net.readback_relative * abs(commanded)
    readback = data.draw(anything(commanded, commanded + tolerance, commanded - tolerance))
    finding = check_readback(limits, "VBUS", quantity, commanded, readback)
    ok = math.isfinite(readback) and abs(readback - commanded) <= tolerance
    assert (finding is None) == ok
    if finding is not None:
        assert finding.rule == f"readback.{quantity}"
        registered(finding)


@SETTINGS
@given(one_net(), st.data())
def test_strays_and_resistances_before_energising(limits, data):
    net = limits.nets["VBUS"]
    mate = net.safe_to_mate
    identity = limits.identity
    volts = data.draw(anything(mate.max_stray_voltage, -mate.max_stray_voltage))
    ohms = data.draw(anything(mate.min_resistance, mate.max_resistance))
    stray = check_mate_stray(limits, "VBUS", volts)
    assert (stray is None) == (abs(volts) <= mate.max_stray_voltage)
    resistance = check_mate_resistance(limits, "VBUS", ohms)
    assert (resistance is None) == (mate.min_resistance <= ohms <= mate.max_resistance)
    id_limit = (
        DEFAULT_MAX_STRAY_VOLTAGE
        if identity.max_stray_voltage is None
        else identity.max_stray_voltage
    )
    assert (check_identity_stray(limits, volts) is None) == (abs(volts) <= id_limit)
    dut = check_dut_identity(limits, ohms)
    assert dut.ok == (identity.min_resistance <= ohms <= identity.max_resistance)
    for finding in (stray, resistance, check_identity_stray(limits, volts), dut.finding):
        if finding is not None:
            registered(finding)


@SETTINGS
@given(one_net(), st.sampled_from(["VBUS", "MOTOR", None]), st.data())
def test_a_channel_off_measures_no_more_than_its_nets_stray(limits, net, data):
    if net == "VBUS":
        limit = limits.nets["VBUS"].safe_to_mate.max_stray_voltage
    elif limits.unlisted_max_stray_voltage is not None:
        limit = limits.unlisted_max_stray_voltage
    else:
        limit = DEFAULT_MAX_STRAY_VOLTAGE
    volts = data.draw(anything(limit, -limit))
    finding = check_off_voltage(limits, "psu", 2, net, volts)
    assert (finding is None) == (abs(volts) <= limit)
    if finding is not None:
        assert finding.rule == "all-off.stray_voltage"
        registered(finding)


def test_an_unset_stray_limit_is_the_engines_named_default():
    bare = fixed()
    assert check_off_voltage(bare, "psu", 3, None, DEFAULT_MAX_STRAY_VOLTAGE) is None
    finding = check_off_voltage(bare, "psu", 3, None, math.nextafter(0.5, 1.0))
    assert finding is not None and "DEFAULT_MAX_STRAY_VOLTAGE" in finding.where
    finding = check_identity_stray(bare, -0.6)
    assert finding is not None and "identity.max_stray_voltage not set" in finding.where
    keyed = fixed(unlisted_max_stray_voltage=0.1, identity=DutIdentity("ID", 9800.0, 10200.0, 0.05))
    finding = check_off_voltage(keyed, "psu", 3, None, 0.2)
    assert finding.where == "p.toml: rules.unlisted_max_stray_voltage"
    finding = check_identity_stray(keyed, 0.06)
    assert finding.where == "p.toml: identity.max_stray_voltage"
    assert finding.problem == "ID carries 60 mV before it is energised (max 50 mV)"


@pytest.mark.parametrize("value", [*NOT_NUMBERS, 1e308, -1e308])
def test_no_reading_that_is_not_a_number_passes(value):
    limits = fixed()
    live = check_live(
        limits, "VBUS", value, 0.1, tripped=False, protected=True, window=(12.0, 12.0)
    )
    assert live is not None
    live = check_live(
        limits, "VBUS", 12.0, value, tripped=False, protected=True, window=(12.0, 12.0)
    )
    assert live is not None
    assert check_readback(limits, "VBUS", "voltage", 1.0, value) is not None
    assert check_readback(limits, "VBUS", "current_limit", 0.1, value) is not None
    assert check_mate_stray(limits, "VBUS", value) is not None
    assert check_identity_stray(limits, value) is not None
    assert check_off_voltage(limits, "psu", 1, "VBUS", value) is not None
    assert check_mate_resistance(limits, "VBUS", value) is not None
    assert not check_dut_identity(limits, value).ok


@given(st.booleans(), st.booleans(), st.booleans())
def test_an_output_reads_back_as_commanded(commanded, reads, tripped):
    finding = check_output("VBUS", commanded, reads, tripped=tripped, limit=0.3)
    assert (finding is None) == (commanded == reads)
    if finding is not None:
        registered(finding)
    assert (check_protection_armed("VBUS", commanded) is None) == commanded


@given(st.integers(0, 255), st.integers(0, 255), st.integers(0, 255))
def test_contacts_and_coils_both_as_commanded(expected, coils, contacts):
    channels = {f"K{c}": c for c in range(1, 9)}
    finding = check_contacts(expected, coils, contacts, channels, 0.25)
    assert (finding is None) == (coils == expected == contacts)
    if finding is not None:
        registered(finding)
        differ = [f"K{c}" for c in range(1, 9) if (contacts ^ expected) >> (c - 1) & 1]
        assert finding.problem.endswith(", ".join(sorted(differ)))


@given(one_net(), st.floats(-10.0, 10.0), st.floats(-20.0, 20.0))
def test_settling_is_the_settle_time_after_the_last_live_change(limits, changed, now):
    state = BenchState({"VBUS": NetState(1.0, 0.1, True, changed)})
    assert settling(limits, state, "VBUS", now) == (now < changed + limits.nets["VBUS"].settle_time)


def test_a_live_net_at_zero_volts_is_predicted_to_trip():
    limits = fixed()
    live = BenchState({"VBUS": NetState(0.0, 0.1, True)})
    finding = check_live_at_zero(limits, live, "VBUS")
    assert finding is not None and finding.rule == "nets.VBUS.live_min_current"
    registered(finding)
    assert check_live_at_zero(limits, BenchState({"VBUS": NetState(0.0, 0.1)}), "VBUS") is None


def test_the_engine_writes_quantities_as_engineers_do():
    """Values in the engine's words carry the prefix one would write (20 mA, not 0.02 A),
    and never an ambiguous one (3e+07 V, not 30 MV)."""
    from interlock.engineering import amount

    assert amount(0.02, "A") == "20 mA"
    assert amount(0.00015, "A") == "150 µA"
    assert amount(5.0, "V") == "5 V"
    assert amount(0.9999999, "A") == "1 A"  # as printed: not "1000 mA"
    assert amount(4700.0, "ohm") == "4.7 kohm"
    assert amount(1e7, "ohm") == "10 Mohm"
    assert amount(3e7, "V") == "3e+07 V"
    assert amount(1e308, "V") == "1e+308 V"
    assert amount(-0.0, "V") == "-0 V"
    assert amount(5e-324, "V") == "4.94066e-324 V"
    assert amount(float("nan"), "V") == "nan V"
    assert amount(-0.25, "V") == "-250 mV"
