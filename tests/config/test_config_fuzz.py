"""Fuzz: a configuration file either loads, or says which file and key are wrong.

Bench files, profiles and sequences, generated from scratch and mutated from
the shipped ones (values of other types and units, absurd magnitudes, empty
and huge strings, control characters, deep nesting, unknown, deleted and
duplicated keys and tables), loaded through the library and through the
command line (``interlock check``, ``interlock run --dry-run``): the only
outcomes are success, or a :class:`ConfigError` naming the file, and the key
wherever the file is valid TOML; on the command line exit 2 and one line on
stderr, never a traceback. The default run is a few seconds;
``pytest -m slow tests/config`` runs many more examples.
"""

from __future__ import annotations

import contextlib
import copy
import io
import math
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from interlock.cli import main
from interlock.config import load_bench, load_configuration, load_profile
from interlock.config.reader import display_path
from interlock.errors import ConfigError, LimitViolation
from interlock.sequence import bind, load_sequence
from tests.config.toml_text import dumps

ROOT = Path(__file__).resolve().parents[2]
ROOT_BENCH = ROOT / "bench.toml"
PROFILES = sorted((ROOT / "profiles").glob("*.toml"))
SEQUENCES = sorted((ROOT / "sequences").glob("*.toml"))

FAST = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    database=None,
)
SLOW = settings(FAST, max_examples=1500)

# --- values no one would type --------------------------------------------------------------

NUMBERS = [1e308, -1e308, 5e-324, -5e-324, -0.0, 0.0, math.nan, math.inf, -math.inf,
           2**63 - 1, -(2**63), 0, -1, 1, 7, 8, 9, 16, 99, 1000]  # fmt: skip
UNITS = ["V", "mV", "kV", "A", "mA", "ohm", "kohm", "Ω", "W", "s", "ms", "ns", "h", "V/s",
         "mV/ms", "%", "ppm", "", "volts-ish", "V V", "V * 2"]  # fmt: skip
STRINGS = [
    "", " ", "x" * 5000, "1e308 V", "-1e308 V", "5e-324 s", "-0 V", "1 ns", "1e400 V",
    "9**9**9 V", "2**10 V", "500 %", "500.5 ms", "1 V * 2", "nan V", "inf s", "25", "\x1b[2J",
    "a\x00b", "line\nbreak", "../../../etc/passwd", "/dev/null", "/", ".", "K1", "K99",
    "VBUS.power", "VBUS.sense", "a.b.c", "ünïcödé", "😀", "\u202eevil", "relays", "psu", "dmm",
    "simulation", "flight", "scpi-psu", "relay-board", "RB8", "E36312A", "MDB-24",
]  # fmt: skip

quantity_text = st.builds(
    lambda number, unit: f"{number!r} {unit}".strip(),
    st.one_of(st.sampled_from(NUMBERS), st.floats(), st.integers(-(10**6), 10**6)),
    st.sampled_from(UNITS),
)
scalar = st.one_of(
    st.sampled_from(NUMBERS),
    st.sampled_from(STRINGS),
    quantity_text,
    st.integers(),
    st.floats(),
    st.booleans(),
    st.text(max_size=20),
    st.dates(),
)
value = st.recursive(
    scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)

# --- mutations of a parsed file ------------------------------------------------------------


def _containers(data: object, found: list) -> list:
    """Every dict and list in ``data``, with data itself first."""
    found.append(data)
    children = data.values() if isinstance(data, dict) else data if isinstance(data, list) else ()
    for child in children:
        if isinstance(child, dict | list):
            _containers(child, found)
    return found


@st.composite
def mutated(draw: st.DrawFn, original: dict) -> dict:
    """``original`` with one to three changes: a value replaced, a key deleted, added, copied."""
    data = copy.deepcopy(original)
    for _ in range(draw(st.integers(1, 3))):
        container = draw(st.sampled_from(_containers(data, [])))
        keys = list(container) if isinstance(container, dict) else list(range(len(container)))
        operation = draw(st.sampled_from(["replace", "replace", "delete", "add", "copy"]))
        if not keys and operation != "add":
            operation = "add"
        if operation == "replace":
            container[draw(st.sampled_from(keys))] = draw(value)
        elif operation == "delete":
            del container[draw(st.sampled_from(keys))]
        elif operation == "add" and isinstance(container, dict):
            container[draw(st.text(min_size=1, max_size=12))] = draw(value)
        elif operation == "add":
            container.append(draw(value))
        else:  # a copy of an entry under another name: a relay twice, a second board, ...
            entry = container[draw(st.sampled_from(keys))]
            if isinstance(container, dict):
                container[draw(st.sampled_from(["K9", "relays2", "N01", "VBUS2", "x"]))] = entry
            else:
                container.append(copy.deepcopy(entry))
    return data


