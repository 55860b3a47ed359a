"""What the benchmarks count in a fleet after a run: events and tasks, and when each task
made its model calls."""

from __future__ import annotations

from fleetlab.store.base import Store

__all__ = ["event_checksum", "event_count", "events_between", "model_call_spans", "task_count"]


def event_count(store: Store, kind: str | None = None) -> int:
    """How many events (of ``kind``, if given) the log holds."""
    if kind is None:
        return int(store.query("SELECT COUNT(*) FROM events")[0][0])
    return int(store.query("SELECT COUNT(*) FROM events WHERE kind = ?", (kind,))[0][0])


def events_between(store: Store, kind: str, after_us: int, until_us: int) -> int:
    """How many ``kind`` events happened in ``(after_us, until_us]``."""
    rows = store.query(
        "SELECT COUNT(*) FROM events WHERE kind = ? AND ts_us > ? AND ts_us <= ?",
        (kind, after_us, until_us),
    )
    return int(rows[0][0])


def task_count(store: Store, status: str | None = None) -> int:
    """How many tasks (in ``status``, if given) the fleet holds."""
    if status is None:
        return int(store.query("SELECT COUNT(*) FROM tasks")[0][0])
    return int(store.query("SELECT COUNT(*) FROM tasks WHERE status = ?", (status,))[0][0])


def model_call_spans(store: Store) -> list[tuple[int, int]]:
    """``(first, last)`` model call instant (µs) of each task that made one."""
    rows = store.query(
        "SELECT task_id, MIN(ts_us), MAX(ts_us) FROM events WHERE kind = 'model.call'"
        " GROUP BY task_id ORDER BY task_id"
    )
    return [(int(r[1]), int(r[2])) for r in rows]


def event_checksum(store: Store) -> tuple[int, int, int]:
    """``(events, sum of ts_us mod p, sum of (seq mod q) * (ts_us mod p))``: equal for two
    logs holding the same events in the same order (without overflowing 64 bits)."""
    p, q = 1_000_003, 9_973
    row = store.query(
        "SELECT COUNT(*), COALESCE(SUM(ts_us % ?), 0), COALESCE(SUM((seq % ?) * (ts_us % ?)), 0)"
        " FROM events",
        (p, q, p),
    )[0]
    return int(row[0]), int(row[1]), int(row[2])
