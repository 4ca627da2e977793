"""The guardian: a process of its own that turns every supply output off when the
controller service dies, whatever the cause.

The relay board's watchdog opens the relays when the service falls silent,
but a supply left on behind them still feeds the DUT through a welded relay,
and stays on until someone restarts the service. So the service starts a
guardian beside it, a small process independent of the service's state,
holding the reading end of a pipe whose writing end only the service holds.
The kernel closes that end when the service dies (killed, crashed, out of
memory): the guardian reads end-of-file at once, asks each supply who it is,
turns every wired output off in the profile's power-off order, each supply
in its own dialect through the driver registry, with one exchange per supply
where the dialect can (all supplies at once), reads them back and journals
what it did (the off commands go out even when the journal cannot take
them: they are flagged and written when it can). Then it opens every relay of
each switch unit that has no watchdog of its own (a DAQ970A, a Numato
module), which nothing else would open. A service that stops
cleanly tells the guardian to stand down first.

The guardian knows only bench.toml and the profile as they were when it
started (read once, by itself), the instruments' resources, and the journal:
nothing of the service's memory.

Run by the service (:class:`Guardian`); on its own for tests and tools::

    python -m interlock.guardian --bench bench.toml [--resources JSON]

It prints ``ready`` on standard output once armed, then waits on standard
input: a line ``stand-down`` ends it quietly; end-of-file makes it act.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from interlock.config import Configuration, Identity, load_configuration
from interlock.errors import InterlockError, JournalError
from interlock.limits.measurements import same_instrument
from interlock.output_file import OutputFile

log = logging.getLogger(__name__)

STAND_DOWN = b"stand-down\n"
READY = b"ready\n"
# How long a guardian being started may take to say it is armed.
START_TIMEOUT_S = 30.0
# How long the last records of what it did may wait for the journal.
LATE_RECORD_WAIT_S = 2.0


@dataclass(frozen=True)
class SupplyToGuard:
    name: str
    resource: str
    identity: Identity
    channels: tuple[int, ...]  # wired channels, in the profile's power-off order
    nets: tuple[str, ...]  # the net each channel feeds
    driver: str = "supply"  # the registered driver that speaks its dialect
    dialect: str = "keysight-e36300"


@dataclass(frozen=True)
class SwitchToGuard:
    """A switch unit with no watchdog of its own: nothing else opens it when the service
    dies."""

    name: str
    resource: str
    identity: Identity
    driver: str
    dialect: str


@dataclass(frozen=True)
class GuardPlan:
    """Everything the guardian needs, fixed when it starts."""

    bench: str
    journal: Path
    io_timeout: float
    supplies: tuple[SupplyToGuard, ...]
    switches: tuple[SwitchToGuard, ...] = ()


@dataclass
class GuardReport:
    """What the guardian did, supply by supply."""

    started: float
    off: list[str] = field(default_factory=list)  # "psu CH1 (VLOGIC) off"
    problems: list[str] = field(default_factory=list)
    finished: float = 0.0

    @property
    def verified(self) -> bool:
        return not self.problems


def plan_for(configuration: Configuration, resources: Mapping[str, str] | None = None) -> GuardPlan:
    """The supplies to turn off: every wired channel, the profile's power-off order first."""
    bench = configuration.bench
    resources = resources or {}
    wired: dict[str, list[tuple[int, str]]] = {}
    for channel in configuration.power_off_channels:  # the safe state's order too
        wired.setdefault(channel.supply, []).append((channel.channel, channel.net))
    supplies = []
    for name, channels in wired.items():
        instrument = bench.instruments[name]
        supplies.append(
            SupplyToGuard(
                name=name,
                resource=resources.get(name) or instrument.where,
                identity=instrument.identity,
                channels=tuple(c for c, _ in channels),
                nets=tuple(n for _, n in channels),
                driver=instrument.driver,
                dialect=instrument.dialect,
            )
        )
    from interlock.dialects import dialects

    switches = tuple(
        SwitchToGuard(i.name, resources.get(i.name) or i.where, i.identity, i.driver, i.dialect)
        for i in bench.instruments_of("switch")
        if not dialects()[i.dialect].capabilities.watchdog  # a board's watchdog acts itself
        and any(r.board == i.name for r in bench.relays.values())
    )
    return GuardPlan(
        bench=bench.name,
        journal=bench.service.journal,
        io_timeout=bench.service.io_timeout,
        supplies=tuple(supplies),
        switches=switches,
    )


