"""One exception tree: every error a caller of the library, the CLI or the service sees.

An AST scan of ``interlock/`` finds every ``raise`` of a built-in exception
and every exception class not rooted at ``InterlockError``; each one left is
listed here with the reason no caller sees it (caught and translated where
it is raised, a Python protocol, or a programming error). A new one fails
this test until it is an ``InterlockError`` or justified here.
"""

from __future__ import annotations

import ast
import builtins
import math
from pathlib import Path

import pytest

from interlock.drivers.relay_board import RelayBoard
from interlock.errors import (
    InterlockError,
    InvalidArgument,
    InvalidRequest,
    QuantityError,
)
from interlock.exits import EXIT_USAGE, exit_code_for
from interlock.service.wire import LineTooLong, error_from_wire, error_to_wire, status_of
from interlock.sim.relay_board import SimulatedRelayBoard
from interlock.units import VOLTAGE, parse_quantity

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "interlock"
BUILT_IN = {
    name
    for name in dir(builtins)
    if isinstance(getattr(builtins, name), type) and issubclass(getattr(builtins, name), Exception)
}

CAUGHT_WHERE_RAISED = "caught a few lines below, in the same function, and translated"
PROTOCOL = "a Python protocol (module __getattr__, a read-only attribute)"
BOARD_STATE = (
    "parser of the board's state line: the driver turns its ValueError into a ProtocolError "
    "naming the board (RelayBoard._state) or logs a malformed event (RelayBoard._event)"
)

#: (file, function, exception) -> why no caller of the library, the CLI or the service sees it.
ALLOWED_RAISES = {
    ("interlock/__init__.py", "__getattr__", "AttributeError"): PROTOCOL,
    ("interlock/service/__init__.py", "__getattr__", "AttributeError"): PROTOCOL,
    ("interlock/journal/intent.py", "DurableIntent.__setattr__", "AttributeError"): PROTOCOL,
    ("interlock/client/_channel.py", "ChannelConnection.call", "ConnectionResetError"): (
        CAUGHT_WHERE_RAISED + " (ServiceUnavailable)"
    ),
    ("interlock/commands/estop.py", "_ask", "ConnectionError"): (
        "the stop's own path: main() catches every error and leaves the stop to the full "
        "command, which says what went wrong; `interlock status` of a bench file the loader "
        "refuses catches it and says the loader's ConfigError (an error reply, Refused: the "
        "error it stands for, beside the loader's)"
    ),
    ("interlock/commands/estop.py", "ask_service", "ConnectionError"): "as _ask",
    ("interlock/output_file.py", "OutputFile.keep", "OSError"): (
        "as the OSError of the open it stands beside: the keepers catch every error, log "
        "it once per cause and try again next round; the guardian lets it go"
    ),
    ("interlock/drivers/relay_board.py", "BoardState.parse", "ValueError"): BOARD_STATE,
    ("interlock/drivers/relay_board.py", "BoardState.parse.hexmask", "ValueError"): BOARD_STATE,
    ("interlock/drivers/relay_board.py", "RelayBoard._event", "ValueError"): CAUGHT_WHERE_RAISED,
    ("interlock/sim/control.py", "ControlServer._serve", "ValueError"): CAUGHT_WHERE_RAISED,
    ("interlock/service/wire.py", "LineReader.next", "TimeoutError"): (
        "only with a deadline, which only the channel's hello gives: it answers InvalidRequest"
    ),
    ("interlock/journal/specs.py", "parse_duration", "ValueError"): (
        "parsers of the journal commands' options: argparse turns them into a usage error (exit 2)"
    ),
    ("interlock/journal/specs.py", "parse_since", "ValueError"): "as parse_duration",
    ("interlock/journal/specs.py", "parse_size", "ValueError"): "as parse_duration",
    ("interlock/sim/relay_board.py", "_Hal.read", "RuntimeError"): (
        "the simulated firmware's injected crash: it must escape like any bug of the firmware "
        "(whose main loop reboots the board), never be handled as one of ours"
    ),
    ("interlock/sim/scpi.py", "parse_pattern", "ValueError"): (
        "a typo in the simulator's own command tables, found when the module is imported"
    ),
    ("interlock/journal/intent.py", "DurableIntent.__init__", "TypeError"): (
        "a programming error: an intent is only made by the journal"
    ),
    ("interlock/limits/requests.py", "apply", "TypeError"): (
        "a programming error: the request types are a closed set"
    ),
    ("interlock/limits/ramps.py", "ramp_steps", "ValueError"): (
        "a programming error: check_ramp() refuses such a plan before any step is listed"
    ),
    ("interlock/controller/worker.py", "Worker.once", "NotImplementedError"): (
        "an abstract method"
    ),
    ("interlock/limits/measurements.py", "check_dut_identity", "ValueError"): (
        "a programming error: only a profile with an [identity] has a DUT identity to check"
    ),
    ("interlock/sequence/runner.py", "SequenceRunner._execute", "AssertionError"): (
        "unreachable: the sequence loader admits no other action"
    ),
}

#: Exception classes not rooted at InterlockError: each is caught where it is raised.
ALLOWED_CLASSES = {
    ("interlock/errors.py", "InterlockError"): "the root",
    ("interlock/drivers/relay_board.py", "_Unanswered"): (
        "the driver's own: always caught, its InstrumentError raised instead"
    ),
    ("interlock/service/guard.py", "_Refused"): "the guard's own: answered with its status",
    ("interlock/commands/estop.py", "Refused"): (
        "a ConnectionError of the stop's own path (see _ask): caught by its callers"
    ),
    ("interlock/sim/scpi.py", "ScpiError"): (
        "the SCPI simulator's: queued as the instrument's error (SYST:ERR?), never raised out"
    ),
}


