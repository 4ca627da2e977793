"""``interlock status`` of a bench whose file is half-way through an edit.

The service runs on the file as it was when it started: its status is shown,
found as the emergency stop finds it (tests/service/test_estop_path.py), with
the loader's error on stderr. With nothing to show, the ConfigError as before;
the commands that act on the bench keep refusing a file that does not load.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from interlock.cli import main
from interlock.commands import estop
from interlock.config import load_bench
from interlock.errors import ConfigError
from interlock.journal import JournalReader
from interlock.service.tokens import token_path
from tests.service.conftest import ROOT, Served, write_bench
from tests.service.test_estop_path import BREAKS

BANNER = "bench sim-bench-01 [simulation]"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def broken_copy(served: Served, edit) -> tuple[str, ConfigError]:
    """A copy of the served bench's file, next to it, broken by ``edit``; its loader error."""
    broken = served.bench_path.with_name("broken.toml")
    broken.write_text(edit(served.bench_path.read_text(encoding="utf-8")), encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        load_bench(broken)
    return str(broken), refused.value


def warned(err: str, path: str, error: ConfigError) -> bool:
    """The two lines on stderr: the loader's error, and where the status comes from."""
    return err.splitlines() == [
        f"interlock: the bench file does not load: {error}",
        "interlock: its service runs on the file as it was when the service started; "
        f"`interlock check --bench {path}` shows the problem",
    ]


@pytest.mark.parametrize("edit", BREAKS.values(), ids=BREAKS.keys())
def test_status_of_a_broken_bench_file_shows_the_bench_its_service_runs(served, capsys, edit):
    path, error = broken_copy(served, edit)
    served.client("operator").arm()
    code, out, err = run(capsys, "status", "--bench", path)
    assert code == 0, err
    lines = out.splitlines()
    # The bench as its service says it is, whatever line of the file broke.
    assert lines[0] == BANNER
    assert lines[1] == "state     armed"
    assert any(line.startswith("VLOGIC  psu CH1") for line in lines)
    assert lines[-1] == "relays: all open"
    assert warned(err, path, error), err


@pytest.mark.parametrize("role", ["viewer", "script", "operator"])
@pytest.mark.parametrize("edit", BREAKS.values(), ids=BREAKS.keys())
def test_status_json_of_a_broken_bench_file_is_json_alone(served, capsys, edit, role):
    path, error = broken_copy(served, edit)
    code, out, err = run(capsys, "status", "--bench", path, "--json", "--role", role)
    assert code == 0, err
    status = json.loads(out)  # the warning is on stderr only
    assert (status["bench"], status["environment"], status["state"]) == (
        "sim-bench-01",
        "simulation",
        "safe",
    )
    assert status["you"]["role"] == role
    assert warned(err, path, error), err


def test_status_of_a_broken_bench_file_in_a_process_of_its_own(served):
    path, error = broken_copy(served, BREAKS["a table misspelt"])
    served.client("operator").estop()
    done = subprocess.run(
        [sys.executable, "-m", "interlock", "status", "--bench", path, "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    assert status["state"] == "fault"
    assert status["fault"].startswith("estop: emergency stop by")
    assert warned(done.stderr, path, error), done.stderr


@pytest.mark.parametrize("json_option", [[], ["--json"]], ids=["text", "json"])
@pytest.mark.parametrize("edit", BREAKS.values(), ids=BREAKS.keys())
def test_with_no_service_a_broken_file_is_the_config_error_as_before(
    tmp_path, capsys, edit, json_option
):
    good = write_bench(tmp_path)
    broken = tmp_path / "broken.toml"
    broken.write_text(edit(good.read_text(encoding="utf-8")), encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        load_bench(broken)
    code, out, err = run(capsys, "status", "--bench", str(broken), *json_option)
    assert (code, out, err) == (2, "", f"ConfigError: {refused.value}\n")


def _without_socket(text: str) -> str:
    return re.sub(r"(?m)^socket = .*$", "", text.replace("[service]", "[servce]", 1))


def _two_sockets(text: str) -> str:
    return text.replace("[service]", '[service]\nsocket = "other.sock"', 1)


def _socket_elsewhere(text: str) -> str:
    text = re.sub(r"(?m)^socket = .*$", 'socket = "elsewhere/interlock.sock"', text)
    return text.replace("[service]", "[servce]", 1)


@pytest.mark.parametrize(
    "edit",
    [_without_socket, _two_sockets, _socket_elsewhere],
    ids=["no socket line", "two socket lines", "a socket no service answers on"],
)
def test_a_broken_file_whose_service_is_not_found_is_the_config_error(served, capsys, edit):
    path, error = broken_copy(served, edit)
    code, out, err = run(capsys, "status", "--bench", path)
    assert (code, out, err) == (2, "", f"ConfigError: {error}\n")


@pytest.mark.parametrize("json_option", [[], ["--json"]], ids=["text", "json"])
def test_a_service_that_refuses_the_token_says_so_beside_the_config_error(
    served, capsys, json_option
):
    # As with a file that loads: the service is there and says no, and that is what
    # the user must fix first (exit 3, a refusal), with what the loader said beside it.
    path, error = broken_copy(served, BREAKS["a table misspelt"])
    token_path(served.service.settings.tokens, "viewer").write_text("not-the-token\n")
    code, out, err = run(capsys, "status", "--bench", path, *json_option)
    assert (code, out) == (3, "")
    lines = err.splitlines()
    assert warned("\n".join(lines[:2]), path, error), err
    assert len(lines) == 3 and lines[2].startswith("AccessDenied: "), err


# Each action from a state where it would be done: a file that does not load stops it.
BEFORE = {"arm": "safe", "disarm": "armed", "reset": "fault"}


@pytest.mark.parametrize("action", BEFORE)
@pytest.mark.parametrize("edit", BREAKS.values(), ids=BREAKS.keys())
def test_acting_on_the_bench_still_needs_a_file_that_loads(served, capsys, edit, action):
    path, error = broken_copy(served, edit)
    operator = served.client("operator")
    if BEFORE[action] == "armed":
        operator.arm()
    elif BEFORE[action] == "fault":
        operator.estop()
    assert served.controller.state == BEFORE[action]
    with JournalReader(served.service.settings.journal) as journal:
        before = len(list(journal.entries()))
    code, out, err = run(capsys, action, "--bench", path)
    assert (code, out, err) == (2, "", f"ConfigError: {error}\n")
    # Nothing was asked of the service.
    assert served.controller.state == BEFORE[action]
    with JournalReader(served.service.settings.journal) as journal:
        assert len(list(journal.entries())) == before


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_any_cut_of_the_file_shows_the_status_or_the_config_error(served, capsys, data):
    """Whatever an edit leaves (a slice of the file cut out, or text put in its place):
    the status with the loader's error beside it where the service is found, that error
    alone where not; never a traceback."""
    text = served.bench_path.read_text(encoding="utf-8")
    start = data.draw(st.integers(0, len(text)), label="start")
    stop = data.draw(st.integers(start, min(len(text), start + 400)), label="stop")
    put = data.draw(st.sampled_from(["", '"', "[", "\n", "=", "]]", "\x00", "é"]), label="put")
    broken = served.bench_path.with_name("broken.toml")
    broken.write_text(text[:start] + put + text[stop:], encoding="utf-8")
    try:
        load_bench(broken)
    except ConfigError as refused:
        error = refused
    else:
        event("loads")
        return  # an edit the loader takes: the command as it always was
    # Shown exactly when the stop's reader finds this service's socket and tokens.
    found = estop.find_service(broken)
    ours = (served.service.settings.socket, served.service.settings.tokens)
    shown = found is not None and (found[0].socket, found[0].tokens) == ours
    code, out, err = run(capsys, "status", "--bench", str(broken), "--json")
    event(f"exit {code}")
    if shown:
        assert code == 0, err
        assert json.loads(out)["bench"] == "sim-bench-01"
        assert warned(err, str(broken), error), err
    else:
        assert (code, out, err) == (2, "", f"ConfigError: {error}\n")
