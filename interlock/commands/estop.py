"""``interlock estop``'s own way in: the stop, before the rest of the program is imported.

The whole command line imports the units registry, the configuration
loader, the HTTP client and more (half a second on a busy machine) before
its first byte goes out. This path imports the standard library, the error
tree and the token reader only: it reads from bench.toml exactly what the
stop needs (the bench's name and environment for the banner, the service's
socket and tokens; :func:`read_stop_settings`), sends ``estop`` over the
command channel with the role's token, and prints what the full command
prints.

It stops or steps aside: an argument it does not know, a missing token, no
service, an error of any kind, and :func:`main` returns None for the full
command to do all of it again (an emergency stop asked twice latches the
first cause only). The tests hold its answers to the full loader's.

A bench file that is not what the loader takes (being edited, a line cut
short, a table misspelt) must not keep anyone from stopping a bench whose
service still answers: the stop then finds the service's socket and tokens
in the file's lines (:func:`salvage_stop_settings`), stops, and says the
file needs ``interlock check``. ``interlock status`` finds and asks the
service of such a file the same way (:func:`find_service`, :func:`ask_service`).
"""

from __future__ import annotations

import getpass
import json
import os
import re
import socket
import sys
import tomllib
from pathlib import Path

# The full loader's rules and the wire's constants, repeated here so as not to import
# them (tests/service/test_estop_path.py holds them equal).
BENCH_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
ENVIRONMENTS = ("simulation", "engineering", "flight")
ROLES = ("viewer", "script", "operator")
MAX_FILE_BYTES = 1 << 20
MAX_PATH_BYTES = 4096
MAX_SOCKET_PATH_BYTES = 107
CHANNEL_VERSION = 1
MAX_LINE = 64 * 1024
# Long enough for the safe state on a busy machine; a stop not answered by then is
# asked again by the full command.
REPLY_TIMEOUT_S = 10.0


class StopSettings:
    """What the stop needs of a bench file (a plain class: dataclasses alone take
    longer to import than this whole module)."""

    __slots__ = ("environment", "name", "socket", "tokens")

    def __init__(self, name: str, environment: str, socket: Path, tokens: Path) -> None:
        self.name, self.environment, self.socket, self.tokens = name, environment, socket, tokens

    @property
    def channel(self) -> Path:
        """The command channel's socket, next to the HTTP one: ``x.sock`` -> ``x.cmd.sock``."""
        return self.socket.with_name(f"{self.socket.stem}.cmd{self.socket.suffix or '.sock'}")


def read_stop_settings(path: str | Path) -> StopSettings | None:
    """The stop's settings of the bench file ``path``, or None where the full loader is
    needed to say what is there (or what is wrong)."""
    read = _read(path)
    if read is None:
        return None
    file, raw = read
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (RuntimeError, ValueError):  # RecursionError, TOMLDecodeError, UnicodeDecodeError
        return None
    bench, service = data.get("bench"), data.get("service")
    if not isinstance(bench, dict) or not isinstance(service, dict):
        return None
    name, environment = bench.get("name"), bench.get("environment")
    if not isinstance(name, str) or not BENCH_NAME.fullmatch(name):
        return None
    if environment not in ENVIRONMENTS:
        return None
    return _settings(file, name, environment, service.get("socket"), service.get("tokens"))


