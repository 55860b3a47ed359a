"""Each agent's conversation, from its checkpoints and its events.

An agent's checkpoints hold, turn by turn, the messages that turn added (the first turn
also holds the brief, the first user message): their concatenation is the conversation.
Each assistant message is joined with the ``model.call`` event of its turn (tokens, cost,
latency) and each tool call with its result. The system prompt is not stored: it is
rebuilt from the role's prompt file and marked ``reconstructed``.

Every text here is agent or model output, so it is redacted of secrets (again: the
redaction at write time knew only the secrets registered then).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from fleetlab.decompose import parse_verdict
from fleetlab.errors import FleetlabError
from fleetlab.store import Checkpoint, Task
from fleetlab.telemetry import redact, redact_value
from fleetlab.trace._calls import Call

__all__ = [
    "Block",
    "Conversation",
    "ConversationMessage",
    "ToolCall",
    "Verdict",
    "build_conversation",
    "system_prompt",
]

BlockType = Literal["text", "tool_use", "tool_result"]


@dataclass(frozen=True, slots=True)
class Block:
    """One block of a message: ``text``, a ``tool_use`` (``name``, ``input``) or a
    ``tool_result`` (``text`` is its content, ``tool_use_id`` the call it answers)."""

    type: BlockType
    text: str = ""
    name: str | None = None
    input: Any = None
    tool_use_id: str | None = None
    is_error: bool = False

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        if self.type == "tool_use":
            out.update(id=self.tool_use_id, name=self.name, input=self.input)
        elif self.type == "tool_result":
            out.update(tool_use_id=self.tool_use_id, content=self.text, is_error=self.is_error)
        else:
            out["text"] = self.text
        return out


@dataclass(frozen=True, slots=True)
class ConversationMessage:
    """One message. ``turn`` is the agent turn that recorded it; an assistant message carries
    the ``call`` that produced it (None if its event is missing)."""

    role: Literal["user", "assistant"]
    turn: int
    blocks: tuple[Block, ...]
    call: Call | None = None
    kind: Literal["message"] = field(default="message", repr=False)

    @property
    def text(self) -> str:
        """The text blocks, joined."""
        return "\n".join(b.text for b in self.blocks if b.type == "text")

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "role": self.role,
            "turn": self.turn,
            "content": [b.to_dict() for b in self.blocks],
            "call": None if self.call is None else self.call.to_dict(),
        }


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A tool call with its arguments and its result (None: no result was recorded)."""

    turn: int
    id: str
    name: str
    arguments: Any
    result: str | None
    is_error: bool
    kind: Literal["tool_call"] = field(default="tool_call", repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "turn": self.turn,
            "id": self.id,
            "name": self.name,
            "arguments": self.arguments,
            "result": self.result,
            "is_error": self.is_error,
        }


