"""The rule registry is the engine's rules, all of them, and the README shows it.

- every registry entry is produced by the engine (one case per rule here),
  and every rule a case produces is the entry it names;
- the engine driven over random profiles, states, requests and readings
  returns no rule the registry lacks;
- no rule name written in the engine's source is missing from it;
- the README's table is the one :func:`rule_table` renders.
"""

from __future__ import annotations

import ast
import dataclasses
import fnmatch
import math
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from interlock.config import load_configuration
from interlock.limits import (
    SAFE_STATE,
    BenchState,
    NetState,
    SetCurrentLimit,
    SetOutput,
    SetRelay,
    SetVoltage,
    check_ramp,
    continue_ramp,
    evaluate,
    plan_voltage,
)
from interlock.limits import measurements as m
from interlock.limits.registry import RULES, rule_named, rule_table

from .strategies import bench_states, pinned_limits, requests

ROOT = Path(__file__).resolve().parents[2]
ENGINE = ROOT / "interlock" / "limits"
LIMITS = load_configuration(ROOT / "bench.toml").limits
VBUS = LIMITS.nets["VBUS"]
TABLE_START, TABLE_END = "<!-- rule-table:start -->", "<!-- rule-table:end -->"


def live(**nets: tuple[float, float]) -> BenchState:
    """Nets live at (volts, current limit), changed long ago."""
    return BenchState({n: NetState(v, a, True) for n, (v, a) in nets.items()})


def refused(request, state=SAFE_STATE, now=100.0):
    return evaluate(LIMITS, state, request, now).verdict.rule


def cases():
    """(rule as produced, how) for every rule of the registry."""
    bus_at_4 = live(VLOGIC=(5.0, 0.4), VBUS=(4.0, 0.3))
    fresh = BenchState({**bus_at_4.nets, "VBUS": NetState(4.0, 0.3, True, 100.0)})
    three = live(VLOGIC=(5.0, 0.4), VBUS=(24.0, 0.3), MOTOR=(12.0, 0.6))
    tiny = dataclasses.replace(VBUS, max_step=1e-6)
    slow = dataclasses.replace(VBUS, max_slew=1e-6)
    channels = {f"K{c}": c for c in range(1, 9)}
    yield refused(SetOutput("VBUS", "yes")), "an output neither on nor off"
    yield refused(SetVoltage("VBUS", math.nan)), "NaN volts"
    yield refused(SetVoltage("NOPE", 1.0)), "an unknown net"
    yield refused(SetRelay("K99", True)), "an unknown relay"
    yield refused(SetVoltage("VBUS", -1.0)), "below min_voltage"
    yield refused(SetVoltage("VBUS", 26.0)), "above max_voltage"
    yield refused(SetVoltage("VBUS", 12.0), bus_at_4), "a live step of 8 V"
    yield refused(SetVoltage("VBUS", 5.0), fresh), "a live step at once"
    yield refused(SetCurrentLimit("VBUS", 5.0)), "above max_current"
    yield refused(SetCurrentLimit("VBUS", 0.001)), "below the supply's floor"
    yield refused(SetOutput("VBUS", True), BenchState({"VBUS": NetState(4.0, 0.3)})), "order"
    yield refused(SetOutput("VLOGIC", False), bus_at_4), "power-off order"
    hot = BenchState(bus_at_4.nets, frozenset({"K2"}))
    yield refused(SetRelay("K2", False), hot), "the bus's relay, live"
    yield refused(SetRelay("K5", True), BenchState({}, frozenset({"K4"}))), "two DMM routes"
    yield refused(SetVoltage("VBUS", 1.0), BenchState({}, frozenset({"K3"}))), "motor relay"
    yield refused(SetCurrentLimit("VBUS", 0.5), three), "21.2 W"
    yield check_ramp(LIMITS, VBUS, 0.0, 1e6).rule, "beyond the range"
    yield check_ramp(LIMITS, tiny, 0.0, 25.0).rule, "a tiny max_step"
    yield check_ramp(LIMITS, slow, 0.0, 25.0).rule, "a tiny max_slew"
    left, step = NetState(8.0, 0.3, True), SetVoltage("VBUS", 12.0)
    moved = continue_ramp(LIMITS, LIMITS, left, bus_at_4, step, 100.0)
    yield moved.verdict.rule, "moved under a ramp"
    window = (24.0, 24.0)
    for volts, amps, tripped, protected, how in (
        (24.0, 0.2, True, True, "tripped"),
        (24.0, 0.2, False, False, "unprotected"),
        (26.0, 0.2, False, True, "above the limit"),
        (20.0, 0.2, False, True, "regulation lost"),
        (24.0, 0.4, False, True, "too much current"),
        (24.0, 0.0, False, True, "too little current"),
    ):
        finding = m.check_live(
            LIMITS, "VBUS", volts, amps, tripped=tripped, protected=protected, window=window
        )
        yield finding.rule, how
    zero = live(VLOGIC=(5.0, 0.4), VBUS=(0.0, 0.3))
    yield m.check_live_at_zero(LIMITS, zero, "VBUS").rule, "a dry run's live net at 0 V"
    for quantity in ("voltage", "current_limit", "ovp"):
        yield m.check_readback(LIMITS, "VBUS", quantity, 1.0, 2.0).rule, quantity
    ranged = dataclasses.replace(LIMITS, supply_ranges={"VBUS": "P30V"})
    yield m.check_range(ranged, "VBUS", "P15V").rule, "the supply left in another range"
    yield m.check_protection_armed("VBUS", False).rule, "OCP off"
    yield m.check_output("VBUS", True, False).rule, "did not turn on"
    yield m.check_off_before_live("VBUS", output=False, tripped=True, protected=True).rule, "trip"
    yield m.check_mate_stray(LIMITS, "VBUS", 3.3).rule, "stray"
    yield m.check_mate_resistance(LIMITS, "VBUS", 24.0).rule, "the winding"
    yield m.check_identity_stray(LIMITS, 3.3).rule, "stray on the ID net"
    yield m.check_dut_identity(LIMITS, 4700.0).finding.rule, "the SNB-5's resistor"
    yield "identity.instrument", "same_instrument() is a predicate: its rule name is the caller's"
    on = m.check_channel_off("psu", 1, output=True, voltage=5.0, tripped=True, coupled=True)
    yield on[0].rule, "an output found on"
    yield on[1].rule, "a trip found latched"
    yield on[2].rule, "a channel found tracking another"
    yield m.check_relays_open({"K1"}).rule, "a relay found closed"
    yield m.check_off_voltage(LIMITS, "psu", 2, "VBUS", 3.3).rule, "stray with outputs off"
    yield m.check_contacts(0b11, 0b11, 0b01, channels, 0.25).rule, "a contact left open"


