"""Telemetry integrity: cross-checks between task rows and events that would have caught the
seed's lost week of completions.

Each check passes or names what is wrong (task ids, event ids, dates):

* ``lifecycle``: every task with lifecycle events in the week went through a legal sequence
  (``store.TRANSITIONS``), in time order, and its last event agrees with its row's status;
* ``row_event_counts``: tasks spawned / completed / failed / cancelled in the week counted from
  task rows equal the same counted from events, task by task;
* ``future_timestamps``: no event or task row is later than now;
* ``event_in_lifetime``: no event of the week falls before its task was spawned or after it
  finished, or belongs to no task (lifecycle events, model calls, decisions, budget and stall
  events; tool calls share their model call's clock read and transaction, and
  ``learner.updated`` is written just after its goal finishes: see ``_week.OTHER_KINDS``);
* ``daily_completions``: no local day has zero completion events while task rows say tasks
  completed that day.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Any, TypeAlias

from fleetlab.digest._common import LIFECYCLE, STATUS_AFTER, Bounds, iso, query_in
from fleetlab.digest._sections import Finished
from fleetlab.digest._week import WeekEvents, sql_list
from fleetlab.store import TRANSITIONS, Store
from fleetlab.telemetry import EVENT_KINDS, TERMINAL_EVENTS

__all__ = [
    "Span",
    "check_result",
    "integrity_checks",
    "lifecycle_check",
    "lifetime_check",
    "row_checks",
    "summarise",
]

#: Offending ids listed per check (the count is always complete).
MAX_LISTED = 50
#: Future events and rows are counted up to this many.
FUTURE_COUNT_CAP = 100_000

_LC = sql_list(list(LIFECYCLE))
_TERMINAL = sql_list(sorted(TERMINAL_EVENTS))


def _legal_steps() -> list[tuple[str, str, str | None]]:
    """``(previous event, event, its 'from' status)`` for every legal lifecycle step."""
    steps: list[tuple[str, str, str | None]] = []
    for prev in LIFECYCLE:
        for status in sorted(STATUS_AFTER[prev]):
            if status == "running":
                steps.append((prev, "task.reclaimed", None))
            for (frm, _to), kind in TRANSITIONS.items():
                if frm == status:
                    steps.append((prev, kind, frm))
    return steps


_STEPS = frozenset(_legal_steps())
#: ``(previous event, event)`` pairs legal for some 'from' status (for events without one).
_PAIRS = frozenset((p, k) for p, k, _ in _STEPS)
#: The same, as SQL literals ``'prev>kind>from'`` (an empty 'from' for events without one).
_LEGAL = sql_list(
    sorted({f"{p}>{k}>{f or ''}" for p, k, f in _STEPS} | {f"{p}>{k}>" for p, k in _PAIRS})
)


def _legal(prev: str, kind: str, frm: str | None) -> bool:
    return (prev, kind) in _PAIRS if frm is None else (prev, kind, frm) in _STEPS


def check_result(
    name: str, title: str, checked: int, offending: list[str], details: list[Any]
) -> dict[str, Any]:
    """One check's entry in the integrity section: it passed when nothing is offending."""
    unique = list(dict.fromkeys(offending))
    return {
        "name": name,
        "title": title,
        "ok": not unique,
        "checked": checked,
        "offending_count": len(unique),
        "offending": unique[:MAX_LISTED],
        "details": details[:MAX_LISTED],
    }


def _neighbour(store: Store, task_id: str, seq: int, *, before: bool) -> Any:
    """The task's lifecycle event just before ``seq`` (or its last one after ``seq``)."""
    op, order = ("<", "DESC") if before else (">", "DESC")
    rows = store.query(
        f"SELECT kind, ts_us, attrs ->> '$.from' AS frm FROM events WHERE task_id = ?"
        f" AND seq {op} ? AND kind IN ({_LC}) ORDER BY seq {order} LIMIT 1",
        (task_id, seq),
    )
    return rows[0] if rows else None


_FINAL = sql_list(sorted(f"{kind}>{status}" for kind, ss in STATUS_AFTER.items() for status in ss))


