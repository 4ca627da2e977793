"""Sequence files: the examples load; every error names the file and the key."""

from __future__ import annotations

import pytest

from interlock.config import load_configuration
from interlock.errors import ConfigError, LimitViolation
from interlock.sequence import bind, check_profile, load_sequence
from tests.sequence.conftest import EXAMPLE, HEADER, ROOT_BENCH, WRONG_PROFILE


def test_the_example_loads_with_its_units_converted():
    sequence = load_sequence(EXAMPLE)
    assert sequence.profile == "MDB-24"
    assert len(sequence.steps) == 28
    first_set = sequence.steps[1]
    assert (first_set.action, first_set.net, first_set.current_limit) == ("set", "VLOGIC", 0.25)
    refused = [step for step in sequence.steps if step.expect_refused]
    assert [(s.number, s.action, s.net, s.voltage) for s in refused] == [(10, "ramp", "VBUS", 26.0)]
    wait = next(step for step in sequence.steps if step.action == "wait")
    assert wait.duration == pytest.approx(0.2)
    assert sequence.prompts and sequence.prompts[0].message


def test_the_wrong_profile_example_loads():
    assert load_sequence(WRONG_PROFILE).profile == "SNB-5"


STEP_ERRORS = [
    ('action = "set"\nnet = "VBUS"\nvoltage = "24"', "step 1.voltage", "bare number"),
    ('action = "set"\nnet = "VBUS"\nvoltage = 24', "step 1.voltage", "bare number"),
    ('action = "set"\nnet = "VBUS"\nvoltage = "24 A"', "step 1.voltage", "not a voltage"),
    ('action = "set"\nnet = "VBUS"\nvoltage = "nan V"', "step 1.voltage", "finite"),
    ('action = "set"\nnet = "VBUS"\ncurrent_limit = "300 mV"', "step 1.current_limit", "current"),
    ('action = "set"\nnet = "VBUS"\nvoltage = "-1 V"', "step 1.voltage", "non-negative"),
    ('action = "set"\nnet = "VBUS"', "step 1", "exactly one of voltage, current_limit"),
    (
        'action = "set"\nnet = "VBUS"\nvoltage = "1 V"\ncurrent_limit = "1 A"',
        "step 1",
        "exactly one",
    ),
    ('action = "set"\nnet = "VBUS"\nvolts = "1 V"', "step 1", "exactly one"),
    # A misspelt key is what lacks: named (not for volts: too unlike voltage to be sure).
    (
        'action = "set"\nnet = "VBUS"\ncurrentlimit = "250 mA"',
        "step 1",
        'exactly one of voltage, current_limit (is "currentlimit" current_limit misspelt?)',
    ),
    (
        'action = "measure"\nnet = "VBUS"\nquantity = "voltage"\nmax_ = "1 V"',
        "step 1",
        'min, max or both (is "max_" max misspelt?)',
    ),
    ('action = "ramp"\nnet = "VBUS"\nto = "1 V"\nrate = "2 V/s"', "step 1.rate", "unknown key"),
    ('action = "jump"', "step 1.action", "expected one of"),
    ('net = "VBUS"', "step 1.action", "missing"),
    ('action = "ramp"\nnet = "VBUS"', "step 1.to", "missing"),
    ('action = "relay"\nrelay = "K3"\nstate = "shut"', "step 1.state", "open, closed"),
    ('action = "output"\nnet = "VBUS"\nstate = true', "step 1.state", "string"),
    ('action = "wait"\nduration = "2"', "step 1.duration", "bare number"),
    ('action = "wait"\nduration = "2 V"', "step 1.duration", "not a duration"),
    ('action = "prompt"\nmessage = ""', "step 1.message", "non-empty"),
    (
        'action = "measure"\nnet = "VBUS"\nquantity = "voltage"\nmin = "25 V"\nmax = "23 V"',
        "step 1.min",
        "greater than max",
    ),
    ('action = "measure"\nnet = "VBUS"\nquantity = "voltage"', "step 1", "min, max or both"),
    (
        'action = "measure"\nnet = "VBUS"\nquantity = "power"\nmax = "1 W"',
        "step 1.quantity",
        "voltage, current",
    ),
    (
        'action = "measure"\nnet = "VBUS"\nquantity = "current"\nmax = "1 V"',
        "step 1.max",
        "not a current",
    ),
    ('action = "wait"\nduration = "1 s"\nexpect = "refused"', "step 1.expect", "can be refused"),
    ('action = "relay"\nrelay = "K3"\nstate = "open"\nexpect = "no"', "step 1.expect", "one of"),
    # Every value bounded, every name one that can be looked up.
    ('action = "wait"\nduration = "1e308 s"', "step 1.duration", "at most 24 h"),
    ('action = "wait"\nduration = "-5e-324 s"', "step 1.duration", "non-negative"),
    ('action = "set"\nnet = "VBUS"\nvoltage = "1e308 V"', "step 1.voltage", "at most 1 kV"),
    ('action = "ramp"\nnet = "VBUS"\nto = "9**9**9 V"', "step 1.to", "not a number"),
    (
        'action = "set"\nnet = "VBUS"\ncurrent_limit = "1e308 A"',
        "step 1.current_limit",
        "at most 100 A",
    ),
    (
        'action = "measure"\nnet = "VBUS"\nquantity = "voltage"\nmin = "-1e308 V"',
        "step 1.min",
        "from -1 kV to 1 kV",
    ),
    ('action = "set"\nnet = "VB/US"\nvoltage = "1 V"', "step 1.net", "expected a name"),
    ('action = "relay"\nrelay = "K3/../K4"\nstate = "open"', "step 1.relay", "relay name"),
    ('action = "relay"\nrelay = "VBUS.power.x"\nstate = "open"', "step 1.relay", "NET.power"),
    ('action = "wait"\nduration = "1 s"\nlabel = "\\u001b[2J"', "step 1.label", "printable"),
    (f'action = "prompt"\nmessage = "{"y" * 1001}"', "step 1.message", "at most 1000"),
]


