"""The ``fleetlab`` command: a thin driver that parses, calls the package and renders.

User mistakes (a bad id, week, zone or db path) print one line on stderr and exit 2;
run failures exit 1. Python tracebacks are for bugs only.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.tree import Tree

from fleetlab.clock import parse_week
from fleetlab.errors import FleetlabError, UserError
from fleetlab.status import DEFAULT_STALE_AFTER_S, fleet_status
from fleetlab.store import PRIORITY_RANGE, Store, as_task_status, default_db_path
from fleetlab.telemetry import otel_sink_from_env
from fleetlab.trace import TraceNode, load_trace

__all__ = ["main"]

Handler = Callable[[argparse.Namespace, Console], int]


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line (exit 2), like every other user error."""

    def error(self, message: str) -> Any:
        raise UserError(f"{self.prog}: {message} (see --help)")


def _open_store(args: argparse.Namespace) -> Store:
    sinks = [sink] if (sink := otel_sink_from_env()) is not None else []
    return Store(args.db or default_db_path(), sinks=sinks)


def _money(usd: float) -> str:
    return f"${usd:,.4f}" if usd < 1 else f"${usd:,.2f}"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _priority(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise UserError(f"priority {text!r} is not an integer") from None
    if value not in PRIORITY_RANGE:
        raise UserError(
            f"priority {value} is out of range: use {PRIORITY_RANGE.start}"
            f" to {PRIORITY_RANGE.stop - 1} (higher runs first)"
        )
    return value


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UserError(f"{text!r} is not a number") from None
    if not value >= 0:
        raise UserError(f"{text!r} must be zero or more")
    return value


# --- commands ---------------------------------------------------------------------------


def cmd_submit(args: argparse.Namespace, console: Console) -> int:
    with _open_store(args) as store:
        task = store.create_task(
            args.goal, priority=args.priority, budget_usd=args.budget_usd, role="orchestrator"
        )
    if args.json:
        console.print_json(data={"task_id": task.id, "trace_id": task.trace_id})
    else:
        console.print(f"task {task.id}  trace {task.trace_id}")
    return 0


def cmd_status(args: argparse.Namespace, console: Console) -> int:
    window = parse_week(args.week, args.tz) if args.week else None
    with _open_store(args) as store:
        status = fleet_status(store, window, stale_after_s=args.stale_after)
    if args.json:
        console.print_json(data=status.to_dict())
        return 0
    table = Table(title=f"fleet status, {status.window}", show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("spawned", str(status.spawned))
    table.add_row("  root goals", str(status.roots_spawned))
    table.add_row("completed", f"[green]{status.completed}[/]")
    table.add_row("failed", f"[red]{status.failed}[/]")
    table.add_row("cancelled", str(status.cancelled))
    table.add_row("in flight", str(status.in_flight))
    for label, value in (
        ("running", status.running),
        ("queued", status.queued),
        ("preempted", status.preempted),
        ("waiting on children", status.waiting_children),
        ("stale", status.stale),
    ):
        table.add_row(f"  {label}", str(value))
    table.add_row("success (completed / finished)", _pct(status.success_rate_finished))
    table.add_row("success (completed / spawned)", _pct(status.success_rate_spawned))
    for name, count in status.finished_in_window.items():
        table.add_row(f"{name} in this window (any spawn week)", str(count))
    console.print(table)
    return 0


def cmd_tasks(args: argparse.Namespace, console: Console) -> int:
    status = as_task_status(args.status) if args.status else None
    with _open_store(args) as store:
        tasks = store.tasks(status=status, limit=args.limit)
    rows: list[dict[str, Any]] = [
        {
            "id": t.id,
            "parent_id": t.parent_id,
            "trace_id": t.trace_id,
            "title": t.title,
            "status": t.status,
            "priority": t.priority,
            "agents": t.tree_agents,
            "cost_usd": round(t.tree_cost_usd, 6),
            "created_at": t.created_at.isoformat(),
        }
        for t in tasks
    ]
    if args.json:
        console.print_json(data=rows)
        return 0
    table = Table(title=f"{len(rows)} task(s), newest first")
    for column in ("id", "parent", "trace", "title", "status", "prio", "agents", "cost"):
        table.add_column(column, overflow="fold", no_wrap=column in ("id", "parent", "trace"))
    for r in rows:
        table.add_row(
            r["id"], r["parent_id"] or "", r["trace_id"][:12], r["title"][:60], r["status"],
            str(r["priority"]), str(r["agents"]), _money(r["cost_usd"]),
        )  # fmt: skip
    console.print(table)
    return 0


def _render_node(node: TraceNode, tree: Tree, t0: Any) -> None:
    t = node.task
    colour = {"completed": "green", "failed": "red", "cancelled": "yellow"}.get(t.status, "cyan")
    duration = "" if node.duration_s is None else f" {node.duration_s:.1f}s"
    branch = tree.add(
        f"[bold]{t.role}[/] {t.id} [{colour}]{t.status}[/]{duration}  "
        f"tokens {t.tokens_in}/{t.tokens_out}  {_money(t.cost_usd)}"
        f" (tree {_money(t.tree_cost_usd)})  [dim]{t.title[:70]}[/]"
    )
    if t.error:
        branch.add(f"[red]error: {t.error}[/]")
    for e in node.events:
        offset = (e.ts - t0).total_seconds()
        detail = ", ".join(f"{k}={v}" for k, v in e.attrs.items() if k not in ("title",))
        branch.add(f"[dim]+{offset:9.3f}s[/] {e.kind}  [dim]{detail[:110]}[/]")
    for child in node.children:
        _render_node(child, branch, t0)


def cmd_trace(args: argparse.Namespace, console: Console) -> int:
    with _open_store(args) as store:
        root = load_trace(store, args.id)
    if args.json:
        console.print_json(data=root.to_dict())
        return 0
    tree = Tree(
        f"trace {root.task.trace_id}  goal [bold]{root.task.title[:80]}[/]  "
        f"{len(root.walk())} task(s)  {_money(root.task.tree_cost_usd)}"
    )
    _render_node(root, tree, root.task.created_at)
    console.print(tree)
    return 0


# --- parser -----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The ``fleetlab`` argument parser."""
    parser = _Parser(
        prog="fleetlab",
        description="Run and study a fleet of autonomous agents. Data lives in one SQLite file.",
    )
    parser.add_argument(
        "--db", type=Path, default=None, help="fleet database (default: $FLEETLAB_DB or ./fleet.db)"
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("submit", help="queue a goal; prints its task id and trace id")
    p.add_argument("goal", help="what the fleet should do")
    p.add_argument(
        "--priority", type=_priority, default=50, help="0-100, higher first (default 50)"
    )
    p.add_argument("--budget-usd", type=_non_negative, default=None, help="cap for the whole tree")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=cmd_submit)

    p = sub.add_parser("status", help="spawned / completed / failed / in flight")
    p.add_argument("--week", help="ISO week such as 2026-W48 (default: all time)")
    p.add_argument("--tz", default="UTC", help="IANA zone for the week window (default UTC)")
    p.add_argument(
        "--stale-after",
        type=_non_negative,
        default=DEFAULT_STALE_AFTER_S,
        help=f"seconds without heartbeat before a task is stale ({DEFAULT_STALE_AFTER_S:g})",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=cmd_status)

    p = sub.add_parser("tasks", help="list tasks, newest first")
    p.add_argument("--status", help="only this status")
    p.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=cmd_tasks)

    p = sub.add_parser("trace", help="a goal's tree of agents and events")
    p.add_argument("id", help="task id, id prefix or trace id")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=cmd_trace)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fleetlab`` console script."""
    console = Console(soft_wrap=True)
    errors = Console(stderr=True)
    try:
        args = build_parser().parse_args(argv)
        handler: Handler = args.handler
        return handler(args, console)
    except UserError as exc:
        errors.print(f"[red]error:[/] {exc}", markup=True, highlight=False)
        return 2
    except FleetlabError as exc:
        errors.print(f"[red]failed:[/] {exc}", markup=True, highlight=False)
        return 1
    except KeyboardInterrupt:
        errors.print("interrupted")
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
