"""Integrity checks on the fleet's leases, turns and paid calls, and on the database itself.

These would have caught a task run by two coroutines at once (an expired lease handed to a
second claimant while the first still ran), which double-bills every turn both commit:

* ``turns_once``: no (task, turn) has two committed ``model.call`` events;
* ``epochs``: each task's claims carry strictly increasing epochs, and no write made under an
  older epoch (a model call, a status change) was committed after a newer claim: two epochs
  of one task never ran at once;
* ``discarded_calls``: calls paid for under a lease that had gone stale (their turns were
  refused) are counted in the cost, and none of them was also committed;
* ``database``: SQLite's own ``PRAGMA quick_check`` (up to ``DIGEST_CHECK_MAX_BYTES``; a larger
  file says so instead of passing silently), unless the store already ran it when it opened.

All of them read the week's events only; a week's model calls are its largest event group,
read once here into a temporary table.
"""

from __future__ import annotations

import secrets
from typing import Any

from fleetlab.digest._common import Bounds
from fleetlab.digest._integrity import MAX_LISTED, check_result
from fleetlab.store import Store

__all__ = ["DIGEST_CHECK_MAX_BYTES", "database_check", "lease_checks"]

#: ``PRAGMA quick_check`` reads the whole file; above this size the digest leaves it to
#: ``sqlite3 <db> 'PRAGMA quick_check'`` and says so.
DIGEST_CHECK_MAX_BYTES = 2 * 1024**3

_CLAIMS = "('task.started', 'task.resumed', 'task.reclaimed')"


def lease_checks(store: Store, b: Bounds) -> list[dict[str, Any]]:
    """``turns_once``, ``epochs`` and ``discarded_calls`` for the week ``b``."""
    name = f"digest_fence_{secrets.token_hex(4)}"
    store.query(
        f"CREATE TEMP TABLE {name} AS SELECT task_id, seq, kind,"
        " json_extract(attrs, '$.turn', '$.epoch', '$.cost_usd') AS a FROM events"
        f" WHERE kind IN ('model.call', 'model.discarded', {_CLAIMS[1:-1]},"
        " 'task.completed', 'task.failed', 'task.preempted', 'task.waiting')"
        " AND ts_us >= ? AND ts_us < ?",
        (b.start, b.end),
    )
    try:
        return [_turns_once(store, name, b), _epochs(store, name), _discarded(store, name)]
    finally:
        store.query(f"DROP TABLE IF EXISTS temp.{name}")


def _turns_once(store: Store, name: str, b: Bounds) -> dict[str, Any]:
    [(checked,)] = store.query(
        f"SELECT COUNT(*) FROM {name} WHERE kind = 'model.call' AND a ->> '$[0]' IS NOT NULL"
    )
    # A turn of the week committed again, in the week or before it (only tasks spawned before
    # the week can have calls before it: their earlier calls are looked up by task).
    twice = store.query(
        "WITH w AS (SELECT task_id, a ->> '$[0]' AS turn, COUNT(*) AS n"
        f"  FROM {name} WHERE kind = 'model.call' AND a ->> '$[0]' IS NOT NULL"
        "  GROUP BY task_id, turn),"
        " before AS (SELECT w.task_id, w.turn, COUNT(e.seq) AS n FROM w"
        "  JOIN tasks t ON t.id = w.task_id AND t.created_us < ?"
        "  JOIN events e ON e.task_id = w.task_id AND e.kind = 'model.call' AND e.ts_us < ?"
        "   AND e.attrs ->> '$.turn' = w.turn GROUP BY w.task_id, w.turn)"
        " SELECT w.task_id, w.turn, w.n + COALESCE(before.n, 0) AS n FROM w LEFT JOIN before"
        "  ON before.task_id = w.task_id AND before.turn = w.turn"
        " WHERE w.n + COALESCE(before.n, 0) > 1 ORDER BY w.task_id, w.turn",
        (b.start, b.start),
    )
    details = [
        {"task_id": r["task_id"], "problem": f"turn {r['turn']} committed {r['n']} times"}
        for r in twice[:MAX_LISTED]
    ]
    return check_result(
        "turns_once",
        "every agent turn committed once (no model call billed twice)",
        checked,
        [r["task_id"] for r in twice],
        details,
    )


