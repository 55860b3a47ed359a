"""``compute_metrics``: every figure of the weekly digest, as one JSON-safe dict.

The store's read model (``fleetlab.store.read.week``, ``.checks``) reads over indexed time
ranges: the week's cohort through ``tasks (created_us)``; the week's lifecycle events once
through ``events (kind, ts_us)`` (``_week``), model calls as sums by day, model and role
(``_calls``), look-ups at the week's edges through ``events (task_id, seq)``. On SQLite
``tasks.finished_us`` has no index, so the rows that finished in the week take one scan of the
task table. Python sees aggregates, the cohort's rows, the rows that finished in the week and
the week's lifecycle and lease events.

The parts run on separate connections at once (threads: SQLite works without the GIL), so a
week of a year-sized fleet (1,000,000 tasks, 20,000,000 events) takes a few seconds.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from fleetlab.clock import WeekWindow, ensure_utc, from_us, to_us, week_of
from fleetlab.digest._calls import model_calls, read_calls
from fleetlab.digest._cohort import load_cohort
from fleetlab.digest._common import COUNT_KEYS, Bounds, fnum, iso
from fleetlab.digest._fencing import database_check, lease_checks
from fleetlab.digest._integrity import lifecycle_check, lifetime_check, row_checks, summarise
from fleetlab.digest._sections import (
    daily_activity,
    decomposition,
    failures,
    load_finished,
    shipped,
)
from fleetlab.digest._week import week_events
from fleetlab.digest.sections import SECTIONS, Load
from fleetlab.digest.sections._format import plural
from fleetlab.digest.sections.numbers import empty_week
from fleetlab.status import DEFAULT_STALE_AFTER_S
from fleetlab.store import Store
from fleetlab.store.read.week import first_created_from, task_ids_created

__all__ = ["METRICS_SCHEMA", "compute_metrics"]

METRICS_SCHEMA = 1

DEFINITIONS = {
    "tasks": "every agent is a task: root goals and their sub-agents",
    "cohort": "counts are of the tasks spawned in the week, by their status at as_of",
    "as_of": "the end of the week, or now for a week still in progress",
    "activity": "daily figures count events by their time in the week's local days",
    "completed_over_finished": "completed / (completed + failed) of the cohort",
    "completed_over_spawned": "completed / spawned of the cohort",
    "stale": "running at as_of but with no sign of life for stale_after_s seconds",
    "agents": "tasks in a goal's tree: the root plus every sub-agent",
    "issue": "the post's issue number: the weeks with data up to this one",
    "empty": "no task spawned or finished and no model call in the week",
    "time_to_completion": (
        "Kaplan-Meier from spawn to completion; tasks not completed by as_of (in flight, "
        "failed or cancelled) are censored at as_of"
    ),
}


def compute_metrics(
    store: Store,
    window: WeekWindow,
    *,
    now: datetime | None = None,
    stale_after_s: float = DEFAULT_STALE_AFTER_S,
    max_items: int = 200,
) -> dict[str, Any]:
    """Every figure of the weekly digest for ``window``, as a JSON-safe dict.

    Args:
        store: the fleet database.
        window: the ISO week in its zone (``fleetlab.clock.parse_week``).
        now: the current instant (default: the store's clock). Figures are as of the end of
            the week, or as of ``now`` for a week still in progress.
        stale_after_s: a running task with no sign of life this long is ``stale``.
        max_items: longest list kept for shipped goals, failures and the like (totals are
            always complete).

    Returns:
        The metrics; ``metrics["definitions"]`` explains each figure.
    """
    instant = ensure_utc(now, "now") if now is not None else store.clock.now()
    b = Bounds.of(window, instant)
    previous_bounds = Bounds.of(window.previous(), instant)

    def rows_side(db: Store) -> dict[str, Any]:
        cohort = load_cohort(db, b, stale_after_s=stale_after_s)
        previous = load_cohort(db, previous_bounds, stale_after_s=stale_after_s)
        finished = load_finished(db, b)
        parts: dict[str, Any] = {
            "shipped": shipped(finished, limit=max_items),
            "failures": failures(finished, limit=max_items),
            "decomposition": decomposition(finished, limit=max_items),
        }
        loading = Load(db, b, finished, max_items)
        for section in SECTIONS:
            if section.load is not None:
                section.load(loading, parts)
        return {
            **parts,
            "issue": issue_number(db, window),
            "cohort": cohort,
            "previous": previous,
            "finished": finished,
            "cohorts": cohort.by_spawn_day(),
            "in_flight_age": cohort.in_flight_ages(),
            "time_to_completion": {
                "tasks": cohort.time_to_completion(),
                "goals": cohort.time_to_completion(roots_only=True),
            },
        }

    # The work runs on four connections at once when the store is a file or a server (it is
    # mostly the engine's work, which runs without the GIL): the task rows and the sections
    # built on them, the model calls of each half of the week, and the week's other events
    # with the integrity checks. An in-memory store has one connection: the parts then run
    # one after another.
    middle = b.start + (b.end - b.start) // 2
    halves = ((b.start, middle), (middle, b.end))
    with _readers(store, 3) as (rows_db, *calls_dbs), ThreadPoolExecutor(3) as pool:
        parallel = rows_db is not store
        rows_job = pool.submit(rows_side, rows_db) if parallel else None
        call_jobs = [
            pool.submit(read_calls, db, b, lo, hi)
            for db, (lo, hi) in zip(calls_dbs, halves, strict=True)
            if parallel
        ]
        week = week_events(store, b)
        daily = daily_activity(week)
        lifecycle = lifecycle_check(week)
        side = rows_job.result() if rows_job is not None else rows_side(store)
        cohort, previous = side["cohort"], side["previous"]
        spawned = {r.id for r in cohort.rows} if b.as_of == b.end else _spawned(store, b)
        checks = row_checks(week, side["finished"], spawned)
        parts = (
            [job.result() for job in call_jobs]
            if parallel
            else [read_calls(store, b, lo, hi) for lo, hi in halves]
        )
        calls = model_calls(parts, b)
        fencing = [*lease_checks(store, b, calls, week.lc, spawned), database_check(store)]
        integrity = summarise([lifecycle, lifetime_check(week, calls.spans), *checks, *fencing])
    spend = calls.cost
    counts, rates = cohort.counts(), cohort.success_rates()
    prev_counts, prev_rates = previous.counts(), previous.success_rates()
    metrics: dict[str, Any] = {
        "schema": METRICS_SCHEMA,
        "week": window.label,
        "iso_year": window.year,
        "iso_week": window.week,
        "issue": side["issue"],
        "database": store.location,
        "zone": window.zone,
        "start": iso(b.start),
        "end": iso(b.end),
        "as_of": iso(b.as_of),
        "generated_at": iso(b.now),
        "complete": b.as_of == b.end,
        "hours": round((b.end - b.start) / 3.6e9),
        "days": [d.isoformat() for d in b.days],
        "simulated": spend["simulated"],
        "models": spend["models"],
        "stale_after_s": stale_after_s,
        "counts": counts,
        "success_rate": rates,
        "finished_in_week": {
            k: sum(day[k] for day in daily) for k in ("completed", "failed", "cancelled")
        },
        "previous": {
            "week": previous_bounds.window.label,
            "as_of": iso(previous_bounds.as_of),
            "counts": prev_counts,
            "success_rate": prev_rates,
        },
        "change": {
            **{k: counts[k] - prev_counts[k] for k in COUNT_KEYS},
            **{f"{k}_pp": _points(rates[k], prev_rates[k]) for k in rates},
        },
        "daily": daily,
        "cohorts": side["cohorts"],
        "in_flight_age": side["in_flight_age"],
        "time_to_completion": side["time_to_completion"],
        **{k: v for k, v in side.items() if k not in _SIDE_ONLY},
        "cost": {k: v for k, v in spend.items() if k not in ("models", "simulated")},
        "integrity": integrity,
        "definitions": DEFINITIONS,
    }
    metrics["anomalies"] = anomalies(metrics)
    metrics["empty"] = empty_week(metrics)
    return metrics


#: What the rows side reads that is not itself a figure of metrics.json.
_SIDE_ONLY = frozenset(
    {"cohort", "previous", "finished", "cohorts", "in_flight_age", "time_to_completion", "issue"}
)


def issue_number(store: Store, window: WeekWindow) -> int:
    """The post's issue number: how many weeks (in the window's zone) up to and including
    this one had a task spawned. One indexed look-up per such week: from the first task
    created at or after a week's start, on to the week after the one it falls in."""
    end = to_us(window.end)
    weeks, start = 0, 0
    while True:
        first = first_created_from(store, start)
        if first is None or first >= end:
            break
        weeks += 1
        start = to_us(week_of(from_us(first), window.zone).end)
    return max(weeks, 1)