def _turn_off(supply: SupplyToGuard, journal, timeout: float, report: GuardReport) -> None:
    # Imported here: the guardian's start should not wait for what only acting needs.
    from interlock.dialects import dialects
    from interlock.drivers.registry import DriverSpec, build

    spec = DriverSpec(supply.name, dialects()[supply.dialect], supply.resource, journal, timeout)
    psu = build(supply.driver, spec, file="bench.toml", key=f"instruments.{supply.name}.driver")
    try:
        psu.open()
        seen = psu.identify().identity
        if not same_instrument(supply.identity, seen):
            # Not who bench.toml names: it may belong to another bench. Left alone.
            report.problems.append(
                f"{supply.name}: answers as {seen}, not {supply.identity}: not commanded"
            )
            return
        still_on = psu.outputs_off(list(supply.channels), purpose="guardian")
        for channel, net, on in zip(supply.channels, supply.nets, still_on, strict=True):
            line = f"{supply.name} CH{channel} ({net}) output {'still on' if on else 'off'}"
            (report.problems if on else report.off).append(line)
    except InterlockError as error:
        report.problems.append(f"{supply.name}: {error}")
    finally:
        psu.close()


def _open_relays(unit: SwitchToGuard, journal, timeout: float, report: GuardReport) -> None:
    from interlock.dialects import dialects
    from interlock.drivers.registry import DriverSpec, build

    spec = DriverSpec(
        unit.name, dialects()[unit.dialect], unit.resource, journal, timeout, unit.identity.model
    )
    switch = build(unit.driver, spec, file="bench.toml", key=f"instruments.{unit.name}.driver")
    try:
        switch.open()
        seen = switch.identify().identity
        if not same_instrument(unit.identity, seen):
            report.problems.append(
                f"{unit.name}: answers as {seen}, not {unit.identity}: not commanded"
            )
            return
        switch.open_all(purpose="guardian")  # read back by the driver
        report.off.append(f"{unit.name} relays open")
    except InterlockError as error:
        report.problems.append(f"{unit.name}: {error}")
    finally:
        switch.close()


def act(plan: GuardPlan, journal, *, why: str) -> GuardReport:
    """Every supply at once: identify, all wired outputs off in one exchange, read back."""
    report = GuardReport(started=time.monotonic())
    threads = [
        threading.Thread(
            target=_turn_off, args=(supply, journal, plan.io_timeout, report),
            name=f"guardian-{supply.name}", daemon=True,
        )
        for supply in plan.supplies
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=plan.io_timeout * 4 + 1)
    for supply, thread in zip(plan.supplies, threads, strict=True):
        if thread.is_alive():
            report.problems.append(f"{supply.name}: still not answering")
    # Then the switch units that have no watchdog (the outputs behind them are off now).
    for unit in plan.switches:
        _open_relays(unit, journal, plan.io_timeout, report)
    report.finished = time.monotonic()
    detail = (
        f"{why}; guardian turned off: {', '.join(report.off) or 'nothing'}"
        + (f"; not verified: {'; '.join(report.problems)}" if report.problems else "")
    )
    try:
        with journal.waiting_at_most(LATE_RECORD_WAIT_S):
            journal.fault("service-died", detail, verified=report.verified)
    except JournalError as error:
        log.critical("guardian: cannot journal what it did (%s): %s", error, detail)
        with contextlib.suppress(JournalError):  # staged: its close tries once more
            journal.fault("service-died", detail, verified=report.verified, durable=False)
    return report


# -- the process --------------------------------------------------------------------


def _wait_for_the_service() -> bool:
    """Block until the service stands the guardian down (True) or dies (False)."""
    received = b""
    while True:
        try:
            chunk = os.read(0, 64)
        except InterruptedError:
            continue
        except OSError:
            return False
        if not chunk:
            return False
        received += chunk
        if STAND_DOWN in received:
            return True
        received = received[-len(STAND_DOWN) :]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m interlock.guardian",
        description="Turn every supply output off when the controller service dies.",
    )
    parser.add_argument("--bench", required=True, help="bench.toml the service runs")
    parser.add_argument("--resources", default="{}", help="JSON: instrument -> resource")
    parser.add_argument("--service-pid", type=int, default=0, help="for the record")
    parser.add_argument("--log", type=Path, help="its standard error's file, kept there")
    args = parser.parse_args(argv)
    # Known now, while the file is where the service opened it: removed by the time the
    # guardian acts (rm -rf run/), its report goes where it is looked for.
    output = OutputFile(args.log) if args.log is not None else None
    logging.basicConfig(level=logging.WARNING,
                        format="%(asctime)s %(levelname)s guardian: %(message)s")
    # Nothing but end-of-file or a stand-down ends the wait: not a terminal's Ctrl-C.
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        configuration = load_configuration(args.bench)
        plan = plan_for(configuration, json.loads(args.resources))
        from interlock.drivers.visa import resource_manager
        from interlock.journal import Journal

        resource_manager()  # opened now: slow, and not needed until the moment counts
        journal = Journal(plan.journal, bench=plan.bench, actor="guardian")
    except (InterlockError, ValueError) as error:
        print(f"guardian: cannot start: {type(error).__name__}: {error}", file=sys.stderr)
        return 2
    try:
        os.write(1, READY)
        if _wait_for_the_service():
            return 0
        who = f"service pid {args.service_pid}" if args.service_pid else "the service"
        report = act(plan, journal, why=f"{who} died")
        if output is not None:  # after the outputs are off: nothing slows them
            with contextlib.suppress(OSError):
                output.keep()
        outcome = "verified" if report.verified else "NOT verified: " + "; ".join(report.problems)
        print(
            f"guardian: {who} died; outputs off in {report.finished - report.started:.3f} s "
            f"({outcome})",
            file=sys.stderr,
            flush=True,
        )
        return 0 if report.verified else 4
    finally:
        journal.close()


