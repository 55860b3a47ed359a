"""The read model of one goal's trace: what ``fleetlab.trace`` needs beyond the store's API.

One statement per question, portable SQL (SQLite and PostgreSQL), ordered totally.
"""

from __future__ import annotations

import json

from fleetlab.clock import from_us
from fleetlab.store.base import Store
from fleetlab.store.records import Checkpoint

__all__ = ["trace_checkpoints"]


def trace_checkpoints(store: Store, trace_id: str) -> dict[str, list[Checkpoint]]:
    """Every checkpoint of every task of the trace ``trace_id``, by task id, oldest turn
    first (one round trip, however many agents the goal spawned)."""
    rows = store.query(
        "SELECT c.task_id, c.turn, c.created_us, c.state FROM checkpoints c"
        " JOIN tasks t ON t.id = c.task_id WHERE t.trace_id = ?"
        " ORDER BY c.task_id, c.turn",
        (trace_id,),
    )
    found: dict[str, list[Checkpoint]] = {}
    for r in rows:
        found.setdefault(str(r[0]), []).append(
            Checkpoint(str(r[0]), int(r[1]), from_us(int(r[2])), json.loads(r[3]))
        )
    return found
