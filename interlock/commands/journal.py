"""``interlock journal ...`` and ``interlock postmortem``: reading and keeping the journal.

    interlock journal show [--run ID] [--kind KIND] [--refused] [--since TIME] [--tail N] [--follow]
    interlock journal verify [--adopt]
    interlock journal export --format jsonl [--out FILE]
    interlock journal prune [--max-age AGE] [--max-entries N] [--max-bytes SIZE]
                            [--include-faulted] [--dry-run]
    interlock postmortem [RUN] --out DIR

Every one takes ``--journal PATH``, or finds the journal through the bench
(``--bench FILE``, default ``bench.toml``: its ``service.journal``). A broken
chain is a :class:`~interlock.errors.JournalCorrupt`, exit code 4; breaks an
operator acknowledged are listed with their acknowledgement, exit code 0.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from interlock.commands.common import add_bench_argument, banner, command_bench
from interlock.errors import InvalidArgument, JournalError
from interlock.exits import EXIT_FAULT, EXIT_USAGE
from interlock.journal import Journal, JournalReader, verify_journal
from interlock.journal.entries import KINDS, Entry, Kind
from interlock.journal.export import export_jsonl
from interlock.journal.files import JournalAccess
from interlock.journal.postmortem import write_postmortem
from interlock.journal.render import format_line
from interlock.journal.retention import RetentionPolicy, prune
from interlock.journal.specs import parse_duration, parse_since, parse_size
from interlock.journal.startup import adopt
from interlock.journal.store import format_wall
from interlock.journal.witness import witness_path

FOLLOW_POLL_S = 0.25


def _argtype(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = parse.__name__
    return convert


def _since(text: str) -> datetime:
    return parse_since(text, datetime.now(UTC))


def _count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise InvalidArgument(f"expected a whole number of entries above 0, got {text!r}")
    return int(text)


def _require_run(reader: JournalReader, path: Path, run: str | None) -> None:
    """A run asked for by id that the journal does not hold: a usage error, not silence."""
    if run is not None and next(reader.entries(run=run, limit=1), None) is None:
        raise InvalidArgument(
            f"{path}: no run {run!r} in this journal (latest: {reader.latest_run() or 'none'})"
        )


def _location_parent() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--journal", metavar="PATH", help="journal file (default: the bench's service.journal)"
    )
    add_bench_argument(parent)
    return parent


def register(subparsers: argparse._SubParsersAction) -> None:
    where = _location_parent()
    journal = subparsers.add_parser(
        "journal",
        help="show, verify, export or prune the bench journal",
        description="Read and keep the bench's durable, hash-chained journal.",
    )
    actions = journal.add_subparsers(dest="journal_command", metavar="ACTION", required=True)

    show = actions.add_parser(
        "show",
        parents=[where],
        help="print entries, one per line",
        description="Print the journal's entries, one per line, oldest first; the filters combine.",
    )
    show.add_argument("--run", metavar="ID", help="only this run (exit 2 if it has no entry)")
    show.add_argument(
        "--kind",
        action="append",
        choices=sorted(KINDS),
        metavar="KIND",
        help=f"only entries of this kind (repeatable): {', '.join(sorted(KINDS))}",
    )
    show.add_argument(
        "--refused",
        action="store_true",
        help="only the refusals: verdicts that did not allow what was asked",
    )
    show.add_argument(
        "--since", metavar="TIME", type=_argtype(_since), help="ISO time (UTC) or age: 10m, 2h"
    )
    show.add_argument(
        "--tail", metavar="N", type=_argtype(_count), help="only the last N entries that match"
    )
    show.add_argument(
        "--follow", action="store_true", help="then keep printing new entries (until Ctrl-C)"
    )
    show.set_defaults(handler=run_show)

    verify = actions.add_parser(
        "verify",
        parents=[where],
        help="check the hash chain and its witness",
        description="Check the whole hash chain, and the witness beside it (the head kept "
        "outside the database).",
    )
    verify.add_argument(
        "--adopt",
        action="store_true",
        help="first anchor a journal that has no witness (one from before witnesses): "
        "journaled, and only for a chain that verifies",
    )
    verify.set_defaults(handler=run_verify)

    export = actions.add_parser(
        "export",
        parents=[where],
        help="write entries as JSON lines",
        description="Write the journal's entries as JSON lines, one object per entry with its "
        "hashes, for tools and for keeping elsewhere.",
    )
    export.add_argument(
        "--format", choices=["jsonl"], default="jsonl", help="output format (jsonl, the default)"
    )
    export.add_argument("--out", metavar="FILE", help="write here instead of standard output")
    export.add_argument("--run", metavar="ID", help="only this run (exit 2 if it has no entry)")
    export.add_argument(
        "--since",
        metavar="TIME",
        type=_argtype(_since),
        help="only entries from this time: ISO time (UTC) or age: 10m, 2h",
    )
    export.set_defaults(handler=run_export)

    prune_ = actions.add_parser(
        "prune",
        parents=[where],
        help="remove old entries (whole runs; faulted runs kept)",
        description="Remove entries beyond any of the given bounds. Runs go whole or not at "
        "all; runs that ended in a fault are kept unless --include-faulted.",
    )
    prune_.add_argument("--max-age", metavar="AGE", type=_argtype(parse_duration), help="e.g. 30d")
    prune_.add_argument(
        "--max-entries", metavar="N", type=int, help="keep at most N entries (the newest)"
    )
    prune_.add_argument(
        "--max-bytes", metavar="SIZE", type=_argtype(parse_size), help="entry data, e.g. 50M"
    )
    prune_.add_argument(
        "--include-faulted", action="store_true", help="prune runs that faulted too"
    )
    prune_.add_argument("--dry-run", action="store_true", help="say what would go; remove nothing")
    prune_.set_defaults(handler=run_prune)

    postmortem = subparsers.add_parser(
        "postmortem",
        parents=[where],
        help="write a run's timeline and plot",
        description="Write timeline.txt and nets.png for a run (default: the latest).",
    )
    postmortem.add_argument("run", nargs="?", metavar="RUN", help="run id (default: latest)")
    postmortem.add_argument("--out", metavar="DIR", required=True, help="output directory")
    postmortem.set_defaults(handler=run_postmortem)


def _locate(args: argparse.Namespace) -> tuple[Path, str | None]:
    """The journal path and, when known from the bench, the banner line."""
    if args.journal:
        return Path(args.journal), None
    bench = command_bench(args)
    return bench.service.journal, banner(bench)


def _access(args: argparse.Namespace) -> JournalAccess | None:
    """Who may read the files, from the bench; None (leave them as they are) for --journal."""
    if args.journal:
        return None
    return JournalAccess(command_bench(args).service.journal_group)


def _writer(path: Path, args: argparse.Namespace) -> Journal:
    """A writer for maintenance from the command line, as the user running it."""
    with JournalReader(path) as reader:
        bench = reader.bench() or ""
    return Journal(path, bench=bench, actor=_actor(), access=_access(args))


def _actor() -> str:
    return f"cli:{getpass.getuser()}"


def _quiet_on_broken_pipe(handler: Callable[[argparse.Namespace], int]):
    """``interlock journal show | head`` ends quietly, not with a traceback."""

    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except BrokenPipeError:
            # Later flushes (at exit) would fail again: send them nowhere.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0

    run.__doc__ = handler.__doc__
    return run


@_quiet_on_broken_pipe
def run_show(args: argparse.Namespace) -> int:
    path, heading = _locate(args)
    since = format_wall(args.since) if args.since else None
    kinds = frozenset(args.kind or ())

    def shown(entry: Entry) -> bool:
        if args.refused and not (entry.kind == Kind.VERDICT and not entry.payload.get("allowed")):
            return False
        return not kinds or entry.kind in kinds

    with JournalReader(path) as reader:
        _require_run(reader, path, args.run)
        if heading:
            print(heading)
        last = reader.last_seq() if args.follow else 0
        matching = (entry for entry in reader.entries(run=args.run, since=since) if shown(entry))
        # --tail keeps only the last N in memory: the journal may be large.
        for entry in deque(matching, maxlen=args.tail) if args.tail else matching:
            print(format_line(entry))
            last = max(last, entry.seq)
        if not args.follow:
            return 0
        sys.stdout.flush()
        try:
            while True:
                time.sleep(FOLLOW_POLL_S)
                for entry in reader.entries(run=args.run, since=since, after_seq=last):
                    if shown(entry):
                        print(format_line(entry), flush=True)
                    last = entry.seq
        except KeyboardInterrupt:
            return 0


def run_verify(args: argparse.Namespace) -> int:
    path, heading = _locate(args)
    if heading:
        print(heading)
    if args.adopt:
        with _writer(path, args) as journal:
            entry = adopt(journal, _actor())
        print(f"adopted: witness {witness_path(path).name} anchored at entry #{entry.seq}")
    report = verify_journal(path)
    span = f"seq {report.first_seq}..{report.last_seq}" if report.entries else "empty"
    gaps = f", {report.pruned_gaps} pruned gap(s) as recorded" if report.pruned_gaps else ""
    acknowledged = report.acknowledged
    verdict = "chain OK"
    if acknowledged:
        verdict += f" but for {len(acknowledged)} acknowledged break(s)"
    print(f"journal {path}: {report.entries} entries ({span}){gaps}: {verdict}")
    for ack in acknowledged:
        print(f"  {ack.describe()} ({ack.wall_time})")
    print(f"head sha256 {report.head_hash}")
    witness = report.witness
    if witness is not None:
        checked = witness.checked.seq
        print(
            f"witness {witness_path(path).name}: holds the head at seq {witness.head.seq}; "
            + (
                f"the service's start-up check has verified the chain up to seq {checked}"
                if checked
                else "no start-up check of the service has verified the chain yet"
            )
        )
    return 0


@_quiet_on_broken_pipe
def run_export(args: argparse.Namespace) -> int:
    path, _ = _locate(args)
    since = format_wall(args.since) if args.since else None
    with JournalReader(path) as reader:
        _require_run(reader, path, args.run)
        if args.out is None:
            export_jsonl(reader, sys.stdout, run=args.run, since=since)
            return 0
        try:
            with open(args.out, "w", encoding="utf-8") as out:
                count = export_jsonl(reader, out, run=args.run, since=since)
        except OSError as exc:
            raise JournalError(f"cannot write {args.out}: {exc}") from exc
    print(f"exported {count} entries to {args.out}")
    return 0


def run_prune(args: argparse.Namespace) -> int:
    if args.max_age is None and args.max_entries is None and args.max_bytes is None:
        print("journal prune: give --max-age, --max-entries or --max-bytes", file=sys.stderr)
        return EXIT_USAGE
    path, heading = _locate(args)
    if heading:
        print(heading)
    policy = RetentionPolicy(
        max_age=args.max_age,
        max_entries=args.max_entries,
        max_bytes=args.max_bytes,
        include_faulted=args.include_faulted,
    )
    with _writer(path, args) as journal:
        report = prune(journal, policy, dry_run=args.dry_run)
    ranges = ", ".join(f"{a}..{b}" if a != b else str(a) for a, b in report.ranges) or "none"
    verb = "would remove" if args.dry_run else "removed"
    print(f"{verb} {report.removed} entries (seq {ranges})")
    if report.spared_faulted:
        print(f"kept {report.spared_faulted} entries of runs that ended in a fault")
    if report.spared_runs:
        print(f"kept {report.spared_runs} entries of runs that straddle the limit")
    if report.entry is not None:
        print(f"recorded as entry #{report.entry.seq}")
    return 0


def run_postmortem(args: argparse.Namespace) -> int:
    path, heading = _locate(args)
    if heading:
        print(heading)
    result = write_postmortem(path, args.run, args.out)
    print(f"run {result.run_id}: {result.entries} entries")
    print(f"wrote {result.timeline}")
    print(f"wrote {result.plot}")
    if result.chain_error is not None:
        print(f"JournalCorrupt: {result.chain_error}", file=sys.stderr)
        return EXIT_FAULT
    return 0
