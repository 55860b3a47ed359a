"""What to tell a person whose SQLite database file is damaged: SQLite's own salvage tool."""

from __future__ import annotations

import shlex

__all__ = ["recover_hint"]


def recover_hint(path: str) -> str:
    """How to salvage what is readable in the SQLite file ``path`` (``.recover``)."""
    return (
        f"salvage what is readable with `sqlite3 {shlex.quote(path)} .recover | sqlite3"
        " recovered.db` and use --db recovered.db"
    )
