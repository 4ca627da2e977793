"""``interlock sim``: run the simulated bench and act on it while it runs.

``interlock sim start`` serves the bench's instruments (by default on the
ports its resource strings name, so the controller finds them where
bench.toml says) and runs until SIGINT or SIGTERM. It writes a state file,
``sim.json`` in the bench's run directory (next to the service socket), with
the resources (the relay board's pty path among them) and the address of the
control channel; ``inject``, ``clear`` and ``truth`` find the simulator
through it (or through ``--control HOST:PORT``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from interlock.commands.common import add_bench_argument, banner
from interlock.config import Bench, load_bench
from interlock.errors import SimulatorError
from interlock.sim import control, faults
from interlock.sim.bench import SimulatedBench

STATE_FILE = "sim.json"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "sim",
        help="run the simulated bench; inject faults; read its ground truth",
        description="Run the simulated bench and act on the running simulator.",
    )
    actions = parser.add_subparsers(dest="sim_command", metavar="ACTION", required=True)

    start = actions.add_parser(
        "start",
        help="serve the bench's instruments until SIGINT/SIGTERM",
        description="Serve the simulated instruments of a simulation bench.",
        epilog=_fault_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_bench_argument(start)
    start.add_argument("--fault", action="append", default=[], metavar="SPEC",
                       help="inject this fault from the start (repeatable; syntax below)")
    start.add_argument("--json", action="store_true",
                       help="first stdout line: JSON with the resources and the control channel")
    start.add_argument("--ports", choices=("bench", "free"), default="bench",
                       help="TCP ports: those of bench.toml (default) or free ones")
    start.add_argument("--seed", type=int, default=None, help="seed of the measurement noise")
    start.set_defaults(handler=run_start)

    for name, helptext in (("inject", "inject a fault into the running simulator"),
                           ("clear", "clear one fault (or all) in the running simulator")):
        sub = actions.add_parser(name, help=helptext, description=helptext, epilog=_fault_help(),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
        sub.add_argument("spec", metavar="SPEC", nargs="?" if name == "clear" else None,
                         help="fault SPEC" + (" (default: all)" if name == "clear" else ""))
        _add_target_arguments(sub)
        sub.set_defaults(handler=run_inject if name == "inject" else run_clear)

    truth = actions.add_parser("truth", help="print the running simulator's ground truth (JSON)")
    _add_target_arguments(truth)
    truth.set_defaults(handler=run_truth)


def _fault_help() -> str:
    text = faults.__doc__ or ""
    start = text.find("A SPEC is")
    return "fault SPEC syntax:\n" + text[start:] if start >= 0 else ""


def _add_target_arguments(parser: argparse.ArgumentParser) -> None:
    add_bench_argument(parser)
    parser.add_argument("--control", metavar="HOST:PORT",
                        help="control channel of the simulator (default: from its state file)")


def state_path(bench: Bench) -> Path:
    """Where ``sim start`` records its resources: the bench's run directory."""
    return bench.service.socket.parent / STATE_FILE


def run_start(args: argparse.Namespace) -> int:
    bench = load_bench(args.bench)
    state = state_path(bench)
    _refuse_if_running(state)
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with SimulatedBench(bench, faults=args.fault, ports=args.ports, seed=args.seed,
                            control=True) as sim:
            description = {**sim.describe(), "state_file": str(state), "pid": os.getpid()}
            state.parent.mkdir(parents=True, exist_ok=True)
            _write_private(state, json.dumps(description, indent=2) + "\n")
            try:
                if args.json:
                    print(json.dumps(description), flush=True)
                else:
                    print(banner(bench))
                    for name, where in sim.resources.items():
                        print(f"  {name:<10} {where}")
                    print(f"  control    {sim.control_address}  (state: {state})")
                    for spec in sim.faults():
                        print(f"  fault      {spec}")
                    print("running; Ctrl-C to stop", flush=True)
                while not stop.wait(0.5):
                    pass
            finally:
                with contextlib.suppress(OSError, ValueError):
                    if json.loads(state.read_text()).get("pid") == os.getpid():
                        state.unlink()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def _refuse_if_running(state: Path) -> None:
    try:
        address = json.loads(state.read_text(encoding="utf-8"))["control"]
    except (OSError, ValueError, KeyError, TypeError):
        return
    try:
        control.request(address, {"op": "faults"}, timeout=1.0)
    except SimulatorError:
        return  # a stale state file: its simulator is gone
    raise SimulatorError(
        f"a simulator for this bench is already running (control {address}, state {state})"
    )


def _control_address(args: argparse.Namespace) -> str:
    if args.control:
        return str(args.control)
    bench = load_bench(args.bench)
    state = state_path(bench)
    try:
        return str(json.loads(state.read_text(encoding="utf-8"))["control"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SimulatorError(
            f"no running simulator for bench {bench.name}: cannot read {state} "
            "(start one with: interlock sim start)"
        ) from exc


def _request(args: argparse.Namespace, message: dict[str, Any]) -> dict[str, Any]:
    return control.request(_control_address(args), message)


def run_inject(args: argparse.Namespace) -> int:
    reply = _request(args, {"op": "inject", "spec": args.spec})
    print(f"injected {args.spec}; active faults: {', '.join(reply['faults']) or 'none'}")
    return 0


def run_clear(args: argparse.Namespace) -> int:
    reply = _request(args, {"op": "clear", "spec": args.spec})
    what = args.spec or "all faults"
    print(f"cleared {what}; active faults: {', '.join(reply['faults']) or 'none'}")
    return 0


def run_truth(args: argparse.Namespace) -> int:
    reply = _request(args, {"op": "truth"})
    json.dump(reply["truth"], sys.stdout, indent=2)
    print()
    return 0