@pytest.mark.parametrize(("step", "key", "problem"), STEP_ERRORS)
def test_step_errors_name_file_and_key(write_sequence, step, key, problem):
    path = write_sequence(f"[[steps]]\n{step}\n")
    with pytest.raises(ConfigError) as caught:
        load_sequence(path)
    error = caught.value
    assert error.file.endswith(path.name)
    assert error.key == key
    assert problem in error.problem
    assert str(error).startswith(f"{error.file}: {key}: ")


def test_steps_are_bounded(write_sequence):
    steps = '[[steps]]\naction = "wait"\nduration = "1 s"\n' * 10_001
    with pytest.raises(ConfigError) as caught:
        load_sequence(write_sequence(steps))
    assert caught.value.key == "steps"
    assert caught.value.problem == "expected at most 10000 tables, got 10001"


def test_a_later_step_is_named_by_its_number(write_sequence):
    steps = '[[steps]]\naction = "wait"\nduration = "1 s"\n\n'
    steps += '[[steps]]\naction = "set"\nnet = "VBUS"\nvoltage = "12"\n'
    with pytest.raises(ConfigError) as caught:
        load_sequence(write_sequence(steps))
    assert caught.value.key == "step 2.voltage"


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        (
            '[sequence]\nname = "x"\n\n[[steps]]\naction = "wait"\nduration = "1 s"\n',
            "sequence.profile",
            "missing",
        ),
        (HEADER, "steps", "at least one"),
        (
            HEADER + 'colour = "red"\n[[steps]]\naction = "wait"\nduration = "1 s"\n',
            "sequence.colour",
            "unknown key",
        ),
        ('steps = "all of them"\n' + HEADER, "steps", "array of tables"),
        ('[[steps]]\naction = "wait"\nduration = "1 s"\n', "sequence", "missing"),
    ],
)
def test_file_errors_name_file_and_key(tmp_path, text, key, problem):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_sequence(path)
    assert caught.value.key == key
    assert problem in caught.value.problem
    assert caught.value.file.endswith("bad.toml")


def test_unreadable_files_name_the_file(tmp_path):
    broken = tmp_path / "broken.toml"
    broken.write_text("[sequence\n")
    with pytest.raises(ConfigError, match=r"broken\.toml: invalid TOML"):
        load_sequence(broken)
    with pytest.raises(ConfigError, match=r"missing\.toml: file not found"):
        load_sequence(tmp_path / "missing.toml")


# --- binding: the sequence held against a bench and its profile -----------------------


@pytest.fixture(scope="module")
def configuration():
    return load_configuration(ROOT_BENCH)


