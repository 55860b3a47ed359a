"""A goal's timeline on the fleet's clock: one lane per agent, built from the events.

A lane is a run of state segments (``queued``, ``running``, ``waiting`` on sub-agents,
``preempted``) and marks on them: model calls (drawn over their latency), tool calls,
decisions, preemptions, resumes, reclaims, discarded calls and the end.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from fleetlab.store import Task
from fleetlab.telemetry import Event, redact

__all__ = ["Lane", "Mark", "Segment", "Timeline", "build_timeline"]

SegmentState = Literal["queued", "running", "waiting", "preempted"]
MarkKind = Literal[
    "model_call",
    "tool_call",
    "discarded_call",
    "decision",
    "preempted",
    "resumed",
    "reclaimed",
    "budget",
    "completed",
    "failed",
    "cancelled",
]

#: The state a task is in after each lifecycle event.
_STATE_AFTER: dict[str, SegmentState | None] = {
    "task.spawned": "queued",
    "task.started": "running",
    "task.resumed": "running",
    "task.preempted": "preempted",
    "task.waiting": "waiting",
    "task.requeued": "queued",
    "task.completed": None,
    "task.failed": None,
    "task.cancelled": None,
}


@dataclass(slots=True)
class Segment:
    """A stretch of time an agent spent in one state.

    Attributes:
        end: None while the state lasts (the goal is still in flight).
        worker, epoch: the claim a ``running`` segment ran under.
        waiting_on: for ``waiting``, the sub-agents it waited for (spawned just before).
        note: why it ended or began that way (a preemption's reason, a lost lease).
    """

    task_id: str
    state: SegmentState
    start: datetime
    end: datetime | None = None
    worker: str | None = None
    epoch: int | None = None
    waiting_on: list[str] = field(default_factory=list)
    note: str | None = None
    kind: Literal["segment"] = field(default="segment", repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "task_id": self.task_id,
            "state": self.state,
            "start": self.start.isoformat(),
            "end": None if self.end is None else self.end.isoformat(),
            "worker": self.worker,
            "epoch": self.epoch,
            "waiting_on": list(self.waiting_on),
            "note": self.note,
        }


@dataclass(frozen=True, slots=True)
class Mark:
    """Something that happened at ``at`` (lasting until ``end`` for a model call)."""

    task_id: str
    mark: MarkKind
    at: datetime
    label: str
    end: datetime | None = None
    turn: int | None = None
    kind: Literal["mark"] = field(default="mark", repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "task_id": self.task_id,
            "mark": self.mark,
            "at": self.at.isoformat(),
            "end": None if self.end is None else self.end.isoformat(),
            "label": self.label,
            "turn": self.turn,
        }


@dataclass(slots=True)
class Lane:
    """One agent's row of the timeline."""

    task_id: str
    role: str
    title: str
    depth: int
    segments: list[Segment] = field(default_factory=list)
    marks: list[Mark] = field(default_factory=list)
    kind: Literal["lane"] = field(default="lane", repr=False)

    def count(self, mark: MarkKind) -> int:
        """How many marks of this kind the lane has."""
        return sum(m.mark == mark for m in self.marks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "task_id": self.task_id,
            "role": self.role,
            "title": self.title,
            "depth": self.depth,
            "segments": [s.to_dict() for s in self.segments],
            "marks": [m.to_dict() for m in self.marks],
        }


@dataclass(slots=True)
class Timeline:
    """The lanes of a goal, in tree order, between ``start`` and ``end`` on the fleet's clock.

    ``end`` is the last event's time (for a goal still in flight: when it was read).
    """

    start: datetime
    end: datetime
    lanes: list[Lane]
    kind: Literal["timeline"] = field(default="timeline", repr=False)

    @property
    def span_s(self) -> float:
        return (self.end - self.start).total_seconds()

    def lane(self, task_id: str) -> Lane:
        """The lane of one agent."""
        return next(lane for lane in self.lanes if lane.task_id == task_id)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "span_s": self.span_s,
            "lanes": [lane.to_dict() for lane in self.lanes],
        }