class Guardian:
    """The service's handle on its guardian process: started armed, stood down on a clean stop."""

    def __init__(self, bench_path: Path, resources: Mapping[str, str] | None, log_file: Path):
        self.bench_path = Path(bench_path)
        self.resources = dict(resources or {})
        self.log_file = Path(log_file)
        self.pid: int | None = None
        self._pipe: int | None = None  # the writing end: only this process holds it
        self._ready: int | None = None  # the guardian's standard output
        self._standing_down = False
        self._watched = False

    def start(self, timeout: float = START_TIMEOUT_S) -> Guardian:
        """Spawn it and wait until it says it is armed (InterlockError otherwise)."""
        return self.spawn().wait_ready(timeout)

    def spawn(self) -> Guardian:
        """Start the process; :meth:`wait_ready` then waits for it to be armed."""
        down_r, down_w = os.pipe()  # service -> guardian: stand-down, or end-of-file
        ready_r, ready_w = os.pipe()  # guardian -> service: ready, then end-of-file at its end
        argv = [
            sys.executable, "-m", "interlock.guardian",
            "--bench", str(self.bench_path.resolve()),
            "--resources", json.dumps(self.resources),
            "--service-pid", str(os.getpid()),
            "--log", str(self.log_file.resolve()),
        ]  # fmt: skip
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        try:
            # A session of its own: a terminal's signals to the service's group don't reach it.
            self.pid = os.posix_spawn(
                sys.executable,
                argv,
                os.environ,
                file_actions=[
                    (os.POSIX_SPAWN_DUP2, down_r, 0),
                    (os.POSIX_SPAWN_DUP2, ready_w, 1),
                    (os.POSIX_SPAWN_OPEN, 2, str(self.log_file),
                     os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600),
                ],
                setsid=True,
            )  # fmt: skip
        except BaseException:
            for fd in (down_w, ready_r):
                os.close(fd)
            raise
        finally:
            os.close(down_r)
            os.close(ready_w)
        self._pipe, self._ready = down_w, ready_r
        return self

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> Guardian:
        try:
            self._await_ready(timeout)
        except BaseException:
            self.stand_down()
            raise
        return self

    def _await_ready(self, timeout: float) -> None:
        import select

        assert self._ready is not None
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise InterlockError(f"the guardian did not say it was ready within {timeout:g} s")
            readable, _, _ = select.select([self._ready], [], [], remaining)
            if readable:
                data = os.read(self._ready, 64)
                if data.startswith(READY):
                    return
                raise InterlockError(
                    f"the guardian did not start (see {self.log_file}): {data[:200]!r}"
                )

    def watch(self, on_death) -> None:
        """Call ``on_death()`` (from a thread of its own) if the guardian ends unasked.

        Its standard output stays open for its life: end-of-file means it is gone.
        """

        def wait() -> None:
            ready = self._ready
            if ready is None:
                return
            try:
                while os.read(ready, 64):
                    pass
            except OSError:
                pass
            finally_close = self._ready
            self._ready = None
            with contextlib.suppress(OSError):
                os.close(finally_close)
            if not self._standing_down:
                on_death()

        self._watched = True
        threading.Thread(target=wait, name="guardian-watch", daemon=True).start()

    @property
    def running(self) -> bool:
        if self.pid is None:
            return False
        try:
            done, _ = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            return False
        return done == 0

    def stand_down(self, timeout: float = 5.0) -> None:
        """A clean stop: the guardian ends without acting."""
        self._standing_down = True
        pipe, self._pipe = self._pipe, None
        if pipe is not None:
            with contextlib.suppress(OSError):
                os.write(pipe, STAND_DOWN)
            os.close(pipe)
        if self.pid is not None:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.running:
                time.sleep(0.01)
            self.pid = None
        if not self._watched and self._ready is not None:
            os.close(self._ready)  # else its watcher closes it, once the guardian has ended
            self._ready = None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
