"""``interlock serve`` and the operator CLI: ``status``, ``arm``, ``disarm``, ``estop``, ``reset``.

``serve`` runs the controller service of a bench on the bench's Unix socket
(for a simulation bench, on the bench's simulator, a process of its own
that it starts if none runs), and on TCP only with ``--tcp HOST:PORT``: in
clear on a loopback address only, over TLS (``[service] tls_certificate``
and ``tls_key``) anywhere. The other commands talk to that service through
:mod:`interlock.client`, each with the token of its role (``--role``), and
head their output with the bench's name and environment class.

Only ``serve`` (and ``run``) start a service; the operator commands never
do: with none answering they say so and exit 4. ``status`` alone still shows
a bench whose file the loader refuses (half-way through an edit), from the
service that answers on it, the loader's error on stderr. Exit codes
(:mod:`interlock.exits`): 0 done, 2 usage or configuration (a ``serve``
where one already serves included), 3 refused (access, state, limit), 4
fault or no service.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from interlock.commands.common import add_bench_argument, banner, bench_file, command_bench
from interlock.errors import ConfigError, InterlockError
from interlock.exits import EXIT_FAULT, EXIT_USAGE, request_exit_code
from interlock.interrupts import put_back, say, take
from interlock.units import CURRENT, VOLTAGE, format_quantity

if TYPE_CHECKING:
    from interlock.client import Client
    from interlock.service.runtime import Service


def register(subparsers: argparse._SubParsersAction) -> None:
    serve = subparsers.add_parser(
        "serve",
        help="run the controller service of a bench (local API on its Unix socket)",
        description="Run the controller service: it owns the bench's instruments; clients "
        "talk to it over the bench's Unix socket. For a simulation bench it uses the bench's "
        "simulator, started in the background if none runs (it outlives the service).",
    )
    add_bench_argument(serve)
    serve.add_argument(
        "--tcp",
        metavar="HOST:PORT",
        type=_tcp,
        help="also listen on TCP (tokens are required there too); beyond loopback only "
        "with the bench's TLS certificate and key ([service] tls_certificate, tls_key)",
    )
    serve.add_argument(
        "--background",
        action="store_true",
        help="start the service detached and return once it answers (exit 2 if one "
        "already answers on the bench's socket)",
    )
    serve.set_defaults(handler=run_serve)

    stop = subparsers.add_parser(
        "stop",
        help="stop the bench's service (it drives the bench safe first)",
        description="Stop the controller service of a bench, started with `interlock serve "
        "--background` or by a client: SIGTERM to the pid it left next to its socket, then "
        "wait until it has driven the bench safe and exited. A simulation bench's simulator "
        "keeps running (its instruments), unless --sim.",
    )
    add_bench_argument(stop)
    stop.add_argument(
        "--sim", action="store_true", help="also stop the bench's simulator, once the service is"
    )
    stop.set_defaults(handler=run_stop)

    status = subparsers.add_parser(
        "status",
        help="show the bench's state, nets, relays and lease holder",
        description="Show the state of the bench, as its controller service sees it: each "
        "net's readings only as measured, with their age. Never starts a service: with none "
        "answering it says so (exit 4). A bench file that does not load (half-way through an "
        "edit) still shows the status of the service that answers on it, with the file's "
        "error on stderr.",
    )
    add_bench_argument(status)
    status.add_argument("--json", action="store_true", help="print the status as JSON")
    _add_role(status, "viewer")
    status.set_defaults(handler=run_status)

    arm = subparsers.add_parser(
        "arm",
        help="arm the bench (operator)",
        description="Arm the bench: pin the limits, check the DUT's identity and that all "
        "is off, program the protections. A flight bench needs its name typed.",
    )
    add_bench_argument(arm)
    arm.add_argument(
        "--confirm", metavar="NAME", help="the bench's name: the confirmation a flight bench needs"
    )
    _add_role(arm, "operator")
    arm.set_defaults(handler=run_arm)

    for name, role, helptext in (
        ("disarm", "operator", "disarm the bench (operator)"),
        ("estop", "viewer", "emergency stop: outputs off, relays open, fault latched (anyone)"),
        ("reset", "operator", "acknowledge a latched fault after the safe state is verified"),
    ):
        sub = subparsers.add_parser(name, help=helptext, description=helptext)
        add_bench_argument(sub)
        _add_role(sub, role)
        sub.set_defaults(handler=run_action, action=name)


def _add_role(parser: argparse.ArgumentParser, default: str) -> None:
    parser.add_argument(
        "--role",
        choices=("viewer", "script", "operator"),
        default=default,
        help=f"whose token to use (default: {default})",
    )


def _tcp(text: str) -> tuple[str, int]:
    from interlock.service.tcp import parse_tcp

    try:
        return parse_tcp(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


# -- serve ---------------------------------------------------------------------------


def run_stop(args: argparse.Namespace) -> int:
    from interlock.service.background import stop_service

    bench = command_bench(args)
    print(banner(bench), flush=True)
    try:
        said = stop_service(bench.service.socket)
        print(said, flush=True)
        if args.sim:
            from interlock.sim.process import stop_simulator

            print(stop_simulator(bench))
    except InterlockError as error:
        print(f"{type(error).__name__}: {error}", file=sys.stderr)
        return EXIT_FAULT
    return 0


def _already_serving(socket: Any) -> int:
    """A second service for one bench: a usage error, the first one left alone."""
    from interlock.service.background import pid_path

    try:
        pid = f"pid {int(pid_path(socket).read_text(encoding='ascii').strip())}, "
    except (OSError, ValueError):
        pid = ""
    print(
        f"AlreadyServing: a service already answers on {socket} ({pid}started earlier): "
        "nothing started; `interlock stop` ends it",
        file=sys.stderr,
    )
    return EXIT_USAGE


def run_serve(args: argparse.Namespace) -> int:
    if args.background:
        return _serve_in_the_background(args)
    with _stop_asked_while_starting() as started:
        return _serve_here(args, started)


def _serve_in_the_background(args: argparse.Namespace) -> int:
    from interlock.service.background import answers, log_path, start_background

    bench = command_bench(args)
    print(banner(bench), flush=True)
    settings = bench.service
    if answers(settings.socket):
        return _already_serving(settings.socket)
    tcp = f"{args.tcp[0]}:{args.tcp[1]}" if args.tcp else None
    pid = start_background(bench.path, settings.socket, tcp=tcp)
    if not _is_alive(pid):  # another starter won the race: its service is the one serving
        return _already_serving(settings.socket)
    print(f"service started in the background: pid {pid}, socket {settings.socket}")
    print(f"log {log_path(settings.socket)}")
    return 0


def _serve_here(args: argparse.Namespace, started: Callable[[Service], Service]) -> int:
    bench = command_bench(args)
    with contextlib.suppress(OSError):  # hung up already: its terminal is gone
        print(banner(bench), flush=True)
    settings = bench.service

    from interlock.service.runtime import Service
    from interlock.service.server import AlreadyServing, serve

    def ready(addresses: list[str]) -> None:
        where = " and ".join(addresses)
        stops = "SIGINT, SIGTERM or SIGHUP stops"
        with contextlib.suppress(OSError):  # hung up already: its terminal is gone
            print(f"serving on {where}; tokens in {settings.tokens}; {stops}", flush=True)

    try:
        serve(started(Service(bench_file(args), guardian=True)), tcp=args.tcp, ready=ready)
    except AlreadyServing:
        return _already_serving(settings.socket)
    # Stopped by SIGHUP, its terminal is gone: nothing to say it to, and the stop is done.
    with contextlib.suppress(OSError):
        print("service stopped; the bench was driven to the safe state", flush=True)
        if bench.environment == "simulation":
            print("its simulator keeps running (`interlock sim stop` ends it)", flush=True)
    return 0


@contextlib.contextmanager
def _stop_asked_while_starting() -> Iterator[Callable[[Service], Service]]:
    """SIGINT, SIGTERM or SIGHUP before the server's own handlers are in (the journal
    opened, the instruments connected, the guardian spawned: a second or more) stops
    the service as soon as it serves, cleanly, rather than kill it half started (its
    guardian would then act, and the next start find it did not stop cleanly). Ctrl-C
    after any of them stops the start at once, as before. The yielded function hands
    the service over once made; the server's handlers replace these while it serves,
    and these are put back after (they take the stop during the close, too)."""
    noted: list[int] = []
    asked: queue.SimpleQueue[int | None] = queue.SimpleQueue()
    made: list[Service] = []

    def note(signum: int, frame: object) -> None:
        # No lock here (the stopping flag's would deadlock with the main thread setting
        # it as the close begins): a queue's put may be called from a handler.
        if signum == signal.SIGINT and noted:
            raise KeyboardInterrupt  # whoever presses Ctrl-C now will not wait
        noted.append(signum)
        name = signal.Signals(signum).name
        say(
            f"interlock: {name} noted: the service stops cleanly as soon as it serves "
            "(Ctrl-C to stop at once)"
        )
        asked.put(signum)

    def stop_them() -> None:
        while asked.get() is not None:
            for service in made:
                service.stopping.set()

    def started(service: Service) -> Service:
        made.append(service)
        if noted:
            service.stopping.set()
        return service

    if threading.current_thread() is not threading.main_thread():
        yield started
        return
    stopper = threading.Thread(target=stop_them, name="interlock-stop-asked", daemon=True)
    stopper.start()
    previous = take(note)
    try:
        yield started
    finally:
        put_back(previous)
        asked.put(None)
        stopper.join()


def _is_alive(pid: int) -> bool:
    """Whether our child ``pid`` still runs (reaped here if it has ended)."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return False
    return done == 0


