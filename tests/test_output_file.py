"""A background process's log, put back where it was (:mod:`interlock.output_file`).

Each case runs in a process of its own, whose output goes where a starter (or a
user) pointed it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

PROGRAM = """
import os, sys
from pathlib import Path
from interlock.output_file import OutputFile

log = Path(sys.argv[1])
output = OutputFile(log)
print("before", output.kept, flush=True)
for gone in sys.argv[2:]:
    os.unlink(gone) if gone == str(log) else os.rename(log, gone)
    if os.environ.get("PUT") == "fifo":
        os.mkfifo(log)
    elif os.environ.get("PUT") == "link":
        os.symlink(gone + ".elsewhere", log)
try:
    print("kept again", output.keep(), output.keep(), flush=True)
except OSError as error:
    print("refused", type(error).__name__, flush=True)
print("after", flush=True)
print("on stderr", file=sys.stderr, flush=True)
"""


def run(log: Path, output: Path, *gone: Path, put: str = "") -> None:
    with open(output, "ab") as out:
        subprocess.run(
            [sys.executable, "-c", PROGRAM, str(log), *map(str, gone)],
            stdout=out,
            stderr=subprocess.STDOUT,
            check=True,
            timeout=60,
            env={**os.environ, "PUT": put},
        )


@pytest.mark.parametrize("how", ["removed", "moved aside"])
def test_the_log_is_opened_again_where_it_was(tmp_path, how):
    log = tmp_path / "service.log"
    aside = tmp_path / "service.log.1"
    run(log, log, log if how == "removed" else aside)
    # Once, not twice; what comes after, stdout and stderr, goes to the log's place.
    assert log.read_text() == "kept again True False\nafter\non stderr\n"
    assert oct(log.stat().st_mode & 0o777) == oct(0o600)
    if how == "moved aside":
        assert aside.read_text() == "before True\n"


def test_output_that_is_not_that_file_is_never_touched(tmp_path):
    log, users = tmp_path / "service.log", tmp_path / "mine.txt"
    log.write_text("another's\n")
    run(log, users, log)  # the file at the log's place removed: not what the output goes to
    assert users.read_text() == "before False\nkept again False False\nafter\non stderr\n"
    assert not log.exists()


@pytest.mark.parametrize("put", ["fifo", "link"])
def test_what_is_not_a_regular_file_at_the_logs_place_is_left_alone(tmp_path, put):
    # Never written through a link, never waited on as a pipe with no reader: refused at
    # once, and the output stays where it went.
    log, aside = tmp_path / "service.log", tmp_path / "service.log.1"
    run(log, log, aside, put=put)
    assert aside.read_text() == "before True\nrefused OSError\nafter\non stderr\n"