CASES = list(cases())


@pytest.mark.parametrize(("rule", "how"), CASES, ids=[how for _, how in CASES])
def test_each_case_produces_a_registered_rule(rule, how):
    assert rule is not None, how
    assert rule_named(rule) is not None, f"{rule} ({how}) is not in the registry"


@pytest.mark.parametrize("entry", RULES, ids=[r.name for r in RULES])
def test_every_registered_rule_is_one_the_engine_produces(entry):
    assert any(entry.matches(rule) for rule, _ in CASES), f"nothing produces {entry.name}"


def test_names_are_unique_and_match_one_entry_each():
    names = [r.name for r in RULES]
    assert len(names) == len(set(names))
    for rule, how in CASES:
        assert sum(r.matches(rule) for r in RULES) == 1, (rule, how)


@st.composite
def engine_outputs(draw):
    limits = draw(pinned_limits())
    state = draw(st.one_of(bench_states(limits), st.just(SAFE_STATE)))
    request = draw(requests(limits, state))
    now = draw(st.floats(5.0, 30.0))
    rules = [evaluate(limits, state, request, now).verdict.rule]
    if isinstance(request, SetVoltage):
        rules.append(plan_voltage(limits, state, request, now).verdict.rule)
        if request.net in limits.nets:
            left = draw(st.sampled_from([state.net(request.net), NetState(1.0, 0.1, True)]))
            rules.append(continue_ramp(limits, limits, left, state, request, now).verdict.rule)
    return [r for r in rules if r is not None]


@settings(
    max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(engine_outputs())
def test_the_engine_returns_no_rule_the_registry_lacks(rules):
    for rule in rules:
        assert rule_named(rule) is not None, f"{rule} is not in the registry"


def _rule_glob(node: ast.expr) -> str:
    """A rule argument as written in the source: literal text kept, anything computed a *."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "*" for v in node.values)
    return "*"


def written_rules() -> list[tuple[str, str]]:
    """(glob, file:line) of every rule named in the engine's source: the first argument
    of refuse(), Finding() and a refused Verdict()."""
    found = []
    for path in sorted(ENGINE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
                continue
            args = node.args
            if node.func.id in ("refuse", "_refuse", "Finding") and args:
                rule = args[0]
            elif node.func.id == "Verdict" and len(args) > 1:
                rule = args[1]
            else:
                continue
            found.append((_rule_glob(rule), f"{path.name}:{node.lineno}"))
    return found


def test_every_rule_written_in_the_engine_is_registered():
    written = written_rules()
    assert len(written) > 30  # the scan sees the engine's rules
    concrete = [re.sub(r"<net>", "VBUS", r.name).replace("<i>", "0") for r in RULES]
    for glob, where in written:
        assert any(fnmatch.fnmatchcase(name, glob) for name in concrete), (
            f"{where}: rule {glob!r} is not in the registry"
        )


def test_the_readme_shows_the_registry():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert TABLE_START in readme and TABLE_END in readme
    shown = readme.split(TABLE_START)[1].split(TABLE_END)[0].strip()
    assert shown == rule_table(), (
        "the README's rule table is stale: paste the output of "
        "`python -m interlock.limits.registry` between its markers"
    )
