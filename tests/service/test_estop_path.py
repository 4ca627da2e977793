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
    # Said last, whatever the reason: not "start a service", but what to do now.
    assert done.stderr.splitlines()[-1] == (
        "EMERGENCY STOP NOT DELIVERED: use the bench's hardware E-stop"
    )


# A bench file as an edit leaves it: each breaks the full loader, and none should keep
# anyone from stopping a bench whose service answers.
BREAKS = {
    "a string cut short": lambda text: text.replace('= "sim-bench-01"', '= "sim-bench-01', 1),
    "a table misspelt": lambda text: text.replace("[service]", "[servce]", 1),
    "a key misspelt": lambda text: text.replace("monitor_period =", "monitor_perod =", 1),
    "a line that is not TOML": lambda text: text + "\nthis is not toml\n",
}


@pytest.mark.parametrize("edit", BREAKS.values(), ids=BREAKS.keys())
def test_a_broken_bench_file_still_stops_a_bench_whose_service_answers(served: Served, edit):
    good = served.bench_path
    broken = good.with_name("broken.toml")
    broken.write_text(edit(good.read_text(encoding="utf-8")), encoding="utf-8")
    with pytest.raises(ConfigError):
        load_bench(broken)
    served.client("operator").arm()
    done = subprocess.run(
        [sys.executable, "-m", "interlock", "estop", "--bench", str(broken)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    # The bench as the service that stopped says it is, whatever line of the file broke.
    assert done.stdout.splitlines()[0] == "bench sim-bench-01 [simulation]"
    assert "emergency stop done: state fault" in done.stdout
    assert served.controller.state == "fault"
    if estop.read_stop_settings(broken) is None:  # found by its lines: and said so
        assert f"interlock check --bench {broken}" in done.stderr


def test_the_lines_of_a_broken_file_give_the_loaders_paths_or_nothing(tmp_path):
    loaded = load_bench(write_bench(tmp_path))
    text = (tmp_path / "bench.toml").read_text(encoding="utf-8")
    broken = tmp_path / "broken.toml"
    for edit in BREAKS.values():
        broken.write_text(edit(text), encoding="utf-8")
        found = estop.salvage_stop_settings(broken)
        assert found is not None
        assert (found.socket, found.tokens) == (loaded.service.socket, loaded.service.tokens)
        assert found.name in (loaded.name, "?")
    # Not once: a second socket line (which one?), or none, gives nothing.
    broken.write_text(text.replace("[service]", '[service]\nsocket = "other.sock"', 1))
    assert estop.salvage_stop_settings(broken) is None
    broken.write_text(re.sub(r"(?m)^socket = .*$", "", text), encoding="utf-8")
    assert estop.salvage_stop_settings(broken) is None
    assert estop.salvage_stop_settings(tmp_path / "missing.toml") is None


def test_a_stop_interrupted_while_it_waits_is_said_not_known_to_be_done(monkeypatch, capsys):
    from interlock.cli import main

    def interrupted(argv):
        raise KeyboardInterrupt

    monkeypatch.setattr(estop, "main", interrupted)
    assert main(["estop"]) == 130
    assert capsys.readouterr().err.splitlines() == [
        "EMERGENCY STOP INTERRUPTED, not known to be done: use the bench's hardware E-stop"
    ]


@pytest.mark.parametrize(
    "text",
    [
        "[" + "\t" * 3000 + "\n",  # a header never closed, long: once cubic in its length
        ("[" + " " * 4000 + "\n") * 250,  # a megabyte of them
        ("socket" + " " * 4000 + "=" + " " * 4000 + "'x\n") * 100,
        ('socket = "' + "a" * 100_000 + "\n") * 10,
    ],
    ids=["open-header", "open-headers-1MiB", "spaced-keys", "unclosed-strings"],
)
def test_reading_the_lines_of_any_file_takes_time_linear_in_it(tmp_path, text):
    """The stop waits for this: a file no edit would leave, read in well under a second
    (a cubic pattern took 15 s on the first and for ever on the second)."""
    import time

    path = tmp_path / "bench.toml"
    path.write_text(text, encoding="utf-8")
    began = time.monotonic()
    assert estop.salvage_stop_settings(path) is None
    assert time.monotonic() - began < 5.0  # about 30 ms here: the margin is for a busy machine


def test_a_bench_file_with_crlf_line_ends_is_read_by_its_lines(tmp_path):
    loaded = load_bench(write_bench(tmp_path))
    text = (tmp_path / "bench.toml").read_text(encoding="utf-8").replace("[service]", "[servce]")
    broken = tmp_path / "broken.toml"
    broken.write_bytes(text.replace("\n", "\r\n").encode("utf-8"))
    found = estop.salvage_stop_settings(broken)
    assert found is not None and found.name == loaded.name
    assert (found.socket, found.tokens) == (loaded.service.socket, loaded.service.tokens)
