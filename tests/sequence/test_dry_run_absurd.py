"""The dry run at values no one would type: each is refused, in bounded time, by the
engine's rule on the target (with its step number and where the rule is defined), or,
beyond what any bench could take (1 kV), by the sequence file's own bound at load."""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from interlock.cli import main
from interlock.errors import ConfigError
from interlock.sequence import bind, dry_run, load_sequence
from tests.sequence.conftest import ROOT_BENCH

# A dry run of a few steps takes milliseconds; this only catches a runaway plan.
RUNAWAY_S = 2.0

LIVE = """
[[steps]]
action = "set"
net = "VLOGIC"
voltage = "5 V"
[[steps]]
action = "output"
net = "VLOGIC"
state = "on"
[[steps]]
action = "set"
net = "VBUS"
voltage = "4 V"
[[steps]]
action = "output"
net = "VBUS"
state = "on"
"""


def ramp(net: str, to: str) -> str:
    return f'\n[[steps]]\naction = "ramp"\nnet = "{net}"\nto = "{to}"\n'


def test_absurd_targets_are_refused_by_the_limit_with_their_step(write_sequence, configuration):
    steps = (
        LIVE
        + ramp("VBUS", "1 kV")
        + ramp("VLOGIC", "999.999999 V")
        + ramp("MOTOR", "500 V")
        + ramp("VBUS", "-0.0 V")
        + ramp("VBUS", "5e-324 V")
    )
    started = time.monotonic()
    report = dry_run(bind(load_sequence(write_sequence(steps)), configuration), configuration)
    assert time.monotonic() - started < RUNAWAY_S
    where = "profiles/mdb24.toml: nets.{}"
    found = [(c.step.number, c.verdict.rule, c.verdict.where) for c in report.violations]
    assert found == [
        (5, "nets.VBUS.max_voltage", where.format("VBUS.max_voltage")),
        (6, "nets.VLOGIC.max_voltage", where.format("VLOGIC.max_voltage")),
        (7, "nets.MOTOR.max_voltage", where.format("MOTOR.max_voltage")),
        # Legal values, but a live net at (next to) 0 V draws nothing: the monitor would trip.
        (8, "nets.VBUS.live_min_current", where.format("VBUS.live_min_current")),
        (9, "nets.VBUS.live_min_current", where.format("VBUS.live_min_current")),
    ]
    assert report.violations[0].verdict.reason == "1 kV is above the maximum of 25 V"


def test_the_command_line_dry_run_of_an_absurd_ramp_exits_3_naming_the_step(write_sequence, capsys):
    sequence = write_sequence(LIVE + ramp("VBUS", "26 V"))
    assert main(["run", str(sequence), "--dry-run", "--bench", str(ROOT_BENCH)]) == 3
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    assert "step 5: nets.VBUS.max_voltage (" in captured.out
    assert "26 V is above the maximum of 25 V" in captured.out


@pytest.mark.parametrize("to", ["1e12 V", "1e308 V", "3e7 V", "-1e308 V"])
def test_a_ramp_beyond_any_bench_is_the_file_s_error_exit_2(write_sequence, capsys, to):
    sequence = write_sequence(LIVE + ramp("VBUS", to))
    assert main(["run", str(sequence), "--dry-run", "--bench", str(ROOT_BENCH)]) == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    assert f"{sequence}: step 5.to: expected a non-negative voltage of at most 1 kV" in (
        captured.err
    )


@settings(
    max_examples=100,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    net=st.sampled_from(["VLOGIC", "VBUS", "MOTOR"]),
    volts=st.floats(allow_nan=False, allow_infinity=False),  # a TOML quantity is finite
)
@example(net="VBUS", volts=1e308)
@example(net="VBUS", volts=-1e308)
@example(net="VLOGIC", volts=5e-324)
@example(net="VLOGIC", volts=-0.0)
@example(net="VLOGIC", volts=3e7)
def test_any_target_in_a_sequence_is_checked_in_bounded_time(
    write_sequence, configuration, net, volts
):
    path = write_sequence(LIVE + ramp(net, f"{volts!r} V"))
    try:
        sequence = load_sequence(path)
    except ConfigError as error:  # beyond any bench (below 0 V, above 1 kV): the file's error
        assert volts < 0 or volts > 1000
        assert str(error).startswith(f"{path}: step 5.to: expected a non-negative voltage")
        return
    started = time.monotonic()
    report = dry_run(bind(sequence, configuration), configuration)
    assert time.monotonic() - started < RUNAWAY_S
    check = report.checks[-1]
    assert check.verdict.allowed or (check.verdict.rule and check.verdict.where)
    limits = configuration.limits.nets[net]
    if not limits.min_voltage <= volts <= limits.max_voltage:
        assert check.verdict.rule in (f"nets.{net}.min_voltage", f"nets.{net}.max_voltage")


@pytest.fixture
def configuration():
    from interlock.config import load_configuration

    return load_configuration(ROOT_BENCH)
