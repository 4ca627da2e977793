"""``interlock sim``: the simulated bench, a process of its own, and acting on it while it runs.

``interlock sim start`` serves the bench's instruments (by default on the
ports its resource strings name) until SIGINT, SIGTERM or SIGHUP; ``--background``
starts the simulator detached on free ports, as the bench's service does
when it finds none, or finds the one running. Either way the simulator
writes ``sim.json`` in the bench's run directory (next to the service
socket: resources, control socket, pid, bench file hash) and serves its
control channel on ``sim.sock`` there (see :mod:`interlock.sim.process`).
``inject``, ``clear`` and ``truth`` act on that simulator, the one the
bench's service uses (or on ``--control SOCKET``); ``stop`` ends it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import signal
import socket
import sys
import threading
from typing import Any

from interlock.commands.common import add_bench_argument, banner, command_bench
from interlock.config import Bench
from interlock.errors import SimulatorError
from interlock.exits import EXIT_USAGE
from interlock.sim import faults
from interlock.sim.client import SimulatorClient, state_path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "sim",
        help="the simulated bench: start and stop it, inject faults, read its ground truth",
        description="Run the simulated bench of a simulation bench and act on it.",
    )
    actions = parser.add_subparsers(dest="sim_command", metavar="ACTION", required=True)

    start = actions.add_parser(
        "start",
        help="serve the bench's simulated instruments (until SIGINT/SIGTERM, or detached)",
        description="Serve the simulated instruments of a simulation bench. The bench's "
        "service and the other sim commands find it through sim.json in the bench's run "
        "directory.",
        epilog=_fault_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_bench_argument(start)
    start.add_argument("--background", action="store_true",
                       help="start it detached (free ports), or find the one running; "
                       "return once it answers")
    start.add_argument("--fault", action="append", default=[], metavar="SPEC", type=_fault_spec,
                       help="inject this fault from the start (repeatable; syntax below)")
    start.add_argument("--json", action="store_true",
                       help="first stdout line: JSON with the resources and the control socket")
    start.add_argument("--ports", choices=("bench", "free"), default=None,
                       help="TCP ports: those of bench.toml (default in the foreground) or "
                       "free ones (always in the background)")
    start.add_argument("--seed", type=int, default=None, help="seed of the measurement noise")
    # The bound control socket, handed over by a starter (interlock.sim.process).
    start.add_argument("--control-fd", type=int, default=None, help=argparse.SUPPRESS)
    start.set_defaults(handler=run_start)

    stop = actions.add_parser(
        "stop", help="stop the bench's simulator (a service using it trips)",
        description="Stop the bench's simulator: its relays open and its instruments go. "
        "A service using it sees them vanish and trips to its safe state.")
    add_bench_argument(stop)
    stop.set_defaults(handler=run_stop)

    for name, helptext in (("inject", "inject a fault into the running simulator"),
                           ("clear", "clear one fault (or all) in the running simulator")):
        sub = actions.add_parser(name, help=helptext, description=helptext, epilog=_fault_help(),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
        sub.add_argument("spec", metavar="SPEC", nargs="?" if name == "clear" else None,
                         type=_fault_spec if name == "inject" else _cleared_spec,
                         help="fault SPEC" + (" (default: all)" if name == "clear" else ""))
        _add_target_arguments(sub)
        sub.set_defaults(handler=run_inject if name == "inject" else run_clear)

    truth = actions.add_parser(
        "truth", help="print the running simulator's ground truth",
        description="What the simulated bench really did: nets, supply channels, relays, "
        "the relay board's firmware; with --history, one net's samples and every state change.")
    _add_target_arguments(truth)
    truth.add_argument("--json", action="store_true", help="print JSON (for tools)")
    truth.add_argument("--history", metavar="NET",
                       help="the net's voltage and current over the history ring, with every "
                       "state change of the bench")
    truth.add_argument("--since", metavar="SECONDS", type=_seconds,
                       help="with --history: only the last SECONDS")
    truth.set_defaults(handler=run_truth)


def _fault_spec(text: str, *, for_clear: bool = False) -> str:
    """A fault SPEC checked here: a bad one is a usage error (exit 2), whatever runs."""
    try:
        faults.parse_fault(text, for_clear=for_clear)
    except SimulatorError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _cleared_spec(text: str) -> str:
    return _fault_spec(text, for_clear=True)


def _fault_help() -> str:
    text = faults.__doc__ or ""
    start = text.find("A SPEC is")
    return "fault SPEC syntax:\n" + text[start:] if start >= 0 else ""


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _add_target_arguments(parser: argparse.ArgumentParser) -> None:
    add_bench_argument(parser)
    parser.add_argument("--control", metavar="SOCKET",
                        help="control socket of the simulator (default: from its state file)")


def _client(args: argparse.Namespace) -> SimulatorClient:
    if args.control:
        return SimulatorClient(args.control)
    return SimulatorClient.of_bench(command_bench(args))


# --- start and stop ---------------------------------------------------------------------


def run_start(args: argparse.Namespace) -> int:
    bench = command_bench(args)
    if args.background:
        return _start_background(args, bench)
    from interlock.sim.host import SimulatorHost

    sock = None
    if args.control_fd is not None:
        try:
            sock = socket.socket(fileno=args.control_fd)
        except OSError as exc:
            raise SimulatorError(f"--control-fd {args.control_fd}: {exc}") from exc
    stop = threading.Event()
    # SIGHUP: its terminal closed (a remote session ended): stopped, as by the others.
    previous = {sig: signal.signal(sig, lambda *_: stop.set())
                for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        with SimulatorHost(bench, faults=args.fault, ports=args.ports or "bench",
                           seed=args.seed, control_socket=sock) as host:
            assert host.state is not None
            description = {**host.state.as_dict(), "state_file": str(state_path(bench))}
            if args.json:
                print(json.dumps(description), flush=True)
            else:
                _print_description(bench, description)
                with contextlib.suppress(OSError):  # hung up already: its terminal is gone
                    print("running; Ctrl-C to stop", flush=True)
            while not stop.wait(0.5):
                pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if not args.json:
        with contextlib.suppress(OSError):  # stopped by SIGHUP: its terminal is gone
            print("simulator stopped; its instruments are gone", flush=True)
    return 0


def _start_background(args: argparse.Namespace, bench: Bench) -> int:
    from interlock.sim.process import ensure_simulator, find_simulator, log_path

    for given, why in ((args.ports == "bench", "--background serves on free ports"),
                       (args.seed is not None, "--seed is for a simulator in the foreground")):
        if given:
            print(f"interlock sim start: {why}", file=sys.stderr)
            return EXIT_USAGE
    already = find_simulator(bench)
    if args.fault and already is not None:
        raise SimulatorError("a simulator is already running for this bench: inject faults "
                             "into it with `interlock sim inject`")
    client = ensure_simulator(bench)
    for spec in args.fault if already is None else ():
        client.inject(spec)
    state = client.describe()
    description = {**state.as_dict(), "state_file": str(state_path(bench)),
                   "log": str(log_path(bench))}
    if args.json:
        print(json.dumps(description), flush=True)
        return 0
    _print_description(bench, description)
    word = "already running" if already is not None else "started in the background"
    print(f"simulator {word}: pid {state.pid}; log {log_path(bench)}; "
          "`interlock sim stop` ends it")
    return 0


def _print_description(bench: Bench, description: dict[str, Any]) -> None:
    print(banner(bench))
    for name, where in description["resources"].items():
        print(f"  {name:<10} {where}")
    print(f"  control    {description['control']}  (state: {description['state_file']})")
    for spec in description.get("faults", []):
        print(f"  fault      {spec}")
    sys.stdout.flush()


def run_stop(args: argparse.Namespace) -> int:
    from interlock.service.background import answers
    from interlock.sim.process import stop_simulator

    bench = command_bench(args)
    print(banner(bench), flush=True)
    said = stop_simulator(bench)
    print(said)
    if said.startswith("simulator stopped") and answers(bench.service.socket):
        print("the bench's service is still running: it has lost its instruments and trips "
              "to its safe state (`interlock stop` ends it)")
    return 0


# --- acting on the running simulator ------------------------------------------------------


def run_inject(args: argparse.Namespace) -> int:
    active = _client(args).inject(args.spec)
    print(f"injected {args.spec}; active faults: {', '.join(active) or 'none'}")
    return 0


def run_clear(args: argparse.Namespace) -> int:
    active = _client(args).clear(args.spec)
    what = args.spec or "all faults"
    print(f"cleared {what}; active faults: {', '.join(active) or 'none'}")
    return 0


def run_truth(args: argparse.Namespace) -> int:
    from interlock.sim.render import render_history, render_truth

    if args.since is not None and args.history is None:
        print("interlock sim truth: --since goes with --history NET", file=sys.stderr)
        return EXIT_USAGE
    client = _client(args)
    if args.history is not None:
        history = client.history(args.history, args.since)
        if args.json:
            json.dump(history.as_dict(), sys.stdout, indent=2)
            print()
        else:
            print(render_history(history))
        return 0
    truth = client.truth()
    if args.json:
        json.dump(truth, sys.stdout, indent=2)
        print()
    else:
        if not args.control:
            print(banner(command_bench(args)))
        print(render_truth(truth))
    return 0
