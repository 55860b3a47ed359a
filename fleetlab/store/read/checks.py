"""The reads behind the weekly digest's integrity checks: events next to a step, task rows by
id, events outside a lifetime, timestamps after now, the week's fencing events, and the
engine's own consistency check.

Reads of the week's events are ranges of the ``events (kind, ts_us)`` index; look-ups by
task go through ``events (task_id, seq)`` and the tasks' primary key.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from fleetlab.store.base import Row, Store
from fleetlab.store.read.week import LifecycleEvent, chunks, marks, query_in

__all__ = [
    "EpochBreak",
    "FenceEvent",
    "count_future_events",
    "count_future_rows",
    "epoch_breaks",
    "events_outside",
    "fence_events",
    "future_events",
    "future_rows",
    "lifecycle_neighbour",
    "task_fence_events",
    "task_lifetimes",
    "task_statuses",
    "tasks_created_before",
]


def lifecycle_neighbour(
    store: Store, task_id: str, seq: int, kinds: Sequence[str], *, before: bool
) -> LifecycleEvent | None:
    """The task's last event of ``kinds`` before ``seq`` (``before``), or its last one after
    ``seq``."""
    op = "<" if before else ">"
    rows = store.query(
        "SELECT task_id, seq, kind, ts_us, attrs ->> 'from' AS frm FROM events"
        f" WHERE task_id = ? AND seq {op} ? AND kind IN ({marks(len(kinds))})"
        " ORDER BY seq DESC LIMIT 1",
        [task_id, seq, *kinds],
    )
    if not rows:
        return None
    r = rows[0]
    return LifecycleEvent(r[0], int(r[1]), r[2], int(r[3]), r[4])


def task_statuses(store: Store, ids: Sequence[str]) -> dict[str, str]:
    """The status of each listed task that has a row."""
    return {
        r[0]: r[1] for r in query_in(store, "SELECT id, status FROM tasks WHERE id IN ({ids})", ids)
    }


def task_lifetimes(store: Store, ids: Sequence[str]) -> dict[str, tuple[int, int | None]]:
    """When each listed task that has a row was created and finished."""
    return {
        r[0]: (int(r[1]), r[2])
        for r in query_in(
            store, "SELECT id, created_us, finished_us FROM tasks WHERE id IN ({ids})", ids
        )
    }


class OutsideEvent(NamedTuple):
    """An event of a task, for the lifetime check's details."""

    id: str
    kind: str
    ts_us: int


def events_outside(
    store: Store,
    task_id: str,
    start: int,
    end: int,
    *,
    born: int | None,
    died: int | None,
    every: bool = False,
    limit: int = 10,
) -> list[OutsideEvent]:
    """The task's first events in ``[start, end)`` (``learner.updated`` aside) before
    ``born`` or after ``died`` (None: no bound on that side), or all of them (``every``: a
    task with no row)."""
    bounds: list[str] = []
    params: list[object] = [task_id, start, end]
    if not every:
        for column_test, value in (("ts_us < ?", born), ("ts_us > ?", died)):
            if value is not None:
                bounds.append(column_test)
                params.append(value)
        if not bounds:
            return []
    where = f" AND ({' OR '.join(bounds)})" if bounds else ""
    rows = store.query(
        "SELECT id, kind, ts_us FROM events WHERE task_id = ? AND ts_us >= ? AND ts_us < ?"
        f" AND kind <> 'learner.updated'{where} ORDER BY seq LIMIT ?",
        [*params, limit],
    )
    return [OutsideEvent(r[0], r[1], int(r[2])) for r in rows]


# --- timestamps after now ---------------------------------------------------------------------


class FutureEvent(NamedTuple):
    """An event stamped after now."""

    id: str
    task_id: str
    kind: str
    ts_us: int


def future_events(store: Store, now: int, kinds: Sequence[str], limit: int) -> list[FutureEvent]:
    """The first ``limit`` events of ``kinds`` stamped after ``now``, earliest first."""
    rows = store.query(
        "SELECT id, task_id, kind, ts_us FROM events"
        f" WHERE kind IN ({marks(len(kinds))}) AND ts_us > ? ORDER BY ts_us, seq LIMIT ?",
        [*kinds, now, limit],
    )
    return [FutureEvent(r[0], r[1], r[2], int(r[3])) for r in rows]


def count_future_events(store: Store, now: int, kinds: Sequence[str], cap: int) -> int:
    """How many events of ``kinds`` are stamped after ``now``, counted up to ``cap``
    (through the index, and only so far)."""
    rows = store.query(
        "SELECT COUNT(*) FROM (SELECT 1 AS x FROM events"
        f" WHERE kind IN ({marks(len(kinds))}) AND ts_us > ? LIMIT ?) f",
        [*kinds, now, cap],
    )
    return int(rows[0][0])


def future_rows(store: Store, now: int, limit: int) -> list[tuple[str, int]]:
    """The first ``limit`` task rows created after ``now`` (id, created), earliest first."""
    rows = store.query(
        "SELECT id, created_us FROM tasks WHERE created_us > ? ORDER BY created_us, id LIMIT ?",
        (now, limit),
    )
    return [(r[0], int(r[1])) for r in rows]


