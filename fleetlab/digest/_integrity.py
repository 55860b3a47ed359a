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
  completed that day;
* ``learner_goals``: the goals the learner section counts (``_learner.goals_of``: by task id)
  are the goals with ``learner.updated`` events in the week, and each wrote as many updates
  as events, in a legal order (one update, or ``direct`` then ``as_needed`` for a goal split
  as needed): a count of updates reported as goals would fail it.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Any, TypeAlias

from fleetlab.digest._common import LIFECYCLE, STATUS_AFTER, Bounds, iso
from fleetlab.digest._learner import goals_of
from fleetlab.digest._sections import Finished
from fleetlab.digest._week import WeekEvents
from fleetlab.store import TRANSITIONS, Store
from fleetlab.store.read.checks import (
    count_future_events,
    count_future_rows,
    events_outside,
    future_events,
    future_rows,
    lifecycle_neighbour,
    task_lifetimes,
    task_statuses,
)
from fleetlab.store.read.week import LifecycleEvent, kind_spans, learner_updates
from fleetlab.telemetry import EVENT_KINDS, TERMINAL_EVENTS

__all__ = [
    "Span",
    "check_result",
    "integrity_checks",
    "learner_goals_check",
    "lifecycle_check",
    "lifetime_check",
    "row_checks",
    "summarise",
]

#: Offending ids listed per check (the count is always complete).
MAX_LISTED = 50
#: Future events and rows are counted up to this many.
FUTURE_COUNT_CAP = 100_000


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
#: The same as ``'prev>kind>from'`` strings (an empty 'from' for events without one), the
#: form in which the week's steps are compared.
_LEGAL = frozenset({f"{p}>{k}>{f or ''}" for p, k, f in _STEPS} | {f"{p}>{k}>" for p, k in _PAIRS})


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


_FINAL = frozenset(f"{kind}>{status}" for kind, ss in STATUS_AFTER.items() for status in ss)


def _suspect_steps(
    lc: Iterable[LifecycleEvent],
) -> list[tuple[LifecycleEvent, str | None, int | None]]:
    """The steps of the week's events (by task, then seq) that are not plainly legal, with
    the kind and instant of the step before each in the week (None for a task's first)."""
    out: list[tuple[LifecycleEvent, str | None, int | None]] = []
    for _, events in itertools.groupby(lc, key=lambda e: e.task_id):
        prev: LifecycleEvent | None = None
        for e in events:
            if prev is None:
                if e.kind != "task.spawned":
                    out.append((e, None, None))
            elif e.ts_us < prev.ts_us or f"{prev.kind}>{e.kind}>{e.frm or ''}" not in _LEGAL:
                out.append((e, prev.kind, prev.ts_us))
            prev = e
    return out


def _last_events(lc: Iterable[LifecycleEvent]) -> list[LifecycleEvent]:
    """Each task's last lifecycle event of the week (``lc`` by task, then seq)."""
    last: dict[str, LifecycleEvent] = {}
    for e in lc:
        last[e.task_id] = e
    return list(last.values())


def lifecycle_check(week: WeekEvents) -> dict[str, Any]:
    """Every step of every task in the week must be legal and in time order, and each task's
    last event must agree with its row. Only the bad steps, and the steps at the week's edges
    (which need the event just outside it), are looked at more closely."""
    store = week.store
    lasts = _last_events(week.lc)
    status_of = task_statuses(store, [e.task_id for e in lasts])
    problems: dict[str, str] = {}
    for r, prev_kind, prev_ts in _suspect_steps(week.lc):
        task = r.task_id
        if task in problems:
            continue
        if prev_kind is None or prev_ts is None:
            # the task's history began before the week: its step into the week must be legal
            before = lifecycle_neighbour(store, task, r.seq, LIFECYCLE, before=True)
            if before is None:
                problems[task] = f"history starts with {r.kind}, not task.spawned"
                continue
            prev_kind, prev_ts = before.kind, before.ts_us
        if r.ts_us < prev_ts:
            problems[task] = f"{r.kind} (event {r.seq}) is timestamped before {prev_kind}"
        elif not _legal(prev_kind, r.kind, r.frm):
            shown = f" (from {r.frm})" if r.frm else ""
            problems[task] = f"{r.kind}{shown} cannot follow {prev_kind} (event {r.seq})"
    for e in lasts:
        task, final, status = e.task_id, e.kind, status_of.get(e.task_id)
        if final in TERMINAL_EVENTS and f"{final}>{status or ''}" in _FINAL:
            continue
        if task in problems:
            continue
        if final not in TERMINAL_EVENTS:  # the task may have moved on after the week
            after = lifecycle_neighbour(store, task, e.seq, LIFECYCLE, before=False)
            final = after.kind if after is not None else final
        if status is None:
            problems[task] = "events of a task that has no row"
        elif status not in STATUS_AFTER[final]:
            problems[task] = f"row status is {status} but the last event is {final}"
    ordered = sorted(problems)
    return check_result(
        "lifecycle",
        "every task's events form a legal lifecycle that matches its row",
        len(lasts),
        ordered,
        [{"task_id": t, "problem": problems[t]} for t in ordered],
    )


