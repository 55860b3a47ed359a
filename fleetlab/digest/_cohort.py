"""The week's cohort: the tasks spawned in the week and where each stood at ``as_of``.

Counts add up (``spawned = completed + failed + cancelled + in_flight``). A task's status at
``as_of`` is its row's status when it finished before then (or when ``as_of`` is now);
otherwise it is replayed from its last lifecycle event before ``as_of``, so a report on a
past week describes that week's end, not today.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, NamedTuple

from fleetlab.digest._common import LIFECYCLE, STATUS_AFTER, Bounds, fnum
from fleetlab.stats import KaplanMeier, kaplan_meier
from fleetlab.store import TERMINAL, Store
from fleetlab.store.read.week import CohortRow, event_kinds, last_lifecycle, week_cohort

__all__ = ["AGE_BINS_H", "Cohort", "load_cohort"]

IN_FLIGHT = ("running", "queued", "preempted", "waiting_children", "stale")
#: Edges (hours) of the in-flight age histogram.
AGE_BINS_H = (0, 1, 6, 24, 48, 72, 120, 168)
#: Ages (hours) at which the share completed is reported.
WITHIN_H = (1, 6, 24, 72)
#: Points kept of a Kaplan-Meier curve in metrics.json (the chart needs no more).
CURVE_POINTS = 240


class _Row(NamedTuple):
    id: str
    root: bool
    created_us: int
    finished_us: int | None
    status: str  # at as_of, with "stale" for running tasks that stopped showing life


@dataclass(frozen=True, slots=True)
class Cohort:
    """The tasks spawned in one week, as of ``bounds.as_of``."""

    bounds: Bounds
    rows: tuple[_Row, ...]

    def counts(self) -> dict[str, int]:
        """Spawned, roots, completed, failed, cancelled, in flight and its split."""
        by = Counter(r.status for r in self.rows)
        counts = {
            "spawned": len(self.rows),
            "roots_spawned": sum(r.root for r in self.rows),
            "completed": by["completed"],
            "failed": by["failed"],
            "cancelled": by["cancelled"],
            "in_flight": sum(by[s] for s in IN_FLIGHT),
        }
        counts.update({s: by[s] for s in IN_FLIGHT})
        return counts

    def success_rates(self) -> dict[str, float | None]:
        """Both definitions, as fractions (None when undefined)."""
        c = self.counts()
        finished = c["completed"] + c["failed"]
        return {
            "completed_over_finished": fnum(c["completed"] / finished) if finished else None,
            "completed_over_spawned": fnum(c["completed"] / c["spawned"]) if c["spawned"] else None,
        }

    def by_spawn_day(self) -> list[dict[str, Any]]:
        """Completion rate of each local day's cohort, as of ``as_of``."""
        b = self.bounds
        days: list[Counter[str]] = [Counter() for _ in b.days]
        for r in self.rows:
            day = days[b.day_index(r.created_us)]
            day["spawned"] += 1
            day["in_flight" if r.status in IN_FLIGHT else r.status] += 1
        return [
            {
                "date": d.isoformat(),
                "spawned": c["spawned"],
                "completed": c["completed"],
                "failed": c["failed"],
                "cancelled": c["cancelled"],
                "in_flight": c["in_flight"],
                "completion_rate": fnum(c["completed"] / c["spawned"]) if c["spawned"] else None,
            }
            for d, c in zip(b.days, days, strict=True)
        ]

    def in_flight_ages(self) -> list[dict[str, Any]]:
        """Histogram of in-flight tasks' ages at ``as_of`` (hours), split by status."""
        counts: Counter[tuple[int, str]] = Counter()
        for r in self.rows:
            if r.status not in IN_FLIGHT:
                continue
            age_h = (self.bounds.as_of - r.created_us) / 3.6e9
            i = next(
                (i for i in range(len(AGE_BINS_H) - 1) if age_h < AGE_BINS_H[i + 1]),
                len(AGE_BINS_H) - 2,
            )
            counts[(i, r.status)] += 1
        return [
            {
                "bin": f"{AGE_BINS_H[i]}-{AGE_BINS_H[i + 1]} h",
                "lo_h": AGE_BINS_H[i],
                "hi_h": AGE_BINS_H[i + 1],
                "status": status,
                "tasks": n,
            }
            for (i, status), n in sorted(counts.items())
        ]

    def time_to_completion(self, *, roots_only: bool = False) -> dict[str, Any]:
        """Kaplan-Meier time from spawn to completion.

        A task completed before ``as_of`` is an event at its duration. Every other task is
        censored at ``as_of`` (its age then): in-flight tasks may still complete, and failed
        or cancelled ones never will, so they stay in the risk set to the end and the curve
        estimates the share of *all* spawned tasks completed by each age.
        """
        durations: list[float] = []
        observed: list[bool] = []
        for r in self.rows:
            if roots_only and not r.root:
                continue
            done = r.status == "completed" and r.finished_us is not None
            end = r.finished_us if done and r.finished_us is not None else self.bounds.as_of
            durations.append(max(0.0, round((end - r.created_us) / 1e6)))
            observed.append(done)
        km = kaplan_meier(durations, observed)
        median = km.median()
        return {
            "tasks": len(durations),
            "completed": sum(observed),
            "censored": len(durations) - sum(observed),
            "median_s": median,
            "median_h": fnum(median / 3600, 2) if median is not None else None,
            "thresholds_h": list(WITHIN_H),
            "completed_within": {f"{h}h": fnum(km.completed_by(h * 3600.0), 4) for h in WITHIN_H},
            "curve": _curve(km),
        }