def count_future_rows(store: Store, now: int, cap: int) -> int:
    """How many task rows were created after ``now``, counted up to ``cap``."""
    rows = store.query(
        "SELECT COUNT(*) FROM (SELECT 1 AS x FROM tasks WHERE created_us > ? LIMIT ?) f",
        (now, cap),
    )
    return int(rows[0][0])


# --- leases and turns -------------------------------------------------------------------------


class FenceEvent(NamedTuple):
    """An event written under a lease: its turn and epoch (None when it has none), and the
    cost of a discarded call."""

    task_id: str
    seq: int
    kind: str
    turn: int | None
    epoch: int | None
    cost: float | None


def fence_events(store: Store, kinds: Sequence[str], start: int, end: int) -> list[FenceEvent]:
    """The events of ``kinds`` in ``[start, end)`` with their turn and epoch, by task and
    commit order (a range of ``events (kind, ts_us)``: for kinds with few events)."""
    rows = store.query(
        f"SELECT {_FENCE_COLUMNS} FROM events"
        f" WHERE kind IN ({marks(len(kinds))}) AND ts_us >= ? AND ts_us < ?",
        [*kinds, start, end],
    )
    return _fence_rows(rows)


def task_fence_events(
    store: Store, ids: Sequence[str], kinds: Sequence[str], start: int | None, end: int
) -> list[FenceEvent]:
    """The listed tasks' events of ``kinds`` in ``[start, end)`` (``start`` None: every one
    before ``end``) with their turn and epoch, by task and commit order. Looked up by task
    (``events (task_id, seq)``): the kind and instant are kept out of the planner's reach,
    or it would take a range of ``events (kind, ts_us)`` holding every task's events."""
    since = "" if start is None else " AND ts_us + 0 >= ?"
    rows: list[Row] = []
    for part in chunks(ids):
        rows += store.query(
            f"SELECT {_FENCE_COLUMNS} FROM events WHERE task_id IN ({marks(len(part))})"
            f" AND kind || '' IN ({marks(len(kinds))}){since} AND ts_us + 0 < ?",
            [*part, *kinds, *([] if start is None else [start]), end],
        )
    return _fence_rows(rows)


_FENCE_COLUMNS = (
    "task_id, seq, kind, CAST(attrs ->> 'turn' AS BIGINT), CAST(attrs ->> 'epoch' AS BIGINT),"
    " CASE WHEN kind = 'model.discarded' THEN CAST(attrs ->> 'cost_usd' AS DOUBLE PRECISION) END"
)


def _fence_rows(rows: Sequence[Row]) -> list[FenceEvent]:
    out = [
        FenceEvent(
            r[0],
            int(r[1]),
            r[2],
            None if r[3] is None else int(r[3]),
            None if r[4] is None else int(r[4]),
            None if r[5] is None else float(r[5]),
        )
        for r in rows
    ]
    out.sort(key=lambda e: (e.task_id, e.seq))
    return out


def tasks_created_before(store: Store, ids: Sequence[str], before: int) -> list[str]:
    """The listed tasks whose row was created before ``before``."""
    return [
        r[0]
        for r in query_in(
            store, "SELECT id FROM tasks WHERE id IN ({ids}) AND created_us < ?", ids, [before]
        )
    ]


class EpochBreak(NamedTuple):
    """A fenced write whose epoch is not above (a claim) or below (any other write) the
    highest epoch of the task's earlier writes of the week (``prior``)."""

    task_id: str
    seq: int
    kind: str
    epoch: int
    prior: int


def epoch_breaks(
    store: Store, kinds: Sequence[str], claims: Sequence[str], start: int, end: int
) -> list[EpochBreak]:
    """In each task's commit order, the events of ``kinds`` in ``[start, end)`` that name an
    epoch and break the order of epochs: a claim (``claims``) whose epoch is not above every
    earlier event's, or another event whose epoch is below one. Only the breaks leave the
    engine, by task and commit order."""
    rows = store.query(
        "SELECT task_id, seq, kind, epoch, prior FROM (SELECT task_id, seq, kind, epoch,"
        " MAX(epoch) OVER (PARTITION BY task_id ORDER BY seq"
        "  ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS prior"
        " FROM (SELECT task_id, seq, kind, CAST(attrs ->> 'epoch' AS BIGINT) AS epoch FROM events"
        f"  WHERE kind IN ({marks(len(kinds))}) AND ts_us >= ? AND ts_us < ?) f"
        " WHERE epoch IS NOT NULL) w"
        f" WHERE prior IS NOT NULL AND ((kind IN ({marks(len(claims))}) AND epoch <= prior)"
        f"  OR (kind NOT IN ({marks(len(claims))}) AND epoch < prior))",
        [*kinds, start, end, *claims, *claims],
    )
    out = [EpochBreak(r[0], int(r[1]), r[2], int(r[3]), int(r[4])) for r in rows]
    out.sort(key=lambda e: (e.task_id, e.seq))
    return out


# --- the engine's own check ---------------------------------------------------------------------