TEXT_MUTATIONS = ["duplicate a table", "nest deeply", "truncate", "splice", "bytes"]


@st.composite
def mutated_text(draw: st.DrawFn, text: str) -> bytes:
    """``text`` changed as text: what a data-level mutation cannot write."""
    kind = draw(st.sampled_from(TEXT_MUTATIONS))
    if kind == "duplicate a table":
        headers = re.findall(r"(?m)^\[.*\]$", text)
        header = draw(st.sampled_from(headers))
        return (text + f"\n{header}\n").encode()
    if kind == "nest deeply":
        depth = draw(st.sampled_from([50, 500, 5000]))
        opener, closer = draw(st.sampled_from([("[", "]"), ("{a = ", "}")]))
        return (text + f"\ndeep = {opener * depth}1{closer * depth}\n").encode()
    if kind == "truncate":
        return text[: draw(st.integers(0, len(text)))].encode()
    at = draw(st.integers(0, len(text)))
    if kind == "splice":
        return (text[:at] + draw(st.text(max_size=20)) + text[at:]).encode()
    return text[:at].encode() + draw(st.binary(max_size=8)) + text[at:].encode()


# --- what may come out -----------------------------------------------------------------------


def parses(raw: bytes) -> bool:
    try:
        tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError, RecursionError, ValueError):
        return False
    return True


def check_error(error: ConfigError, written: dict[Path, bytes]) -> None:
    """A ConfigError names a file, on one printable line, and a key if that file is TOML."""
    text = str(error)
    assert error.file and text.startswith(f"{error.file}: "), text
    assert text.isprintable() and len(text) < 1000, text
    for path, raw in written.items():
        if error.file == display_path(path) and parses(raw):
            assert error.key, f"no key in {text}"


def check_cli(argv: list[str], written: dict[Path, bytes], allowed=(0, 2)) -> None:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    assert code in allowed, (code, err.getvalue())
    if code == 2:
        lines = err.getvalue().splitlines()
        assert len(lines) == 1 and lines[0].startswith("ConfigError: "), err.getvalue()
    assert "Traceback" not in err.getvalue()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("fuzz")
    (directory / "profiles").mkdir()
    for profile in PROFILES:
        (directory / "profiles" / profile.name).write_bytes(profile.read_bytes())
    return directory


def write_bench(workdir: Path, raw: bytes) -> Path:
    path = workdir / "bench.toml"
    path.write_bytes(raw)
    return path


def bench_outcome(workdir: Path, raw: bytes) -> None:
    path = write_bench(workdir, raw)
    written = {path: raw}
    try:
        load_configuration(path)
    except ConfigError as error:
        check_error(error, written)
    check_cli(["check", "--bench", str(path)], written)


def profile_outcome(workdir: Path, raw: bytes) -> None:
    path = workdir / "mutated_profile.toml"
    path.write_bytes(raw)
    written = {path: raw}
    try:
        load_profile(path)
        load_configuration(ROOT_BENCH, path)
    except ConfigError as error:
        check_error(error, written)
    check_cli(["check", "--bench", str(ROOT_BENCH), "--profile", str(path)], written)


def sequence_outcome(workdir: Path, raw: bytes) -> None:
    path = workdir / "mutated_sequence.toml"
    path.write_bytes(raw)
    written = {path: raw}
    try:
        bind(load_sequence(path), load_configuration(ROOT_BENCH))
    except ConfigError as error:
        check_error(error, written)
    except LimitViolation:
        pass  # written for another profile: refused, as it should be
    # Exit 3: the dry run found steps the interlock refuses; that is its answer, not a crash.
    check_cli(["run", "--bench", str(ROOT_BENCH), "--dry-run", str(path)], written, (0, 2, 3))


def shipped(path: Path) -> dict:
    return tomllib.loads(path.read_text(encoding="utf-8"))


