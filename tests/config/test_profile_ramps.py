"""A profile that loads can ramp across its whole range.

The configuration bounds a net's longest legal ramp with the limit engine's
own bounds on a plan (``ramp.max_steps``, ``ramp.max_duration``), not with
figures of its own: a profile between the two would load and then have every
full-range ramp refused. Net limits are drawn over the whole range, values no
one would type included; whatever loads is ramped from ``min_voltage`` to
``max_voltage`` and back by the engine.
"""

from __future__ import annotations

import math
import tomllib
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from interlock.config import load_profile
from interlock.errors import ConfigError
from interlock.limits import BenchState, NetState, PinnedLimits, SetVoltage, plan_voltage
from tests.config.toml_text import dumps

ROOT = Path(__file__).resolve().parents[2]

EDGES = [5e-324, 1e-300, 1e-9, 1e-3, 0.02, 0.4, 1.0, 4.0, 25.0, 999.9, 1000.0, 1e308]
VOLTS = st.one_of(st.sampled_from([0.0, -0.0, *EDGES]), st.floats(0.0, 1000.0))
POSITIVE = st.one_of(st.sampled_from(EDGES), st.floats(1e-6, 10_000.0))


@st.composite
def ramp_limits(draw) -> tuple[float, float, float, float]:
    """(min_voltage, max_voltage, max_step, max_slew): half the time max_step and
    max_slew are drawn as a number of steps (up to 20,000) and seconds (up to 2 h)
    across the range, where the bounds lie, rather than as values."""
    low, high = sorted((draw(VOLTS), draw(VOLTS)))
    span = high - low
    if span > 0 and draw(st.booleans()):
        steps = draw(st.floats(0.5, 20_000.0))
        seconds = draw(st.floats(1e-3, 7200.0))
        return low, high, span / steps, span / seconds
    return low, high, draw(POSITIVE), draw(POSITIVE)


def profile_with(tmp: Path, low: float, high: float, step: float, slew: float) -> Path:
    data = tomllib.loads((ROOT / "profiles" / "mdb24.toml").read_text(encoding="utf-8"))
    net = data["nets"]["VBUS"]
    net.update(
        min_voltage=f"{low!r} V",
        max_voltage=f"{high!r} V",
        max_step=f"{step!r} V",
        max_slew=f"{slew!r} V/s",
        readback_absolute="1 nV",
    )
    path = tmp / "profile.toml"
    path.write_text(dumps(data), encoding="utf-8")
    return path


def only(net) -> PinnedLimits:
    return PinnedLimits(
        nets={net.net: net},
        relays=frozenset(),
        power_relays={},
        never_together=(),
        open_before_change=(),
        power_on=(net.net,),
        power_off=(net.net,),
        max_total_power=math.inf,
        profile_file="profile.toml",
        bench_file="bench.toml",
    )


@settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(drawn=ramp_limits())
@example(drawn=(0.0, 25.0, 0.02, 40.0))  # 1250 steps: loaded once, then refused
@example(drawn=(0.0, 25.0, 4.0, 0.4))  # 63.75 s: loaded once, then refused
@example(drawn=(0.0, 25.0, 0.025, 40.0))  # 1000 steps exactly
def test_a_profile_that_loads_can_ramp_across_its_whole_range(tmp_path, drawn):
    low, high, step, slew = drawn
    try:
        profile = load_profile(profile_with(tmp_path, low, high, step, slew))
    except ConfigError:
        return
    net = profile.nets["VBUS"]
    limits = only(net)
    for start, target in ((net.min_voltage, net.max_voltage), (net.max_voltage, net.min_voltage)):
        live = NetState(voltage=start, current_limit=net.max_current, output=True)
        state = BenchState({"VBUS": live})
        plan = plan_voltage(limits, state, SetVoltage("VBUS", target), 0.0)
        assert plan.verdict.allowed, (start, target, plan.verdict)
        assert plan.state.net("VBUS").voltage == target
