"""One agent: one model context working on one task, durable at turn granularity.

The loop is model turn -> tool calls -> append results -> checkpoint, until the model
finishes, a limit is hit, the budget is spent, or the orchestrator asks it to yield. Each
turn's ``model.call`` and ``tool.call`` events, its usage roll-up, the checkpoint and the
lease heartbeat are committed in ONE transaction: after a crash the agent resumes from the
last committed turn and never pays twice for a model call whose turn was committed.

The workspace lives on disk beside the database and tools write atomically, so it is not
copied into checkpoints; a turn re-run after a crash sees the files as they are.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from fleetlab.errors import LeaseLost, ModelError
from fleetlab.models.base import Model
from fleetlab.models.metered import metered
from fleetlab.models.types import (
    Message,
    ModelRequest,
    ModelResponse,
    ToolResultBlock,
    ToolSpec,
    Usage,
)
from fleetlab.store import Lease, Store, Task, TurnWrite
from fleetlab.telemetry import Event, new_span_id, otel_content_enabled
from fleetlab.tools import TOOL_SPECS, Workspace

__all__ = ["AgentLimits", "AgentOutcome", "discarded_if_refused", "run_agent"]

YieldCheck = Callable[[], bool]
BudgetCheck = Callable[[], str | None]


@dataclass(frozen=True, slots=True)
class AgentLimits:
    """Limits of one agent.

    Attributes:
        max_turns: model calls before the agent is stopped as ``turn_limit``.
        max_tokens: output tokens allowed per call.
        stall_turns: identical tool calls in this many consecutive turns count as a stall
            (step repetition, the most common multi-agent failure) and stop the agent.

    The lease an agent runs under is the fleet's (``FleetConfig.lease_s``), renewed by the
    fleet's heartbeat: a turn never changes it.
    """

    max_turns: int = 40
    max_tokens: int = 4096
    stall_turns: int = 4


@dataclass(frozen=True, slots=True)
class AgentOutcome:
    """How an agent run ended. ``status`` ``yielded`` means checkpointed and resumable."""

    status: Literal["finished", "yielded", "failed"]
    text: str
    turns: int
    model_calls: int
    usage: Usage
    cost_usd: float
    error: str | None = None
    kind: Literal["agent_outcome"] = field(default="agent_outcome", repr=False)


# ``json.dumps(..., sort_keys=True, default=str)``, with the encoder built once
_signature_json = json.JSONEncoder(sort_keys=True, default=str).encode


def _signature(response: ModelResponse) -> str:
    return _signature_json([[b.name, b.input] for b in response.tool_uses])


def _summary(args: Any) -> dict[str, Any]:
    """Tool arguments for the event log: paths and patterns, not file contents."""
    if not isinstance(args, dict):
        return {"args_type": type(args).__name__}
    return {
        k: (v if isinstance(v, str) and len(v) <= 200 else f"<{len(str(v))} chars>")
        for k, v in args.items()
        if k != "content"
    }


async def run_agent(
    store: Store,
    model: Model,
    task: Task,
    workspace: Workspace,
    *,
    system: str,
    instructions: str,
    lease: Lease | None = None,
    lease_held: Callable[[], bool] | None = None,
    tools: tuple[ToolSpec, ...] = TOOL_SPECS,
    limits: AgentLimits | None = None,
    should_yield: YieldCheck | None = None,
    over_budget: BudgetCheck | None = None,
    on_turn: Callable[[], Awaitable[None]] | None = None,
) -> AgentOutcome:
    """Run (or resume) the agent of ``task`` until it finishes, fails or is asked to yield.

    The caller owns the task's status: this function only adds turns, events, usage and
    checkpoints. It never raises for model or tool failures; they end in a ``failed`` outcome.

    Args:
        store: where turns are committed.
        model: the backend (simulated or real; the loop does not know which).
        task: the task this agent works on; it must be ``running`` (under ``worker``'s lease).
        workspace: the sandbox the tools act on.
        system: the system prompt (stable across turns, so backends can cache it).
        instructions: the first user message, used when there is no checkpoint.
        lease: the claim the agent works under: each turn commits only while it holds. A
            stale lease stops the agent without committing the turn; the call it had made
            (and paid for) is recorded as a ``model.discarded`` event.
        lease_held: True while the lease is certainly still held (the caller renewed it and
            it is far from expiring: no other claim can have taken it). Then the check of
            the lease before a turn's tools run is skipped; the commit is fenced anyway.
        tools: tool schemas offered to the model.
        limits: turn, token and stall limits.
        should_yield: polled at each turn boundary; True makes the agent stop as ``yielded``.
        over_budget: polled before each model call; a reason string stops the agent.
        on_turn: awaited after each committed turn (progress reporting).
    """
    limits = limits or AgentLimits()
    meter = metered(model)
    _ = meter.price  # a model without a price fails here, before any call is paid for
    model_id = meter.model_id
    content = otel_content_enabled()  # the call records ride on the events to OpenTelemetry
    turn_head: dict[str, Any] = {}
    epoch = {} if lease is None else {"epoch": lease.epoch}
    checkpoints = store.checkpoints(task.id)
    if not checkpoints:
        messages = [Message.user(instructions)]
        turn, calls, usage, cost, recent = 0, 0, Usage(), 0.0, []
    else:
        # Each turn's checkpoint holds the messages that turn added: the conversation is
        # their concatenation (so a turn costs its own size to store, not the whole history).
        messages = [Message.from_dict(m) for cp in checkpoints for m in cp.state["messages"]]
        checkpoint = checkpoints[-1]
        state = checkpoint.state
        turn, calls = checkpoint.turn, int(state.get("model_calls", checkpoint.turn))
        usage, cost = Usage(**state["usage"]), float(state["cost_usd"])
        recent = list(state.get("recent", []))
        if state.get("done"):
            return AgentOutcome("finished", str(state.get("text", "")), turn, calls, usage, cost)

    def outcome(
        status: Literal["finished", "yielded", "failed"], text: str = "", error: str | None = None
    ) -> AgentOutcome:
        return AgentOutcome(status, text, turn, calls, usage, cost, error)

    while True:
        if should_yield is not None and should_yield():
            return outcome("yielded")
        if turn >= limits.max_turns:
            return outcome(
                "failed", error=f"turn limit: {limits.max_turns} turns without finishing"
            )
        if over_budget is not None and (reason := over_budget()):
            return outcome("failed", error=reason)
        request = ModelRequest(
            model=model_id,
            system=system,
            messages=tuple(messages),
            tools=tools,
            max_tokens=limits.max_tokens,
        )
        try:
            call = await meter.call(request)
        except ModelError as exc:
            return outcome("failed", error=f"model error: {exc}")
        response, call_cost = call.response, call.cost_usd
        turn += 1
        calls += 1
        usage, cost = usage + response.usage, cost + call_cost
        messages.append(response.message())
        now = store.clock.now()
        turn_head["turn"] = turn
        events = [
            Event(
                kind="model.call",
                ts=now,
                trace_id=task.trace_id,
                task_id=task.id,
                span_id=new_span_id(),
                parent_span_id=task.span_id,
                role=task.role,
                attrs=call.event_attrs(turn_head, epoch),
                content=call if content else None,
            )
        ]
        if lease is not None and (lease_held is None or not lease_held()):
            # The call may have outlived the lease: a task another claim has taken over shares
            # its workspace with the new holder, so the tools must not run for a stale turn.
            # (Tools run synchronously from here to the commit's enqueueing; the commit
            # itself is fenced again.)
            async with discarded_if_refused(store, events[0]):
                store.check_lease(lease)
        results: list[ToolResultBlock] = []
        for use in response.tool_uses:
            t0 = time.perf_counter()
            result = workspace.run_tool(use.name, use.input)
            results.append(ToolResultBlock(use.id, result.content, result.is_error))
            attrs: dict[str, Any] = {
                "turn": turn,
                "tool": use.name,
                "is_error": result.is_error,
                "latency_s": round(time.perf_counter() - t0, 6),
                **epoch,
                **_summary(use.input),
            }
            if result.is_error:
                attrs["error"] = result.content[:300]
            events.append(
                Event(
                    kind="tool.call",
                    ts=store.clock.now(),
                    trace_id=task.trace_id,
                    task_id=task.id,
                    span_id=new_span_id(),
                    parent_span_id=task.span_id,
                    role=task.role,
                    attrs=attrs,
                    content=(use, results[-1]) if content else None,
                )
            )
        done = not results
        if results:
            messages.append(Message("user", tuple(results)))
            recent = [*recent, _signature(response)][-limits.stall_turns :]
        text = response.text()
        added = messages[-2:] if results else messages[-1:]
        if turn == 1:
            added = [messages[0], *added]  # the first turn also records the task's brief
        state = {
            "messages": [m.to_dict() for m in added],
            "model_calls": calls,
            "usage": usage.to_dict(),
            "cost_usd": cost,
            "recent": recent,
            "done": done,
            "text": text,
        }
        commit = TurnWrite(
            task_id=task.id,
            turn=turn,
            state=state,
            events=events,
            tokens_in=response.usage.all_input_tokens,
            tokens_out=response.usage.output_tokens,
            cost_usd=call_cost,
            lease=lease,
        )
        try:
            await store.write_turn(commit)  # one group commit with other agents' turns
        except LeaseLost as exc:  # as ``discarded_if_refused`` (without its context manager)
            await _record_discarded(store, events[0], str(exc))
            raise
        if on_turn is not None:
            await on_turn()
        if done:
            if response.stop_reason == "max_tokens":
                return outcome("failed", text, f"output cut at max_tokens={limits.max_tokens}")
            return outcome("finished", text)
        if len(recent) == limits.stall_turns and len(set(recent)) == 1:
            return outcome(
                "failed",
                error=f"stalled: the same tool call repeated in {limits.stall_turns} turns",
            )


@contextlib.asynccontextmanager
async def discarded_if_refused(store: Store, call: Event | None) -> AsyncIterator[None]:
    """Around a fenced write that would commit the model ``call``: if the write is refused
    (``LeaseLost``: the lease had gone stale), the call is recorded as ``model.discarded``
    and the refusal re-raised. It was still paid for, so the report's cost must include it;
    the record is not fenced and adds nothing to the task's usage (its work was thrown
    away). ``None``: no call to record."""
    try:
        yield
    except LeaseLost as exc:
        if call is not None:
            await _record_discarded(store, call, str(exc))
        raise


async def _record_discarded(store: Store, call: Event, reason: str) -> None:
    event = Event(
        kind="model.discarded",
        ts=store.clock.now(),
        trace_id=call.trace_id,
        task_id=call.task_id,
        span_id=call.span_id,
        parent_span_id=call.parent_span_id,
        role=call.role,
        attrs={**call.attrs, "reason": reason},
        content=call.content,
    )
    await store.write(lambda: store.append(event))