# -- the operator CLI ----------------------------------------------------------------------


def _client(args: argparse.Namespace) -> Client:
    # Imported here: the other commands need no HTTP client. Never started from here:
    # starting the bench's service is someone's decision (`serve`, or `run`).
    from interlock.client import connect

    return connect(bench_file(args), role=args.role, start=False)


def _refused(error: InterlockError) -> int:
    """Refusals (access, state, limits) exit 3; a fault or a missing service, 4."""
    print(f"{type(error).__name__}: {error}", file=sys.stderr)
    return request_exit_code(error)


def run_status(args: argparse.Namespace) -> int:
    try:
        bench = command_bench(args)
    except ConfigError as error:
        shown = _status_despite(args, error)
        if shown is None:
            raise
        return shown
    if not args.json:
        print(banner(bench))
    try:
        with _client(args) as client:
            status = client.status()
    except InterlockError as error:
        return _refused(error)
    if args.json:
        print(json.dumps(status, indent=2))
    else:
        print(render_status(status))
    return 0


def _status_despite(args: argparse.Namespace, error: ConfigError) -> int | None:
    """The status of a bench whose file the loader refuses (being edited, say), or None.

    Its service runs on the file as it was when it started and needs nothing of it now:
    it is found as the emergency stop finds it, by the file's lines if need be
    (:func:`interlock.commands.estop.find_service`). None when that finds no socket and
    tokens, or nothing answers there: the ConfigError is then all there is to say. A
    service that answers with an error (a token it does not take, say) is that error, as
    with a file that loads, with the loader's error beside it.
    """
    from interlock.commands.estop import Refused, ask_service, banner_of, find_service
    from interlock.service.tokens import read_token
    from interlock.service.wire import error_from_wire

    path = bench_file(args)
    found = find_service(path)
    if found is None:
        return None
    settings, _ = found
    note = (
        f"interlock: the bench file does not load: {error}\n"
        "interlock: its service runs on the file as it was when the service started; "
        f"`interlock check --bench {path}` shows the problem"
    )
    try:
        status = ask_service(settings, read_token(settings.tokens, args.role), "status")
    except Refused as refused:  # the service is there, and says no: say what it said
        print(note, file=sys.stderr)
        return _refused(error_from_wire(refused.body, 0))
    except (InterlockError, OSError, ValueError, RecursionError):
        return None  # no token file, no service, or not an answer
    if args.json:
        print(json.dumps(status, indent=2))
    else:
        print(banner_of(status, settings))
        print(render_status(status))
    print(note, file=sys.stderr)
    return 0


