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
        "bench.toml",  # named where it is written: bench.toml's key
        "bench.profile",
        "profiles/nope.toml: file not found",
        id="missing-profile",
    ),
    # --- every value bounded, and held against the catalogue's models ---
    pytest.param(
        "bench.toml",
        "channel = 1\n",
        "channel = 99\n",
        "bench.toml",
        "relays.K1.channel",
        "board relays (RB8) has channels 1 to 8, got 99",
        id="relay-channel-beyond-board",
    ),
    pytest.param(
        "bench.toml",
        'relay_watchdog = "500 ms"',
        'relay_watchdog = "500.5 ms"',
        "bench.toml",
        "service.relay_watchdog",
        "the RB8 takes whole steps of 1 ms, got 500.5 ms",
        id="watchdog-not-whole-ms",
    ),
    pytest.param(
        "bench.toml",
        'relay_watchdog = "500 ms"',
        'relay_watchdog = "6 s"',
        "bench.toml",
        "service.relay_watchdog",
        "from 50 ms to 5 s",
        id="watchdog-beyond-board",
    ),
    pytest.param(
        "bench.toml",
        'lease_timeout = "2 s"',
        'lease_timeout = "1 ns"',
        "bench.toml",
        "service.lease_timeout",
        'expected a duration from 500 ms to 1 min, got "1 ns"',
        id="lease-timeout-1ns",
    ),
    pytest.param(
        "bench.toml",
        'monitor_period = "50 ms"',
        'monitor_period = "600 ms"',
        "bench.toml",
        "service.lease_timeout",
        "at least 4 times the monitor and heartbeat periods (2.4 s)",
        id="lease-timeout-against-periods",
    ),
    pytest.param(
        "bench.toml",
        'io_timeout = "1 s"',
        'io_timeout = "1e308 s"',
        "bench.toml",
        "service.io_timeout",
        "from 10 ms to 10 s",
        id="io-timeout-absurd",
    ),
    pytest.param(
        "bench.toml",
        'monitor_period = "50 ms"',
        'monitor_period = "5e-324 s"',
        "bench.toml",
        "service.monitor_period",
        "from 1 ms to 1 s",
        id="monitor-period-subnormal",
    ),
    pytest.param(
        "bench.toml",
        'latency = "1 ms"',
        'latency = "-0 ms"\n',
        None,
        None,
        None,
        id="latency-negative-zero-loads",
    ),
    pytest.param(
        "bench.toml",
        'latency = "1 ms"',
        'latency = "1 h"',
        "bench.toml",
        "simulation.latency",
        "of at most 100 ms",
        id="latency-absurd",
    ),
    pytest.param(
        "bench.toml",
        'VLOGIC = { resistance = "33 ohm" }',
        'VLOGIC = { resistance = "-0 ohm" }',
        "bench.toml",
        "simulation.loads.VLOGIC.resistance",
        "greater than 0",
        id="load-resistance-zero",
    ),
    pytest.param(
        "bench.toml",
        'model = "RB8"',
        'model = "RB9"',
        "bench.toml",
        "instruments.relays.identity.model",
        'unknown switch unit model "RB9" (known: ',
        id="unknown-relay-board",
    ),
    pytest.param(
        "bench.toml",
        'model = "34461A"',
        'model = "DMM-1"',
        "bench.toml",
        "instruments.dmm.identity.model",
        "unknown multimeter model",
        id="unknown-meter",
    ),
    pytest.param(
        "bench.toml",
        "# --- relays: name -> board channel",
        '[instruments.relays2]\ndriver = "relay-board"\nport = "/dev/ttyACM1"\n'
        'identity = { maker = "interlock", model = "RB8", serial = "RB8-000118" }\n'
        "# --- relays: name -> board channel",
        "bench.toml",
        "instruments.relays2",
        "one relay board per bench",
        id="second-relay-board",
    ),
    pytest.param(
        "bench.toml",
        'supply = { instrument = "psu", channel = 2 }',
        'supply = { instrument = "psu", channel = 7 }',
        "bench.toml",
        "wiring.VBUS.supply.channel",
        "the E36312A has no channel 7 (it has 1, 2, 3)",
        id="supply-channel-beyond-model",
    ),
    pytest.param(
        "bench.toml",
        'serial = "MY59001234"',
        'serial = "MY59,001234"',
        "bench.toml",
        "instruments.psu.identity.serial",
        "can never be reported (*IDN? answers in comma-separated fields: no commas)",
        id="identity-with-comma",
    ),
    pytest.param(
        "bench.toml",
        'serial = "RB8-000117"',
        'serial = "RB8 000117"',
        "bench.toml",
        "instruments.relays.identity.serial",
        "can never be reported (the board reports key=value words",
        id="board-identity-with-space",
    ),
    pytest.param(
        "bench.toml",
        'name = "sim-bench-01"',
        'name = "../sim-bench"',
        "bench.toml",
        "bench.name",
        "letters, digits",
        id="bench-name-not-a-path-part",
    ),
    pytest.param(
        "bench.toml",
        "[wiring.VBUS]",
        '[wiring."VB/US"]',
        "bench.toml",
        "wiring.VB/US",
        "expected a name of 1 to 32 letters",
        id="net-name-not-a-url-part",
    ),
    pytest.param(
        "bench.toml",
        'description = "Simulated bench with an MDB-24 motor-drive board"',
        'description = "clear \\u001b[2J screen"',
        "bench.toml",
        "bench.description",
        'expected printable text on one line, got "clear \\x1b[2J screen"',
        id="control-characters",
    ),
    pytest.param(
        "bench.toml",
        'description = "Simulated bench with an MDB-24 motor-drive board"',
        f'description = "{"x" * 100_000}"',
        "bench.toml",
        "bench.description",
        "expected at most 200 characters, got 100000",
        id="huge-string",
    ),
    pytest.param(
        "bench.toml",
        'profile = "profiles/mdb24.toml"',
        'profile = "profiles/\\u0000.toml"',
        "bench.toml",
        "bench.profile",
        "printable",
        id="nul-in-path",
    ),
    pytest.param(
        PROFILE,
        'readback_relative = "0.5 %"',
        'readback_relative = "500 %"',
        PROFILE,
        "nets.VLOGIC.readback_relative",
        'expected a non-negative ratio of at most 10 %, got "500 %"',
        id="readback-relative-500-percent",
    ),
    pytest.param(
        PROFILE,
        'readback_absolute = "10 mV"',
        'readback_absolute = "0 V"',
        PROFILE,
        "nets.VLOGIC.readback_absolute",
        "greater than 0 V",
        id="readback-absolute-zero",
    ),
    pytest.param(
        PROFILE,
        'readback_absolute = "10 mV"',
        'readback_absolute = "600 mV"',
        PROFILE,
        "nets.VLOGIC.readback_absolute",
        "600 mV is more than 10% of max_voltage (5.5 V)",
        id="readback-absolute-against-range",
    ),
    pytest.param(
        PROFILE,
        'max_step = "4 V"',
        'max_step = "1 mV"',
        PROFILE,
        "nets.VBUS.max_step",
        "takes 2.5e+04 steps; at most 1,000",
        id="ramp-too-many-steps",
    ),
    pytest.param(
        # Loaded when the configuration allowed 10,000 steps, and then had every
        # full-range ramp refused by the engine's 1000.
        PROFILE,
        'max_step = "4 V"',
        'max_step = "20 mV"',
        PROFILE,
        "nets.VBUS.max_step",
        "takes 1.25e+03 steps; at most 1,000 are allowed (ramp.max_steps)",
        id="ramp-more-steps-than-the-engine-plans",
    ),
    pytest.param(
        PROFILE,
        'max_slew = "40 V/s"',
        'max_slew = "1 mV/s"',
        PROFILE,
        "nets.VBUS.max_slew",
        "takes 7.08333 h (with the 2% margin between steps); at most 1 min",
        id="ramp-too-long",
    ),
    pytest.param(
        PROFILE,
        'max_slew = "40 V/s"',
        'max_slew = "400 mV/s"',
        PROFILE,
        "nets.VBUS.max_slew",
        "takes 1.0625 min (with the 2% margin between steps); at most 1 min is allowed "
        "(ramp.max_duration)",
        id="ramp-longer-than-the-engine-plans",
    ),
    pytest.param(
        PROFILE,
        'max_stray_voltage = "0.5 V"         # what the ID',
        'max_stray_voltage = "-1 V"  # what the ID',
        PROFILE,
        "identity.max_stray_voltage",
        "expected a non-negative voltage of at most 1 kV",
        id="identity-stray-negative",
    ),
    pytest.param(
        PROFILE,
        'unlisted_max_stray_voltage = "0.5 V"',
        'unlisted_max_stray_voltage = "0.5"',
        PROFILE,
        "rules.unlisted_max_stray_voltage",
        "a bare number",
        id="unlisted-stray-bare",
    ),
    pytest.param(
        PROFILE,
        'max_slew = "40 V/s"',
        'max_slew = "1e308 V/s"',
        PROFILE,
        "nets.VBUS.max_slew",
        "at most 10 kV/s",
        id="slew-absurd",
    ),
    pytest.param(
        PROFILE,
        'max_voltage = "25 V"',
        'max_voltage = "1e308 V"',
        PROFILE,
        "nets.VBUS.max_voltage",
        "at most 1 kV",
        id="voltage-absurd",
    ),
    pytest.param(
        PROFILE,
        'max_voltage = "25 V"',
        'max_voltage = "9**9**9 V"',
        PROFILE,
        "nets.VBUS.max_voltage",
        "not a number with a unit",
        id="quantity-expression",
    ),
    pytest.param(
        PROFILE,
        'settle_time = "100 ms"',
        'settle_time = "1e308 s"',
        PROFILE,
        "nets.VBUS.settle_time",
        "at most 10 s",
        id="settle-time-absurd",
    ),
    pytest.param(
        PROFILE,
        'max_total_power = "18 W"',
        'max_total_power = "-1e308 W"',
        PROFILE,
        "rules.max_total_power",
        "non-negative power",
        id="power-absurd",
    ),
    pytest.param(
        PROFILE,
        'max_resistance = "140 ohm"',
        'max_resistance = "1e12 ohm"',
        PROFILE,
        "nets.VBUS.safe_to_mate.max_resistance",
        "at most 1 GΩ",
        id="resistance-beyond-meter",
    ),
    pytest.param(
        PROFILE,
        'name = "MDB-24"',
        f'name = "{"M" * 65}"',
        PROFILE,
        "device.name",
        "at most 64 characters",
        id="device-name-too-long",
    ),
]


