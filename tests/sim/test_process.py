"""The simulator as a process of its own: started once per bench, found, stopped, never doubled."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from interlock.cli import main
from interlock.config import load_bench
from interlock.errors import SimulatorError
from interlock.sim.client import SimulatorClient, SimulatorState, read_state, write_state
from interlock.sim.host import KEEP_PERIOD_S, SimulatorHost
from interlock.sim.process import ensure_simulator, find_simulator, stop_simulator
from tests.service.conftest import stop_simulators
from tests.sim.conftest import write_bench
from tests.terminal import in_a_terminal
from tests.waiting import until

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def bench_file() -> Iterator[Path]:
    """A bench copy in a short directory (a Unix socket path holds 107 bytes); any
    simulator started for it is stopped afterwards."""
    directory = Path(tempfile.mkdtemp(prefix="ilk-sim-", dir="/tmp"))
    yield write_bench(directory)
    stop_simulators(directory)
    shutil.rmtree(directory, ignore_errors=True)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def run(capsys, *argv: str) -> tuple[int, list[str], str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out.splitlines(), err


def refused_then_stopped(capsys, bench_file: Path, pid: int) -> None:
    """A second simulator of the bench is refused before it opens anything; ``interlock
    sim stop`` stops the one running (``pid``), and its files go with it."""
    code, _, err = run(capsys, "sim", "start", "--bench", str(bench_file), "--ports", "free")
    assert code == 4 and "a simulator already answers on" in err
    code, out, _ = run(capsys, "sim", "stop", "--bench", str(bench_file))
    assert (code, out[1]) == (0, f"simulator stopped (pid {pid}); its instruments are gone")
    assert not alive(pid)
    run_dir = bench_file.parent / "run"
    assert not (run_dir / "sim.json").exists() and not (run_dir / "sim.sock").exists()


def test_start_in_the_background_find_it_and_stop_it(bench_file, capsys):
    run_dir = bench_file.parent / "run"
    code, out, _ = run(
        capsys, "sim", "start", "--background", "--bench", str(bench_file), "--fault", "estop"
    )
    assert code == 0 and out[0] == "bench sim-bench-01 [simulation]"
    state = read_state(run_dir / "sim.json")
    assert state is not None and alive(state.pid) and state.pid != os.getpid()
    assert out[-1].startswith(f"simulator started in the background: pid {state.pid}")
    assert state.bench_sha256 == load_bench(bench_file).sha256
    assert set(state.resources) == {"psu", "dmm", "relays"}
    assert state.control == str(run_dir / "sim.sock")
    for name, wanted in (("sim.sock", 0o600), ("sim.json", 0o600), ("sim.lock", 0o600)):
        assert stat.S_IMODE((run_dir / name).stat().st_mode) == wanted, name
    assert stat.S_IMODE(run_dir.stat().st_mode) == 0o700

    # Found, not started twice; it answers as what the state file says.
    code, out, _ = run(capsys, "sim", "start", "--background", "--bench", str(bench_file))
    assert out[-1].startswith(f"simulator already running: pid {state.pid}")
    assert SimulatorClient.of_bench(load_bench(bench_file)).describe() == SimulatorState(
        **{**state.as_dict(), "started": None, "faults": ["estop"]}
    )
    code, _, err = run(capsys, "sim", "start", "--background", "--bench", str(bench_file),
                       "--fault", "short:VBUS")  # fmt: skip
    assert code == 4 and "already running for this bench: inject faults into it" in err
    refused_then_stopped(capsys, bench_file, state.pid)
    code, out, _ = run(capsys, "sim", "stop", "--bench", str(bench_file))
    assert out[1] == "no simulator is running for bench sim-bench-01"
    code, _, err = run(capsys, "sim", "truth", "--bench", str(bench_file))
    assert code == 4 and "no running simulator for bench sim-bench-01" in err


def test_its_run_directory_removed_the_simulator_is_still_found_and_stopped(bench_file, capsys):
    # rm -rf run/ under a running simulator: it makes its socket and its state file again,
    # so that `interlock sim stop` (and the next service) finds it rather than starting
    # a second simulator of the bench beside it.
    run_dir = bench_file.parent / "run"
    code, _, _ = run(capsys, "sim", "start", "--background", "--bench", str(bench_file))
    assert code == 0
    state = read_state(run_dir / "sim.json")
    assert state is not None
    remove_whole(run_dir)
    assert until(lambda: all((run_dir / name).exists() for name in ("sim.json", "sim.sock")))
    # Its log too, first: what it says of the files it made again is found where it was.
    said = [f"{run_dir / name} went while the simulator runs" for name in ("sim.log", "sim.json")]
    assert until(lambda: all(line in read_log(run_dir / "sim.log") for line in said))
    for name in ("sim.sock", "sim.json", "sim.log"):
        assert stat.S_IMODE((run_dir / name).stat().st_mode) == 0o600, name
    assert stat.S_IMODE(run_dir.stat().st_mode) == 0o700
    assert read_state(run_dir / "sim.json") == state
    assert SimulatorClient.of_bench(load_bench(bench_file)).describe().pid == state.pid
    refused_then_stopped(capsys, bench_file, state.pid)


def read_log(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


def remove_whole(run_dir: Path) -> None:
    """``rm -rf run/``, moved away first: the keeper may make a file again under rmtree."""
    gone = run_dir.with_name("run.gone")
    run_dir.rename(gone)
    shutil.rmtree(gone)


def test_the_keeper_outlives_an_error_it_did_not_expect(bench_file, monkeypatch, caplog):
    import interlock.sim.host as host_module

    failures = iter([RuntimeError("a defect")])
    written = host_module.write_state

    def write_state(*args, **kwargs):
        if kwargs.get("exclusive"):  # the keeper's, not the start's
            for failure in failures:
                raise failure
        return written(*args, **kwargs)

    monkeypatch.setattr(host_module, "write_state", write_state)
    host = SimulatorHost(load_bench(bench_file)).start()
    run_dir = bench_file.parent / "run"
    try:
        remove_whole(run_dir)
        # The round that met it logged it; a later one put the file back.
        assert until(lambda: (run_dir / "sim.json").exists())
        assert "putting back the simulator's state: RuntimeError: a defect" in caplog.text
        assert read_state(run_dir / "sim.json") == host.state
    finally:
        host.stop()
    time.sleep(3 * KEEP_PERIOD_S)  # and after its stop, nothing comes back
    assert not (run_dir / "sim.json").exists() and not (run_dir / "sim.sock").exists()


def test_a_state_file_another_process_put_there_is_left_alone(bench_file):
    host = SimulatorHost(load_bench(bench_file)).start()
    run_dir = bench_file.parent / "run"
    try:
        remove_whole(run_dir)
        run_dir.mkdir(mode=0o700)
        (run_dir / "sim.json").write_text("another simulator's\n")
        assert until(lambda: (run_dir / "sim.sock").exists())  # the keeper went round
        time.sleep(3 * KEEP_PERIOD_S)
        assert (run_dir / "sim.json").read_text() == "another simulator's\n"
    finally:
        host.stop()
    assert (run_dir / "sim.json").read_text() == "another simulator's\n"  # not its to remove


def test_two_starters_racing_end_with_one_simulator(bench_file):
    argv = [
        sys.executable,
        "-m",
        "interlock",
        "sim",
        "start",
        "--background",
        "--json",
        "--bench",
        str(bench_file),
    ]
    starters = [
        subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    results = [p.communicate(timeout=120) for p in starters]
    assert [p.returncode for p in starters] == [0, 0, 0], results
    pids = {json.loads(out.splitlines()[-1])["pid"] for out, _ in results}
    assert len(pids) == 1
    # Only one simulator process for this bench, whatever raced.
    serving = [
        pid
        for pid in map(int, filter(str.isdigit, os.listdir("/proc")))
        if str(bench_file).encode() in _cmdline(pid) and b"sim" in _cmdline(pid)
    ]
    assert serving == list(pids)


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def test_a_stale_state_file_and_socket_are_replaced(bench_file):
    bench = load_bench(bench_file)
    run_dir = bench_file.parent / "run"
    run_dir.mkdir(mode=0o700)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(run_dir / "sim.sock"))
    stale.close()  # the file stays, nothing answers
    write_state(
        run_dir / "sim.json",
        SimulatorState(
            pid=dead.pid,
            bench=bench.name,
            bench_file=str(bench.path),
            bench_sha256=bench.sha256,
            control=str(run_dir / "sim.sock"),
            resources={"psu": "TCPIP::127.0.0.1::1::SOCKET"},
            history=60.0,
        ),
    )
    assert find_simulator(bench) is None
    client = ensure_simulator(bench)
    state = read_state(run_dir / "sim.json")
    assert state is not None and state.pid == client.pid != dead.pid
    assert client.resources["psu"] != "TCPIP::127.0.0.1::1::SOCKET"
    assert client.truth()["faults"] == []


def test_a_simulator_of_an_edited_bench_is_not_used(bench_file):
    started = ensure_simulator(load_bench(bench_file))
    bench_file.write_text(bench_file.read_text().replace('"120 ohm"', '"60 ohm"'))
    edited = load_bench(bench_file)
    with pytest.raises(SimulatorError) as refused:
        ensure_simulator(edited)
    message = str(refused.value)
    assert f"(pid {started.pid}) was started from another version of {bench_file}" in message
    assert edited.sha256[:12] in message and "interlock sim stop" in message
    assert alive(started.pid)  # left alone: someone may be using it
    assert stop_simulator(edited).startswith(f"simulator stopped (pid {started.pid})")
    assert ensure_simulator(edited).pid != started.pid


def test_a_simulator_that_cannot_start_says_why(bench_file):
    bench = load_bench(bench_file)
    # Edited after it was read here: the simulator reads it again, and refuses it.
    bench_file.write_text(bench_file.read_text().replace('model = "E36312A"', 'model = "E9999"'))
    with pytest.raises(SimulatorError, match='unknown power supply model "E9999"'):
        ensure_simulator(bench, timeout=60)


def test_sigterm_stops_the_simulator_in_the_foreground(bench_file):
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "interlock",
            "sim",
            "start",
            "--bench",
            str(bench_file),
            "--ports",
            "free",
            "--json",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        description = json.loads(process.stdout.readline())
        assert description["pid"] == process.pid
        client = SimulatorClient(description["control"])
        assert client.describe().pid == process.pid
        # The state file lets the bench's service find this one instead of starting its own.
        assert find_simulator(load_bench(bench_file)).pid == process.pid
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()
    assert not Path(description["state_file"]).exists()
    assert not Path(description["control"]).exists()


def test_the_simulator_in_a_terminal_that_closes_stops(bench_file):
    # Started in the foreground of a remote session that ends: hung up (SIGHUP), it stops
    # as for SIGTERM, and takes its files with it; killed, it would leave them behind.
    start = ("-m", "interlock", "sim", "start", "--bench", str(bench_file), "--ports", "free")
    with in_a_terminal(*start, ready=b"Ctrl-C to stop") as terminal:
        assert find_simulator(load_bench(bench_file)).pid == terminal.process.pid
        assert terminal.hang_up() == 0  # not killed by the signal
    assert not (bench_file.parent / "run" / "sim.json").exists()