def _read(path: str | Path) -> tuple[Path, bytes] | None:
    """The bench file's resolved path and its bytes, if it has at most MAX_FILE_BYTES."""
    try:
        file = Path(path).resolve()
        with open(file, "rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except (OSError, RuntimeError, ValueError):
        return None
    return None if len(raw) > MAX_FILE_BYTES else (file, raw)


def _settings(
    file: Path, name: str, environment: str, socket: object, tokens: object
) -> StopSettings | None:
    """The settings, if the socket and tokens are paths as the full loader takes them
    (printable text on one line, bounded; relative to the bench file) and the command
    channel's socket path is one a Unix socket can have."""
    paths = []
    for value in (socket, tokens):
        if not isinstance(value, str) or not value.strip() or not value.isprintable():
            return None
        if len(value) > MAX_PATH_BYTES or len(os.fsencode(value)) > MAX_PATH_BYTES:
            return None
        try:
            paths.append((file.parent / value).resolve())
        except (OSError, RuntimeError, ValueError):
            return None
    settings = StopSettings(name, environment, paths[0], paths[1])
    if len(os.fsencode(str(settings.channel))) > MAX_SOCKET_PATH_BYTES:
        return None
    return settings


# A key's line as the stop needs it: a one-line string, in either quote, and a comment;
# a table's header, of a table or an array of tables. No two parts of either can match
# the same characters: the time is linear in the file, whatever is in it.
_LINE = re.compile(
    r"""^[ \t]*(?P<key>[A-Za-z_]+)[ \t]*=[ \t]*"""
    r"""(?:"(?P<basic>[^"\\\r\n]*)"|'(?P<literal>[^'\r\n]*)')[ \t]*(?:#[^\r\n]*)?\r?$""",
    re.MULTILINE,
)
_TABLE = re.compile(
    r"^[ \t]*\[\[?(?P<name>[^\[\]\r\n]*)\]\]?[ \t]*(?:#[^\r\n]*)?\r?$", re.MULTILINE
)


def _lines_of(text: str, table: str) -> dict[str, list[str]]:
    """Each key's values in the lines of ``table`` (the whole text if it has no such
    table: its header may be what is misspelt)."""
    headers = [(m.start(), m.end(), m["name"].strip()) for m in _TABLE.finditer(text)]
    spans = [
        (end, headers[i + 1][0] if i + 1 < len(headers) else len(text))
        for i, (_, end, name) in enumerate(headers)
        if name == table
    ]
    found: dict[str, list[str]] = {}
    for start, stop in spans or [(0, len(text))]:
        for m in _LINE.finditer(text, start, stop):
            value = m["basic"] if m["basic"] is not None else m["literal"]
            found.setdefault(m["key"], []).append(value)
    return found


def salvage_stop_settings(path: str | Path) -> StopSettings | None:
    """For a bench file :func:`read_stop_settings` does not take: the service's socket
    and tokens as the file's lines give them (each key on one line, once, in the
    ``[service]`` table, or anywhere if the file has none), the bench's name and
    environment as far as they are there ("?" where not). None if either path is not
    there once."""
    read = _read(path)
    if read is None:
        return None
    file, raw = read
    text = raw.decode("utf-8", "replace")
    service, bench = _lines_of(text, "service"), _lines_of(text, "bench")
    sockets, tokens = service.get("socket", []), service.get("tokens", [])
    if len(sockets) != 1 or len(tokens) != 1:
        return None
    names, environments = bench.get("name", []), bench.get("environment", [])
    name = names[0] if len(names) == 1 and BENCH_NAME.fullmatch(names[0]) else "?"
    environment = environments[0] if len(environments) == 1 else "?"
    if environment not in ENVIRONMENTS:
        environment = "?"
    return _settings(file, name, environment, sockets[0], tokens[0])


def _arguments(argv: list[str]) -> tuple[str, str] | None:
    """``estop [--bench FILE] [--role ROLE]``: the bench file and role, or None."""
    bench, role = "bench.toml", "viewer"
    rest = list(argv)
    while rest:
        word = rest.pop(0)
        option, equals, value = word.partition("=")
        if option not in ("--bench", "--role"):
            return None
        if not equals:
            if not rest:
                return None
            value = rest.pop(0)
        if option == "--bench":
            bench = value
        else:
            role = value
    if role not in ROLES:
        return None
    return bench, role


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


def _ask(conn: socket.socket, request: dict[str, object], buffer: bytearray) -> object:
    conn.sendall((json.dumps(request, separators=(",", ":")) + "\n").encode())
    while b"\n" not in buffer:
        chunk = conn.recv(65536)
        if not chunk or len(buffer) > MAX_LINE:
            raise ConnectionError("no reply")
        buffer += chunk
    line, _, rest = bytes(buffer).partition(b"\n")
    buffer[:] = rest
    reply = json.loads(line)
    if not isinstance(reply, dict) or "ok" not in reply:
        if isinstance(reply, dict) and isinstance(reply.get("error"), str):
            raise Refused(reply)
        raise ConnectionError("not an answer")  # an error: the full command says which
    return reply["ok"]


class Refused(ConnectionError):
    """The service answered with an error; ``body`` is its wire form
    (:func:`interlock.service.wire.error_from_wire` makes the error of it)."""

    def __init__(self, body: dict[str, object]) -> None:
        super().__init__(f"{body['error']}: {body.get('message', '')}")
        self.body = body


def find_service(path: str | Path) -> tuple[StopSettings, bool] | None:
    """The service's settings in the bench file ``path``, and whether they were found by
    the file's lines (:func:`salvage_stop_settings`: the strict reader stepped aside);
    None if neither finds them."""
    settings = read_stop_settings(path)
    if settings is not None:
        return settings, False
    settings = salvage_stop_settings(path)
    return None if settings is None else (settings, True)


def ask_service(settings: StopSettings, token: str, op: str) -> dict[str, object]:
    """``op`` (``estop``, ``status``) over the command channel; the bench's status it
    answers with."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(REPLY_TIMEOUT_S)
        conn.connect(str(settings.channel))
        buffer = bytearray()
        hello = {
            "hello": CHANNEL_VERSION,
            "token": token,
            "user": _user(),
            "client": f"{Path(sys.argv[0] or 'python').name} pid {os.getpid()}",
        }
        _ask(conn, hello, buffer)
        status = _ask(conn, {"op": op}, buffer)
    if not isinstance(status, dict):
        raise ConnectionError("not a status")
    return status


def banner_of(status: dict[str, object], settings: StopSettings) -> str:
    """The banner of the bench as its service says it is (the file may be half-edited),
    else as the file gives it."""
    name, environment = status.get("bench"), status.get("environment")
    name = name if isinstance(name, str) and BENCH_NAME.fullmatch(name) else settings.name
    environment = environment if environment in ENVIRONMENTS else settings.environment
    marker = "  *** FLIGHT HARDWARE ***" if environment == "flight" else ""
    return f"bench {name} [{environment}]{marker}"


def main(argv: list[str]) -> int | None:
    """``interlock estop ARGS``: 0 once the stop is done, None to leave it to the full command."""
    arguments = _arguments(argv)
    if arguments is None:
        return None
    found = find_service(arguments[0])
    if found is None:
        return None
    settings, salvaged = found
    try:
        from interlock.service.tokens import read_token  # the error tree alone besides

        status = ask_service(settings, read_token(settings.tokens, arguments[1]), "estop")
        state, fault = status["state"], status.get("fault")
    except Exception:  # whatever it was, the full command tries again and says what
        return None
    print(banner_of(status, settings))
    print(f"emergency stop done: state {state}" + (f" ({fault})" if fault else ""))
    if salvaged:
        print(
            f"{arguments[0]}: not a bench file the loader takes as it is; its service was "
            f"found by its lines (`interlock check --bench {arguments[0]}` says what is wrong)",
            file=sys.stderr,
        )
    return 0
