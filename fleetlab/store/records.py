"""The records the store hands out: tasks, leases, checkpoints, and one turn's writes."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from fleetlab.clock import from_us
from fleetlab.store.lifecycle import TERMINAL, TaskStatus
from fleetlab.telemetry import Event

__all__ = ["Checkpoint", "Lease", "Task", "TurnWrite"]


@dataclass(frozen=True, slots=True)
class Lease:
    """A worker's claim on a running task, fenced by the claim's epoch.

    Every claim of a task gets a new, strictly increasing epoch. Every write made on the
    task's behalf names its lease, and is refused with ``LeaseLost`` once another claim has
    superseded it (or the task left ``running``), so two holders can never both commit.
    """

    task_id: str
    worker: str
    epoch: int


@dataclass(frozen=True, slots=True)
class Task:
    """A task row. Times are tz-aware UTC; ``spec`` and ``result`` are parsed JSON."""

    id: str
    parent_id: str | None
    root_id: str
    trace_id: str
    span_id: str
    depth: int
    role: str
    title: str
    spec: dict[str, Any]
    priority: int
    status: TaskStatus
    attempts: int
    preempt_streak: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime
    lease_owner: str | None
    lease_expires_at: datetime | None
    lease_epoch: int
    heartbeat_at: datetime | None
    result: Any
    error: str | None
    budget_usd: float | None
    budget_tokens: int | None
    tokens_in: int
    tokens_out: int
    cost_usd: float
    tree_tokens_in: int
    tree_tokens_out: int
    tree_cost_usd: float
    tree_agents: int
    kind: Literal["task"] = field(default="task", repr=False)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def lease(self) -> Lease | None:
        """The lease the task is running under, if it is running under one."""
        if self.status != "running" or self.lease_owner is None:
            return None
        return Lease(self.id, self.lease_owner, self.lease_epoch)

    @classmethod
    def from_row(cls, row: Any) -> Task:
        """The task a ``tasks`` row holds (a mapping, or a driver's row with ``keys()``)."""

        def ts(us: int | None) -> datetime | None:
            return None if us is None else from_us(us)

        if not isinstance(row, Mapping):  # a driver's row: by name costs a scan per column
            row = dict(zip(row.keys(), row, strict=True))

        return cls(
            id=row["id"],
            parent_id=row["parent_id"],
            root_id=row["root_id"],
            trace_id=row["trace_id"],
            span_id=row["span_id"],
            depth=row["depth"],
            role=row["role"],
            title=row["title"],
            spec=json.loads(row["spec"]),
            priority=row["priority"],
            status=row["status"],
            attempts=row["attempts"],
            preempt_streak=row["preempt_streak"],
            created_at=from_us(row["created_us"]),
            started_at=ts(row["started_us"]),
            finished_at=ts(row["finished_us"]),
            updated_at=from_us(row["updated_us"]),
            lease_owner=row["lease_owner"],
            lease_expires_at=ts(row["lease_expires_us"]),
            lease_epoch=row["lease_epoch"],
            heartbeat_at=ts(row["heartbeat_us"]),
            result=None if row["result"] is None else json.loads(row["result"]),
            error=row["error"],
            budget_usd=row["budget_usd"],
            budget_tokens=row["budget_tokens"],
            tokens_in=row["tokens_in"],
            tokens_out=row["tokens_out"],
            cost_usd=row["cost_usd"],
            tree_tokens_in=row["tree_tokens_in"],
            tree_tokens_out=row["tree_tokens_out"],
            tree_cost_usd=row["tree_cost_usd"],
            tree_agents=row["tree_agents"],
        )


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The state an agent needs to resume after turn ``turn``."""

    task_id: str
    turn: int
    created_at: datetime
    state: dict[str, Any]
    kind: Literal["checkpoint"] = field(default="checkpoint", repr=False)


@dataclass(frozen=True, slots=True)
class TurnWrite:
    """Everything one agent turn commits: its events, the call's usage (rolled up to every
    ancestor) and the checkpoint delta; with ``lease``, only while that lease holds.

    Queued with ``Store.write_turn``; the turns that share a group commit are written with
    one multi-row statement per table instead of a handful of statements each.
    """

    task_id: str
    turn: int
    state: Mapping[str, Any]
    events: Sequence[Event]
    tokens_in: int
    tokens_out: int
    cost_usd: float
    lease: Lease | None = None