@dataclass(frozen=True, slots=True)
class Verdict:
    """A validator's verdict, or the suite verifier's output on the goal."""

    source: Literal["validator", "verifier"]
    passed: bool
    reason: str
    kind: Literal["verdict"] = field(default="verdict", repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "source": self.source,
            "passed": self.passed,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class Conversation:
    """What one agent was told, said and did.

    Attributes:
        system: the system prompt (``system_reconstructed``: rebuilt, not stored).
        brief: the task's instructions as the orchestrator wrote them.
        messages: the whole conversation, in order.
        tool_calls: every tool call with its result.
        plan: a planner's plan (its parsed reply), or a decomposed goal's executed plan.
        verdict: a validator's verdict.
        answer: the agent's final text (its result), if it finished.
        error: why it failed or was cancelled, if it was.
        calls: every model call the agent made, in order: the turns' calls (each also on its
            message), scoring calls and discarded calls (paid for, thrown away).
    """

    task_id: str
    role: str
    system: str | None
    system_reconstructed: bool
    brief: str
    messages: tuple[ConversationMessage, ...]
    tool_calls: tuple[ToolCall, ...]
    plan: list[dict[str, Any]] | None
    verdict: Verdict | None
    answer: str | None
    error: str | None
    calls: tuple[Call, ...] = ()
    kind: Literal["conversation"] = field(default="conversation", repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "task_id": self.task_id,
            "role": self.role,
            "system": self.system,
            "system_reconstructed": self.system_reconstructed,
            "brief": self.brief,
            "messages": [m.to_dict() for m in self.messages],
            "tool_calls": [t.to_dict() for t in self.tool_calls],
            "plan": self.plan,
            "verdict": None if self.verdict is None else self.verdict.to_dict(),
            "answer": self.answer,
            "error": self.error,
            "calls": [c.to_dict() for c in self.calls],
        }


def _block(data: Any) -> Block:
    if not isinstance(data, dict):
        return Block("text", redact(str(data)))
    kind = data.get("type")
    if kind == "tool_use":
        return Block(
            "tool_use",
            name=redact(str(data.get("name", ""))),
            input=redact_value(data.get("input")),
            tool_use_id=str(data.get("id", "")),
        )
    if kind == "tool_result":
        content = data.get("content", "")
        if isinstance(content, list):
            content = "".join(
                str(p.get("text", "")) if isinstance(p, dict) else str(p) for p in content
            )
        return Block(
            "tool_result",
            redact(str(content)),
            tool_use_id=str(data.get("tool_use_id", "")),
            is_error=bool(data.get("is_error", False)),
        )
    return Block("text", redact(str(data.get("text", ""))))


def system_prompt(task: Task, max_subtasks: int) -> str | None:
    """The system prompt the orchestrator gives ``task``'s agent (as this version builds it),
    or None for a role without one."""
    from fleetlab.orchestrator import task_ref  # the orchestrator builds it this way
    from fleetlab.prompts import role_prompt

    role = "executor" if task.role == "orchestrator" else task.role  # a goal run directly
    try:
        return role_prompt(role, task_ref=task_ref(task.spec), max_subtasks=max_subtasks)
    except FleetlabError:
        return None


def _answer(task: Task) -> str | None:
    result = task.result
    if result is None:
        return None
    if isinstance(result, dict):
        for key in ("text", "summary"):
            if isinstance(result.get(key), str):
                return redact(result[key])
    return redact(json.dumps(result, default=str))


def _plan(task: Task) -> list[dict[str, Any]] | None:
    if task.role == "planner":
        text = (task.result or {}).get("text") if isinstance(task.result, dict) else None
        if not isinstance(text, str):
            return None
        try:
            data = json.loads(text)
        except ValueError:
            return None
        items = data.get("subtasks") if isinstance(data, dict) else None
        return redact_value(items) if isinstance(items, list) else None
    plan = task.spec.get("plan")
    return redact_value(plan) if isinstance(plan, list) else None


def _verdict(task: Task) -> Verdict | None:
    if task.role != "validator" or not isinstance(task.result, dict):
        return None
    text = task.result.get("text")
    if not isinstance(text, str):
        return None
    passed, reason = parse_verdict(text)
    return Verdict("validator", passed, redact(reason))


def build_conversation(
    task: Task, checkpoints: list[Checkpoint], calls: list[Call], *, max_subtasks: int = 4
) -> Conversation:
    """The conversation of ``task``'s agent from its checkpoints and its model calls.

    Args:
        task: the agent's task.
        checkpoints: its checkpoints, oldest turn first.
        calls: its model calls (committed ones are joined to their turn's message).
        max_subtasks: the fleet's fan-out, for rebuilding the planner's system prompt.
    """
    by_turn = {c.turn: c for c in calls if not c.discarded and c.turn is not None}
    messages: list[ConversationMessage] = []
    for cp in checkpoints:
        for raw in cp.state.get("messages", []):
            role = raw.get("role") if isinstance(raw, dict) else None
            if role not in ("user", "assistant"):
                continue
            content = raw.get("content", [])
            if isinstance(content, str):
                content = [{"type": "text", "text": content}]
            blocks = tuple(_block(b) for b in content)
            call = by_turn.get(cp.turn) if role == "assistant" else None
            messages.append(ConversationMessage(role, cp.turn, blocks, call))
    results = {b.tool_use_id: b for m in messages for b in m.blocks if b.type == "tool_result"}
    tool_calls = []
    for m in messages:
        for b in m.blocks:
            if b.type != "tool_use":
                continue
            r = results.get(b.tool_use_id)
            tool_calls.append(
                ToolCall(
                    m.turn,
                    b.tool_use_id or "",
                    b.name or "",
                    b.input,
                    None if r is None else r.text,
                    bool(r and r.is_error),
                )
            )
    ran_agent = bool(checkpoints)
    return Conversation(
        task_id=task.id,
        role=task.role,
        system=system_prompt(task, max_subtasks) if ran_agent else None,
        system_reconstructed=ran_agent,
        brief=redact(str(task.spec.get("instructions") or task.title)),
        messages=tuple(messages),
        tool_calls=tuple(tool_calls),
        plan=_plan(task),
        verdict=_verdict(task),
        answer=_answer(task),
        # a task that went on after a preemption keeps its reason in ``error``: not a failure
        error=redact(task.error) if task.error and task.status in ("failed", "cancelled") else None,
        calls=tuple(calls),
    )
