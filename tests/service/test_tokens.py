"""Token files and the service's own files: this user's, owner-only, never followed links.

A token file planted by another user before the first start must not be
adopted (that user would hold the role). Files owned by another user need
root to make: those tests are skipped otherwise.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

import interlock
from interlock.cli import main
from interlock.errors import ConfigError
from interlock.service.background import answers, pid_path
from interlock.service.runtime import Service
from interlock.service.tokens import ROLES, TokenStore, read_token, token_path
from interlock.service.wire import channel_path
from tests.service.conftest import write_bench

NOBODY = 65534
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="making another user's file needs root")


@pytest.fixture
def bench(short_dir: Path) -> Path:
    return write_bench(short_dir)


def _tokens(bench: Path) -> Path:
    return bench.parent / "tokens"


def _plant(bench: Path, role: str = "operator", *, mode: int = 0o600) -> Path:
    """A token file made before the service's first start, as someone else might."""
    directory = _tokens(bench)
    directory.mkdir(mode=0o700, exist_ok=True)
    path = token_path(directory, role)
    path.write_text("planted-token\n", encoding="ascii")
    os.chmod(path, mode)
    return path


def _refused_at_start(bench: Path, named: Path, match: str) -> None:
    service = Service(bench)
    try:
        with pytest.raises(ConfigError, match=match) as refused:
            service.open()
    finally:
        service.close()
    assert refused.value.file == str(named)
    assert service.controller is None  # nothing was opened


@as_root
def test_a_token_file_planted_by_another_user_is_refused_at_start(bench, capsys):
    planted = _plant(bench)
    os.chown(planted, NOBODY, NOBODY)
    _refused_at_start(bench, planted, f"belongs to uid {NOBODY}")
    assert planted.read_text() == "planted-token\n"  # left for the operator to look at
    # The command line says so, naming the file, exit 2, and leaves no socket behind.
    assert main(["serve", "--bench", str(bench)]) == 2
    err = capsys.readouterr().err
    assert f"ConfigError: {planted}: token file belongs to uid {NOBODY}" in err
    assert not answers(bench.parent / "interlock.sock")
    assert not (bench.parent / "interlock.sock").exists()


@as_root
def test_a_tokens_directory_of_another_user_is_refused(bench):
    directory = _tokens(bench)
    directory.mkdir(mode=0o700)
    os.chown(directory, NOBODY, NOBODY)
    _refused_at_start(bench, directory, "tokens directory belongs to uid")
    assert list(directory.iterdir()) == []  # no token was made in it


@pytest.mark.parametrize(
    ("mode", "said"),
    [(0o640, "readable by others"), (0o604, "readable by others"), (0o620, "writable by others"),
     (0o610, "open to others")],
)  # fmt: skip
def test_a_token_file_others_may_touch_is_refused(bench, mode, said):
    planted = _plant(bench, mode=mode)
    _refused_at_start(bench, planted, said)


def test_a_tokens_directory_others_may_enter_is_refused(bench):
    directory = _tokens(bench)
    directory.mkdir(mode=0o700)
    os.chmod(directory, 0o755)
    _refused_at_start(bench, directory, "mode 0755")


def test_a_token_file_that_is_a_link_is_refused_even_to_a_private_file(bench, short_dir):
    target = short_dir / "mine.token"
    target.write_text("a-token-of-mine\n")
    os.chmod(target, 0o600)
    directory = _tokens(bench)
    directory.mkdir(mode=0o700)
    link = token_path(directory, "script")
    link.symlink_to(target)
    _refused_at_start(bench, link, "symbolic link")
    dangling = token_path(directory, "script")
    dangling.unlink()
    dangling.symlink_to(short_dir / "nowhere.token")  # O_EXCL: not created through it
    _refused_at_start(bench, dangling, "symbolic link")
    assert not (short_dir / "nowhere.token").exists()


def test_a_tokens_directory_that_is_a_link_is_refused(short_dir):
    # (bench.toml's paths are resolved when it is read: what a link there names is checked.)
    real = short_dir / "real-tokens"
    real.mkdir(mode=0o700)
    link = short_dir / "tokens"
    link.symlink_to(real)
    with pytest.raises(ConfigError, match="symbolic link") as refused:
        TokenStore(link).ensure()
    assert refused.value.file == str(link)
    assert list(real.iterdir()) == []


def test_a_token_file_that_is_not_a_file_is_refused(bench):
    directory = _tokens(bench)
    directory.mkdir(mode=0o700)
    fifo = token_path(directory, "viewer")
    os.mkfifo(fifo, 0o600)  # opened without blocking, then refused
    _refused_at_start(bench, fifo, "not a regular file")


@as_root
def test_the_client_applies_the_same_checks(serve_bench):
    served = serve_bench()
    tokens = served.service.settings.tokens
    path = token_path(tokens, "script")
    os.chown(path, NOBODY, NOBODY)
    with pytest.raises(ConfigError, match=f"belongs to uid {NOBODY}") as refused:
        interlock.connect(served.bench_path, role="script", start=False)
    assert refused.value.file == str(path)
    os.chown(path, os.geteuid(), os.getegid())
    os.chmod(tokens, 0o750)
    with pytest.raises(ConfigError, match="mode 0750"):
        read_token(tokens, "viewer")


def test_the_service_files_are_owner_only(short_dir):
    """Made by the service: the socket directory 0700; sockets, pid file and tokens 0600."""
    bench = write_bench(short_dir)
    text = bench.read_text().replace('socket = "interlock.sock"', 'socket = "run/interlock.sock"')
    bench.write_text(text)
    socket_path = short_dir / "run" / "interlock.sock"
    server = subprocess.Popen(
        [sys.executable, "-m", "interlock", "serve", "--bench", str(bench)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not (answers(socket_path) and pid_path(socket_path).exists()):
            assert server.poll() is None, server.communicate()
            assert time.monotonic() < deadline, "service did not answer"
            time.sleep(0.05)
        modes = {
            path: stat.S_IMODE(path.stat().st_mode)
            for path in (socket_path, channel_path(socket_path), pid_path(socket_path))
        }
        assert set(modes.values()) == {0o600}, modes
        assert stat.S_IMODE(socket_path.parent.stat().st_mode) == 0o700
        for role in ROLES:
            assert stat.S_IMODE(token_path(short_dir / "tokens", role).stat().st_mode) == 0o600
    finally:
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=30)
    assert server.returncode == 0
