"""The fleet's durable state behind one interface, on SQLite (embedded, the default) or
PostgreSQL (shared by workers on several machines).

``open_store(where)`` opens the backend for a file path or a ``postgresql://`` URL.
No SQL text and no database driver is imported outside this package.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fleetlab.store.base import Row, Store
from fleetlab.store.lifecycle import (
    ACTIVE,
    MAX_TITLE_CHARS,
    PRIORITY_RANGE,
    STATUSES,
    TERMINAL,
    TRANSITIONS,
    TaskStatus,
    as_task_status,
)
from fleetlab.store.records import Checkpoint, Lease, Task, TurnWrite

__all__ = [
    "ACTIVE",
    "MAX_TITLE_CHARS",
    "PRIORITY_RANGE",
    "STATUSES",
    "TERMINAL",
    "TRANSITIONS",
    "Checkpoint",
    "Lease",
    "Row",
    "Store",
    "Task",
    "TaskStatus",
    "TurnWrite",
    "as_task_status",
    "open_store",
]


def open_store(where: str | os.PathLike[str] | None = None, **options: Any) -> Store:
    """The store at ``where``: a ``postgresql://`` URL, or a SQLite file path (created if
    missing; ``":memory:"`` for a throwaway). None means ``$FLEETLAB_DB`` or ``./fleet.db``.

    ``options`` are the backend's own (``clock``, ``sinks``, ``synchronous``, ``check``).
    """
    from fleetlab.store import url

    target = url.resolve(where)
    url.check(target)  # a malformed URL: one line, its password masked
    if url.is_server_url(target):
        from fleetlab.store.postgres import PostgresStore

        return PostgresStore(target, **options)
    from fleetlab.store.sqlite import SQLiteStore

    return SQLiteStore(Path(target), **options)
