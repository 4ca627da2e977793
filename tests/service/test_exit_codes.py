"""Every command's error paths and the exit code each ends with, as the README's table says.

0 pass, 1 a measurement failed, 2 configuration or usage error, 3 refused by
the interlock (a limit, the state, the role), 4 fault (instrument, journal,
latched fault, no service). One table: a row is a situation, a command line
and the code and first words of its error. The CLI is run in this process
(``interlock.cli.main``); argparse's own usage errors exit 2 through
SystemExit.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from interlock.cli import main
from interlock.exits import MEANINGS
from tests.service.conftest import ROOT, write_bench

# A sequence whose only trouble is the bench it meets.
SEQUENCE = """\
[sequence]
name = "logic only"
profile = "MDB-24"

[[steps]]
action = "set"
net = "VLOGIC"
current_limit = "250 mA"

[[steps]]
action = "set"
net = "VLOGIC"
voltage = "5 V"
"""
# A sequence the dry run refuses: over the profile's maximum.
OVER = SEQUENCE.replace('voltage = "5 V"', 'voltage = "9 V"')
# A sequence that does not load: no unit on a quantity.
BROKEN = SEQUENCE.replace('voltage = "5 V"', "voltage = 5")


@dataclass(frozen=True)
class Case:
    name: str
    argv: tuple[str, ...]
    code: int
    says: str  # the start of stderr's last line ("" when argparse speaks: its usage)
    served: bool = False  # with the bench's service running (else: none answers)
    before: tuple[tuple[str, ...], ...] = ()  # commands run first (their codes unchecked)


CASES = [
    # -- usage, as argparse sees it ------------------------------------------------
    Case("no command", (), 2, ""),
    Case("unknown command", ("frobnicate",), 2, ""),
    Case("run without a sequence", ("run",), 2, ""),
    Case("serve with a bad address", ("serve", "--tcp", "nohost"), 2, ""),
    Case("journal show --since garbage", ("journal", "show", "--since", "garbage"), 2, ""),
    Case("journal show --tail 0", ("journal", "show", "--tail", "0"), 2, ""),
    Case("journal show --kind bogus", ("journal", "show", "--kind", "bogus"), 2, ""),
    Case("sim inject a bogus fault", ("sim", "inject", "bogus:VBUS"), 2, ""),
    Case("sim start a bogus fault", ("sim", "start", "--fault", "short"), 2, ""),
    Case("sim clear a bogus fault", ("sim", "clear", "bogus:VBUS"), 2, ""),
    # -- usage, as the commands see it ----------------------------------------------
    Case("check a missing bench", ("check", "--bench", "{dir}/nosuch.toml"), 2, "ConfigError: "),
    Case(
        "check a missing profile",
        ("check", "--bench", "{bench}", "--profile", "{dir}/nosuch.toml"),
        2,
        "ConfigError: ",
    ),
    Case("run a missing sequence", ("run", "{dir}/nosuch.toml"), 2, "ConfigError: "),
    Case("run a broken sequence", ("run", "{dir}/broken.toml"), 2, "ConfigError: "),
    Case("sim truth --since alone", ("sim", "truth", "--since", "1"), 2, "interlock sim truth: "),
    Case("journal prune without bounds", ("journal", "prune"), 2, "journal prune: "),
    Case(
        "journal show an unknown run",
        ("journal", "show", "--run", "nonexistent"),
        2,
        "InvalidArgument: ",
        served=True,
    ),
    Case(
        "journal export an unknown run",
        ("journal", "export", "--run", "nonexistent"),
        2,
        "InvalidArgument: ",
        served=True,
    ),
    Case(
        "postmortem of an unknown run",
        ("postmortem", "nosuchrun", "--out", "{dir}/pm"),
        2,
        "InvalidArgument: ",
        served=True,
    ),
    Case("init over an existing bench", ("init", "{dir}"), 2, "InvalidArgument: "),
    Case("fleet without its subcommand", ("fleet",), 2, ""),
    Case("stop a missing bench", ("stop", "--bench", "{dir}/no.toml"), 2, "ConfigError: "),
    Case("console on a missing bench", ("console", "--bench", "{dir}/no.toml"), 2, "ConfigError: "),
    Case("console without a terminal", ("console",), 2, "interlock console needs a terminal"),
    Case("serve where one serves", ("serve",), 2, "AlreadyServing: ", served=True),
    Case(
        "serve --background where one serves",
        ("serve", "--background"),
        2,
        "AlreadyServing: ",
        served=True,
    ),
    Case("probe a port where nothing answers", ("probe", "{dir}/no-such-port"), 1, ""),
    # -- refused by the interlock --------------------------------------------------
    Case("dry run over a limit", ("run", "{dir}/over.toml", "--dry-run"), 3, ""),
    Case("run over a limit", ("run", "{dir}/over.toml"), 3, ""),
    Case("arm as a script", ("arm", "--role", "script"), 3, "AccessDenied: ", served=True),
    Case("disarm a safe bench", ("disarm",), 3, "StateError: ", served=True),
    # -- faults ----------------------------------------------------------------------
    Case("status with no service", ("status",), 4, "ServiceUnavailable: "),
    Case("status --json with no service", ("status", "--json"), 4, "ServiceUnavailable: "),
    Case("arm with no service", ("arm",), 4, "ServiceUnavailable: "),
    Case("disarm with no service", ("disarm",), 4, "ServiceUnavailable: "),
    Case("reset with no service", ("reset",), 4, "ServiceUnavailable: "),
    # Why (ServiceUnavailable: ...) comes first; last, that the stop did not go out.
    Case("estop with no service", ("estop",), 4, "EMERGENCY STOP NOT DELIVERED: "),
    Case("sim clear with no simulator", ("sim", "clear"), 4, "SimulatorError: "),
    Case(
        "fleet status with no coordinator",
        ("fleet", "status", "--coordinator", "127.0.0.1:1"),
        4,
        "CoordinatorUnavailable: ",
    ),
    Case("journal show with no journal", ("journal", "show"), 4, "JournalError: "),
    Case(
        "disarm a latched fault",
        ("disarm",),
        4,
        "FaultLatched: ",
        served=True,
        before=(("estop",),),
    ),
    Case(
        "run on a latched fault",
        ("run", "{dir}/ok.toml", "--yes"),
        4,
        "FaultLatched: ",
        served=True,
        before=(("estop",),),
    ),
]


def _argv(case_argv: tuple[str, ...], bench: Path) -> list[str]:
    argv = [part.format(bench=bench, dir=bench.parent) for part in case_argv]
    # Every command that takes --bench is given this one (argparse errors come first anyway).
    if argv and argv[0] not in ("frobnicate", "init", "fleet") and "--bench" not in argv:
        argv += ["--bench", str(bench)]
    return argv


def _main(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exited:  # argparse's usage errors (and --help, --version)
        return int(exited.code or 0)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_exit_code(case: Case, short_dir, serve_bench, capsys, monkeypatch) -> None:
    bench = serve_bench().bench_path if case.served else write_bench(short_dir)
    for name, text in (("ok", SEQUENCE), ("over", OVER), ("broken", BROKEN)):
        (bench.parent / f"{name}.toml").write_text(text, encoding="utf-8")
    monkeypatch.chdir(bench.parent)  # no bench.toml of the checkout found by accident
    for before in case.before:
        _main(_argv(before, bench))
    capsys.readouterr()
    code = _main(_argv(case.argv, bench))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == case.code, (MEANINGS.get(code), err)
    if case.says:
        assert err and err[-1].startswith(case.says), err
    elif case.code == 2 and case.argv[:1] != ("run",):
        assert err and err[-1].startswith("interlock"), err  # argparse's usage line


def test_every_command_has_a_row() -> None:
    """A command added without its error paths in the table fails here."""
    from interlock.cli import build_parser

    parser = build_parser()
    commands = {
        name
        for action in parser._subparsers._group_actions  # type: ignore[union-attr]
        for name in action.choices
    }
    covered = {case.argv[0] for case in CASES if case.argv and case.argv[0] != "frobnicate"}
    assert commands <= covered, commands - covered


def test_the_readme_states_the_same_codes() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for code, meaning in MEANINGS.items():
        assert f"| {code} | {meaning} |" in readme, (code, meaning)


def test_run_meets_a_flight_bench_refusal_as_arm_does(sim_bench_factory, serve_bench, capsys):
    """Arming a flight bench without its name typed is a refusal (3), whether ``arm`` or
    ``run`` asks for it."""
    sim = sim_bench_factory()
    served = serve_bench(environment="flight", name="fm-bench-02", resources=sim.resources)
    sequence = served.directory / "ok.toml"
    sequence.write_text(SEQUENCE, encoding="utf-8")
    codes = []
    for argv in (["arm"], ["run", str(sequence), "--yes"]):
        codes.append(_main([*argv, "--bench", str(served.bench_path)]))
        err = capsys.readouterr().err
        assert "needs the bench name typed as confirmation" in err, err
    assert codes == [3, 3]
    assert served.controller.state == "safe"