class _Scan(ast.NodeVisitor):
    def __init__(self, path: str) -> None:
        self.path = path
        self.scope: list[str] = []
        self.raises: set[tuple[str, str, str]] = set()
        self.classes: set[tuple[str, str]] = set()
        self.known = {"InterlockError"}  # names of InterlockError subclasses seen in this file

    def _enter(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> None:
        self.scope.append(node.name)
        self.generic_visit(node)
        self.scope.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = _enter

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        bases = {b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases}
        if bases & BUILT_IN and not bases & self.known:
            self.classes.add((self.path, node.name))
        self._enter(node)

    def visit_Raise(self, node: ast.Raise) -> None:
        raised = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
        if isinstance(raised, ast.Name) and raised.id in BUILT_IN:
            self.raises.add((self.path, ".".join(self.scope), raised.id))
        self.generic_visit(node)


def _scan() -> tuple[set[tuple[str, str, str]], set[tuple[str, str]]]:
    raises: set[tuple[str, str, str]] = set()
    classes: set[tuple[str, str]] = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.parent.name == "firmware":  # MicroPython, shipped as data: not the package's
            continue
        scan = _Scan(str(path.relative_to(ROOT)))
        scan.visit(ast.parse(path.read_text(encoding="utf-8")))
        raises |= scan.raises
        classes |= scan.classes
    return raises, classes


def test_no_built_in_exception_is_raised_where_a_caller_would_see_it():
    raises, _ = _scan()
    assert sorted(raises - ALLOWED_RAISES.keys()) == [], "raise an InterlockError instead"
    assert sorted(ALLOWED_RAISES.keys() - raises) == [], "gone: remove from ALLOWED_RAISES"


def test_every_exception_class_is_rooted_at_interlock_error():
    _, classes = _scan()
    assert sorted(classes - ALLOWED_CLASSES.keys()) == [], "derive it from an InterlockError"
    assert sorted(ALLOWED_CLASSES.keys() - classes) == [], "gone: remove from ALLOWED_CLASSES"


# -- the errors that were not InterlockErrors ----------------------------------------------


def test_a_quantity_error_is_an_invalid_argument_and_still_a_value_error():
    with pytest.raises(QuantityError) as raised:
        parse_quantity("12", VOLTAGE)
    assert isinstance(raised.value, InvalidArgument)
    assert isinstance(raised.value, InterlockError)
    assert isinstance(raised.value, ValueError)  # callers written for the old base still work
    assert str(raised.value) == 'expected a voltage, got "12" (a bare number: add its unit)'


def test_a_line_too_long_is_an_invalid_request():
    assert issubclass(LineTooLong, InvalidRequest)
    assert not issubclass(LineTooLong, ValueError)


def test_an_invalid_argument_travels_the_wire_and_is_a_usage_error():
    error = InvalidArgument("set_watchdog: must be 0.05..5 s, got 7.0")
    assert status_of(error) == 422
    back = error_from_wire(error_to_wire(error), 422)
    assert type(back) is InvalidArgument and str(back) == str(error)
    assert exit_code_for(error) == exit_code_for(QuantityError("x")) == EXIT_USAGE


# -- the drivers' and the simulator's public argument checks -----------------------------


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda board: board.set_watchdog(7.0), "set_watchdog: must be 0.05..5 s, got 7.0"),
        (lambda board: board.set_watchdog("1 s"), "set_watchdog: expected seconds, got '1 s'"),
        (lambda board: board.set_watchdog(0.1005), "set_watchdog: whole milliseconds only"),
        (lambda board: board.set_watchdog(math.nan), "set_watchdog: must be 0.05..5 s, got nan"),
        (lambda board: board.load_forbidden([[]]), "load_forbidden: an empty combination"),
        (
            lambda board: board.load_forbidden([3] * 17),
            "load_forbidden: the board holds 16 combinations",
        ),
        (lambda board: board.load_forbidden([True]), "load_forbidden: expected channels or a bit"),
        (lambda board: board.load_forbidden([1 << 16]), "load_forbidden: mask 0x10000 outside"),
        (lambda board: board.load_forbidden([[1, 17]]), "load_forbidden: channel 17 outside 1..16"),
        (lambda board: board.load_forbidden([[1.0]]), "load_forbidden: channel must be an int"),
    ],
)
def test_the_relay_board_driver_refuses_bad_arguments_as_interlock_errors(call, message):
    board = RelayBoard("/dev/null")  # never opened: arguments are checked before any I/O
    with pytest.raises(InvalidArgument) as raised:
        call(board)
    assert str(raised.value).startswith(message)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"timeout": 0}, "Not a valid timeout: 0"),
        ({"timeout": math.inf}, "Not a valid timeout: inf"),
        ({"retries": -1}, "Not a valid retry count: -1"),
    ],
)
def test_the_relay_board_driver_constructor_refuses_bad_settings(options, message):
    with pytest.raises(InvalidArgument, match=message):
        RelayBoard("/dev/null", **options)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"watchdog": "500"}, "watchdog: expected a duration"),
        ({"watchdog": "6 s"}, "watchdog: the firmware accepts 50 ms..5 s"),
        ({"watchdog": math.inf}, "watchdog: not a finite duration"),
        ({"relays": 17}, "relays: expected 1..16"),
        ({"serial": ""}, "serial: expected up to 32 printable characters"),
        ({"hardware_watchdog": 0}, "hardware_watchdog: expected 0..10 s"),
    ],
)
def test_the_simulated_board_refuses_bad_arguments_as_interlock_errors(options, message):
    with pytest.raises(InvalidArgument, match=message):
        SimulatedRelayBoard(**options)
    with pytest.raises(InvalidArgument, match=r"channel: expected 1\.\.8, got 9"):
        SimulatedRelayBoard().weld(9)