def _curve(km: KaplanMeier) -> list[dict[str, float | None]]:
    n = len(km.times)
    step = max(1, -(-n // CURVE_POINTS))
    keep = sorted({*range(0, n, step), n - 1}) if n else []
    return [
        {
            "t_h": fnum(km.times[i] / 3600, 4),
            "survival": fnum(km.survival[i]),
            "lower": fnum(km.lower[i]) if km.lower else None,
            "upper": fnum(km.upper[i]) if km.upper else None,
        }
        for i in keep
    ]


def load_cohort(store: Store, bounds: Bounds, *, stale_after_s: float) -> Cohort:
    """Read the week's cohort and settle each task's status at ``bounds.as_of``."""
    b = bounds
    stale_us = int(stale_after_s * 1e6)
    raw = week_cohort(store, b.start, b.as_of)
    live = b.as_of >= b.now  # the week is still running: rows are the state at as_of
    settled: dict[str, str] = {}
    replay: list[str] = []
    for r in raw:
        status = r.status
        if status in TERMINAL and r.finished_us is not None and r.finished_us < b.as_of:
            settled[r.id] = status
        elif live:
            if status == "running" and (r.heartbeat_us or 0) < b.as_of - stale_us:
                status = "stale"
            settled[r.id] = status
        else:
            replay.append(r.id)
    settled.update(_replay(store, replay, raw, b, stale_us))
    rows = tuple(_Row(r.id, r.root, r.created_us, r.finished_us, settled[r.id]) for r in raw)
    return Cohort(b, rows)


def _replay(
    store: Store, ids: list[str], raw: list[CohortRow], b: Bounds, stale_us: int
) -> dict[str, str]:
    """Status at ``as_of`` of tasks that were unfinished then, from their events."""
    if not ids:
        return {}
    last = last_lifecycle(store, ids, LIFECYCLE, b.as_of)
    kind_of = event_kinds(store, [s for s, _ in last.values() if s is not None])
    heartbeat = {r.id: r.heartbeat_us for r in raw}
    out: dict[str, str] = {}
    for task_id in ids:
        seq, last_ts = last.get(task_id, (None, None))
        kind = kind_of.get(seq) if seq is not None else None
        # A task with no lifecycle event before as_of is a telemetry gap (the integrity
        # checks name it); count it as queued, the state every task starts in.
        status = min(STATUS_AFTER[kind]) if kind else "queued"
        if kind == "task.spawned":
            status = "queued"
        if status == "running":
            beat = heartbeat.get(task_id)
            seen = max(last_ts or 0, beat if beat is not None and beat <= b.as_of else 0)
            if seen < b.as_of - stale_us:
                status = "stale"
        out[task_id] = status
    return out
