"""The dry run: every violation listed with its step, the clock simulated, nothing sent."""

from __future__ import annotations

import pytest

from interlock.cli import main
from interlock.config import load_configuration
from interlock.controller import Controller
from interlock.journal import Journal
from interlock.limits import NetState
from interlock.limits.ramps import RAMP_MARGIN
from interlock.sequence import armed_state, bind, dry_run, load_sequence
from interlock.sequence.dryrun import (
    ALLOWED_UNEXPECTEDLY,
    REFUSED,
    REFUSED_AS_EXPECTED,
)
from tests.sequence.conftest import EXAMPLE, ROOT_BENCH, bench_copy

# One violation of each kind, between steps that are fine; (step number, rule).
VIOLATIONS = """
[[steps]]
action = "set"
net = "VBUS"
current_limit = "300 mA"

[[steps]]
action = "set"
net = "VBUS"
voltage = "24 V"

[[steps]]
label = "on at 24 V: a jump"
action = "output"
net = "VBUS"
state = "on"

[[steps]]
action = "set"
net = "VBUS"
current_limit = "2 A"

[[steps]]
action = "relay"
relay = "VBUS.sense"
state = "closed"

[[steps]]
label = "a second meter route"
action = "relay"
relay = "MOTOR.sense"
state = "closed"

[[steps]]
label = "motor before logic and bus"
action = "output"
net = "MOTOR"
state = "on"

[[steps]]
action = "set"
net = "VLOGIC"
voltage = "5 V"

[[steps]]
label = "safe-to-mate needs the meter, still routed to VBUS"
action = "output"
net = "VLOGIC"
state = "on"

[[steps]]
action = "relay"
relay = "VBUS.sense"
state = "open"

[[steps]]
action = "output"
net = "VLOGIC"
state = "on"

[[steps]]
action = "set"
net = "VLOGIC"
voltage = "6 V"

[[steps]]
label = "the spare relay is not forbidden"
action = "relay"
relay = "K8"
state = "closed"
expect = "refused"

[[steps]]
action = "measure"
net = "VLOGIC"
quantity = "voltage"
min = "4.9 V"
max = "5.1 V"
"""

EXPECTED = [
    (3, "nets.VBUS.max_step"),
    (4, "nets.VBUS.max_current"),
    (6, "rules.never_together[0]"),
    (7, "sequencing.power_on"),
    (9, "rules.never_together[0]"),
    (12, "nets.VLOGIC.max_voltage"),
    (13, "sequence.expect"),
]


@pytest.fixture(scope="module")
def configuration():
    return load_configuration(ROOT_BENCH)


def test_the_example_is_clean_but_for_its_expected_refusal(configuration):
    report = dry_run(bind(load_sequence(EXAMPLE), configuration), configuration)
    assert report.ok, [(c.step.number, c.verdict.reason) for c in report.violations]
    [expected] = report.expected_refusals
    assert expected.step.number == 10
    assert expected.outcome == REFUSED_AS_EXPECTED
    assert expected.verdict.rule == "nets.VBUS.max_voltage"
    assert expected.verdict.where == "profiles/mdb24.toml: nets.VBUS.max_voltage"
    assert "26 V is above the maximum of 25 V" in expected.verdict.reason


def test_every_violation_is_listed_with_its_step(write_sequence, configuration):
    sequence = bind(load_sequence(write_sequence(VIOLATIONS)), configuration)
    report = dry_run(sequence, configuration)
    assert [(c.step.number, c.verdict.rule) for c in report.violations] == EXPECTED
    by_number = {c.step.number: c for c in report.checks}
    assert by_number[3].outcome == REFUSED
    assert "turn on lower and ramp" in by_number[3].verdict.reason
    # The first net to go live has the DUT's identity measured again: its route (K7)
    # is the first to meet the meter still routed to VBUS.
    assert by_number[9].verdict.reason.endswith("(going live: close relay K7)")
    assert by_number[13].outcome == ALLOWED_UNEXPECTEDLY
    assert by_number[13].verdict.where.endswith("step 13 [the spare relay is not forbidden].expect")
    # A refusal changes nothing: step 11 goes live from the state before step 9.
    assert by_number[11].verdict.allowed and by_number[14].verdict.allowed


def test_the_start_is_the_armed_state(configuration):
    state = armed_state(configuration)
    assert state.closed_relays == frozenset()
    assert state.nets["VBUS"] == NetState(voltage=0.0, current_limit=0.5)
    assert not state.live_nets


