"""HTML for the console: status counts, the active-task table and a goal's trace tree.

Plain functions of the data (no widgets), so the console stays small and they are easy to test.
Numbers are written as ``fleetlab.charts`` tables write them (``format_value``): money to four
places, counts with thousands separators, ages as ``4 m 05 s``.
"""

from __future__ import annotations

import html
from datetime import datetime, timedelta

from fleetlab.charts._tables import format_value
from fleetlab.status import FleetStatus
from fleetlab.store import Task
from fleetlab.trace import TraceNode

__all__ = [
    "COLOURS",
    "TASK_COLUMNS",
    "counts_html",
    "render_trace_html",
    "task_cells",
    "task_status",
    "tasks_html",
]

#: (label, FleetStatus field) of the counts line, in display order.
_COUNTS = (
    ("running", "running"),
    ("queued", "queued"),
    ("preempted", "preempted"),
    ("waiting", "waiting_children"),
    ("stale", "stale"),
    ("completed", "completed"),
    ("failed", "failed"),
    ("cancelled", "cancelled"),
)
COLOURS = {
    "running": "#1565c0",
    "queued": "#616161",
    "preempted": "#6a1b9a",
    "waiting": "#00838f",
    "waiting_children": "#00838f",
    "stale": "#ef6c00",
    "completed": "#2e7d32",
    "failed": "#c62828",
    "cancelled": "#8d6e63",
}
_TRACE_EVENTS = 200  # per agent: a long run must not make every live re-render huge


def _money(usd: float) -> str:
    return format_value(usd, "money")


def _age(delta: timedelta) -> str:
    return format_value(max(0, int(delta.total_seconds())), "duration")


def _badge(label: str, value: int, colour: str) -> str:
    return (
        f"<span class='fleetlab-count fleetlab-count-{label}' data-count='{value}' "
        f"style='display:inline-block;margin:2px 6px 2px 0;padding:2px 8px;border-radius:10px;"
        f"border:1px solid {colour};color:{colour}'>{label} <b>{value}</b></span>"
    )


def counts_html(status: FleetStatus) -> str:
    """One badge per status (class ``fleetlab-count-<label>``, the number in ``data-count``)."""
    badges = "".join(
        _badge(label, int(getattr(status, field)), COLOURS[label]) for label, field in _COUNTS
    )
    return (
        f"<div>{badges}<span style='color:#666;margin-left:6px'>{status.spawned} spawned"
        f" ({status.roots_spawned} goal(s)), {status.in_flight} in flight</span></div>"
    )


#: The task table's columns after the task id (``task_cells`` gives one row's cells).
TASK_COLUMNS = ("role", "status", "priority", "age", "agents", "cost", "title")


def task_status(t: Task, stale_cutoff: datetime) -> str:
    """A task's status for the table: ``stale`` for a running task whose heartbeat is too old."""
    status = str(t.status)
    if status == "running" and (t.heartbeat_at is None or t.heartbeat_at < stale_cutoff):
        return "stale"
    return status


def task_cells(t: Task, now: datetime, stale_cutoff: datetime) -> list[str]:
    """One row of the task table as HTML cells (``TASK_COLUMNS``), every text escaped."""
    status = task_status(t, stale_cutoff)
    colour = COLOURS.get(status, "#333")
    return [
        html.escape(t.role),
        f"<span style='color:{colour}'>{status.replace('_', ' ')}</span>",
        format_value(t.priority, "count"),
        _age(now - t.created_at),
        format_value(1 + t.tree_agents, "count"),
        _money(t.tree_cost_usd),
        html.escape(t.title[:70]),
    ]


def tasks_html(tasks: list[Task], in_flight: int, now: datetime, stale_cutoff: datetime) -> str:
    """The active-task table: id, role, status (stale when the heartbeat is too old),
    priority, age, agents in its tree and cost, title."""
    if not tasks:
        return "<div style='color:#666'>no active tasks</div>"
    cell = "style='padding:1px 8px;text-align:left'"
    head = "".join(f"<th {cell}>{c}</th>" for c in ("task", *TASK_COLUMNS))
    rows = []
    for t in tasks:
        cells = "".join(f"<td {cell}>{c}</td>" for c in task_cells(t, now, stale_cutoff))
        rows.append(
            f"<tr class='fleetlab-task-row'><td {cell}><code>{t.id[:8]}</code></td>{cells}</tr>"
        )
    more = (
        f"<div style='color:#666'>and {in_flight - len(tasks)} more</div>"
        if in_flight > len(tasks)
        else ""
    )
    return (
        "<table style='border-collapse:collapse;font-size:90%'>"
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>{more}"
    )


def _node_html(node: TraceNode, t0: datetime) -> str:
    t = node.task
    colour = COLOURS.get(str(t.status), "#333")
    duration = "" if node.duration_s is None else f" {node.duration_s:.1f}s"
    line = (
        f"<b>{html.escape(t.role)}</b> <code>{t.id}</code> "
        f"<span style='color:{colour}'>{t.status}</span>{duration} &middot; "
        f"tokens {t.tokens_in:,}/{t.tokens_out:,} &middot; {_money(t.cost_usd)}"
        f" (tree {_money(t.tree_cost_usd)}) &middot; "
        f"<span style='color:#666'>{html.escape(t.title[:80])}</span>"
    )
    if t.error:
        line += f"<div style='color:{COLOURS['failed']}'>error: {html.escape(t.error)}</div>"
    events = []
    for e in node.events[:_TRACE_EVENTS]:
        offset = (e.ts - t0).total_seconds()
        detail = ", ".join(f"{k}={v}" for k, v in e.attrs.items() if k != "title")
        events.append(
            f"<tr><td style='padding:0 8px;color:#666'>+{offset:.3f}s</td>"
            f"<td style='padding:0 8px'>{html.escape(e.kind)}</td>"
            f"<td style='padding:0 8px;color:#666'>{html.escape(detail[:140])}</td></tr>"
        )
    if len(node.events) > _TRACE_EVENTS:
        hidden = len(node.events) - _TRACE_EVENTS
        events.append(f"<tr><td colspan='3' style='color:#666'>... {hidden} more</td></tr>")
    body = (
        f"<details><summary>{len(node.events)} event(s)</summary>"
        f"<table style='font-size:90%'>{''.join(events)}</table></details>"
        if events
        else ""
    )
    children = "".join(_node_html(child, t0) for child in node.children)
    return (
        f"<li class='fleetlab-trace-node' data-status='{t.status}'>{line}{body}"
        + (f"<ul>{children}</ul>" if children else "")
        + "</li>"
    )


def render_trace_html(root: TraceNode) -> str:
    """A goal's tree as HTML: each agent with its status, duration, tokens and cost, its
    events (offset from the goal's creation, kind, attributes) and its sub-agents; the same
    data as ``fleetlab trace``."""
    t = root.task
    nodes = root.walk()
    header = (
        f"<div>trace <code>{t.trace_id}</code> &middot; goal <b>{html.escape(t.title[:80])}</b>"
        f" &middot; {len(nodes)} agent(s) &middot; tokens {t.tree_tokens_in:,} in /"
        f" {t.tree_tokens_out:,} out &middot; {_money(t.tree_cost_usd)}</div>"
    )
    return (
        f"<div class='fleetlab-trace-tree' style='font-size:92%'>{header}"
        f"<ul>{_node_html(root, t.created_at)}</ul></div>"
    )
