"""Every kind of bad configuration gets a clear error naming the file and the key."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from interlock.cli import main
from interlock.config import load_configuration
from interlock.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def bench_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copy(ROOT / "bench.toml", tmp_path / "bench.toml")
    shutil.copytree(ROOT / "profiles", tmp_path / "profiles")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"fixture text not found: {old!r}"
    path.write_text(text.replace(old, new, 1))


def error_for(bench_dir: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_configuration(bench_dir / "bench.toml")
    return info.value


PROFILE = "profiles/mdb24.toml"

CASES = [
    # (file, old text, new text, expected file, expected key, expected words in the problem)
    pytest.param(
        PROFILE,
        'max_voltage = "25 V"',
        'max_voltage = "12"',
        PROFILE,
        "nets.VBUS.max_voltage",
        'expected a voltage, got "12"',
        id="bare-number-string",
    ),
    pytest.param(
        PROFILE,
        'max_voltage = "25 V"',
        "max_voltage = 12",
        PROFILE,
        "nets.VBUS.max_voltage",
        "bare number",
        id="bare-number",
    ),
    pytest.param(
        PROFILE,
        'max_voltage = "25 V"',
        'max_voltage = "25 volts-ish"',
        PROFILE,
        "nets.VBUS.max_voltage",
        "unknown unit",
        id="unknown-unit",
    ),
    pytest.param(
        PROFILE,
        'max_voltage = "25 V"',
        'max_voltage = "25 A"',
        PROFILE,
        "nets.VBUS.max_voltage",
        "A is not a voltage",
        id="wrong-dimension",
    ),
    pytest.param(
        PROFILE,
        'max_current = "500 mA"',
        'max_current = "5 V"',
        PROFILE,
        "nets.VBUS.max_current",
        "expected a current",
        id="volts-for-amps",
    ),
    pytest.param(
        PROFILE,
        'max_slew = "40 V/s"',
        'max_slew = "40 V"',
        PROFILE,
        "nets.VBUS.max_slew",
        "expected a slew rate",
        id="wrong-slew-unit",
    ),
    pytest.param(
        PROFILE,
        'max_step = "4 V"',
        'max_step = "4 V"\nmax_stepp = "4 V"',
        PROFILE,
        "nets.VBUS.max_stepp",
        "unknown key",
        id="unknown-key",
    ),
    pytest.param(
        PROFILE,
        'max_step = "4 V"',
        "",
        PROFILE,
        "nets.VBUS.max_step",
        "missing",
        id="missing-key",
    ),
    pytest.param(
        PROFILE,
        'max_voltage = "25 V"',
        'max_voltage = "30 V"',
        PROFILE,
        "nets.VBUS.max_voltage",
        "E36312A CH2 can deliver (25 V)",
        id="beyond-instrument",
    ),
    pytest.param(
        PROFILE,
        'max_current = "600 mA"',
        'max_current = "1.5 A"',
        PROFILE,
        "nets.MOTOR.max_current",
        "only tighten",
        id="beyond-instrument-current",
    ),
    pytest.param(
        PROFILE,
        'max_voltage = "25 V"',
        'max_voltage = "-1 V"',
        PROFILE,
        "nets.VBUS.max_voltage",
        "non-negative",
        id="negative",
    ),
    pytest.param(
        PROFILE,
        'relays = ["MOTOR.power"]',
        'relays = ["MOTOR.pwr"]',
        PROFILE,
        "rules.open_before_change[0].relays",
        "NET.power or NET.sense",
        id="bad-relay-role",
    ),
    pytest.param(
        PROFILE,
        'relays = ["MOTOR.power"]',
        'relays = ["K99"]',
        PROFILE,
        "rules.open_before_change[0].relays",
        'unknown relay "K99"',
        id="unknown-relay",
    ),
    pytest.param(
        PROFILE,
        'power_on = ["VLOGIC", "VBUS", "MOTOR"]',
        'power_on = ["VLOGIC", "VBUS"]',
        PROFILE,
        "sequencing.power_on",
        "every net exactly once",
        id="order-misses-net",
    ),
    pytest.param(
        PROFILE,
        "[device]",
        "[device\n",
        PROFILE,
        "",
        "invalid TOML",
        id="invalid-toml",
    ),
    pytest.param(
        "bench.toml",
        'environment = "simulation"',
        'environment = "staging"',
        "bench.toml",
        "bench.environment",
        "simulation, engineering, flight",
        id="bad-environment",
    ),
    pytest.param(
        "bench.toml",
        'monitor_period = "50 ms"',
        'monitor_period = "50"',
        "bench.toml",
        "service.monitor_period",
        "expected a duration",
        id="bench-bare-number",
    ),
    pytest.param(
        "bench.toml",
        'relay_watchdog = "500 ms"',
        'relay_watchdog = "150 ms"',
        "bench.toml",
        "service.relay_watchdog",
        "three heartbeat periods",
        id="watchdog-too-tight",
    ),
    pytest.param(
        PROFILE,
        'relays = ["VLOGIC.sense", "VBUS.sense", "MOTOR.sense", "ID.sense"]',
        'relays = ["VLOGIC.sense", "VBUS.sense", "MOTOR.sense", "ID.sense", "K8"]'
        '\nreason = "x"\n[[rules.never_together]]\n'
        'relays = ["VLOGIC.power", "VBUS.power", "MOTOR.power", "K8", "ID.sense"]',
        PROFILE,
        "rules.never_together[1]",
        "holds 16 forbidden pairs",
        id="board-table-full",
    ),
    pytest.param(
        "bench.toml",
        'power_relay = "K2"',
        'power_relay = "K42"',
        "bench.toml",
        "wiring.VBUS.power_relay",
        'unknown relay "K42"',
        id="bench-unknown-relay",
    ),
    pytest.param(
        "bench.toml",
        'sense_relay = "K5"',
        'sense_relay = "K4"',
        "bench.toml",
        "wiring.VBUS.sense_relay",
        "already used",
        id="relay-used-twice",
    ),
    pytest.param(
        "bench.toml",
        'model = "E36312A"',
        'model = "PSU-9000"',
        "bench.toml",
        "instruments.psu.identity.model",
        "unknown power supply model",
        id="unknown-model",
    ),
    pytest.param(
        "bench.toml",
        'driver = "scpi-dmm"',
        'driver = "scpi-dvm"',
        "bench.toml",
        "instruments.dmm.driver",
        "expected one of",
        id="unknown-driver",
    ),
    pytest.param(
        "bench.toml",
        'latency = "1 ms"',
        'latency = "1 ms"\nlatencyy = "1 ms"',
        "bench.toml",
        "simulation.latencyy",
        "unknown key",
        id="bench-unknown-key",
    ),
    pytest.param(
        "bench.toml",
        'profile = "profiles/mdb24.toml"',
        'profile = "profiles/nope.toml"',
        "profiles/nope.toml",
        "",
        "file not found",
        id="missing-profile",
    ),
]


@pytest.mark.parametrize(("file", "old", "new", "err_file", "err_key", "words"), CASES)
def test_bad_config_names_file_and_key(bench_dir, file, old, new, err_file, err_key, words):
    edit(bench_dir / file, old, new)
    error = error_for(bench_dir)
    assert error.file == err_file
    assert error.key == err_key
    assert words in error.problem
    prefix = f"{err_file}: {err_key}: " if err_key else f"{err_file}: "
    assert str(error).startswith(prefix)


def test_check_prints_error_line_and_exits_2(bench_dir, capsys):
    edit(bench_dir / PROFILE, 'max_voltage = "25 V"', 'max_voltage = "12"')
    assert main(["check"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == (
        'ConfigError: profiles/mdb24.toml: nets.VBUS.max_voltage: expected a voltage, got "12" '
        "(a bare number: add its unit)"
    )
    assert "Traceback" not in err


def test_check_prints_resolved_limits(bench_dir, capsys):
    assert main(["check"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == "bench sim-bench-01 [simulation]"
    vbus = next(line for line in lines if line.startswith("VBUS "))
    assert "0 V .. 25 V" in vbus and "500 mA" in vbus and "40 V/s" in vbus
    assert "psu CH2 via K2" in vbus
    assert "never together   K4, K5, K6, K7" in out
    assert out.rstrip().endswith("configuration OK")


def test_check_other_profile(bench_dir, capsys):
    assert main(["check", "--profile", "profiles/snb5.toml"]) == 0
    out = capsys.readouterr().out
    assert "SNB-5" in out and "0 V .. 3.6 V" in out


def test_profile_net_not_wired_on_bench(bench_dir):
    edit(bench_dir / "bench.toml", "[wiring.MOTOR]\n", "[wiring.WINDING]\n")
    edit(bench_dir / "bench.toml", "MOTOR = { resistance", "WINDING = { resistance")
    error = error_for(bench_dir)
    assert error.file == PROFILE
    assert "net MOTOR" in error.problem


def test_simulation_section_refused_on_real_bench(bench_dir):
    edit(bench_dir / "bench.toml", 'environment = "simulation"', 'environment = "flight"')
    error = error_for(bench_dir)
    assert (error.file, error.key) == ("bench.toml", "simulation")
