"""Commands about the fleet's database and its workers: workers, db copy, db info."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from fleetlab import store as _store
from fleetlab.cli._common import (
    Parser,
    db_option,
    db_shown,
    guarded,
    non_negative,
    open_store,
    print_rows,
    removed_if_failed,
)
from fleetlab.clock import from_us, to_us
from fleetlab.errors import UserError
from fleetlab.orchestrator import FleetConfig
from fleetlab.store import Store, url
from fleetlab.store.copy import copy_fleet
from fleetlab.store.read.fleet import counts_by_status, root_count
from fleetlab.store.workers import WorkerRow
from fleetlab.telemetry import register_secret

__all__ = ["WorkerView", "ago", "register", "worker_view"]

WorkerState = Literal["live", "silent", "stopped"]

#: ``fleetlab workers`` without ``--all``: workers that beat this recently
RECENT_S = 24 * 3600
_US = 1_000_000


@dataclass(frozen=True, slots=True)
class WorkerView:
    """A worker as ``fleetlab workers`` shows it."""

    id: str
    host: str
    pid: int
    started_at: datetime
    heartbeat_at: datetime
    heartbeat_age_s: float
    stopped_at: datetime | None
    running: int
    state: WorkerState

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "host": self.host,
            "pid": self.pid,
            "started_at": self.started_at.isoformat(),
            "heartbeat_at": self.heartbeat_at.isoformat(),
            "heartbeat_age_s": round(self.heartbeat_age_s, 3),
            "stopped_at": None if self.stopped_at is None else self.stopped_at.isoformat(),
            "running": self.running,
            "state": self.state,
        }


def worker_view(row: WorkerRow, now_us: int, lease_s: float) -> WorkerView:
    """``row`` seen at ``now_us``: stopped if it signed off, live if it beat within
    ``lease_s`` seconds, else silent (its tasks come back when their leases expire)."""
    age_us = now_us - row.heartbeat_us
    state: WorkerState
    if row.stopped_us is not None:
        state = "stopped"
    elif age_us <= lease_s * _US:
        state = "live"
    else:
        state = "silent"
    return WorkerView(
        id=row.id,
        host=row.host,
        pid=row.pid,
        started_at=from_us(row.started_us),
        heartbeat_at=from_us(row.heartbeat_us),
        heartbeat_age_s=age_us / _US,
        stopped_at=None if row.stopped_us is None else from_us(row.stopped_us),
        running=row.running,
        state=state,
    )


def ago(seconds: float) -> str:
    """``12 s ago``, ``5 min ago``, ``3 h ago``, ``2 d ago`` (a beat from a host whose clock
    runs ahead counts as now)."""
    s = max(0, int(seconds))
    if s < 120:
        return f"{s} s ago"
    if s < 120 * 60:
        return f"{s // 60} min ago"
    if s < 48 * 3600:
        return f"{s // 3600} h ago"
    return f"{s // 86_400} d ago"


_STATE_STYLE = {"live": "green", "silent": "yellow", "stopped": "dim"}


def cmd_workers(args: argparse.Namespace, console: Console) -> int:
    with open_store(args, create=False) as store:
        now_us = to_us(store.clock.now())
        since_us = 0 if args.all else now_us - RECENT_S * _US
        views = [worker_view(r, now_us, args.lease) for r in store.workers(since_us=since_us)]
        older = 0 if views or args.all else len(store.workers())
        location = db_shown(args)
    if args.json:
        console.print_json(data=[v.to_dict() for v in views])
        return 0
    if not views:
        if older:
            console.print(
                f"no worker has beat in the last 24 h against {location}"
                f" (--all lists the {older} that did before)",
                highlight=False,
                markup=False,
            )
        else:
            console.print(f"no worker has run against {location}", highlight=False, markup=False)
        return 0
    if not console.is_terminal:  # piped: whole tab-separated rows, the id included
        print_rows(
            console,
            ("id", "host", "pid", "started (UTC)", "heartbeat", "running", "state"),
            [
                (v.id, v.host, str(v.pid), f"{v.started_at:%Y-%m-%d %H:%M:%S}",
                 ago(v.heartbeat_age_s), str(v.running), v.state)
                for v in views
            ],
        )  # fmt: skip
        return 0
    table = Table(
        title=f"{len(views)} worker(s)" + ("" if args.all else ", last 24 h"),
        caption=f"live: beat within {args.lease:g} s; silent: its tasks come back when"
        " their leases expire",
    )
    # The worker's id (host:pid:token, as tasks' leases name it) is in --json.
    for column in ("host", "pid", "started (UTC)", "heartbeat", "running", "state"):
        table.add_column(
            column,
            overflow="fold",
            no_wrap=column != "host",
            justify="right" if column in ("pid", "running") else "left",
        )
    for v in views:
        table.add_row(
            escape(v.host),
            str(v.pid),
            f"{v.started_at:%Y-%m-%d %H:%M:%S}",
            ago(v.heartbeat_age_s),
            str(v.running),
            f"[{_STATE_STYLE[v.state]}]{v.state}[/]",
        )
    console.print(table)
    return 0


def _target(text: str, what: str) -> str:
    """SRC or DST of ``db copy``, resolved like ``--db``, its password masked from now on."""
    if not text.strip():
        raise UserError(f"{what} is empty: give a file path or a postgresql:// URL")
    target = url.resolve(text)
    for secret in url.passwords(target):
        register_secret(secret)
    url.check(target)  # a malformed URL: one line, its password masked
    return target


def cmd_db_copy(args: argparse.Namespace, console: Console) -> int:
    src_target = _target(args.src, "SRC")
    dst_target = _target(args.dst, "DST")
    if not url.is_server_url(src_target) and not Path(src_target).is_file():
        raise UserError(
            f"no fleet database at {url.redacted(src_target)}:"
            " SRC is an existing file or a postgresql:// URL"
        )
    # A file this command creates is removed again if the copy does not complete.
    with (
        removed_if_failed(dst_target),
        _store.open_store(src_target) as src,
        _store.open_store(dst_target) as dst,
    ):
        rows = _copy(src, dst, console, quiet=args.quiet)
        shown = (src.location, dst.location)
    width = max(len(name) for name in rows)
    for name, count in rows.items():
        console.print(f"{name:<{width}}  {count:>12,} rows  verified", highlight=False)
    console.print(f"copied {shown[0]} -> {shown[1]}", highlight=False, markup=False)
    return 0


def _copy(src: Store, dst: Store, console: Console, *, quiet: bool) -> dict[str, int]:
    """Copy ``src`` into ``dst`` with a bar per table; rows per table (verified)."""
    progress = Progress(
        TextColumn("[bold]{task.description}[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=quiet or not console.is_terminal,  # piped: the lines at the end only
    )
    bars: dict[str, TaskID] = {}

    def tick(table: str, done: int, total: int) -> None:
        if table not in bars:
            bars[table] = progress.add_task(table, total=total)
        progress.update(bars[table], completed=done, total=total)

    try:
        with progress:
            report = copy_fleet(src, dst, progress=tick)
    except Exception as exc:
        failure = src.storage_error(exc) or dst.storage_error(exc)
        if failure is None:
            raise
        raise failure from None
    return report.rows


def cmd_db_info(args: argparse.Namespace, console: Console) -> int:
    with open_store(args, create=False) as store:
        counts = counts_by_status(store)
        info: dict[str, Any] = {
            "backend": store.backend,
            "location": url.shown(store.location),
            "schema_version": store.schema_version,
            "size_bytes": store.size_bytes() or None,
            "tasks": sum(counts.values()),
            "goals": root_count(store),
            "by_status": counts,
            "workers": len(store.workers()),
        }
    if args.json:
        console.print_json(data=info)
        return 0
    table = Table(title="fleet database", show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    table.add_row("backend", info["backend"])
    table.add_row("location", info["location"])
    table.add_row("schema version", str(info["schema_version"]))
    if info["size_bytes"]:
        table.add_row("size", f"{info['size_bytes'] / 1e6:,.1f} MB")
    table.add_row("tasks", f"{info['tasks']:,}")
    table.add_row("  goals", f"{info['goals']:,}")
    for status, n in counts.items():
        table.add_row(f"  {status}", f"{n:,}")
    table.add_row("workers", f"{info['workers']:,}")
    console.print(table, highlight=False, markup=False)
    return 0


def register(sub: Any) -> None:
    """Add ``workers`` and ``db`` to the ``fleetlab`` parser."""
    lease = FleetConfig().lease_s
    p = sub.add_parser("workers", help="fleet processes: host, pid, last heartbeat, state")
    p.add_argument("--all", action="store_true", help="every worker (default: beat in 24 h)")
    p.add_argument(
        "--lease",
        type=non_negative,
        default=lease,
        help=f"seconds without a beat before a worker is silent (default {lease:g},"
        " the fleet's lease)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    db_option(p)
    p.set_defaults(handler=guarded(cmd_workers))

    db = sub.add_parser("db", help="the fleet database: copy, info").add_subparsers(
        dest="db_command", required=True, parser_class=Parser
    )
    p = db.add_parser(
        "copy",
        help="copy a whole fleet into an empty database (SQLite <-> PostgreSQL), verified",
    )
    p.add_argument("src", metavar="SRC", help="a fleet's file path or postgresql:// URL")
    p.add_argument("dst", metavar="DST", help="an empty (or new) file path or postgresql:// URL")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(handler=cmd_db_copy)

    p = db.add_parser("info", help="backend, location, schema version, task counts")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    db_option(p)
    p.set_defaults(handler=guarded(cmd_db_info))