def run_arm(args: argparse.Namespace) -> int:
    bench = command_bench(args)
    print(banner(bench))
    confirm = args.confirm
    if bench.environment == "flight" and confirm is None and sys.stdin.isatty():
        confirm = input(f"type the bench name ({bench.name}) to arm this FLIGHT bench: ").strip()
    try:
        with _client(args) as client:
            client.arm(confirm=confirm)
            status = client.status()
    except InterlockError as error:
        return _refused(error)
    print(f"armed by {status['you']['who']}; run {status['run']}")
    return 0


def run_action(args: argparse.Namespace) -> int:
    bench = command_bench(args)
    print(banner(bench))
    try:
        with _client(args) as client:
            status = getattr(client, args.action)()
            if args.action != "estop":  # the stop answers with the status after it
                status = client.status()
    except InterlockError as error:
        return _refused(error)
    done = {"disarm": "disarmed", "estop": "emergency stop done", "reset": "fault reset"}
    print(f"{done[args.action]}: state {status['state']}" + _fault_suffix(status))
    return 0


def _fault_suffix(status: dict[str, Any]) -> str:
    return f" ({status['fault']})" if status.get("fault") else ""


def _journal_text(journal: dict[str, Any]) -> str:
    """``writing``, or why not and what waits unwritten; then what went unrecorded."""
    lost = journal.get("not_writing")
    said = ["writing"] if lost is None else [f"NOT WRITING: {lost}"]
    if lost is not None and journal.get("staged"):  # while it writes, a few always wait
        said.append(f"{journal['staged']} entries wait unwritten")
    if journal.get("not_kept"):
        said.append(f"{journal['not_kept']} entries not kept (the journal could not take them)")
    if journal.get("unjournaled"):
        said.append(f"{journal['unjournaled']} off commands went out without their record")
    return "; ".join(said)