def lifecycle_check(week: WeekEvents) -> dict[str, Any]:
    """Every step of every task in the week must be legal and in time order, and each task's
    last event must agree with its row. SQLite compares the steps; only the bad ones, and the
    steps at the week's edges (which need the event just outside it), reach Python."""
    store = week.store
    steps = store.query(
        "WITH s AS (SELECT task_id, seq, ts_us, kind, frm,"
        "  LAG(kind) OVER w AS prev_kind, LAG(ts_us) OVER w AS prev_ts"
        f"  FROM {week.lc} WINDOW w AS (PARTITION BY task_id ORDER BY seq))"
        " SELECT * FROM s WHERE (prev_kind IS NULL AND kind <> 'task.spawned')"
        "  OR (prev_kind IS NOT NULL AND (ts_us < prev_ts"
        f"   OR prev_kind || '>' || kind || '>' || COALESCE(frm, '') NOT IN ({_LEGAL})))"
    )
    ends = store.query(
        "SELECT l.task_id, l.kind, l.seq, t.status FROM (SELECT task_id, kind, MAX(seq) AS seq"
        f" FROM {week.lc} GROUP BY task_id) l LEFT JOIN tasks t ON t.id = l.task_id"
        f" WHERE l.kind NOT IN ({_TERMINAL})"
        f"  OR l.kind || '>' || COALESCE(t.status, '') NOT IN ({_FINAL})"
    )
    problems: dict[str, str] = {}
    for r in sorted(steps, key=lambda r: (r["task_id"], r["seq"])):
        task = r["task_id"]
        if task in problems:
            continue
        prev_kind, prev_ts = r["prev_kind"], r["prev_ts"]
        if prev_kind is None:
            # the task's history began before the week: its step into the week must be legal
            before = _neighbour(store, task, r["seq"], before=True)
            if before is None:
                problems[task] = f"history starts with {r['kind']}, not task.spawned"
                continue
            prev_kind, prev_ts = before["kind"], before["ts_us"]
        if r["ts_us"] < prev_ts:
            problems[task] = f"{r['kind']} (event {r['seq']}) is timestamped before {prev_kind}"
        elif not _legal(prev_kind, r["kind"], r["frm"]):
            shown = f" (from {r['frm']})" if r["frm"] else ""
            problems[task] = f"{r['kind']}{shown} cannot follow {prev_kind} (event {r['seq']})"
    for r in ends:
        task, final, status = r["task_id"], r["kind"], r["status"]
        if task in problems:
            continue
        if final not in TERMINAL_EVENTS:  # the task may have moved on after the week
            after = _neighbour(store, task, r["seq"], before=False)
            final = after["kind"] if after is not None else final
        if status is None:
            problems[task] = "events of a task that has no row"
        elif status not in STATUS_AFTER[final]:
            problems[task] = f"row status is {status} but the last event is {final}"
    checked = store.query(f"SELECT COUNT(DISTINCT task_id) FROM {week.lc}")[0][0]
    ordered = sorted(problems)
    return check_result(
        "lifecycle",
        "every task's events form a legal lifecycle that matches its row",
        int(checked),
        ordered,
        [{"task_id": t, "problem": problems[t]} for t in ordered],
    )


def _counts(week: WeekEvents, fin: Finished, spawned: set[str]) -> dict[str, Any]:
    store = week.store
    events: dict[str, set[str]] = {
        k: set() for k in ("spawned", "completed", "failed", "cancelled")
    }
    for r in store.query(
        f"SELECT task_id, kind FROM {week.lc} WHERE kind IN"
        " ('task.spawned', 'task.completed', 'task.failed', 'task.cancelled')"
    ):
        events[r[1].removeprefix("task.")].add(r[0])
    rows: dict[str, set[str]] = {k: set() for k in events}
    rows["spawned"] = spawned
    for row in fin.rows:
        if row.status in rows:
            rows[row.status].add(row.id)
    offending, details = [], []
    summary = {}
    for kind in events:
        summary[kind] = {"rows": len(rows[kind]), "events": len(events[kind])}
        for task_id in sorted(rows[kind] - events[kind]):
            offending.append(task_id)
            details.append({"task_id": task_id, "problem": f"row {kind} but no task.{kind} event"})
        for task_id in sorted(events[kind] - rows[kind]):
            offending.append(task_id)
            details.append({"task_id": task_id, "problem": f"task.{kind} event but row is not"})
    check = check_result(
        "row_event_counts",
        "tasks spawned/completed/failed/cancelled counted from rows equal counts from events",
        sum(len(v) for v in rows.values()),
        offending,
        details,
    )
    check["counts"] = summary
    return check