_ROW_KINDS = frozenset({"task.spawned", "task.completed", "task.failed", "task.cancelled"})


def _counts(week: WeekEvents, fin: Finished, spawned: set[str]) -> dict[str, Any]:
    events: dict[str, set[str]] = {
        k: set() for k in ("spawned", "completed", "failed", "cancelled")
    }
    for e in week.lc:
        if e.kind in _ROW_KINDS:
            events[e.kind.removeprefix("task.")].add(e.task_id)
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
    kinds = sorted(EVENT_KINDS)
    events = future_events(store, b.now, kinds, MAX_LISTED + 1)
    # counted through the index, and only so far: a db full of the future needs no exact tally
    n_events = count_future_events(store, b.now, kinds, FUTURE_COUNT_CAP)
    created = future_rows(store, b.now, MAX_LISTED + 1)
    n_created = count_future_rows(store, b.now, FUTURE_COUNT_CAP)
    rows = created + list(fin.future)
    offending = [e.task_id for e in events] + [task_id for task_id, _ in rows]
    details = [
        {"event_id": e.id, "task_id": e.task_id, "kind": e.kind, "ts": iso(e.ts_us)} for e in events
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
    # every event and task row is looked at (through the indexes): what is counted, and
    # shown, is how many were found after now, not how many were checked
    found = (
        f"or more found after now (each count stops at {FUTURE_COUNT_CAP:,})"
        if n_events >= FUTURE_COUNT_CAP or n_created >= FUTURE_COUNT_CAP
        else "found after now"
    )
    check["checked_label"] = f"{found}, of every event and task row"
    check["future_events"] = int(n_events)
    check["future_rows"] = n_rows
    return check


Span: TypeAlias = tuple[str, int, int, int]  # task id, first and last instant, events


def _lifecycle_spans(
    lc: Iterable[LifecycleEvent],
) -> list[tuple[str, int, int, int, int | None, int | None]]:
    """Per task (``lc`` by task): first and last instant, number of lifecycle events, and the
    instants of its spawn and of its last terminal event (None when not in the week)."""
    out: list[tuple[str, int, int, int, int | None, int | None]] = []
    task: str | None = None
    lo = hi = n = 0
    born: int | None = None
    died: int | None = None
    for e in lc:
        ts = e.ts_us
        if e.task_id != task:
            if task is not None:
                out.append((task, lo, hi, n, born, died))
            task, lo, hi, n, born, died = e.task_id, ts, ts, 0, None, None
        elif ts < lo:
            lo = ts
        elif ts > hi:
            hi = ts
        n += 1
        if e.kind == "task.spawned":
            if born is None or ts < born:
                born = ts
        elif e.kind in TERMINAL_EVENTS and (died is None or ts > died):
            died = ts
    if task is not None:
        out.append((task, lo, hi, n, born, died))
    return out


def lifetime_check(week: WeekEvents, spans: Iterable[Span]) -> dict[str, Any]:
    """Events outside their task's lifetime.

    ``spans`` give each task's first and last instant and number of model calls in the week
    (read with their cost, on another connection); ``week.spans`` has the same for the other
    kinds. A lifetime runs from the task.spawned event to the terminal event; when
    one is not in the week, the row's created/finished instant stands in. (A row and its
    event are stamped by separate clock reads, the row's first, so on a fast simulated clock
    an event may be a little later than its row, never earlier: the fallbacks cannot misfire.)
    """
    store, b = week.store, week.bounds
    lc = _lifecycle_spans(week.lc)
    lives = {task: (born, died) for task, _, _, _, born, died in lc}
    own: list[Span] = [(task, lo, hi, n) for task, lo, hi, n, _, _ in lc]
    extent: dict[str, list[int]] = {}
    checked = 0
    for task, lo, hi, n in itertools.chain(week.spans, spans, own):
        checked += n
        seen = extent.get(task)
        if seen is None:
            extent[task] = [lo, hi]
        else:
            if lo < seen[0]:
                seen[0] = lo
            if hi > seen[1]:
                seen[1] = hi
    missing = [t for t in extent if None in lives.get(t, (None, None))]
    rows = task_lifetimes(store, missing)
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
        for e in events_outside(store, task, b.start, b.end, born=born, died=died, every=orphan):
            if orphan:
                problem = "belongs to no task"
            elif born is not None and e.ts_us < born:
                problem = f"before the task was spawned ({iso(born)})"
            else:
                problem = f"after the task finished ({iso(died)})"
            details.append({"event_id": e.id, "task_id": task, "kind": e.kind, "problem": problem})
    return check_result(
        "event_in_lifetime",
        "no event falls outside its task's lifetime (spawn to finish)",
        checked,
        [task for task, *_ in offenders],
        details,
    )


def _daily(week: WeekEvents, fin: Finished) -> dict[str, Any]:
    b = week.bounds
    events = b.per_day([e.ts_us for e in week.lc if e.kind == "task.completed"])
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


#: The updates one goal may write, in order: its strategy's; a goal split as needed
#: (try-then-split) first a ``direct`` one for its first try (``fleetlab.policies.learned``).
_LEARNER_SEQUENCES = frozenset({("direct",), ("decompose",), ("as_needed",),
                                ("direct", "as_needed")})  # fmt: skip


def learner_goals_check(store: Store, b: Bounds) -> dict[str, Any]:
    """The learner's goals of the week, counted as the learner section counts them
    (``goals_of``), against the distinct task ids of its updates; each goal's updates are a
    legal sequence, and a goal with ``learner.updated`` events in the week (each update writes
    one, in its transaction) has as many updates as events. ``goals`` and ``updates``: the
    two counts."""
    updates = learner_updates(store, b.start, b.end)
    goals = goals_of(updates)
    tasks: dict[str, list[str]] = {}
    for u in updates:
        tasks.setdefault(u.task_id, []).append(u.arm)
    events = {task: n for task, _, _, n in kind_spans(store, ["learner.updated"], b.start, b.end)}
    offending, details = [], []
    for task in sorted(tasks.keys() | events.keys()):
        arms = tuple(tasks.get(task, ()))
        n_events = events.get(task)
        problem = None
        if not arms:
            problem = f"{n_events} learner.updated events, no learner update"
        elif tuple(arms) not in _LEARNER_SEQUENCES:
            problem = f"updates in an order no goal writes: {', '.join(arms)}"
        elif n_events is not None and n_events != len(arms):
            problem = f"{len(arms)} learner updates ({', '.join(arms)}), {n_events} events"
        if problem is not None:
            offending.append(task)
            details.append({"task_id": task, "problem": problem})
    if len(goals) != len(tasks):  # the section's count of goals is not one per task
        offending.append("(goals)")
        details.append(
            {"problem": f"{len(goals)} goals counted, {len(tasks)} tasks with learner updates"}
        )
    check = check_result(
        "learner_goals",
        "the learner's goals are counted one per task (a goal split as needed updates it twice:"
        " running directly, then splitting as needed), each with its learner events",
        len(tasks),
        offending,
        details,
    )
    check["goals"] = len(goals)
    check["updates"] = len(updates)
    return check


def row_checks(week: WeekEvents, fin: Finished, spawned: set[str]) -> list[dict[str, Any]]:
    """The checks that hold the week's events against its task rows (``spawned``: the ids
    of the task rows created in the week) and the learner's updates against its events."""
    return [
        _counts(week, fin, spawned),
        _future(week.store, week.bounds, fin),
        _daily(week, fin),
        learner_goals_check(week.store, week.bounds),
    ]


def summarise(checks: list[dict[str, Any]]) -> dict[str, Any]:
    """The integrity section: every check, in report order, and whether all passed."""
    order = [
        "lifecycle",
        "row_event_counts",
        "future_timestamps",
        "event_in_lifetime",
        "daily_completions",
        "learner_goals",
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
