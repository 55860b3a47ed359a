"""Goals in: one from the CLI or a notebook, many from a goals file, all validated first.

A goals file is TOML::

    [[goals]]
    title = "rename notes.txt to README.md"
    priority = 80                # 0-100, higher first (default 50)
    budget_usd = 0.50            # optional cap for the whole tree
    policy = "threshold:4"       # optional; the fleet's policy otherwise
    prompt = "strict"            # optional scoring-prompt variant

    [[goals]]
    task = "core:csv-region-summary"   # a suite task instead of free text

Every goal is checked before any is queued, and all are queued in one transaction: a bad
field anywhere queues nothing and names the file, the goal and the field. The same checks
apply to a ``Goal`` built in code (``Goal.validated``).
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from fleetlab.errors import ConfigError, UserError
from fleetlab.policies import parse as parse_policy
from fleetlab.prompts import load_variant
from fleetlab.store import PRIORITY_RANGE, Store, Task
from fleetlab.store.read.fleet import root_count

__all__ = ["Goal", "load_goals", "submit_goal", "submit_goals"]

#: The largest integer the store can hold (SQLite's 64-bit INTEGER).
MAX_INTEGER = 2**63 - 1

_FIELDS = {
    "title",
    "task",
    "priority",
    "budget_usd",
    "budget_tokens",
    "policy",
    "prompt",
    "instance",
}


@dataclass(frozen=True, slots=True)
class Goal:
    """A goal to queue: free text, or a suite task (``task = "suite:id"``)."""

    title: str = ""
    task: str | None = None
    priority: int = 50
    budget_usd: float | None = None
    budget_tokens: int | None = None
    policy: str | None = None
    prompt: str | None = None
    instance: int | None = None
    #: A special goal the orchestrator carries out itself instead of running an agent, e.g.
    #: ``{"action": "digest", "tz": "Europe/London"}`` (see ``fleetlab.digest``).
    action: dict[str, Any] | None = None
    kind: Literal["goal"] = field(default="goal", repr=False)

    def validated(self) -> tuple[str, dict[str, Any]]:
        """The title and spec to store; raises ``UserError`` naming the bad field."""
        problem = _bad_field(self)
        if problem is not None:
            raise UserError(problem)
        spec: dict[str, Any] = {"phase": "new"}
        title = self.title
        if self.task:
            from fleetlab.suites import get_task

            suite_task = get_task(self.task)
            spec["suite_task"] = suite_task.key
            spec["instructions"] = suite_task.instructions
            title = title or suite_task.title
        else:
            spec["instructions"] = title
        if not isinstance(title, str) or not title.strip():
            raise UserError("goal text is empty: describe the task, e.g. 'rename a.txt to b.txt'")
        if "\x00" in title:
            raise UserError("goal text contains a NUL character: remove it")
        if self.policy is not None:
            spec["policy"] = str(parse_policy(self.policy))
        if self.prompt is not None:
            spec["prompt"] = load_variant(self.prompt).name
        if self.instance is not None:
            spec["instance"] = self.instance
        if self.action is not None:
            if not isinstance(self.action, dict) or not self.action.get("action"):
                raise UserError(f"goal action {self.action!r} must be a table with an 'action'")
            spec["action"] = dict(self.action)
        return title, spec


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_amount(value: object) -> bool:
    """A finite number >= 0 (TOML and Python also have ``inf`` and ``nan``)."""
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    )


def _bad_field(goal: Goal) -> str | None:
    """``field 'name': ...`` saying what the first malformed field holds and what it should,
    else None."""
    low, high = PRIORITY_RANGE.start, PRIORITY_RANGE.stop - 1
    if _is_int(goal.priority) and goal.priority not in PRIORITY_RANGE:
        return f"field 'priority': {goal.priority} is out of range: use {low} to {high}"
    tokens = goal.budget_tokens
    checks: tuple[tuple[str, object, bool, str], ...] = (
        ("priority", goal.priority, _is_int(goal.priority), f"an integer {low}-{high}"),
        (
            "budget_usd",
            goal.budget_usd,
            goal.budget_usd is None or _is_amount(goal.budget_usd),
            "a finite number >= 0 (dollars for the goal's whole tree)",
        ),
        (
            "budget_tokens",
            tokens,
            tokens is None or (_is_int(tokens) and 0 <= tokens <= MAX_INTEGER),
            f"a whole number from 0 to {MAX_INTEGER:,} (tokens for the goal's whole tree)",
        ),
        (
            "instance",
            goal.instance,
            goal.instance is None or (_is_int(goal.instance) and abs(goal.instance) <= MAX_INTEGER),
            "an integer",
        ),
    )
    for name, value, ok, expected in checks:
        if not ok:
            return f"field {name!r}: expected {expected}, got {value!r}"
    return None


def submit_goal(store: Store, goal: Goal | str, **fields: Any) -> Task:
    """Queue one goal (a ``Goal`` or its title plus ``Goal`` fields) as a root task."""
    return submit_goals(store, [goal if isinstance(goal, Goal) else Goal(title=goal, **fields)])[0]


def submit_goals(store: Store, goals: Sequence[Goal]) -> list[Task]:
    """Validate every goal, then queue them all in one transaction (all or nothing)."""
    prepared = [(goal, *goal.validated()) for goal in goals]
    with store.tx():
        tasks = []
        for goal, title, spec in prepared:
            if "instance" not in spec:
                spec["instance"] = root_count(store)
            tasks.append(
                store.create_task(
                    title,
                    priority=goal.priority,
                    spec=spec,
                    role="orchestrator",
                    budget_usd=goal.budget_usd,
                    budget_tokens=goal.budget_tokens,
                )
            )
    return tasks


def load_goals(path: str | Path) -> list[Goal]:
    """Read and validate a goals file.

    Raises:
        ConfigError: unreadable, not UTF-8, bad TOML, or a bad field (named with its goal).
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read goals file {str(path)!r}: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}): save it as UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    items = data.get("goals")
    if not isinstance(items, list) or not items:
        raise ConfigError(f"{path}: expected one or more [[goals]] tables")
    goals = []
    for n, item in enumerate(items, start=1):
        where = f"{path}: goal {n}"
        if not isinstance(item, dict):
            raise ConfigError(
                f"{where}: expected a [[goals]] table (title = ..., or task = ...), got {item!r}"
            )
        unknown = set(item) - _FIELDS
        if unknown:
            raise ConfigError(
                f"{where}: unknown field {sorted(unknown)[0]!r}: use {', '.join(sorted(_FIELDS))}"
            )
        for key in ("title", "task", "policy", "prompt"):
            if key in item and not isinstance(item[key], str):
                raise ConfigError(f"{where}: field {key!r}: expected a string, got {item[key]!r}")
        if not item.get("title") and not item.get("task"):
            raise ConfigError(f"{where}: needs a 'title' (free text) or a 'task' (suite:id)")
        goal = Goal(
            title=item.get("title", ""),
            task=item.get("task"),
            priority=item.get("priority", 50),
            budget_usd=item.get("budget_usd"),
            budget_tokens=item.get("budget_tokens"),
            policy=item.get("policy"),
            prompt=item.get("prompt"),
            instance=item.get("instance"),
        )
        try:
            goal.validated()
        except UserError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        if goal.budget_usd is not None:
            goal = dataclasses.replace(goal, budget_usd=float(goal.budget_usd))
        goals.append(goal)
    return goals