@pytest.mark.parametrize(
    ("step", "key", "problem"),
    [
        ('action = "set"\nnet = "VMAIN"\nvoltage = "1 V"', "step 1.net", 'unknown net "VMAIN"'),
        (
            'action = "measure"\nnet = "ID"\nquantity = "voltage"\nmax = "1 V"',
            "step 1.net",
            'unknown net "ID"',
        ),
        (
            'action = "relay"\nrelay = "K9"\nstate = "closed"',
            "step 1.relay",
            'unknown relay "K9"',
        ),
        (
            'action = "relay"\nrelay = "VBUS.ground"\nstate = "closed"',
            "step 1.relay",
            "NET.power or NET.sense",
        ),
        (
            'action = "relay"\nrelay = "ID.power"\nstate = "closed"',
            "step 1.relay",
            "no power relay",
        ),
        (
            'action = "relay"\nrelay = "VMAIN.power"\nstate = "closed"',
            "step 1.relay",
            "not wired",
        ),
    ],
)
def test_binding_errors_name_file_and_key(write_sequence, configuration, step, key, problem):
    path = write_sequence(f"[[steps]]\n{step}\n")
    with pytest.raises(ConfigError) as caught:
        bind(load_sequence(path), configuration)
    assert caught.value.key == key
    assert caught.value.file.endswith(path.name)
    assert problem in caught.value.problem


def test_relays_are_resolved_by_role_or_by_name(write_sequence, configuration):
    steps = '[[steps]]\naction = "relay"\nrelay = "MOTOR.power"\nstate = "open"\n\n'
    steps += '[[steps]]\naction = "relay"\nrelay = "K5"\nstate = "closed"\n'
    bound = bind(load_sequence(write_sequence(steps)), configuration)
    assert [(s.relay, s.relay_ref, s.closed) for s in bound.steps] == [
        ("K3", "MOTOR.power", False),
        ("K5", "K5", True),
    ]
    assert bound.steps[0].describe() == "open relay K3 (MOTOR.power)"


def test_a_sequence_for_another_profile_is_refused(configuration):
    sequence = load_sequence(WRONG_PROFILE)
    with pytest.raises(LimitViolation) as caught:
        check_profile(sequence, configuration)
    refusal = caught.value
    assert refusal.rule == "sequence.profile"
    assert refusal.where.endswith("snb5_power_up.toml: sequence.profile")
    assert '"SNB-5"' in refusal.reason and '"MDB-24"' in refusal.reason
    with pytest.raises(LimitViolation):
        bind(sequence, configuration)  # refused before any name is looked at


def test_the_wrong_profile_example_binds_to_its_own_profile():
    snb5 = load_configuration(ROOT_BENCH, ROOT_BENCH.parent / "profiles" / "snb5.toml")
    bound = bind(load_sequence(WRONG_PROFILE), snb5)
    assert bound.profile == "SNB-5"


def test_every_error_of_a_file_is_reported_at_once_each_with_file_and_key(write_sequence):
    steps = '[[steps]]\naction = "wait"\nduration = "1 s"\n\n'
    steps += '[[steps]]\nlabel = "bus on"\naction = "set"\nnet = "VBUS"\nvoltage = "12"\n\n'
    steps += '[[steps]]\naction = "jump"\n\n'
    steps += '[[steps]]\naction = "wait"\nduration = "2 V"\n'
    path = write_sequence(steps)
    with pytest.raises(ConfigError) as caught:
        load_sequence(path)
    text = str(caught.value)
    assert text.isprintable()  # one line
    assert caught.value.key == "step 2 [bus on].voltage"
    assert text.startswith(f"{path}: step 2 [bus on].voltage: expected a voltage")
    _, more = text.split("; 2 more errors: ")
    items = more.split("; ")
    assert items[0].startswith("step 3.action: expected one of")
    assert items[1].startswith("step 4.duration: ")
    assert len(items) == 2


def test_thousands_of_errors_are_one_bounded_line(write_sequence):
    path = write_sequence('[[steps]]\naction = "jump"\n' * 5000)
    with pytest.raises(ConfigError) as caught:
        load_sequence(path)
    text = str(caught.value)
    assert text.isprintable() and len(text) < 1000
    assert text.startswith(f"{path}: step 1.action: expected one of")
    assert "; 4999 more errors: step 2.action: expected one of" in text
    assert text.endswith(" more")


def test_every_unknown_name_is_reported_at_once(write_sequence, configuration):
    steps = '[[steps]]\naction = "set"\nnet = "VMAIN"\nvoltage = "1 V"\n\n'
    steps += '[[steps]]\naction = "wait"\nduration = "1 s"\n\n'
    steps += '[[steps]]\nlabel = "spare"\naction = "relay"\nrelay = "K9"\nstate = "closed"\n'
    path = write_sequence(steps)
    with pytest.raises(ConfigError) as caught:
        bind(load_sequence(path), configuration)
    text = str(caught.value)
    assert text.startswith(f"{caught.value.file}: step 1.net: unknown net")
    assert "; 1 more error: step 3 [spare].relay: unknown relay" in text