BENCH = shipped(ROOT_BENCH)
# The bench's profile path, absolute: a mutated bench in another directory still finds it.
BENCH["bench"]["profile"] = str(ROOT / "profiles" / "mdb24.toml")


# --- the properties ------------------------------------------------------------------------


def test_the_shipped_files_load_as_written_and_as_rewritten(workdir):
    # The rewriting itself changes nothing: mutations below start from what loads.
    load_configuration(ROOT_BENCH)
    bench_outcome(workdir, dumps(BENCH).encode())
    assert load_bench(workdir / "bench.toml").wiring == load_bench(ROOT_BENCH).wiring
    for profile in PROFILES:
        load_configuration(ROOT_BENCH, profile)
    for sequence in SEQUENCES:
        load_sequence(sequence)


@FAST
@given(data=mutated(BENCH))
def test_mutated_bench(workdir, data):
    bench_outcome(workdir, dumps(data).encode())


@FAST
@given(st.sampled_from(PROFILES).flatmap(lambda p: mutated(shipped(p))))
def test_mutated_profile(workdir, data):
    profile_outcome(workdir, dumps(data).encode())


@FAST
@given(st.sampled_from(SEQUENCES).flatmap(lambda p: mutated(shipped(p))))
def test_mutated_sequence(workdir, data):
    sequence_outcome(workdir, dumps(data).encode())


@FAST
@given(st.data())
def test_mutated_text(workdir, data):
    kind = data.draw(st.sampled_from(["bench", "profile", "sequence"]))
    source = {"bench": ROOT_BENCH, "profile": PROFILES[0], "sequence": SEQUENCES[0]}[kind]
    text = source.read_text(encoding="utf-8")
    if kind == "bench":
        text = text.replace('profile = "profiles/', f'profile = "{ROOT}/profiles/')
    raw = data.draw(mutated_text(text))
    {"bench": bench_outcome, "profile": profile_outcome, "sequence": sequence_outcome}[kind](
        workdir, raw
    )


documents = st.dictionaries(
    st.sampled_from(["bench", "service", "instruments", "relays", "wiring", "meter",
                     "simulation", "device", "identity", "nets", "sequencing", "rules",
                     "sequence", "steps", "x"]),
    value,
    max_size=6,
)  # fmt: skip


@FAST
@given(documents)
def test_documents_from_scratch(workdir, data):
    raw = dumps(data).encode()
    bench_outcome(workdir, raw)
    profile_outcome(workdir, raw)
    sequence_outcome(workdir, raw)


# --- many more examples, on demand ---------------------------------------------------------


@pytest.mark.slow
@SLOW
@given(data=mutated(BENCH))
def test_mutated_bench_at_length(workdir, data):
    bench_outcome(workdir, dumps(data).encode())


@pytest.mark.slow
@SLOW
@given(st.sampled_from(PROFILES).flatmap(lambda p: mutated(shipped(p))))
def test_mutated_profile_at_length(workdir, data):
    profile_outcome(workdir, dumps(data).encode())


@pytest.mark.slow
@SLOW
@given(st.sampled_from(SEQUENCES).flatmap(lambda p: mutated(shipped(p))))
def test_mutated_sequence_at_length(workdir, data):
    sequence_outcome(workdir, dumps(data).encode())


# --- the real command, in its own process --------------------------------------------------


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (("channel = 1\n", "channel = 99\n"), "relays.K1.channel: board relays (RB8)"),
        (('profile = "profiles/mdb24.toml"', 'profile = "/dev/null"'), "/dev/null: not a regular"),
        (("[bench]", "deep = " + "[" * 5000 + "]" * 5000 + "\n[bench]"), "nested too deeply"),
        (('lease_timeout = "2 s"', 'lease_timeout = "1 ns"'), "service.lease_timeout: expected"),
    ],
    ids=["channel-99", "device", "deep", "lease-1ns"],
)
def test_the_command_exits_2_with_one_line(tmp_path, edit, words):
    text = ROOT_BENCH.read_text(encoding="utf-8")
    text = text.replace('profile = "profiles/', f'profile = "{ROOT}/profiles/')
    old, new = edit
    old = old.replace('profile = "profiles/', f'profile = "{ROOT}/profiles/')
    assert old in text
    bench = tmp_path / "bench.toml"
    bench.write_text(text.replace(old, new, 1), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "interlock", "check", "--bench", str(bench)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("ConfigError: ") and words in lines[0], lines[0]
