"""The pure electrical model: CV/CC, open and short loads, parallel supplies, joined nets."""

from __future__ import annotations

import math

import pytest

from interlock.sim.dut import SHORT_RESISTANCE, Load, Source, solve


def test_constant_voltage_into_a_resistor():
    solution = solve({"N": Load(10.0)}, [Source("s", "N", 5.0, 1.0)])
    assert solution.nets["N"].voltage == 5.0
    assert solution.nets["N"].current == pytest.approx(0.5)
    assert solution.sources["s"].regulation == "CV"


def test_constant_current_when_the_limit_is_reached():
    solution = solve({"N": Load(10.0)}, [Source("s", "N", 12.0, 0.5)])
    assert solution.sources["s"].regulation == "CC"
    assert solution.nets["N"].voltage == pytest.approx(5.0)
    assert solution.nets["N"].current == pytest.approx(0.5)


def test_open_and_short():
    assert solve({"N": Load()}, [Source("s", "N", 5.0, 1.0)]).nets["N"].current == 0.0
    short = solve({"N": Load(SHORT_RESISTANCE)}, [Source("s", "N", 5.0, 1.0)])
    assert short.sources["s"].regulation == "CC"
    assert short.nets["N"].voltage == pytest.approx(0.01)


def test_active_load_sinks_its_current_once_powered():
    solution = solve({"N": Load(math.inf, 0.1)}, [Source("s", "N", 5.0, 1.0)])
    assert solution.nets["N"].current == pytest.approx(0.1)
    starved = solve({"N": Load(math.inf, 0.1)}, [Source("s", "N", 5.0, 0.05)])
    assert starved.nets["N"].voltage == 0.0


def test_unpowered_nets_are_dead():
    solution = solve({"A": Load(10.0), "B": Load(20.0)}, [Source("s", "A", 5.0, 1.0)])
    assert solution.nets["B"].voltage == 0.0


def test_joined_nets_share_the_supply():
    solution = solve({"A": Load(10.0), "B": Load(10.0)}, [Source("s", "A", 5.0, 2.0)],
                     ties=[["A", "B"]])
    assert solution.nets["B"].voltage == 5.0
    assert solution.sources["s"].current == pytest.approx(1.0)


def test_two_supplies_on_one_node_the_higher_regulates():
    loads = {"A": Load(20.0), "B": Load(20.0)}
    sources = [Source("hi", "A", 12.0, 2.0), Source("lo", "B", 5.0, 2.0)]
    solution = solve(loads, sources, ties=[["A", "B"]])
    assert solution.nets["B"].voltage == 12.0  # power meant for A reaches B
    assert solution.sources["hi"].current == pytest.approx(1.2)
    assert solution.sources["lo"].current == 0.0  # reverse-biased: a bench supply cannot sink


def test_higher_supply_in_cc_hands_over_to_the_next():
    loads = {"A": Load(5.0)}
    sources = [Source("hi", "A", 12.0, 1.0), Source("lo", "A", 10.0, 2.0)]
    solution = solve(loads, sources)
    assert solution.sources["hi"].regulation == "CC"
    assert solution.sources["lo"].regulation == "CV"
    assert solution.nets["A"].voltage == 10.0
    assert solution.sources["lo"].current == pytest.approx(1.0)
