"""Integrity checks on the fleet's leases, turns and paid calls, and on the database itself.

These would have caught a task run by two coroutines at once (an expired lease handed to a
second claimant while the first still ran), which double-bills every turn both commit:

* ``turns_once``: no (task, turn) has two committed ``model.call`` events;
* ``epochs``: each task's claims carry strictly increasing epochs, and no write made under an
  older epoch (a model call, a status change) was committed after a newer claim: two epochs
  of one task never ran at once;
* ``discarded_calls``: calls paid for under a lease that had gone stale (their turns were
  refused) are counted in the cost, and none of them was also committed;
* ``database``: the engine's own consistency check (SQLite's quick check, up to
  ``DIGEST_CHECK_MAX_BYTES``; a larger file says so instead of passing silently), unless the
  store already ran it when it opened; an engine without one says it was not run.

They read little beyond what the week's other sections read: the model calls' pass
(``_calls.read_calls``) gives how many committed calls name a turn, the tasks whose turns
may repeat (a turn counted twice in one day, or two days' turn ranges that overlap) and the
tasks whose calls name an epoch; the week's lifecycle events (``_week``) give the claims' and
status changes' epochs. Only the tasks whose turns may repeat, the tasks spawned before the
week (their earlier calls) and the tasks of discarded calls are looked up by task; the order
of epochs is checked in the engine (a window over each task's commit order), only when some
event of the week names an epoch, and only its breaks are read.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Collection, Sequence
from typing import Any

from fleetlab.digest._calls import ModelCalls
from fleetlab.digest._common import LIFECYCLE, Bounds
from fleetlab.digest._integrity import MAX_LISTED, check_result
from fleetlab.store import Store
from fleetlab.store.read.checks import (
    FenceEvent,
    epoch_breaks,
    fence_events,
    task_fence_events,
    tasks_created_before,
)
from fleetlab.store.read.week import LifecycleEvent

__all__ = ["DIGEST_CHECK_MAX_BYTES", "database_check", "lease_checks"]

#: The engine's check reads the whole database; above this size the digest leaves it to the
#: command the store names (``Store.quick_check_by_hand``) and says so.
DIGEST_CHECK_MAX_BYTES = 2 * 1024**3
#: The same words on every backend (SQLite's ``quick_check``, PostgreSQL's ``amcheck``), so a
#: week's report is the same wherever the fleet lives.
DATABASE_CHECK_TITLE = "the database engine's own consistency check finds nothing wrong"

_CLAIMS = ("task.started", "task.resumed", "task.reclaimed")
#: The events a lease fences: calls (committed or discarded), claims and status changes.
_FENCED = (
    "model.call",
    "model.discarded",
    *_CLAIMS,
    "task.completed",
    "task.failed",
    "task.preempted",
    "task.waiting",
)
#: The fenced events the week's lifecycle events hold (with their epochs).
_FENCED_STATUS = frozenset(_FENCED) - {"model.call", "model.discarded"}
if not _FENCED_STATUS.issubset(LIFECYCLE):  # pragma: no cover - a lifecycle kind was renamed
    raise AssertionError(f"fenced kinds missing from the lifecycle: {_FENCED_STATUS}")


def lease_checks(
    store: Store,
    b: Bounds,
    calls: ModelCalls,
    lc: Sequence[LifecycleEvent],
    spawned: Collection[str],
) -> list[dict[str, Any]]:
    """``turns_once``, ``epochs`` and ``discarded_calls`` for the week ``b``, from its model
    calls' pass (``calls``), its lifecycle events (``lc``) and the ids of the task rows
    created in it (``spawned``)."""
    discarded = fence_events(store, ("model.discarded",), b.start, b.end)
    return [
        _turns_once(store, calls, spawned, b),
        _epochs(store, calls, lc, discarded, b),
        _discarded(store, discarded, b),
    ]


def _turns_once(
    store: Store, calls: ModelCalls, spawned: Collection[str], b: Bounds
) -> dict[str, Any]:
    # Every task of the week but the suspects committed each of its turns of the week once.
    # A turn of the week committed again before it can only be a task spawned before the
    # week's (its earlier calls are looked up by task; a task with no row has none).
    tasks = {task for task, *_ in calls.spans}
    old = tasks_created_before(store, sorted(tasks - set(spawned)), b.start)
    look = sorted(calls.turn_suspects | set(old))
    week = Counter(
        (e.task_id, e.turn)
        for e in task_fence_events(store, look, ("model.call",), b.start, b.end)
        if e.turn is not None
    )
    earlier = Counter(
        (e.task_id, e.turn)
        for e in task_fence_events(store, sorted(old), ("model.call",), None, b.start)
        if e.turn is not None
    )
    twice = sorted(
        (task, turn, n + earlier.get((task, turn), 0))
        for (task, turn), n in week.items()
        if n + earlier.get((task, turn), 0) > 1
    )
    details = [
        {"task_id": task, "problem": f"turn {turn} committed {n} times"}
        for task, turn, n in twice[:MAX_LISTED]
    ]
    return check_result(
        "turns_once",
        "every agent turn committed once (no model call billed twice)",
        calls.turns,
        [task for task, _, _ in twice],
        details,
    )


def _epochs(
    store: Store,
    calls: ModelCalls,
    lc: Sequence[LifecycleEvent],
    discarded: Sequence[FenceEvent],
    b: Bounds,
) -> dict[str, Any]:
    # In each task's commit order: a claim must carry a higher epoch than every earlier
    # claim or write, and any other write the epoch of the latest claim before it.
    named = set(calls.epoch_tasks)
    named.update(e.task_id for e in lc if e.epoch is not None and e.kind in _FENCED_STATUS)
    named.update(e.task_id for e in discarded if e.epoch is not None)
    kinds = [k for k in _FENCED if k != "model.discarded"]
    bad = epoch_breaks(store, kinds, _CLAIMS, b.start, b.end) if named else []
    details = []
    for e in bad[:MAX_LISTED]:
        if e.kind in _CLAIMS:
            problem = f"claim with epoch {e.epoch} after epoch {e.prior}"
        else:
            problem = f"{e.kind} under epoch {e.epoch} after epoch {e.prior} began"
        details.append({"task_id": e.task_id, "problem": problem})
    return check_result(
        "epochs",
        "claims of a task carry increasing epochs; no two epochs of a task ran at once",
        len(named),
        [e.task_id for e in bad],
        details,
    )


def _discarded(store: Store, discarded: Sequence[FenceEvent], b: Bounds) -> dict[str, Any]:
    n = len(discarded)
    cost = sum(e.cost for e in discarded if e.cost is not None)
    named = sorted({d.task_id for d in discarded if d.turn is not None and d.epoch is not None})
    committed: defaultdict[tuple[str, int, int], int] = defaultdict(int)
    for e in task_fence_events(store, named, ("model.call",), b.start, b.end):
        if e.turn is not None and e.epoch is not None:
            committed[(e.task_id, e.turn, e.epoch)] += 1
    also = [
        (d.task_id, d.turn)
        for d in discarded
        if d.turn is not None and d.epoch is not None
        for _ in range(committed.get((d.task_id, d.turn, d.epoch), 0))
    ]
    details = [
        {"task_id": task, "problem": f"turn {turn} both discarded and committed"}
        for task, turn in also[:MAX_LISTED]
    ]
    return check_result(
        "discarded_calls",
        f"{n:,} calls paid under a lost lease (${cost:,.4f}) counted in the cost, none"
        " also committed",
        n,
        [task for task, _ in also],
        details,
    )


def database_check(store: Store) -> dict[str, Any]:
    """The engine's own consistency check on the whole database: the one the store ran when
    it opened it, else run now (skipped, and said so, when the database is larger than
    ``DIGEST_CHECK_MAX_BYTES``, or when the engine has no such check)."""
    where = store.location
    size = store.size_bytes()
    if not store.quick_checked and size > DIGEST_CHECK_MAX_BYTES:
        return check_result(
            "database",
            f"not run on this {size / 1024**3:.1f} GB database: run"
            f" `{store.quick_check_by_hand()}`",
            0,
            [],
            [],
        )
    bad = [] if store.quick_checked else store.quick_check()
    return check_result(
        "database",
        DATABASE_CHECK_TITLE,
        1,
        [str(where)] if bad else [],
        [{"task_id": str(where), "problem": line} for line in bad[:MAX_LISTED]],
    )