def _future(store: Store, b: Bounds, fin: Finished) -> dict[str, Any]:
    kinds = sql_list(sorted(EVENT_KINDS))
    events = store.query(
        f"SELECT id, task_id, kind, ts_us FROM events WHERE kind IN ({kinds})"
        " AND ts_us > ? ORDER BY ts_us LIMIT ?",
        (b.now, MAX_LISTED + 1),
    )
    # counted through the index, and only so far: a db full of the future needs no exact tally
    n_events = store.query(
        f"SELECT COUNT(*) FROM (SELECT 1 FROM events WHERE kind IN ({kinds}) AND ts_us > ?"
        " LIMIT ?)",
        (b.now, FUTURE_COUNT_CAP),
    )[0][0]
    created = store.query(
        "SELECT id, created_us FROM tasks WHERE created_us > ? ORDER BY created_us LIMIT ?",
        (b.now, MAX_LISTED + 1),
    )
    n_created = store.query(
        "SELECT COUNT(*) FROM (SELECT 1 FROM tasks WHERE created_us > ? LIMIT ?)",
        (b.now, FUTURE_COUNT_CAP),
    )[0][0]
    rows = [(r[0], r[1]) for r in created] + list(fin.future)
    offending = [r["task_id"] for r in events] + [task_id for task_id, _ in rows]
    details = [
        {"event_id": r["id"], "task_id": r["task_id"], "kind": r["kind"], "ts": iso(r["ts_us"])}
        for r in events
    ] + [{"task_id": t, "problem": f"row timestamp {iso(latest)}"} for t, latest in rows]
    n_rows = int(n_created) + fin.future_count
    check = check_result(
        "future_timestamps",
        f"no event or task row is timestamped after now ({iso(b.now)})",
        int(n_events) + n_rows,
        offending,
        details,
    )
    check["offending_count"] = max(check["offending_count"], int(n_events) + n_rows)
    check["future_events"] = int(n_events)
    check["future_rows"] = n_rows
    return check


Span: TypeAlias = tuple[str, int, int, int]  # task id, first and last instant, events


def lifetime_check(week: WeekEvents, spans: Iterable[Span]) -> dict[str, Any]:
    """Events outside their task's lifetime.

    ``spans`` give each task's first and last instant and number of model calls in the week
    (read with their cost, on another connection); the week's ``span`` table has the same for
    the other kinds. A lifetime runs from the task.spawned event to the terminal event; when
    one is not in the week, the row's created/finished instant stands in. (A row and its
    event are stamped by separate clock reads, the row's first, so on a fast simulated clock
    an event may be a little later than its row, never earlier: the fallbacks cannot misfire.)
    """
    store, b = week.store, week.bounds
    lc = store.query(
        "SELECT task_id, MIN(ts_us), MAX(ts_us), COUNT(*),"
        " MIN(CASE WHEN kind = 'task.spawned' THEN ts_us END),"
        f" MAX(CASE WHEN kind IN ({_TERMINAL}) THEN ts_us END) FROM {week.lc} GROUP BY task_id"
    )
    lives = {r[0]: (r[4], r[5]) for r in lc}
    extent: dict[str, list[int]] = {}
    checked = 0
    own = store.query(f"SELECT task_id, lo, hi, n FROM {week.span}")
    for task, lo, hi, n, *_ in itertools.chain(own, spans, lc):
        checked += n
        seen = extent.get(task)
        if seen is None:
            extent[task] = [lo, hi]
        else:
            seen[0], seen[1] = min(seen[0], lo), max(seen[1], hi)
    missing = [t for t in extent if None in lives.get(t, (None, None))]
    rows = {
        r[0]: (r[1], r[2])
        for r in query_in(
            store, "SELECT id, created_us, finished_us FROM tasks WHERE id IN ({ids})", missing
        )
    }
    offenders: list[tuple[str, bool, int | None, int | None]] = []
    for task, (lo, hi) in extent.items():
        born, died = lives.get(task, (None, None))
        if born is None or died is None:
            row = rows.get(task)
            if row is None:
                offenders.append((task, True, born, died))
                continue
            born = row[0] if born is None else born
            died = row[1] if died is None else died
        if lo < born or (died is not None and hi > died):
            offenders.append((task, False, born, died))
    offenders.sort()
    details = []
    for task, orphan, born, died in offenders[:MAX_LISTED]:
        for e in store.query(
            "SELECT id, kind, ts_us FROM events WHERE task_id = ? AND ts_us >= ? AND ts_us < ?"
            " AND kind <> 'learner.updated' AND (? OR ts_us < ? OR ts_us > ?) ORDER BY seq"
            " LIMIT 10",
            (task, b.start, b.end, orphan, born, died),
        ):
            if orphan:
                problem = "belongs to no task"
            elif born is not None and e["ts_us"] < born:
                problem = f"before the task was spawned ({iso(born)})"
            else:
                problem = f"after the task finished ({iso(died)})"
            details.append(
                {"event_id": e["id"], "task_id": task, "kind": e["kind"], "problem": problem}
            )
    return check_result(
        "event_in_lifetime",
        "no event falls outside its task's lifetime (spawn to finish)",
        checked,
        [task for task, *_ in offenders],
        details,
    )


