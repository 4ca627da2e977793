"""``interlock estop``'s own path: the stop before the rest of the program is imported.

Its reader of bench.toml gives the full loader's answers or none (and the full
command runs); the stop it sends is the one the service journals; and it
imports nothing of the units, the configuration, pydantic, FastAPI or VISA.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from interlock.commands import estop
from interlock.config import bench as full
from interlock.config import bounds, load_bench, reader
from interlock.errors import ConfigError
from interlock.journal import JournalReader
from interlock.service import tokens, wire
from tests.service.conftest import ROOT, Served, bring_up, write_bench

EXAMPLES = sorted((ROOT / "examples").rglob("*.toml"))


def agrees(path: Path) -> None:
    loaded = load_bench(path)
    fast = estop.read_stop_settings(path)
    assert fast is not None
    assert (fast.name, fast.environment) == (loaded.name, loaded.environment)
    assert (fast.socket, fast.tokens) == (loaded.service.socket, loaded.service.tokens)
    assert fast.channel == full.channel_path(loaded.service.socket)


def test_its_constants_are_the_full_programs():
    assert estop.BENCH_NAME.pattern == bounds.BENCH_NAME.pattern
    assert estop.ENVIRONMENTS == full.ENVIRONMENTS
    assert estop.ROLES == tokens.ROLES
    assert estop.MAX_FILE_BYTES == reader.MAX_FILE_BYTES
    assert estop.MAX_PATH_BYTES == bounds.MAX_PATH_BYTES
    assert estop.MAX_SOCKET_PATH_BYTES == bounds.MAX_SOCKET_PATH_BYTES
    assert (estop.CHANNEL_VERSION, estop.MAX_LINE) == (wire.CHANNEL_VERSION, wire.MAX_LINE)


def test_it_reads_what_the_full_loader_reads(tmp_path):
    agrees(ROOT / "bench.toml")
    agrees(write_bench(tmp_path))
    for environment in ("engineering", "flight"):
        (tmp_path / environment).mkdir()
        agrees(write_bench(tmp_path / environment, environment=environment, name="fm-02"))


VALUES = st.one_of(
    st.text(max_size=80),
    st.sampled_from(["run/x.sock", "  ", "a\nb", "../up/s.sock", "/abs/t", "x" * 5000, "é"]),
    st.integers(),
    st.booleans(),
    st.lists(st.text(max_size=3), max_size=2),
    st.none(),  # the key left out
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.one_of(VALUES, st.sampled_from(["bench-1", "a" * 64, "a" * 65, "-x"])),
    environment=st.one_of(VALUES, st.sampled_from(["simulation", "flight", "Flight"])),
    socket=VALUES,
    tokens=VALUES,
)
def test_it_answers_as_the_full_loader_or_steps_aside(tmp_path_factory, name, environment,
                                                      socket, tokens):  # fmt: skip
    directory = tmp_path_factory.mktemp("b")
    path = write_bench(directory)
    text = path.read_text(encoding="utf-8")
    for key, value in (
        ("name", name),
        ("environment", environment),
        ("socket", socket),
        ("tokens", tokens),
    ):
        shown = "" if value is None else f"{key} = {json.dumps(value, ensure_ascii=False)}"
        text, count = re.subn(rf'(?m)^{key} = "[^"\n]*".*$', lambda _, s=shown: s, text, count=1)
        assert count == 1
    path.write_text(text, encoding="utf-8")
    fast = estop.read_stop_settings(path)
    if fast is None:
        return  # the full command then says what is wrong, or does it all itself
    try:
        loaded = load_bench(path)
    except ConfigError as error:
        # It read what the stop needs right; the file fails elsewhere.
        assert error.key not in ("bench.name", "bench.environment", "service.socket",
                                 "service.tokens"), error  # fmt: skip
        return
    assert (fast.name, fast.environment) == (loaded.name, loaded.environment)
    assert (fast.socket, fast.tokens) == (loaded.service.socket, loaded.service.tokens)


@pytest.mark.parametrize(
    "text",
    ["not toml [", "[bench]\nname = 'b'\n", "", "\xff"],
)
def test_a_file_it_does_not_understand_is_left_to_the_full_loader(tmp_path, text):
    path = tmp_path / "bench.toml"
    path.write_bytes(text.encode("utf-8", "surrogateescape") if text != "\xff" else b"\xff\xfe")
    assert estop.read_stop_settings(path) is None
    assert estop.read_stop_settings(tmp_path / "missing.toml") is None


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["--bench"], ["--role", "admin"], ["--verbose"], ["extra"], ["-v"]],
)
def test_arguments_it_does_not_know_are_left_to_the_full_command(argv):
    assert estop.main(argv) is None


def test_interlock_estop_stops_the_bench_importing_only_what_the_stop_needs(served: Served):
    served.client("operator").arm()
    script = served.client("script")
    with script.lease():
        bring_up(script)
        probe = (
            "import sys\n"
            "from interlock.cli import main\n"
            f"code = main(['estop', '--bench', {str(served.bench_path)!r}])\n"
            "heavy = ('pint', 'pydantic', 'fastapi', 'pyvisa', 'httpx', 'interlock.config',"
            " 'interlock.service.wire', 'interlock.client')\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy or m in heavy))\n"
            "sys.exit(code)\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=ROOT
        )
        assert done.returncode == 0, done.stderr
        banner, result, imported = done.stdout.splitlines()
        assert banner == "bench sim-bench-01 [simulation]"
        assert result.startswith("emergency stop done: state fault (estop: emergency stop by")
        assert imported == "[]"
    assert served.controller.state == "fault"
    with JournalReader(served.service.settings.journal) as journal:
        stops = [e for e in journal.entries() if e.kind == "operator"
                 and e.payload.get("action") == "estop"]  # fmt: skip
    assert len(stops) == 1
    assert " pid " in stops[0].payload["client"]


def test_with_no_service_the_full_command_says_so(tmp_path):
    path = write_bench(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "interlock", "estop", "--bench", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 4
    assert "no service answers" in done.stderr
