"""Whether to decompose: complexity scoring, the decomposition policies and plan parsing.

Policies (selectable per fleet or per goal, written as strings):

* ``never``: always one agent.
* ``always``: always plan sub-tasks (up to the depth limit).
* ``threshold:K``: score the task's complexity (1-5) with a prompt variant and decompose
  when the score is at least ``K``.
* ``as_needed``: ADaPT (Prasad et al., 2024): try the task directly; only if that fails,
  plan sub-tasks, and recurse into a failing sub-task, up to the depth limit.
* ``learned``: score, bucket the score, and let the persisted bandit in
  ``fleetlab.learning`` choose, learning from each finished root task's success and cost.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from fleetlab.errors import UserError

__all__ = [
    "POLICY_KINDS",
    "Policy",
    "parse_plan",
    "parse_policy",
    "parse_score",
    "parse_verdict",
    "score_bucket",
]

POLICY_KINDS = ("never", "always", "threshold", "as_needed", "learned")
PolicyKind = Literal["never", "always", "threshold", "as_needed", "learned"]


@dataclass(frozen=True, slots=True)
class Policy:
    """A decomposition policy. ``threshold`` is used by ``threshold`` only."""

    name: PolicyKind
    threshold: int = 4
    kind: Literal["policy"] = field(default="policy", repr=False)

    @property
    def needs_score(self) -> bool:
        """Whether the policy runs the complexity-scoring step before deciding."""
        return self.name in ("threshold", "learned")

    def __str__(self) -> str:
        return f"threshold:{self.threshold}" if self.name == "threshold" else self.name


def parse_policy(text: str) -> Policy:
    """Parse ``never``, ``always``, ``threshold:K`` (K in 1-5), ``as_needed`` or ``learned``.

    Raises:
        UserError: anything else; the message lists the valid forms.
    """
    raw = str(text).strip()
    name, _, arg = raw.partition(":")
    name = name.replace("-", "_")
    if name == "threshold":
        if not arg.isdigit() or not 1 <= int(arg) <= 5:
            raise UserError(
                f"policy {raw!r}: threshold needs a score from 1 to 5, e.g. threshold:4"
            )
        return Policy("threshold", int(arg))
    if name in ("never", "always", "as_needed", "learned") and not arg:
        return Policy(name)  # type: ignore[arg-type]  # narrowed by the membership test
    raise UserError(
        f"unknown policy {raw!r}: use never, always, threshold:K (K from 1 to 5),"
        " as_needed or learned"
    )


def score_bucket(score: int) -> str:
    """``simple`` (1-2), ``medium`` (3) or ``complex`` (4-5)."""
    return "simple" if score <= 2 else "medium" if score == 3 else "complex"


def _json_object(text: str) -> dict[str, Any] | None:
    match = re.search(r"\{.*\}", text, re.DOTALL)
    if match is None:
        return None
    try:
        value = json.loads(match[0])
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def parse_score(text: str) -> int | None:
    """The 1-5 score in a scorer's reply (JSON ``{"score": n}``, or a lone digit in a reply
    that holds no JSON object), else None.

    A JSON reply without a usable ``score`` is None: a digit in its other fields (``"reason":
    "touches 2 files"``) is not a score. ``Infinity`` and ``NaN``, which ``json`` accepts, are
    None too.
    """
    data = _json_object(text)
    value: Any = data.get("score") if data is not None else None
    if data is None:
        match = re.search(r"\b([1-5])\b", text)
        value = match[1] if match else None
    try:
        score = round(float(value))
    except (TypeError, ValueError, OverflowError):
        return None
    return score if 1 <= score <= 5 else None


def parse_plan(text: str, max_fanout: int) -> list[dict[str, Any]]:
    """Sub-tasks from a planner's reply, at most ``max_fanout`` of them.

    Each item has ``title``, ``instructions`` and ``parts`` (the 1-based positions in the
    plan it covers). Sub-tasks beyond the fan-out limit are merged into the last one, so a
    plan can never spawn more children than allowed.

    Raises:
        ValueError: the reply holds no usable plan.
    """
    data = _json_object(text)
    items = data.get("subtasks") if data else None
    if not isinstance(items, list) or not items:
        raise ValueError("the planner's reply has no 'subtasks' list")
    plan: list[dict[str, Any]] = []
    for i, item in enumerate(items, start=1):
        if not isinstance(item, dict) or not str(item.get("instructions", "")).strip():
            raise ValueError(f"sub-task {i} of the plan has no instructions")
        plan.append(
            {
                "title": str(item.get("title") or f"part {i}")[:200],
                "instructions": str(item["instructions"]),
                "parts": [i],
            }
        )
    if max_fanout < 1:
        raise ValueError("max_fanout must be at least 1")
    while len(plan) > max_fanout:
        extra = plan.pop()
        last = plan[-1]
        last["title"] = f"{last['title']} + {extra['title']}"[:200]
        last["instructions"] += "\n\nThen: " + extra["instructions"]
        last["parts"] += extra["parts"]
    return plan


def parse_verdict(text: str) -> tuple[bool, str]:
    """A validator's ``{"verdict": "pass"|"fail", "reason": ...}``; unreadable means fail."""
    data = _json_object(text)
    if not data or str(data.get("verdict", "")).lower() not in ("pass", "fail"):
        return False, "the validator's reply had no verdict"
    return str(data["verdict"]).lower() == "pass", str(data.get("reason", ""))