@pytest.mark.parametrize(("file", "old", "new", "err_file", "err_key", "words"), CASES)
def test_bad_config_names_file_and_key(bench_dir, file, old, new, err_file, err_key, words):
    edit(bench_dir / file, old, new)
    if err_file is None:  # an edit that must load
        load_configuration(bench_dir / "bench.toml")
        return
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


def test_every_net_of_the_profile_can_be_measured_before_it_goes_live(bench_dir):
    # Safe-to-mate measures a net through its sense relay: without one, going live
    # could only fail, so the bench and profile do not load together.
    edit(bench_dir / "bench.toml", 'power_relay = "K2"\nsense_relay = "K5"', 'power_relay = "K2"')
    error = error_for(bench_dir)
    assert (error.file, error.key) == (PROFILE, "nets.VBUS.safe_to_mate")
    assert "net VBUS has no sense relay on bench sim-bench-01" in error.problem


def test_a_bench_without_a_meter_cannot_check_a_profile(bench_dir):
    edit(bench_dir / "bench.toml", '[meter]\ninstrument = "dmm"', "")
    error = error_for(bench_dir)
    assert (error.file, error.key) == ("bench.toml", "meter")
    assert "measures each net with a meter" in error.problem


def test_a_watchdog_of_exactly_three_heartbeats_loads(bench_dir):
    # 3 x 100 ms is 0.30000000000000004 s in floating point: 300 ms must not be below it.
    edit(bench_dir / "bench.toml", 'relay_watchdog = "500 ms"', 'relay_watchdog = "300 ms"')
    assert load_configuration(bench_dir / "bench.toml").bench.service.relay_watchdog == 0.3


