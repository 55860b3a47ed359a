"""Which goals a report's ids name: the read model behind the weekly report's trace links.

One statement per batch of ids, portable SQL (SQLite and PostgreSQL), ordered totally.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from fleetlab.store.base import Store

__all__ = ["Mention", "resolve_mentions"]

#: Ids per statement (twice as many placeholders: well under either engine's limit).
_BATCH = 400


@dataclass(frozen=True, slots=True)
class Mention:
    """What one id in a report names: a task of the goal ``trace_id``, or (``task_id`` None)
    the goal itself, by its trace id."""

    ident: str
    trace_id: str
    task_id: str | None
    kind: Literal["mention"] = field(default="mention", repr=False)


def resolve_mentions(store: Store, idents: Iterable[str]) -> dict[str, Mention]:
    """Each of ``idents`` that is a task's id or a goal's trace id, and what it names.

    Ids that are neither (a number, a date, an id of nothing) are left out. A root goal's
    trace id names the goal; any task's id names that task of its goal.
    """
    wanted = sorted(set(idents))
    found: dict[str, Mention] = {}
    for start in range(0, len(wanted), _BATCH):
        batch = wanted[start : start + _BATCH]
        marks = ",".join("?" * len(batch))
        rows = store.query(
            f"SELECT id, trace_id, parent_id FROM tasks WHERE id IN ({marks})"
            f" OR (parent_id IS NULL AND trace_id IN ({marks})) ORDER BY id",
            (*batch, *batch),
        )
        asked = set(batch)
        for task_id, trace_id, parent_id in rows:
            task_id, trace_id = str(task_id), str(trace_id)
            if parent_id is None and trace_id in asked:
                found[trace_id] = Mention(trace_id, trace_id, None)
            if task_id in asked:
                found[task_id] = Mention(task_id, trace_id, task_id)
    return found