def render_status(status: dict[str, Any]) -> str:
    lease = status.get("lease")
    service = status.get("service") or {}
    lines = [
        f"state     {status['state']}" + _fault_suffix(status),
        f"profile   {status['profile']['name']} ({status['profile']['path']})",
        f"run       {status.get('run') or '-'}",
        "lease     "
        + (
            f"{lease['who']} ({lease['client']}), held {lease['held_for']:g} s, "
            f"expires in {lease['expires_in']:g} s"
            if lease
            else "none"
        ),
    ]
    if status.get("journal"):  # from a service older than the line: none
        lines.append(f"journal   {_journal_text(status['journal'])}")
    if service.get("connect_error"):
        lines.append(f"connect   {service['connect_error']}")
    rows = [["net", "supply", "setpoint", "current limit", "output", "measured"]]
    for net, info in status["nets"].items():
        if info["supply"] is None:
            continue
        rows.append(
            [
                net,
                info["supply"],
                format_quantity(info["setpoint"], VOLTAGE),
                format_quantity(info["current_limit"], CURRENT),
                "on" if info["output"] else "off",
                reading_text(info.get("measured")),
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines.append("")
    lines += [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    closed = [relay for relay, is_closed in status["relays"].items() if is_closed]
    lines += ["", f"relays closed: {', '.join(closed)}" if closed else "relays: all open"]
    return "\n".join(lines)


def reading_text(measured: dict[str, Any] | None) -> str:
    """A net's reading as measured, with its age; ``-`` when none describes the net now.

    The service gives a reading only if nothing was commanded to the net since it
    was taken (:meth:`Controller.status`): never a live value on an off net.
    """
    if not measured:
        return "-"
    age = measured.get("age")
    when = f"{age:.2f} s ago" if isinstance(age, int | float) else "age unknown"
    of = "" if measured.get("output", True) else "off output, "
    return (
        f"{format_quantity(measured['voltage'], VOLTAGE)} "
        f"{format_quantity(measured['current'], CURRENT)} ({of}{when})"
    )
