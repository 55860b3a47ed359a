"""Complexity scoring, plan and verdict parsing.

The decomposition policies live in ``fleetlab.policies`` (one class each, registered by
name); ``Policy``, ``parse_policy`` and ``score_bucket`` are re-exported here for older
callers.
"""

from __future__ import annotations

import json
import re
from typing import Any

from fleetlab.policies import Policy, score_bucket
from fleetlab.policies import parse as parse_policy

__all__ = [
    "Policy",
    "parse_plan",
    "parse_policy",
    "parse_score",
    "parse_verdict",
    "score_bucket",
]


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
