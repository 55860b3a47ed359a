"""Model calls: tokens, cost and latency per call, rolled up per agent.

Read from the ``model.call`` events (a committed call) and ``model.discarded`` events (a
call paid for under a lease that had gone stale: its work was thrown away, its cost was not).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from fleetlab.telemetry import Event, redact

__all__ = ["AgentUsage", "Call", "calls_from_events", "usage_by_agent"]


@dataclass(frozen=True, slots=True)
class Call:
    """One model call.

    Attributes:
        task_id: the agent (task) that made it.
        role: the role it was made in (``scorer`` for a complexity-scoring call).
        turn: the agent's turn it answered (None for a scoring call).
        ended_at: when its answer arrived (the event's time, on the fleet's clock).
        latency_s: how long it took; it started ``latency_s`` before ``ended_at``.
        discarded: paid for but thrown away (its lease was stale when it returned).
        reason: why it was discarded.
    """

    task_id: str
    role: str
    turn: int | None
    model: str
    ended_at: datetime
    latency_s: float
    input_tokens: int
    output_tokens: int
    cache_read_input_tokens: int
    cache_creation_input_tokens: int
    cost_usd: float
    stop_reason: str
    epoch: int | None
    simulated: bool
    discarded: bool = False
    reason: str | None = None
    score: int | None = None
    kind: Literal["call"] = field(default="call", repr=False)

    @property
    def all_input_tokens(self) -> int:
        """Input tokens of every kind (fresh, cache read, cache written)."""
        return self.input_tokens + self.cache_read_input_tokens + self.cache_creation_input_tokens

    @property
    def started_at(self) -> datetime:
        """When it was sent: ``latency_s`` before its answer arrived."""
        return self.ended_at - timedelta(seconds=self.latency_s)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "task_id": self.task_id,
            "role": self.role,
            "turn": self.turn,
            "model": self.model,
            "started_at": self.started_at.isoformat(),
            "ended_at": self.ended_at.isoformat(),
            "latency_s": self.latency_s,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_read_input_tokens": self.cache_read_input_tokens,
            "cache_creation_input_tokens": self.cache_creation_input_tokens,
            "cost_usd": self.cost_usd,
            "stop_reason": self.stop_reason,
            "epoch": self.epoch,
            "simulated": self.simulated,
            "discarded": self.discarded,
            "reason": self.reason,
            "score": self.score,
        }


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def calls_from_events(events: Iterable[Event]) -> list[Call]:
    """The model calls among ``events``, in the order they were written."""
    calls = []
    for e in events:
        if e.kind not in ("model.call", "model.discarded"):
            continue
        a = e.attrs
        turn = a.get("turn")
        epoch = a.get("epoch")
        score = a.get("score")
        calls.append(
            Call(
                task_id=e.task_id,
                role=e.role,
                turn=None if turn is None else _int(turn),
                model=str(a.get("model", "")),
                ended_at=e.ts,
                latency_s=_float(a.get("latency_s")),
                input_tokens=_int(a.get("input_tokens")),
                output_tokens=_int(a.get("output_tokens")),
                cache_read_input_tokens=_int(a.get("cache_read_input_tokens")),
                cache_creation_input_tokens=_int(a.get("cache_creation_input_tokens")),
                cost_usd=_float(a.get("cost_usd")),
                stop_reason=str(a.get("stop_reason", "")),
                epoch=None if epoch is None else _int(epoch),
                simulated=bool(a.get("simulated", False)),
                discarded=e.kind == "model.discarded",
                reason=None if a.get("reason") is None else redact(str(a["reason"])),
                score=None if score is None else _int(score),
            )
        )
    return calls


@dataclass(frozen=True, slots=True)
class AgentUsage:
    """One agent's model calls summed: what it used itself (``tree_*``: with its sub-agents).

    ``cost_usd`` and the token counts include discarded calls (they were paid for);
    ``discarded_cost_usd`` says how much of the cost they were.
    """

    task_id: str
    calls: int
    discarded_calls: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    discarded_cost_usd: float
    latency_s: float
    tree_calls: int
    tree_input_tokens: int
    tree_output_tokens: int
    tree_cost_usd: float
    kind: Literal["agent_usage"] = field(default="agent_usage", repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "task_id": self.task_id,
            "calls": self.calls,
            "discarded_calls": self.discarded_calls,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": self.cost_usd,
            "discarded_cost_usd": self.discarded_cost_usd,
            "latency_s": self.latency_s,
            "tree_calls": self.tree_calls,
            "tree_input_tokens": self.tree_input_tokens,
            "tree_output_tokens": self.tree_output_tokens,
            "tree_cost_usd": self.tree_cost_usd,
        }


def usage_by_agent(calls: Iterable[Call], children: dict[str, list[str]]) -> dict[str, AgentUsage]:
    """Each agent's usage, own and with its whole subtree (``children``: task id -> ids of
    its sub-agents; every agent of the trace is a key)."""
    own: dict[str, list[Call]] = {task_id: [] for task_id in children}
    for c in calls:
        own.setdefault(c.task_id, []).append(c)
    out: dict[str, AgentUsage] = {}
    # every call's cost in each subtree: summed exactly (fsum), so a tree's cost does not
    # depend on the order its sub-agents happened to finish in
    tree_costs: dict[str, list[float]] = {}

    def visit(task_id: str) -> AgentUsage:
        mine = own.get(task_id, [])
        below = [visit(k) for k in children.get(task_id, [])]
        costs = [c.cost_usd for c in mine]
        for k in children.get(task_id, []):
            costs += tree_costs[k]
        tree_costs[task_id] = costs
        u = AgentUsage(
            task_id=task_id,
            calls=len(mine),
            discarded_calls=sum(c.discarded for c in mine),
            input_tokens=sum(c.all_input_tokens for c in mine),
            output_tokens=sum(c.output_tokens for c in mine),
            cost_usd=sum(c.cost_usd for c in mine),
            discarded_cost_usd=sum(c.cost_usd for c in mine if c.discarded),
            latency_s=sum(c.latency_s for c in mine),
            tree_calls=len(mine) + sum(b.tree_calls for b in below),
            tree_input_tokens=sum(c.all_input_tokens for c in mine)
            + sum(b.tree_input_tokens for b in below),
            tree_output_tokens=sum(c.output_tokens for c in mine)
            + sum(b.tree_output_tokens for b in below),
            tree_cost_usd=math.fsum(costs),
        )
        out[task_id] = u
        return u

    roots = set(children) - {k for kids in children.values() for k in kids}
    for root in sorted(roots):
        visit(root)
    return out
