"""A goal's agent tree: tasks with their roles, briefs, events and children."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fleetlab.store import Store, Task
from fleetlab.telemetry import Event, redact, redact_value

__all__ = ["TraceNode", "load_trace"]


@dataclass(slots=True)
class TraceNode:
    """One task (one agent) in a trace, with its own events and its children."""

    task: Task
    events: list[Event] = field(default_factory=list)
    children: list[TraceNode] = field(default_factory=list)

    @property
    def brief(self) -> str:
        """What the agent was asked: its instructions (redacted), or its title without any."""
        return redact(str(self.task.spec.get("instructions") or self.task.title))

    @property
    def duration_s(self) -> float | None:
        """Seconds from first start to finish (or to the last event while still active)."""
        if self.task.started_at is None:
            return None
        end: datetime | None = self.task.finished_at or (
            self.events[-1].ts if self.events else None
        )
        return None if end is None else (end - self.task.started_at).total_seconds()

    def walk(self) -> list[TraceNode]:
        """This node and all its descendants, depth first."""
        nodes = [self]
        for child in self.children:
            nodes += child.walk()
        return nodes

    def to_dict(self) -> dict[str, Any]:
        t = self.task
        return {
            "task_id": t.id,
            "parent_id": t.parent_id,
            "trace_id": t.trace_id,
            "title": redact(t.title),
            "role": t.role,
            "brief": self.brief,
            "status": t.status,
            "priority": t.priority,
            "attempts": t.attempts,
            "created_at": t.created_at.isoformat(),
            "started_at": t.started_at.isoformat() if t.started_at else None,
            "finished_at": t.finished_at.isoformat() if t.finished_at else None,
            "duration_s": self.duration_s,
            "tokens_in": t.tokens_in,
            "tokens_out": t.tokens_out,
            "cost_usd": t.cost_usd,
            "tree_tokens_in": t.tree_tokens_in,
            "tree_tokens_out": t.tree_tokens_out,
            "tree_cost_usd": t.tree_cost_usd,
            "error": None if t.error is None else redact(t.error),
            "result": redact_value(t.result),
            "events": [e.to_dict() for e in self.events],
            "children": [c.to_dict() for c in self.children],
        }


def build_tree(tasks: list[Task], events: list[Event], root_id: str) -> TraceNode:
    """The tree rooted at ``root_id`` from a trace's tasks and events (in written order)."""
    ordered = sorted(tasks, key=lambda t: (t.created_at, t.depth, t.id))
    nodes = {t.id: TraceNode(t) for t in ordered}
    for event in events:
        node = nodes.get(event.task_id)
        if node is not None:
            node.events.append(event)
    for t in ordered:
        if t.parent_id is not None and t.parent_id in nodes:
            nodes[t.parent_id].children.append(nodes[t.id])
    return nodes[root_id]


def load_trace(store: Store, ident: str) -> TraceNode:
    """The tree of the goal that ``ident`` (a task id, id prefix or trace id) belongs to.

    Raises:
        NotFoundError: nothing matches ``ident``.
    """
    task = store.find_task(ident)
    return build_tree(
        store.tasks(trace_id=task.trace_id), store.events(trace_id=task.trace_id), task.root_id
    )