@contextlib.contextmanager
def _readers(store: Store, n: int) -> Iterator[list[Store]]:
    """``n`` more connections to the same database file (the store itself, ``n`` times, for
    an in-memory store, whose parts then run one after the other)."""
    if store.in_memory:
        yield [store] * n
        return
    readers: list[Store] = []
    try:
        for _ in range(n):
            readers.append(store.reopen())
        yield readers
    finally:
        for reader in readers:
            reader.close()


def _spawned(store: Store, b: Bounds) -> set[str]:
    """Ids of the task rows created in the week (all of it, not only up to as_of)."""
    return task_ids_created(store, b.start, b.end)


def _points(now: float | None, before: float | None) -> float | None:
    """The change of a rate in percentage points."""
    return None if now is None or before is None else fnum(100 * (now - before), 2)


def anomalies(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """Things a reader should look at: failed integrity checks, stale work, empty days."""
    found: list[dict[str, Any]] = []
    for check in metrics["integrity"]["checks"]:
        if not check["ok"]:
            found.append(
                {
                    "kind": f"integrity:{check['name']}",
                    "detail": f"{check['title']}: {check['offending_count']} offending",
                    "ids": check["offending"][:10],
                }
            )
    counts = metrics["counts"]
    if counts["stale"]:
        found.append(
            {
                "kind": "stale",
                "detail": f"{plural(counts['stale'], 'stale task')} (claimed, but their workers"
                " stopped heartbeating)",
                "ids": [],
            }
        )
    decomposition_ = metrics["decomposition"]
    if decomposition_["over_decomposed"]["count"]:
        found.append(
            {
                "kind": "over_decomposition",
                "detail": f"{plural(decomposition_['over_decomposed']['count'], 'simple goal')}"
                " used more than one agent",
                "ids": [i["task_id"] for i in decomposition_["over_decomposed"]["items"][:10]],
            }
        )
    if failed_direct := decomposition_["complex_failed_direct"]["count"]:
        found.append(
            {
                "kind": "complex_failed_direct",
                "detail": f"{plural(failed_direct, 'complex goal')} failed without decomposing",
                "ids": [
                    i["task_id"] for i in decomposition_["complex_failed_direct"]["items"][:10]
                ],
            }
        )
    # Only days over by as_of: in a week still in progress, the days to come (and today)
    # have had no chance of activity yet.
    as_of = datetime.fromisoformat(metrics["as_of"])
    window = WeekWindow(metrics["iso_year"], metrics["iso_week"], metrics["zone"])
    over = {day.isoformat() for day, _, end in window.days() if end <= as_of}
    quiet = [
        d["date"]
        for d in metrics["daily"]
        if d["date"] in over and d["spawned"] == 0 and d["completed"] == 0
    ]
    if quiet and counts["spawned"]:
        found.append(
            {
                "kind": "quiet_days",
                "detail": "days with no activity: " + ", ".join(quiet),
                "ids": [],
            }
        )
    return found
