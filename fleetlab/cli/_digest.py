"""``fleetlab digest``: run the weekly digest notebook and publish ``reports/<week>/``."""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from fleetlab.cli._common import db_option, db_target, guarded, open_store
from fleetlab.clock import parse_week
from fleetlab.errors import UserError

__all__ = ["register"]


def cmd_digest(args: argparse.Namespace, console: Console) -> int:
    from fleetlab.digest import run_digest

    if args.week is not None:
        # Checked here as well: the notebook's parameters read an empty week as "the last
        # complete week", but an empty --week is a mistake.
        parse_week(args.week, args.tz)
    if args.schedule:
        return _schedule(args, console)
    errors = Console(stderr=True, soft_wrap=True)
    # One transient line on a terminal (the cell being run, against the notebook's cells);
    # piped, nothing but the result lines, like the other commands' progress.
    with Progress(
        TextColumn("[bold]digest notebook[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=errors,
        transient=True,
        disable=not errors.is_terminal,
    ) as bar:
        cells = bar.add_task("starting the kernel", total=None)

        def progress(cell: int, total: int, what: str) -> None:
            bar.update(cells, completed=cell - 1, total=total, description=escape(what))

        result = run_digest(
            week=args.week,
            tz=args.tz,
            db=db_target(args),
            model=args.model,
            out_dir=args.out,
            progress=progress,
        )
    console.print(str(result.index_html), highlight=False, soft_wrap=True)
    pages = len(result.trace_pages)
    if pages:
        errors.print(
            escape(f"{pages} trace page(s) of the goals it names in {result.folder / 'traces'}"),
            highlight=False,
        )
    check = result.fact_check
    if check.strict_ok:
        errors.print(escape(check.summary()), highlight=False)
        return 0
    errors.print(f"[yellow]{escape(check.summary())}[/]", highlight=False)
    if args.strict:
        errors.print(
            "[red]failed:[/] --strict: "
            + (
                "the draft has numbers that match no metric"
                if check.unmatched
                else "the draft has no number to check"
            )
        )
        return 1
    return 0


def _schedule(args: argparse.Namespace, console: Console) -> int:
    from fleetlab.digest import schedule_digest

    weekday, sep, at_time = args.schedule.partition("@")
    if not sep:
        raise UserError(
            f"--schedule {args.schedule!r} is malformed: use WEEKDAY@HH:MM, e.g. mon@07:00"
        )
    if args.week is not None:
        raise UserError("--schedule reports on the last complete week each time: drop --week")
    with open_store(args) as store:
        schedule = schedule_digest(
            store,
            zone=args.tz,
            weekday=weekday,
            at_time=at_time,
            out_dir=args.out,
            model=args.model,
        )
    said = " (already scheduled, nothing added)" if schedule.existing else ""
    console.print(
        f"schedule {schedule.id}{said}: the weekly digest ({args.tz}) runs every {weekday} at"
        f" {at_time}, next at {schedule.next_at.isoformat()}; `fleetlab fleet run` carries it"
        f" out (`fleetlab schedule remove {schedule.id}` stops it)",
        highlight=False,
    )
    return 0


def _folder_arg(text: str) -> str:
    """An argparse type: a folder name, not blank (which would mean the current folder)."""
    if not text.strip():
        raise argparse.ArgumentTypeError(
            "is empty: give the reports folder, e.g. reports (the default), or . for this one"
        )
    return text


def register(sub: Any) -> None:
    """Add ``fleetlab digest`` to the parser."""
    p = sub.add_parser(
        "digest",
        help="write the weekly report (reports/<week>/, with the trace page of each goal it"
        " names in traces/) and the draft post, fact-checked",
    )
    p.add_argument("--week", help="ISO week, e.g. 2026-W48 (default: the last complete week)")
    p.add_argument("--tz", default="UTC", help="IANA zone of the week's local days (default UTC)")
    db_option(p)
    p.add_argument(
        "--model",
        default="sim:default",
        help="digest agent: sim:default (offline template) or anthropic:<model-id>",
    )
    p.add_argument(
        "--out", type=_folder_arg, default="reports", help="reports folder (default ./reports)"
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="exit 1 when the draft has an unchecked number, or no number at all",
    )
    p.add_argument(
        "--schedule",
        metavar="WEEKDAY@HH:MM",
        help="instead of running now, have the fleet write it every week (e.g. mon@07:00,"
        " local time in --tz)",
    )
    p.set_defaults(handler=guarded(cmd_digest))
