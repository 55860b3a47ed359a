"""The task lifecycle: statuses, the legal transitions between them, priorities."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, TypeAlias

from fleetlab.errors import UserError

__all__ = [
    "ACTIVE",
    "MAX_TITLE_CHARS",
    "PRIORITY_RANGE",
    "STATUSES",
    "TERMINAL",
    "TRANSITIONS",
    "TaskStatus",
    "as_task_status",
]

TaskStatus: TypeAlias = Literal[
    "queued", "running", "preempted", "waiting_children", "completed", "failed", "cancelled"
]
STATUSES: tuple[TaskStatus, ...] = (
    "queued",
    "running",
    "preempted",
    "waiting_children",
    "completed",
    "failed",
    "cancelled",
)
TERMINAL: frozenset[str] = frozenset({"completed", "failed", "cancelled"})
ACTIVE: frozenset[str] = frozenset(STATUSES) - TERMINAL

#: The lifecycle. ``(from, to) -> event kind``; anything not listed is illegal.
TRANSITIONS: Mapping[tuple[str, str], str] = {
    ("queued", "running"): "task.started",
    ("running", "completed"): "task.completed",
    ("running", "failed"): "task.failed",
    ("running", "preempted"): "task.preempted",
    ("running", "waiting_children"): "task.waiting",
    ("preempted", "queued"): "task.requeued",
    ("preempted", "running"): "task.resumed",
    ("waiting_children", "queued"): "task.requeued",
    ("waiting_children", "running"): "task.resumed",
    **{(status, "cancelled"): "task.cancelled" for status in ACTIVE},
}

#: Higher runs first. The CLI and API refuse values outside this range.
PRIORITY_RANGE = range(101)
MAX_TITLE_CHARS = 20_000


def as_task_status(value: str) -> TaskStatus:
    """Validate a status name from user input."""
    for status in STATUSES:
        if status == value:
            return status
    raise UserError(f"unknown status {value!r}: use one of {', '.join(STATUSES)}")
