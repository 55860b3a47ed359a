"""The fleet's durable state behind one interface, on SQLite (embedded, the default) or
PostgreSQL (shared by workers on several machines).

``open_store(where)`` opens the backend for a file path or a ``postgresql://`` URL.
No SQL text and no database driver is imported outside this package.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fleetlab.errors import UserError
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


def open_store(
    where: str | os.PathLike[str] | None = None, *, create: bool = True, **options: Any
) -> Store:
    """The store at ``where``: a ``postgresql://`` URL, or a SQLite file path (created if
    missing; ``":memory:"`` for a throwaway). None means ``$FLEETLAB_DB`` or ``./fleet.db``.

    With ``create=False`` (a caller that only reads) no database is made: a SQLite file that
    does not exist, or is empty (0 bytes: SQLite would write fleetlab's schema into it), is
    refused with one line naming it, and left as it is.

    ``options`` are the backend's own (``clock``, ``sinks``, ``synchronous``, ``check``).

    Raises:
        UserError: a malformed URL, or with ``create=False`` a missing or empty file.
    """
    from fleetlab.store import url

    target = url.resolve(where)
    url.check(target)  # a malformed URL: one line, its password masked
    if url.is_server_url(target):
        from fleetlab.store.postgres import PostgresStore

        return PostgresStore(target, **options)
    from fleetlab.store.sqlite import SQLiteStore

    if not create:
        _refuse_to_create(Path(target))
    return SQLiteStore(Path(target), **options)


def _refuse_to_create(path: Path) -> None:
    """Refuse a SQLite path that opening would turn into a new fleet database."""
    if str(path) == ":memory:" or path.is_dir():
        return  # a throwaway, or a folder (the backend says why a folder will not do)
    shown = os.path.abspath(path)
    if not path.exists():
        raise UserError(
            f"no fleet database at {shown!r}: run `fleetlab fleet simulate` (or `make demo`)"
            " to make one, or give the path of an existing one"
        )
    wal = path.with_name(path.name + "-wal")
    if path.is_file() and path.stat().st_size == 0 and not (wal.exists() and wal.stat().st_size):
        raise UserError(
            f"db {shown!r} is an empty file (0 bytes), not a fleet database: give the fleet's"
            " database, or delete this file first if a new fleet should start there"
        )
