"""The fleet's read model: task counts and listings for status, workers and the console."""

from __future__ import annotations

from fleetlab.store.base import Store

__all__ = ["counts_by_status"]


def counts_by_status(store: Store) -> dict[str, int]:
    """Every status present in the tasks table -> how many tasks have it."""
    rows = store.query("SELECT status, COUNT(*) FROM tasks GROUP BY status ORDER BY status")
    return {str(r[0]): int(r[1]) for r in rows}
