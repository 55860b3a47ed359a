"""Commands about tasks: submit, status, tasks, trace (in ``_trace``), cancel."""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console
from rich.table import Table

from fleetlab.cli import _trace
from fleetlab.cli._common import (
    budget_usd,
    db_option,
    db_shown,
    guarded,
    money,
    naming_db,
    non_negative,
    open_store,
    pct,
    positive_int,
    print_rows,
    priority,
)
from fleetlab.clock import get_zone, parse_week
from fleetlab.errors import UserError
from fleetlab.orchestrator import Goal, load_goals, submit_goals
from fleetlab.status import DEFAULT_STALE_AFTER_S, fleet_status
from fleetlab.store import TERMINAL, as_task_status
from fleetlab.store.read.fleet import agents_in_tree

__all__ = ["register"]


def cmd_submit(args: argparse.Namespace, console: Console) -> int:
    if args.file:
        if args.goal or args.task:
            raise UserError("give either --file or a goal (text or --task), not both")
        goals = load_goals(args.file)
    else:
        if not args.goal and not args.task:
            raise UserError(
                "goal text is empty: give the goal, --task SUITE:ID or --file goals.toml"
            )
        goals = [
            Goal(
                title=args.goal or "",
                task=args.task,
                priority=args.priority,
                budget_usd=args.budget_usd,
                policy=args.policy,
                prompt=args.prompt,
            )
        ]
        goals[0].validated()  # before the db is opened (or created): a bad goal writes nothing
    with open_store(args) as store:
        tasks = submit_goals(store, goals)
    if args.json:
        console.print_json(data=[{"task_id": t.id, "trace_id": t.trace_id} for t in tasks])
    else:
        for t in tasks:
            console.print(f"task {t.id}  trace {t.trace_id}", highlight=False)
    return 0


def cmd_cancel(args: argparse.Namespace, console: Console) -> int:
    with open_store(args, create=False) as store, naming_db(args):
        root = store.get_task(store.find_task(args.id).root_id)
        reason = args.reason or "cancelled by the user"
        cancelled = 0
        with store.tx():
            for t in store.tasks(trace_id=root.trace_id):
                if t.status not in TERMINAL:
                    store.transition(t.id, "cancelled", error=reason)
                    cancelled += 1
    console.print(f"cancelled {cancelled} task(s) of goal {root.id}")
    return 0


def cmd_status(args: argparse.Namespace, console: Console) -> int:
    get_zone(args.tz)  # a bad --tz is an error with or without --week
    window = parse_week(args.week, args.tz) if args.week is not None else None
    with open_store(args, create=False) as store:
        status = fleet_status(store, window, stale_after_s=args.stale_after)
    if args.json:
        console.print_json(data=status.to_dict())
        return 0
    table = Table(
        title=f"fleet status, {status.window}, as of {status.as_of[:16].replace('T', ' ')} UTC",
        caption=f"db {db_shown(args)}",
        show_header=False,
        box=None,
    )
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
    table.add_row("success (completed / finished)", pct(status.success_rate_finished))
    table.add_row("success (completed / spawned)", pct(status.success_rate_spawned))
    for name, count in status.finished_in_window.items():
        table.add_row(f"{name} in this window (any spawn week)", str(count))
    console.print(table)
    return 0


def cmd_tasks(args: argparse.Namespace, console: Console) -> int:
    status = as_task_status(args.status) if args.status else None
    with open_store(args, create=False) as store:
        tasks = store.tasks(status=status, limit=args.limit)
    rows: list[dict[str, Any]] = [
        {
            "id": t.id,
            "parent_id": t.parent_id,
            "trace_id": t.trace_id,
            "title": t.title,
            "status": t.status,
            "priority": t.priority,
            "agents": agents_in_tree(t),
            "cost_usd": round(t.tree_cost_usd, 6),
            "created_at": t.created_at.isoformat(),
        }
        for t in tasks
    ]
    if args.json:
        console.print_json(data=rows)
        return 0
    if not rows:
        which = f" with status {status}" if status else ""
        Console(stderr=True, soft_wrap=True).print(
            f"no tasks{which} in {db_shown(args)}", highlight=False, markup=False
        )
        return 0
    print_rows(
        console,
        ("id", "parent", "trace", "title", "status", "prio", "agents", "cost", "created (UTC)"),
        [
            (
                r["id"],
                r["parent_id"] or "",
                r["trace_id"],
                r["title"],
                r["status"],
                str(r["priority"]),
                str(r["agents"]),
                money(r["cost_usd"]),
                r["created_at"][:19].replace("T", " "),
            )
            for r in rows
        ],
        title=f"{len(rows)} task(s), newest first, in {db_shown(args)}",
        short={"trace": 12, "title": 60},
        right=("prio", "agents", "cost"),
        whole=("id", "parent"),
    )
    return 0


def register(sub: Any) -> None:
    """Add the task commands to the ``fleetlab`` parser."""
    p = sub.add_parser("submit", help="queue a goal; prints its task id and trace id")
    p.add_argument("goal", nargs="?", help="what the fleet should do (free text)")
    p.add_argument("--task", help="a suite task instead of free text, e.g. core:rename-readme")
    p.add_argument("--file", help="a goals file (TOML, [[goals]] tables): all or nothing")
    p.add_argument("--priority", type=priority, default=50, help="0-100, higher first (default 50)")
    p.add_argument(
        "--budget-usd",
        type=budget_usd,
        default=None,
        help="cap in dollars for the whole tree, above zero (default: no cap)",
    )
    p.add_argument("--policy", help="decomposition policy for this goal (default: the fleet's)")
    p.add_argument("--prompt", help="scoring-prompt variant for this goal")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    db_option(p)
    p.set_defaults(handler=guarded(cmd_submit))

    p = sub.add_parser("status", help="spawned / completed / failed / in flight")
    p.add_argument("--week", help="ISO week such as 2026-W48 (default: all time)")
    p.add_argument("--tz", default="UTC", help="IANA zone for the week window (default UTC)")
    p.add_argument(
        "--stale-after",
        type=non_negative,
        default=DEFAULT_STALE_AFTER_S,
        help=f"seconds without heartbeat before a task is stale ({DEFAULT_STALE_AFTER_S:g})",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    db_option(p)
    p.set_defaults(handler=guarded(cmd_status))

    p = sub.add_parser("tasks", help="list tasks, newest first")
    p.add_argument("--status", help="only this status")
    p.add_argument("--limit", type=positive_int, default=50, help="at most this many (default 50)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    db_option(p)
    p.set_defaults(handler=guarded(cmd_tasks))

    _trace.register(sub)

    p = sub.add_parser("cancel", help="cancel a goal and its whole tree")
    p.add_argument("id", help="task id, id prefix or trace id")
    p.add_argument("--reason", help="recorded with each cancelled task")
    db_option(p)
    p.set_defaults(handler=guarded(cmd_cancel))
