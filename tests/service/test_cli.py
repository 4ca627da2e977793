"""The operator CLI against a real service: banner first, exit codes, what each command says."""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from interlock.cli import main
from interlock.config import load_bench
from interlock.journal import JournalReader
from interlock.service.background import answers, pid_path
from interlock.service.wire import channel_path
from tests.service.conftest import ROOT, bring_up, write_bench
from tests.terminal import in_a_terminal
from tests.waiting import until

BANNER = "bench sim-bench-01 [simulation]"
USER = getpass.getuser()


def run(capsys, *argv: str) -> tuple[int, list[str], str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out.splitlines(), err


def test_status_heads_with_the_bench_and_shows_the_state(served, capsys):
    bench = str(served.bench_path)
    code, out, _ = run(capsys, "status", "--bench", bench)
    assert code == 0
    assert out[0] == BANNER
    assert out[1] == "state     safe"
    assert "lease     none" in out
    assert "journal   writing" in out
    assert any(line.startswith("VLOGIC  psu CH1") for line in out)
    assert out[-1] == "relays: all open"
    code, out, _ = run(capsys, "status", "--bench", bench, "--json")
    status = json.loads("\n".join(out))
    assert code == 0
    assert list(status)[:2] == ["bench", "environment"]  # the JSON's head, too
    assert (status["bench"], status["environment"], status["state"]) == (
        "sim-bench-01",
        "simulation",
        "safe",
    )
    assert status["you"]["role"] == "viewer"
    assert status["journal"]["not_writing"] is None


def test_status_says_why_the_journal_writes_nothing_and_what_it_lost():
    from interlock.commands.service import render_status

    status = {
        "state": "fault",
        "fault": "journal: gone",
        "profile": {"name": "p", "path": "p.toml"},
        "journal": {
            "not_writing": "j.sqlite: gone",
            "staged": 1000,
            "not_kept": 7,
            "unjournaled": 2,
        },
        "nets": {},
        "relays": {},
    }
    shown = render_status(status).splitlines()
    assert shown[4] == (
        "journal   NOT WRITING: j.sqlite: gone; 1000 entries wait unwritten; 7 entries not kept "
        "(the journal could not take them); 2 off commands went out without their record"
    )
    del status["journal"]  # a service older than the line
    assert not any(line.startswith("journal") for line in render_status(status).splitlines())


def test_arm_estop_reset_disarm_and_their_exit_codes(served, capsys):
    bench = str(served.bench_path)
    code, out, err = run(capsys, "arm", "--bench", bench, "--role", "script")
    assert (code, out[0]) == (3, BANNER)
    assert err.startswith("AccessDenied: the script role may not do this")
    code, out, _ = run(capsys, "arm", "--bench", bench)
    assert (code, out[0]) == (0, BANNER)
    assert out[1].startswith("armed by ")
    assert served.controller.state == "armed"
    code, out, _ = run(capsys, "estop", "--bench", bench)  # as a viewer: anyone may
    assert code == 0
    assert out == [BANNER, f"emergency stop done: state fault (estop: emergency stop by {USER})"]
    code, out, err = run(capsys, "disarm", "--bench", bench)
    assert (code, out) == (4, [BANNER])
    assert err.startswith("FaultLatched: ")
    code, out, _ = run(capsys, "reset", "--bench", bench)
    assert (code, out) == (0, [BANNER, "fault reset: state safe"])
    code, out, err = run(capsys, "disarm", "--bench", bench)
    assert (code, out) == (3, [BANNER])
    assert err.startswith("StateError: ")


def test_a_flight_bench_is_marked_and_wants_its_name(sim_bench_factory, serve_bench, capsys):
    sim = sim_bench_factory()
    served = serve_bench(environment="flight", name="fm-bench-02", resources=sim.resources)
    bench = str(served.bench_path)
    code, out, err = run(capsys, "arm", "--bench", bench)
    assert out[0] == "bench fm-bench-02 [flight]  *** FLIGHT HARDWARE ***"
    assert code == 3
    assert "needs the bench name typed as confirmation" in err
    code, out, _ = run(capsys, "arm", "--bench", bench, "--confirm", "fm-bench-02")
    assert code == 0
    assert served.controller.state == "armed"


def test_no_service_is_a_fault_exit(short_dir, capsys):
    bench = str(write_bench(short_dir))
    code, out, err = run(capsys, "estop", "--bench", bench)
    assert (code, out) == (4, [BANNER])
    assert err.startswith("ServiceUnavailable: no service answers")


def test_a_token_file_open_to_others_is_a_config_error_exit(served, capsys):
    """An operator command's configuration error exits 2, naming the file, as every command's."""
    token = served.bench_path.parent / "tokens" / "viewer.token"
    token.chmod(0o644)
    code, out, err = run(capsys, "status", "--bench", str(served.bench_path))
    assert (code, out) == (2, [BANNER])
    assert err.splitlines() == [
        f"ConfigError: {token}: token file is readable by others (mode 0644): chmod 600 it, or "
        "remove it to have a new token made at the next start"
    ]


def test_serve_runs_until_sigterm_and_leaves_the_bench_safe(short_dir):
    bench = write_bench(short_dir)
    socket_path = short_dir / "interlock.sock"
    server = subprocess.Popen(
        [sys.executable, "-m", "interlock", "serve", "--bench", str(bench), "--tcp", "127.0.0.1:0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while not answers(socket_path):
            assert server.poll() is None, server.communicate()
            assert time.monotonic() < deadline, "service did not answer"
            time.sleep(0.05)
        server.send_signal(signal.SIGTERM)
        out, err = server.communicate(timeout=20)
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()
    assert server.returncode == 0, err
    lines = out.splitlines()
    assert lines[0] == BANNER
    serving = re.fullmatch(
        rf"serving on unix:{socket_path} and tcp:127\.0\.0\.1:(\d+) as http://127\.0\.0\.1:\1 "
        r"\(plain HTTP: loopback only\) and command channel "
        rf"unix:{socket_path.with_suffix('.cmd.sock')}; tokens in {short_dir}/tokens; "
        "SIGINT, SIGTERM or SIGHUP stops",
        lines[1],
    )
    assert serving, lines[1]
    assert int(serving.group(1)) > 0  # the port the OS chose, not the 0 asked for
    assert lines[-2:] == [
        "service stopped; the bench was driven to the safe state",
        "its simulator keeps running (`interlock sim stop` ends it)",
    ]
    assert not socket_path.exists()


@pytest.mark.parametrize("tcp", ["nohost", "host:port", "h:70000"])
def test_serve_refuses_a_bad_tcp_address(tcp, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--tcp", tcp])
    assert exited.value.code == 2
    assert "expected HOST:PORT" in capsys.readouterr().err


def test_serve_whose_terminal_closes_stops_cleanly(short_dir):
    # A service run in the foreground of a remote session that ends: hung up (SIGHUP), it
    # drives the bench safe and stops as for SIGTERM, not killed with its record staged
    # in memory and its guardian left to turn the outputs off.
    bench = write_bench(short_dir)
    socket_path = short_dir / "interlock.sock"
    serve = ("-m", "interlock", "serve", "--bench", str(bench))
    with in_a_terminal(*serve, ready=b"SIGHUP stops") as terminal:
        assert until(lambda: answers(socket_path), 30)
        assert terminal.hang_up() == 0  # not killed by the signal
    assert not socket_path.exists()
    with JournalReader(load_bench(bench).service.journal) as journal:
        entries = list(journal.entries())
    assert entries[-1].kind == "state" and entries[-1].payload.get("stop") == "clean"
    assert not [e for e in entries if e.actor == "guardian"]  # stood down, never acted


def test_serve_hung_up_while_it_starts_stops_cleanly_once_it_serves(short_dir):
    # Hung up right after its banner: the journal, the instruments and the guardian are
    # still being opened, before the server's own handlers are in. It finishes starting
    # and stops at once, cleanly, rather than die half started for its guardian to find.
    bench = write_bench(short_dir)
    serve = ("-m", "interlock", "serve", "--bench", str(bench))
    with in_a_terminal(*serve, ready=b"[simulation]") as terminal:
        assert terminal.hang_up() == 0  # not killed by the signal
    assert not (short_dir / "interlock.sock").exists()
    with JournalReader(load_bench(bench).service.journal) as journal:
        entries = list(journal.entries())
    assert entries[-1].kind == "state" and entries[-1].payload.get("stop") == "clean"
    assert not [e for e in entries if e.actor == "guardian"]  # stood down, never acted


def test_stop_ends_a_background_service_once_the_bench_is_safe(short_dir, capsys):
    bench = str(write_bench(short_dir))
    socket_path = short_dir / "interlock.sock"
    code, _, _ = run(capsys, "serve", "--bench", bench, "--background")
    assert code == 0 and answers(socket_path)
    pid = int(pid_path(socket_path).read_text())
    try:
        code, out, _ = run(capsys, "stop", "--bench", bench)
        assert (code, out[0]) == (0, BANNER)
        assert out[1] == f"service stopped (pid {pid}); the bench was driven to the safe state"
        assert not socket_path.exists() and not pid_path(socket_path).exists()
        log = (short_dir / "service.log").read_text()
        assert "service stopped; the bench was driven to the safe state" in log
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)  # started by this process: reap it
    code, out, _ = run(capsys, "stop", "--bench", bench)  # nothing left to stop
    assert (code, out[1]) == (0, f"no service is running on {socket_path}")


def test_a_background_services_log_moved_aside_is_written_again_where_it_was(short_dir, capsys):
    # A log rotation (or rm): what the service says from then on, its stop included, is
    # found at service.log again, not in a file moved away or removed.
    bench = str(write_bench(short_dir))
    socket_path = short_dir / "interlock.sock"
    log, rotated = short_dir / "service.log", short_dir / "service.log.1"
    code, _, _ = run(capsys, "serve", "--bench", bench, "--background")
    assert code == 0 and answers(socket_path)
    pid = int(pid_path(socket_path).read_text())
    channel = channel_path(socket_path)
    try:
        log.rename(rotated)
        channel.unlink()  # in the same round: what the keeper says of it goes to the new log
        assert until(lambda: log.exists() and answers(channel), 30)
        assert oct(log.stat().st_mode & 0o777) == oct(0o600)
        code, _, _ = run(capsys, "stop", "--bench", bench)
        assert code == 0
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)  # started by this process: reap it
    now = log.read_text()
    assert f"{log} went while the service runs: made again" in now
    assert f"{channel} was removed while the service runs: bound again" in now
    assert "service stopped; the bench was driven to the safe state" in now
    assert "service stopped" not in rotated.read_text()


def test_stop_never_signals_a_process_that_is_not_the_service(short_dir, capsys):
    bench = str(write_bench(short_dir))
    pid_file = pid_path(short_dir / "interlock.sock")
    pid_file.write_text(f"{os.getpid()}\n")  # a stale file naming some other process
    code, out, _ = run(capsys, "stop", "--bench", bench)
    assert (code, out[1]) == (0, f"no service is running (removed the stale {pid_file})")
    assert not pid_file.exists()


def test_stop_never_signals_another_benchs_service(short_dir, capsys):
    (short_dir / "a").mkdir()
    (short_dir / "b").mkdir()
    bench_a, bench_b = (str(write_bench(short_dir / d)) for d in ("a", "b"))
    code, _, _ = run(capsys, "serve", "--bench", bench_a, "--background")
    assert code == 0
    pid = int(pid_path(short_dir / "a" / "interlock.sock").read_text())
    try:
        # Bench b's pid file names bench a's service (its own died; the number came back).
        pid_path(short_dir / "b" / "interlock.sock").write_text(f"{pid}\n")
        code, out, _ = run(capsys, "stop", "--bench", bench_b)
        assert code == 0 and out[1].startswith("no service is running (removed the stale")
        assert answers(short_dir / "a" / "interlock.sock")  # untouched
        code, out, _ = run(capsys, "stop", "--bench", bench_a)
        assert code == 0 and out[1].startswith(f"service stopped (pid {pid})")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def test_status_shows_a_reading_only_while_it_describes_the_net(served, capsys):
    """Never a stale live value: a reading is shown with its age, and only until the net
    is commanded again; an off net shows the reading of its off output, or nothing."""
    bench = str(served.bench_path)
    client = served.client()
    run(capsys, "arm", "--bench", bench)
    with client.lease():
        bring_up(client, "VLOGIC", 5.0, 0.3)
        client.measure("VLOGIC")
        status = client.status()
        measured = status["nets"]["VLOGIC"]["measured"]
        assert measured["output"] is True and abs(measured["voltage"] - 5.0) < 0.1
        assert 0.0 <= measured["age"] < 60.0
        code, out, _ = run(capsys, "status", "--bench", bench)
        line = next(line for line in out if line.startswith("VLOGIC"))
        assert code == 0 and re.search(r" on +[\d.]+ V [\d.]+ m?A \([\d.]+ s ago\)$", line), line
        client.output_off("VLOGIC")
        # The live reading says nothing of the net now: none is shown.
        assert client.status()["nets"]["VLOGIC"]["measured"] is None
        code, out, _ = run(capsys, "status", "--bench", bench)
        line = next(line for line in out if line.startswith("VLOGIC"))
        assert re.search(r" off +-$", line), line
        # The instrument's reading of the off output, once asked for.
        client.measure("VLOGIC")
        measured = client.status()["nets"]["VLOGIC"]["measured"]
        assert measured["output"] is False and measured["voltage"] < 0.5
        code, out, _ = run(capsys, "status", "--bench", bench)
        line = next(line for line in out if line.startswith("VLOGIC"))
        assert "(off output, " in line, line


def test_status_never_starts_a_service(short_dir, capsys):
    bench = str(write_bench(short_dir))
    for command in (["status"], ["status", "--json"], ["arm"], ["reset"], ["disarm"]):
        code, _, err = run(capsys, *command, "--bench", bench)
        assert code == 4, command
        assert err.startswith("ServiceUnavailable: no service answers"), err
    assert not answers(short_dir / "interlock.sock")
    assert not (short_dir / "sim.json").exists()  # nor a simulator


def test_a_second_background_serve_says_one_already_serves(short_dir, capsys):
    bench = str(write_bench(short_dir))
    socket_path = short_dir / "interlock.sock"
    code, _, _ = run(capsys, "serve", "--bench", bench, "--background")
    assert code == 0
    pid = int(pid_path(socket_path).read_text())
    try:
        code, out, err = run(capsys, "serve", "--bench", bench, "--background")
        assert (code, out) == (2, [BANNER])
        assert err.startswith(f"AlreadyServing: a service already answers on {socket_path}")
        assert f"pid {pid}" in err
        code, out, err = run(capsys, "serve", "--bench", bench)  # in the foreground too
        assert code == 2 and err.startswith("AlreadyServing: ")
        assert int(pid_path(socket_path).read_text()) == pid and answers(socket_path)
    finally:
        run(capsys, "stop", "--bench", bench)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