def test_simulation_latency_against_io_timeout(bench_dir):
    edit(bench_dir / "bench.toml", 'io_timeout = "1 s"', 'io_timeout = "100 ms"')
    edit(bench_dir / "bench.toml", 'latency = "1 ms"', 'latency = "20 ms"')
    error = error_for(bench_dir)
    assert (error.file, error.key) == ("bench.toml", "simulation.latency")
    assert "a tenth of service.io_timeout (100 ms)" in error.problem
    edit(bench_dir / "bench.toml", 'latency = "20 ms"', 'latency = "10 ms"')
    load_configuration(bench_dir / "bench.toml")


def _socket_of_length(bench_dir: Path, size: int) -> None:
    """Make the bench's socket path ``size`` bytes long."""
    prefix = f"{bench_dir}/run/"
    name = "s" * (size - len(prefix) - len(".sock")) + ".sock"
    text = (bench_dir / "bench.toml").read_text()
    text = text.replace('socket = "run/interlock.sock"', f'socket = "run/{name}"')
    (bench_dir / "bench.toml").write_text(text)
    assert len(str(bench_dir / "run" / name)) == size


def test_socket_paths_fit_a_unix_socket(bench_dir):
    # x.sock is served beside x.cmd.sock: both must fit in 107 bytes.
    _socket_of_length(bench_dir, 103)
    settings = load_configuration(bench_dir / "bench.toml").bench.service
    assert len(str(settings.socket)) == 103


@pytest.mark.parametrize(("size", "what"), [(104, "its command channel"), (108, "socket")])
def test_socket_paths_beyond_a_unix_socket(bench_dir, size, what):
    _socket_of_length(bench_dir, size)
    error = error_for(bench_dir)
    assert (error.file, error.key) == ("bench.toml", "service.socket")
    assert f"({what}) is " in error.problem and "at most 107" in error.problem