def _epochs(store: Store, name: str) -> dict[str, Any]:
    # In each task's commit order: a claim must carry a higher epoch than every earlier
    # claim or write, and any other write the epoch of the latest claim before it.
    rows = store.query(
        "WITH e AS (SELECT task_id, seq, kind, CAST(a ->> '$[1]' AS INTEGER) AS epoch"
        f"  FROM {name} WHERE kind <> 'model.discarded' AND a ->> '$[1]' IS NOT NULL),"
        " w AS (SELECT *, MAX(epoch) OVER (PARTITION BY task_id ORDER BY seq"
        "  ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS before FROM e)"
        " SELECT task_id, seq, kind, epoch, before FROM w WHERE before IS NOT NULL AND"
        f" ((kind IN {_CLAIMS} AND epoch <= before) OR (kind NOT IN {_CLAIMS} AND epoch < before))"
        " ORDER BY task_id, seq"
    )
    [(checked,)] = store.query(
        f"SELECT COUNT(DISTINCT task_id) FROM {name} WHERE a ->> '$[1]' IS NOT NULL"
    )
    details = []
    for r in rows[:MAX_LISTED]:
        if r["kind"] in _CLAIMS:
            problem = f"claim with epoch {r['epoch']} after epoch {r['before']}"
        else:
            problem = f"{r['kind']} under epoch {r['epoch']} after epoch {r['before']} began"
        details.append({"task_id": r["task_id"], "problem": problem})
    return check_result(
        "epochs",
        "claims of a task carry increasing epochs; no two epochs of a task ran at once",
        checked,
        [r["task_id"] for r in rows],
        details,
    )


def _discarded(store: Store, name: str) -> dict[str, Any]:
    [(n, cost)] = store.query(
        f"SELECT COUNT(*), TOTAL(a ->> '$[2]') FROM {name} WHERE kind = 'model.discarded'"
    )
    also = store.query(
        f"SELECT d.task_id, d.a ->> '$[0]' AS turn FROM {name} d JOIN {name} c"
        " ON c.task_id = d.task_id AND c.kind = 'model.call' AND d.kind = 'model.discarded'"
        " AND c.a ->> '$[0]' = d.a ->> '$[0]' AND c.a ->> '$[1]' = d.a ->> '$[1]'"
    )
    details = [
        {"task_id": r["task_id"], "problem": f"turn {r['turn']} both discarded and committed"}
        for r in also[:MAX_LISTED]
    ]
    return check_result(
        "discarded_calls",
        f"{n:,} calls paid under a lost lease (${cost:,.4f}) counted in the cost, none"
        " also committed",
        n,
        [r["task_id"] for r in also],
        details,
    )


def database_check(store: Store) -> dict[str, Any]:
    """SQLite's ``PRAGMA quick_check`` on the store's file: the one the store ran when it
    opened it, else run now (skipped, and said so, when the file is larger than
    ``DIGEST_CHECK_MAX_BYTES`` or the store is in memory)."""
    path = store.location
    size = store.size_bytes()
    if not store.quick_checked and size > DIGEST_CHECK_MAX_BYTES:
        return check_result(
            "database",
            f"not run on this {size / 1024**3:.1f} GB file: run"
            f" `sqlite3 {path} 'PRAGMA quick_check'`",
            0,
            [],
            [],
        )
    bad = [] if store.quick_checked else store.quick_check()
    return check_result(
        "database",
        "SQLite's own consistency check (PRAGMA quick_check) finds nothing wrong",
        1,
        [str(path)] if bad else [],
        [{"task_id": str(path), "problem": line} for line in bad[:MAX_LISTED]],
    )
