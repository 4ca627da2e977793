"""Every command and every option says what it is for (``--help``), and ``--version`` answers."""

from __future__ import annotations

import argparse

import pytest

from interlock.cli import build_parser, main


def _commands(parser: argparse.ArgumentParser, prefix: str = ""):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, sub in action.choices.items():
                yield f"{prefix}{name}", sub, helps.get(name)
                yield from _commands(sub, f"{prefix}{name} ")


COMMANDS = list(_commands(build_parser()))


@pytest.mark.parametrize(("name", "parser", "summary"), COMMANDS, ids=[c[0] for c in COMMANDS])
def test_every_command_and_option_is_described(name, parser, summary):
    assert summary, f"{name}: no help in the command list"
    assert parser.description, f"{name}: no description"
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) or action.help == argparse.SUPPRESS:
            continue
        assert action.help, f"interlock {name} {'/'.join(action.option_strings) or action.dest}"


def test_version(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.startswith("interlock ")