BAD_BENCH = ("channel = 1\n", "channel = 99\n")


@pytest.mark.parametrize(
    "argv",
    [
        ["check"],
        ["serve"],
        ["status"],
        ["stop"],
        ["arm"],
        ["estop"],
        ["sim", "start"],
        ["sim", "truth"],
        ["run", str(ROOT / "sequences" / "mdb24_power_up.toml"), "--dry-run"],
        ["run", str(ROOT / "sequences" / "mdb24_power_up.toml"), "--in-process", "--yes"],
        ["journal", "show"],
        ["console"],
    ],
    ids=" ".join,
)
def test_every_command_refuses_the_bench_with_exit_2(bench_dir, capsys, argv):
    edit(bench_dir / "bench.toml", *BAD_BENCH)
    assert main(argv) == 2
    err = capsys.readouterr().err
    said = [
        "ConfigError: bench.toml: relays.K1.channel: board relays (RB8) has channels 1 to 8, got 99"
    ]
    if argv == ["estop"]:  # no service answered the stop's own way: it says so, last
        said.append("EMERGENCY STOP NOT DELIVERED: use the bench's hardware E-stop")
    assert err.splitlines() == said


@pytest.mark.parametrize(
    ("file", "old", "new", "key", "hint"),
    [
        ("bench.toml", 'monitor_period = "50 ms"', 'monitor_perod = "50 ms"',
         "service.monitor_period", "monitor_perod"),
        ("bench.toml", "[service]", "[servce]", "service", "servce"),
        ("bench.toml", 'power_relay = "K1"', 'power_realy = "K1"', ".power_relay", "power_realy"),
        (PROFILE, 'max_slew = "50 V/s"', 'max_slwe = "50 V/s"', ".max_slew", "max_slwe"),
        # Alike, but another key of the same table: never offered as the misspelling.
        (PROFILE, 'max_voltage = "5.5 V"', 'min_voltage_ = "5.5 V"', ".max_voltage", None),
        (PROFILE, 'min_resistance = "9.8 kohm"', 'min_resistancee = "9.8 kohm"',
         "identity.min_resistance", "min_resistancee"),
        (PROFILE, 'min_resistance = "9.8 kohm"', "", "identity.min_resistance", None),
        (PROFILE, 'live_min_current = "50 mA"', "", ".live_min_current", None),
    ],
)  # fmt: skip
def test_a_missing_key_names_the_present_key_it_is_likely_misspelt_as(
    bench_dir, file, old, new, key, hint
):
    edit(bench_dir / file, old, new)
    error = error_for(bench_dir)
    assert error.file.endswith(file) and error.key.endswith(key), str(error)
    if hint is None:
        assert error.problem == "missing", str(error)
    else:
        assert error.problem == f'missing (is "{hint}" a misspelling of it?)', str(error)


@pytest.mark.parametrize(
    ("old", "new", "key", "problem"),
    [
        ('min_voltage = "0 V"', 'min_voltage = "30 V"', ".min_voltage",
         "30 V is above max_voltage (5.5 V)"),
        ('live_min_current = "50 mA"', 'live_min_current = "300 mA"', ".live_min_current",
         "300 mA is above live_max_current (250 mA)"),
        ('live_max_current = "250 mA"', 'live_max_current = "2 A"', ".live_max_current",
         "2 A is above max_current (400 mA)"),
        ('min_resistance = "9.8 kohm"', 'min_resistance = "98 kohm"', ".min_resistance",
         "98 kΩ is above max_resistance (10.2 kΩ)"),
    ],
)  # fmt: skip
def test_a_minimum_above_its_maximum_shows_both(bench_dir, old, new, key, problem):
    edit(bench_dir / PROFILE, old, new)
    error = error_for(bench_dir)
    assert error.key.endswith(key) and error.problem == problem, str(error)


def test_no_key_the_loaders_read_is_offered_as_a_misspelling_of_another():
    """Every pair of keys the configuration, dialect and sequence loaders ask for by name:
    alike as some are (min_/max_, a _dc_ rating, a plural), none is said to be the other
    misspelt."""
    import itertools
    import re

    from interlock.config.reader import Table

    sources = [
        *(ROOT / "interlock").glob("config/*.py"),
        *(ROOT / "interlock").glob("dialects/*.py"),
    ]
    sources += (ROOT / "interlock").glob("sequence/*.py")
    keys = {
        key
        for source in sources
        for key in re.findall(r'\.[a-z_]+\(\s*"([a-z][a-z0-9_]*)"', source.read_text())
    }
    assert {"max_voltage", "min_voltage", "live_min_current", "channel"} <= keys
    for key, other in itertools.permutations(sorted(keys), 2):
        table = Table({other: 1}, "x.toml")
        assert table.misspelling(key, str) == "", (key, other)