def _label(e: Event) -> str:
    a = e.attrs
    if e.kind in ("model.call", "model.discarded"):
        tokens = int(a.get("input_tokens", 0) or 0) + int(a.get("cache_read_input_tokens", 0) or 0)
        tokens += int(a.get("cache_creation_input_tokens", 0) or 0)
        what = "scoring call" if e.role == "scorer" else f"turn {a.get('turn', '?')}"
        text = f"{what}: {tokens} in / {a.get('output_tokens', 0)} out"
        return text + (
            f" (discarded: {a.get('reason', '')})" if e.kind == "model.discarded" else ""
        )
    if e.kind == "tool.call":
        args = ", ".join(
            f"{k}={v}"
            for k, v in a.items()
            if k not in ("turn", "tool", "is_error", "latency_s", "epoch", "error")
        )
        error = f" -> error: {a['error']}" if a.get("is_error") and a.get("error") else ""
        return f"{a.get('tool', '?')}({args}){error}"
    if e.kind == "decomposition.decided":
        return f"decided {a.get('choice', '?')}: {a.get('reason', '')}"
    if e.kind == "task.reclaimed":
        return (
            f"reclaimed by {a.get('worker', '?')} (epoch {a.get('epoch', '?')}) from"
            f" {a.get('previous_owner', '?')} (epoch {a.get('previous_epoch', '?')})"
        )
    if e.kind == "budget.exceeded":
        return str(a.get("reason", "budget exceeded"))
    reason = f": {a['error']}" if a.get("error") else ""
    return e.kind.removeprefix("task.") + reason


def _mark(e: Event) -> Mark | None:
    a = e.attrs
    label = redact(_label(e))
    if e.kind in ("model.call", "model.discarded"):
        latency = float(a.get("latency_s", 0) or 0)
        turn = a.get("turn")
        return Mark(
            e.task_id,
            "model_call" if e.kind == "model.call" else "discarded_call",
            e.ts - timedelta(seconds=latency),
            label,
            end=e.ts,
            turn=None if turn is None else int(turn),
        )
    simple: dict[str, MarkKind] = {
        "tool.call": "tool_call",
        "decomposition.decided": "decision",
        "task.preempted": "preempted",
        "task.resumed": "resumed",
        "task.reclaimed": "reclaimed",
        "budget.exceeded": "budget",
        "task.completed": "completed",
        "task.failed": "failed",
        "task.cancelled": "cancelled",
    }
    found = simple.get(e.kind)
    if found is None:
        return None
    turn = a.get("turn") if e.kind == "tool.call" else None
    return Mark(e.task_id, found, e.ts, label, turn=None if turn is None else int(turn))


def _lane(task: Task, events: list[Event], waits: dict[str, list[str]]) -> Lane:
    lane = Lane(task.id, task.role, redact(task.title), task.depth)
    current: Segment | None = None

    def close(at: datetime, note: str | None = None) -> None:
        nonlocal current
        if current is not None:
            current.end = at
            if note:
                current.note = note
            lane.segments.append(current)
            current = None

    for e in events:
        mark = _mark(e)
        if mark is not None:
            lane.marks.append(mark)
        a = e.attrs
        if e.kind == "task.reclaimed":
            lost = f"lease lost: {a.get('previous_owner', '?')} (epoch {a.get('previous_epoch')})"
            close(e.ts, lost)
            epoch = a.get("epoch")
            current = Segment(
                task.id, "running", e.ts, worker=a.get("worker"),
                epoch=None if epoch is None else int(epoch), note="reclaimed",
            )  # fmt: skip
            continue
        if e.kind not in _STATE_AFTER:
            continue
        state = _STATE_AFTER[e.kind]
        note = redact(str(a["error"])) if a.get("error") else None
        close(e.ts, note if state is None else None)  # a final reason ends the last state
        if state is None:
            continue
        epoch = a.get("epoch")
        current = Segment(
            task.id,
            state,
            e.ts,
            worker=a.get("worker") if state == "running" else None,
            epoch=None if epoch is None or state != "running" else int(epoch),
            waiting_on=waits.get(e.id, []),
            note=note,  # why it is preempted
        )
    if current is not None:
        lane.segments.append(current)  # still in this state
    return lane


def build_timeline(tasks: Iterable[Task], events: list[Event], now: datetime) -> Timeline:
    """The timeline of the tasks of one trace (``tasks`` in lane order) from its ``events``
    (in written order). ``now`` ends the open segments of a goal still in flight."""
    ordered = list(tasks)
    by_task: dict[str, list[Event]] = {t.id: [] for t in ordered}
    parents = {t.id: t.parent_id for t in ordered}
    # A task spawns its sub-agents and starts waiting for them in one commit: a wait is on
    # the sub-agents spawned since its previous one (in written order: times may be equal).
    spawned: dict[str, list[str]] = {}
    waits: dict[str, list[str]] = {}
    for e in events:
        if e.task_id in by_task:
            by_task[e.task_id].append(e)
        if e.kind == "task.spawned" and (parent := parents.get(e.task_id)) is not None:
            spawned.setdefault(parent, []).append(e.task_id)
        elif e.kind == "task.waiting":
            waits[e.id] = spawned.pop(e.task_id, [])
    lanes = [_lane(t, by_task[t.id], waits) for t in ordered]
    starts = [t.created_at for t in ordered] + [m.at for lane in lanes for m in lane.marks]
    start = min(starts) if starts else now
    finished = all(t.terminal for t in ordered)
    end = max((e.ts for e in events), default=start) if finished else max(now, start)
    return Timeline(start, end, lanes)