def test_the_clock_advances_by_waits_settles_and_ramps(write_sequence, configuration):
    steps = """
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
[[steps]]
action = "wait"
duration = "1 s"
[[steps]]
action = "ramp"
net = "VBUS"
to = "24 V"
[[steps]]
action = "measure"
net = "VBUS"
quantity = "voltage"
min = "23 V"
"""
    report = dry_run(bind(load_sequence(write_sequence(steps)), configuration), configuration)
    assert report.ok
    at = [check.at for check in report.checks]
    vlogic, vbus = configuration.limits.nets["VLOGIC"], configuration.limits.nets["VBUS"]
    assert at[2] == pytest.approx(vlogic.settle_time)  # after VLOGIC went live
    assert at[4] == pytest.approx(vlogic.settle_time + vbus.settle_time)
    assert at[5] == pytest.approx(at[4] + 1.0)
    # 20 V in steps of max_step at max_slew, plus the controller's margin; the first
    # step goes at once, the net having been steady for longer than one interval.
    steps = 20.0 / vbus.max_step
    ramp = (steps - 1) * vbus.max_step / vbus.max_slew * RAMP_MARGIN
    assert at[6] - at[5] == pytest.approx(ramp)
    assert report.duration == pytest.approx(at[6])


def test_the_dry_run_plans_a_voltage_as_the_controller_does():
    from interlock.controller import actuation
    from interlock.sequence import dryrun

    assert dryrun.plan_voltage is actuation.plan_voltage


def test_the_dry_run_sends_nothing_to_any_instrument(tmp_path, sim_bench, write_sequence, capsys):
    """A bench file that points at a running simulated bench: the dry run leaves it untouched."""
    bench_file = bench_copy(tmp_path, resources=sim_bench.resources)
    before = sim_bench.truth()
    sequence = write_sequence(VIOLATIONS)

    assert main(["run", str(sequence), "--dry-run", "--bench", str(bench_file)]) == 3
    assert main(["run", str(EXAMPLE), "--dry-run", "--bench", str(bench_file)]) == 0

    after = sim_bench.truth()
    assert after["instruments"] == before["instruments"]
    assert all(not info["commands"] for info in after["instruments"].values())
    assert after["relays"] == before["relays"] == []
    assert after["events"] == before["events"]
    assert {net: record["max_voltage"] for net, record in after["nets"].items()} == dict.fromkeys(
        after["nets"], 0.0
    )
    out = capsys.readouterr().out
    assert out.startswith("bench sim-bench-01 [simulation]\n")
    for number, rule in EXPECTED:
        assert f"  step {number}: {rule} (" in out

    # The bench file really leads to that simulator: a controller following it is seen.
    configuration = load_configuration(bench_file)
    with Journal(tmp_path / "journal.sqlite", bench="sim-bench-01") as journal:
        controller = Controller(configuration, journal)
        try:
            controller.connect()
        finally:
            controller.close()
    assert sim_bench.truth()["instruments"]["psu"]["commands"]


def test_a_live_net_at_zero_volts_is_a_violation(write_sequence, configuration):
    steps = """
[[steps]]
action = "set"
net = "VLOGIC"
voltage = "5 V"
[[steps]]
action = "output"
net = "VLOGIC"
state = "on"
[[steps]]
label = "all the way down while live: the monitor would see no current"
action = "ramp"
net = "VLOGIC"
to = "0 V"
[[steps]]
action = "output"
net = "VBUS"
state = "on"
"""
    report = dry_run(bind(load_sequence(write_sequence(steps)), configuration), configuration)
    assert [(c.step.number, c.verdict.rule) for c in report.violations] == [
        (3, "nets.VLOGIC.live_min_current"),
        (4, "nets.VBUS.live_min_current"),
    ]
    assert "turn the output off instead" in report.violations[0].verdict.reason


@pytest.mark.parametrize(
    "path", sorted((ROOT_BENCH.parent / "sequences").glob("*.toml")), ids=lambda p: p.name
)
def test_every_example_is_clean_on_the_profile_it_was_written_for(path):
    from interlock.config import load_profile

    profiles = {load_profile(p).name: p for p in (ROOT_BENCH.parent / "profiles").glob("*.toml")}
    sequence = load_sequence(path)
    configuration = load_configuration(ROOT_BENCH, profiles[sequence.profile])
    assert dry_run(bind(sequence, configuration), configuration).ok