def _daily(week: WeekEvents, fin: Finished) -> dict[str, Any]:
    b = week.bounds
    day, params = b.day_case("ts_us")
    events = [0] * len(b.days)
    for r in week.store.query(
        f"SELECT {day} AS d, COUNT(*) FROM {week.lc} WHERE kind = 'task.completed' GROUP BY d",
        params,
    ):
        events[r[0]] = r[1]
    rows: list[list[str]] = [[] for _ in b.days]
    for row in fin.rows:
        if row.status == "completed":
            rows[b.day_index(row.finished_us)].append(row.id)
    offending, details = [], []
    for d, n_events, ids in zip(b.days, events, rows, strict=True):
        if n_events == 0 and ids:
            offending.append(d.isoformat())
            details.append(
                {
                    "date": d.isoformat(),
                    "problem": f"{len(ids)} task rows completed, 0 task.completed events",
                    "task_ids": sorted(ids)[:10],
                }
            )
    check = check_result(
        "daily_completions",
        f"every local day ({b.window.zone}) with completed task rows has completion events",
        len(b.days),
        offending,
        details,
    )
    check["per_day"] = [
        {"date": d.isoformat(), "rows": len(ids), "events": n}
        for d, ids, n in zip(b.days, rows, events, strict=True)
    ]
    return check


def row_checks(week: WeekEvents, fin: Finished, spawned: set[str]) -> list[dict[str, Any]]:
    """The checks that hold the week's events against its task rows (``spawned``: the ids
    of the task rows created in the week)."""
    return [
        _counts(week, fin, spawned),
        _future(week.store, week.bounds, fin),
        _daily(week, fin),
    ]


def summarise(checks: list[dict[str, Any]]) -> dict[str, Any]:
    """The integrity section: every check, in report order, and whether all passed."""
    order = [
        "lifecycle",
        "row_event_counts",
        "future_timestamps",
        "event_in_lifetime",
        "daily_completions",
        "turns_once",
        "epochs",
        "discarded_calls",
        "database",
    ]
    checks = sorted(checks, key=lambda c: order.index(c["name"]) if c["name"] in order else 9)
    failed = sum(not c["ok"] for c in checks)
    return {
        "ok": not failed,
        "total": len(checks),
        "passed": len(checks) - failed,
        "failed": failed,
        "checks": checks,
    }


def integrity_checks(
    week: WeekEvents, fin: Finished, spawned: set[str], spans: Iterable[Span] = ()
) -> dict[str, Any]:
    """Run every check for the week; ``ok`` is True when all pass."""
    checks = [lifecycle_check(week), lifetime_check(week, spans)]
    return summarise(checks + row_checks(week, fin, spawned))
