"""One goal's whole trace: the one model every trace surface reads.

``load_goal_trace`` reads the goal's tasks, events and checkpoints (three statements) and its
workspace folder, and assembles the agent tree, the timeline, each agent's conversation, the
model calls with their usage per agent, the workspace's changes and the verifier's output.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from fleetlab.store import Store, Task
from fleetlab.store.read.trace import trace_checkpoints
from fleetlab.telemetry import redact
from fleetlab.trace._calls import AgentUsage, Call, calls_from_events, usage_by_agent
from fleetlab.trace._conversation import Conversation, Verdict, build_conversation
from fleetlab.trace._timeline import Timeline, build_timeline
from fleetlab.trace._tree import TraceNode, build_tree
from fleetlab.trace._workspace import WorkspaceChanges, workspace_changes

__all__ = ["Agent", "GoalTrace", "load_goal_trace"]

#: The fan-out the default fleet gives planners (their system prompt names it).
DEFAULT_MAX_SUBTASKS = 4


@dataclass(frozen=True, slots=True)
class Agent:
    """One agent of the goal: its place in the tree, its conversation and its usage."""

    node: TraceNode
    conversation: Conversation
    usage: AgentUsage
    kind: Literal["agent"] = field(default="agent", repr=False)

    @property
    def task(self) -> Task:
        return self.node.task

    @property
    def id(self) -> str:
        return self.node.task.id

    @property
    def depth(self) -> int:
        return self.node.task.depth

    def to_dict(self) -> dict[str, Any]:
        t = self.node.task
        return {
            "kind": self.kind,
            "task_id": t.id,
            "parent_id": t.parent_id,
            "role": t.role,
            "title": redact(t.title),
            "brief": self.node.brief,
            "status": t.status,
            "depth": t.depth,
            "attempts": t.attempts,
            "created_at": t.created_at.isoformat(),
            "started_at": None if t.started_at is None else t.started_at.isoformat(),
            "finished_at": None if t.finished_at is None else t.finished_at.isoformat(),
            "duration_s": self.node.duration_s,
            "children": [c.task.id for c in self.node.children],
            "usage": self.usage.to_dict(),
            "conversation": self.conversation.to_dict(),
        }


@dataclass(frozen=True, slots=True)
class GoalTrace:
    """Everything one goal did, read from the fleet's store and workspace.

    Attributes:
        trace_id: the goal's correlation id.
        root: the agent tree (tasks and their events).
        agents: every agent, depth first (the tree's order).
        timeline: one lane per agent, on the fleet's clock.
        calls: every model call, in the order they were written.
        workspace: the files the goal added, removed and changed.
        verifier: the suite verifier's output on the goal (None: no verifier ran).
        repairs: repair rounds the goal used.
        simulated: every model call was made by a simulated model.
        read_at: when the trace was read (the fleet's clock).
    """

    trace_id: str
    root: TraceNode
    agents: tuple[Agent, ...]
    timeline: Timeline
    calls: tuple[Call, ...]
    workspace: WorkspaceChanges
    verifier: Verdict | None
    repairs: int
    simulated: bool
    read_at: datetime
    kind: Literal["goal_trace"] = field(default="goal_trace", repr=False)

    @property
    def goal(self) -> Task:
        return self.root.task

    def agent(self, task_id: str) -> Agent:
        """The agent of one task of the goal.

        Raises:
            KeyError: no such agent in this goal.
        """
        for a in self.agents:
            if a.id == task_id:
                return a
        raise KeyError(task_id)

    def to_dict(self) -> dict[str, Any]:
        """The whole model as plain JSON-safe data (``fleetlab trace ID --json``).

        The top level is the goal's tree node (``task_id``, ``events``, ``children``... as
        `TraceNode.to_dict` and earlier versions give it), with the rest of the model beside.
        """
        goal = self.goal
        return {
            **self.root.to_dict(),
            "kind": self.kind,
            "trace_id": self.trace_id,
            "goal": {
                "task_id": goal.id,
                "title": redact(goal.title),
                "status": goal.status,
                "suite_task": goal.spec.get("suite_task"),
                "decision": goal.spec.get("decision"),
                "plan": goal.spec.get("plan"),
                "repairs": self.repairs,
                "tree_tokens_in": goal.tree_tokens_in,
                "tree_tokens_out": goal.tree_tokens_out,
                "tree_cost_usd": goal.tree_cost_usd,
                "error": None if goal.error is None else redact(goal.error),
            },
            "verifier": None if self.verifier is None else self.verifier.to_dict(),
            "simulated": self.simulated,
            "read_at": self.read_at.isoformat(),
            "agents": [a.to_dict() for a in self.agents],
            "timeline": self.timeline.to_dict(),
            "calls": [c.to_dict() for c in self.calls],
            "workspace": self.workspace.to_dict(),
        }


def _verifier(goal: Task) -> Verdict | None:
    """The suite verifier's output: the goal's result verdict when it passed, its error when
    the verifier failed it (the orchestrator prefixes that error with ``verifier:``)."""
    if not goal.spec.get("suite_task"):
        return None
    if goal.status == "completed" and isinstance(goal.result, dict):
        verdict = goal.result.get("verdict")
        return None if verdict is None else Verdict("verifier", True, redact(str(verdict)))
    if goal.status == "failed" and goal.error and goal.error.startswith("verifier:"):
        return Verdict("verifier", False, redact(goal.error.removeprefix("verifier:").strip()))
    return None


def default_workspaces(store: Store) -> Path:
    """Where a fleet on ``store`` keeps workspaces by default (``FleetConfig.workspaces``
    unset): ``workspaces/`` beside the database file, or in the current folder."""
    return (store.folder or Path.cwd()) / "workspaces"


def load_goal_trace(
    store: Store,
    ident: str,
    *,
    workspaces: Path | None = None,
    max_subtasks: int = DEFAULT_MAX_SUBTASKS,
) -> GoalTrace:
    """The whole trace of the goal that ``ident`` (task id, id prefix or trace id) is part of.

    Args:
        store: the fleet's store.
        ident: any task of the goal, or its trace id.
        workspaces: the folder the fleet kept workspaces in (default: beside the database).
        max_subtasks: the fleet's fan-out (only to rebuild planners' system prompts).

    Raises:
        NotFoundError: nothing matches ``ident``.
    """
    found = store.find_task(ident)
    trace_id = found.trace_id
    tasks = store.tasks(trace_id=trace_id)
    events = store.events(trace_id=trace_id)
    checkpoints = trace_checkpoints(store, trace_id)
    root = build_tree(tasks, events, found.root_id)
    nodes = root.walk()
    calls = calls_from_events(events)
    usage = usage_by_agent(calls, {n.task.id: [c.task.id for c in n.children] for n in nodes})
    by_task: dict[str, list[Call]] = {}
    for c in calls:
        by_task.setdefault(c.task_id, []).append(c)
    agents = tuple(
        Agent(
            n,
            build_conversation(
                n.task,
                checkpoints.get(n.task.id, []),
                by_task.get(n.task.id, []),
                max_subtasks=max_subtasks,
            ),
            usage[n.task.id],
        )
        for n in nodes
    )
    now = store.clock.now()
    goal = root.task
    return GoalTrace(
        trace_id=trace_id,
        root=root,
        agents=agents,
        timeline=build_timeline([n.task for n in nodes], events, now),
        calls=tuple(calls),
        workspace=workspace_changes(goal, workspaces or default_workspaces(store)),
        verifier=_verifier(goal),
        repairs=int(goal.spec.get("repairs", 0) or 0),
        simulated=bool(calls) and all(c.simulated for c in calls),
        read_at=now,
    )
