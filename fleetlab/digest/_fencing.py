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

All of them read the week's events only: the events written under a lease are read once
(``store.read.checks.fence_events``), with their turn and epoch.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

from fleetlab.digest._common import Bounds
from fleetlab.digest._integrity import MAX_LISTED, check_result
from fleetlab.store import Store
from fleetlab.store.read.checks import FenceEvent, earlier_turns, fence_events

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


def lease_checks(store: Store, b: Bounds) -> list[dict[str, Any]]:
    """``turns_once``, ``epochs`` and ``discarded_calls`` for the week ``b``."""
    events = fence_events(store, _FENCED, b.start, b.end)
    return [_turns_once(store, events, b), _epochs(events), _discarded(events)]


def _turns_once(store: Store, events: Sequence[FenceEvent], b: Bounds) -> dict[str, Any]:
    week = Counter(
        (e.task_id, e.turn) for e in events if e.kind == "model.call" and e.turn is not None
    )
    checked = sum(week.values())
    # A turn of the week committed again, in the week or before it (only tasks spawned before
    # the week can have calls before it: their earlier calls are looked up by task).
    earlier = earlier_turns(store, sorted({task for task, _ in week}), b.start)
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
        checked,
        [task for task, _, _ in twice],
        details,
    )


def _epochs(events: Sequence[FenceEvent]) -> dict[str, Any]:
    # In each task's commit order: a claim must carry a higher epoch than every earlier
    # claim or write, and any other write the epoch of the latest claim before it.
    bad: list[tuple[FenceEvent, int]] = []
    before: dict[str, int] = {}
    for e in events:  # by task, then seq
        if e.kind == "model.discarded" or e.epoch is None:
            continue
        prior = before.get(e.task_id)
        if prior is not None and (
            (e.kind in _CLAIMS and e.epoch <= prior) or (e.kind not in _CLAIMS and e.epoch < prior)
        ):
            bad.append((e, prior))
        before[e.task_id] = e.epoch if prior is None else max(prior, e.epoch)
    checked = len({e.task_id for e in events if e.epoch is not None})
    details = []
    for e, prior in bad[:MAX_LISTED]:
        if e.kind in _CLAIMS:
            problem = f"claim with epoch {e.epoch} after epoch {prior}"
        else:
            problem = f"{e.kind} under epoch {e.epoch} after epoch {prior} began"
        details.append({"task_id": e.task_id, "problem": problem})
    return check_result(
        "epochs",
        "claims of a task carry increasing epochs; no two epochs of a task ran at once",
        checked,
        [e.task_id for e, _ in bad],
        details,
    )


def _discarded(events: Sequence[FenceEvent]) -> dict[str, Any]:
    discarded = [e for e in events if e.kind == "model.discarded"]
    n = len(discarded)
    cost = sum(e.cost for e in discarded if e.cost is not None)
    committed: defaultdict[tuple[str, int, int], int] = defaultdict(int)
    for e in events:
        if e.kind == "model.call" and e.turn is not None and e.epoch is not None:
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
