"""What happened during the week: daily activity, what shipped, failures, decomposition
health and the learner's changes (cost and tokens are in ``_calls``).

Activity is counted by *event time* in the week (a task spawned last week and completed
this week counts as completed this week), unlike the cohort counts.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any, NamedTuple

from fleetlab.digest._common import Bounds, fnum, iso, true_complexity
from fleetlab.digest._learner import EARLIEST_US, goals_of, means_at, preferred_at, totals_at
from fleetlab.digest._week import WeekEvents
from fleetlab.store import Store
from fleetlab.store.read.week import (
    learner_preferred,
    learner_updates,
    task_details,
    tasks_finished_or_future,
)

__all__ = [
    "Finished",
    "Row",
    "daily_activity",
    "decomposition",
    "failures",
    "learner_changes",
    "load_finished",
    "reason_key",
    "shipped",
]

ACTIVITY = {
    "task.spawned": "spawned",
    "task.completed": "completed",
    "task.failed": "failed",
    "task.cancelled": "cancelled",
}


def daily_activity(week: WeekEvents) -> list[dict[str, Any]]:
    """Per local day: tasks spawned, completed, failed and cancelled (by event time)."""
    b = week.bounds
    times: dict[str, list[int]] = {name: [] for name in ACTIVITY.values()}
    for e in week.lc:
        name = ACTIVITY.get(e.kind)
        if name is not None:
            times[name].append(e.ts_us)
    table = [dict.fromkeys(ACTIVITY.values(), 0) for _ in b.days]
    for name, instants in times.items():
        for day, n in enumerate(b.per_day(instants)):
            table[day][name] = n
    return [{"date": d.isoformat(), **counts} for d, counts in zip(b.days, table, strict=True)]


class Row(NamedTuple):
    """A task row that finished in the week (JSON fields only for root goals)."""

    id: str
    parent_id: str | None
    status: str
    created_us: int
    finished_us: int
    tree_agents: int
    tree_cost_usd: float
    suite_task: str | None
    policy: str | None
    choice: str | None
    error: str | None


@dataclass(frozen=True, slots=True)
class Finished:
    """The task rows that finished in the week, and any rows stamped after now (found in the
    same pass, for the integrity check)."""

    store: Store
    rows: tuple[Row, ...]
    future: tuple[tuple[str, int], ...] = ()
    future_count: int = 0

    def details(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        """Title, trace id, role, result summary and tokens of the listed tasks."""
        return {
            task_id: {"id": task_id, **d._asdict()}
            for task_id, d in task_details(self.store, ids).items()
        }


def load_finished(store: Store, b: Bounds) -> Finished:
    """The task rows with ``finished_us`` in the week.

    ``tasks.finished_us`` has no index, so this is one scan of the task table; the same scan
    finds rows created before now but started, finished or updated after it. (Rows created
    after now are found through the ``created_us`` index.)
    """
    rows: list[Row] = []
    future: list[tuple[str, int]] = []
    n_future = 0
    for r in tasks_finished_or_future(store, b.start, b.end, b.now):
        if r.latest > b.now:
            n_future += 1
            if len(future) <= MAX_FUTURE_LISTED:
                future.append((r.id, r.latest))
        if r.finished_us is not None and b.start <= r.finished_us < b.end:
            rows.append(
                Row(
                    r.id,
                    r.parent_id,
                    r.status,
                    r.created_us,
                    r.finished_us,
                    r.tree_agents,
                    r.tree_cost_usd,
                    r.suite_task,
                    r.policy,
                    r.choice,
                    r.error,
                )
            )
    rows.sort(key=lambda row: (row.finished_us, row.id))
    return Finished(store, tuple(rows), tuple(future), n_future)


#: Rows stamped in the future listed (all are counted).
MAX_FUTURE_LISTED = 50


def _goal(row: Row, d: dict[str, Any]) -> dict[str, Any]:
    return {
        "task_id": row.id,
        "trace_id": d.get("trace_id"),
        "title": d.get("title"),
        "suite_task": row.suite_task,
        "agents": 1 + row.tree_agents,
        "cost_usd": fnum(row.tree_cost_usd),
        "tokens": d.get("tokens"),
        "duration_s": round((row.finished_us - row.created_us) / 1e6, 1),
        "finished_at": iso(row.finished_us),
    }


def _goals(fin: Finished, rows: list[Row], **extra: Any) -> list[dict[str, Any]]:
    details = fin.details([r.id for r in rows])
    items = []
    for row in rows:
        d = details.get(row.id, {})
        item = _goal(row, d)
        for key, value in extra.items():
            item[key] = value(row, d)
        items.append(item)
    return items


def shipped(fin: Finished, *, limit: int) -> dict[str, Any]:
    """The root goals completed in the week: title, result summary, agents, cost, duration."""
    goals = [r for r in fin.rows if r.parent_id is None and r.status == "completed"]
    return {
        "total": len(goals),
        "cost_usd": fnum(sum(r.tree_cost_usd for r in goals)),
        "agents": sum(1 + r.tree_agents for r in goals),
        "items": _goals(fin, goals[:limit], summary=lambda _, d: d.get("summary")),
        "truncated": len(goals) > limit,
    }


_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_PATH = re.compile(r"\b[\w.-]*/[\w./-]+|\b[\w-]+\.(?:py|csv|json|txt|md|toml|html|ya?ml|log)\b")
_NUMBER = re.compile(r"\$?\d[\d,.]*")


def reason_key(error: str | None) -> str:
    """A failure reason with its particulars (files, quoted values, numbers) blanked out,
    so reasons that differ only in detail count together."""
    if not error:
        return "(no reason recorded)"
    text = error.strip().splitlines()[0] if error.strip() else error
    text = _NUMBER.sub("N", _PATH.sub("<file>", _QUOTED.sub("'…'", text)))
    parts = text.split(": ")
    keep = 2 if parts[0] == "verifier" and len(parts) > 1 else 1
    return ": ".join(parts[:keep])[:120]


def failures(fin: Finished, *, limit: int) -> dict[str, Any]:
    """Every task that failed in the week, with its reason and trace id; the top reasons."""
    failed = [r for r in fin.rows if r.status == "failed"]
    reasons = Counter(reason_key(r.error) for r in failed)
    goals = sum(r.parent_id is None for r in failed)
    details = fin.details([r.id for r in failed[:limit]])
    return {
        "total": len(failed),
        "goals": goals,
        "sub_agents": len(failed) - goals,
        "items": [
            {
                "task_id": r.id,
                "trace_id": details.get(r.id, {}).get("trace_id"),
                "role": details.get(r.id, {}).get("role"),
                "title": details.get(r.id, {}).get("title"),
                "reason": r.error,
                "failed_at": iso(r.finished_us),
            }
            for r in failed[:limit]
        ],
        "truncated": len(failed) > limit,
        "top_reasons": [{"reason": k, "count": n} for k, n in reasons.most_common(10)],
    }


def _bucket(key: str | None) -> tuple[int | None, str]:
    c = true_complexity(key) if key else None
    if c is None:
        return None, "unknown"
    return c, "simple" if c <= 2 else "medium" if c == 3 else "complex"


def decomposition(fin: Finished, *, limit: int) -> dict[str, Any]:
    """Agents per goal by true complexity; over-decomposition; complex goals that failed
    without decomposing. Over root goals that finished in the week.

    ``agents`` is the number of tasks in a goal's tree: the root plus every sub-agent.
    Free-form goals have no known complexity and land in the ``unknown`` bucket.
    """
    goals = [r for r in fin.rows if r.parent_id is None]
    stats: dict[str, Counter[str]] = defaultdict(Counter)
    points: Counter[tuple[int | None, int]] = Counter()
    over: list[Row] = []
    under: list[Row] = []
    for r in goals:
        complexity, bucket = _bucket(r.suite_task)
        agents = 1 + r.tree_agents
        points[(complexity, agents)] += 1
        s = stats[bucket]
        s["goals"] += 1
        s["agents"] += agents
        s["decomposed"] += agents > 1
        s["max_agents"] = max(s["max_agents"], agents)
        s[r.status] += 1
        if bucket == "simple" and agents > 1:
            over.append(r)
        if bucket == "complex" and r.status == "failed" and agents == 1:
            under.append(r)
    by_bucket = []
    for name in ("simple", "medium", "complex", "unknown"):
        if name not in stats:
            continue
        s = stats[name]
        done, failed = s["completed"], s["failed"]
        by_bucket.append(
            {
                "bucket": name,
                "goals": s["goals"],
                "decomposed": s["decomposed"],
                "mean_agents": fnum(s["agents"] / s["goals"], 2),
                "max_agents": s["max_agents"],
                "completed": done,
                "failed": failed,
                "cancelled": s["goals"] - done - failed,
                "success_rate": fnum(done / (done + failed), 4) if done + failed else None,
            }
        )

    def extra(r: Row, d: dict[str, Any]) -> Any:
        return _bucket(r.suite_task)[0]

    policies = Counter((r.policy or "none", r.choice or "none") for r in goals)
    return {
        "goals": len(goals),
        "by_bucket": by_bucket,
        "agents_by_complexity": [
            {"complexity": c, "agents": a, "goals": n}
            for (c, a), n in sorted(points.items(), key=lambda kv: (kv[0][0] or 0, kv[0][1]))
        ],
        "over_decomposed": {
            "count": len(over),
            "items": _goals(fin, over[:limit], complexity=extra, status=lambda r, _: r.status),
        },
        "complex_failed_direct": {
            "count": len(under),
            "items": _goals(fin, under[:limit], complexity=extra, status=lambda r, _: r.status),
        },
        "decisions": [
            {"policy": p, "choice": c, "goals": n} for (p, c), n in sorted(policies.items())
        ],
    }


def _means(update: dict[str, Any]) -> dict[str, float | None]:
    """Every arm's posterior mean right after ``update`` (rows written before the learner
    had a third arm hold two)."""
    try:
        means = json.loads(update["means"]) if update["means"] else None
    except ValueError:
        means = None
    if not isinstance(means, dict):
        means = {"direct": update["mean_direct"], "decompose": update["mean_decompose"]}
    return {str(arm): fnum(v, 4) for arm, v in sorted(means.items())}


#: The learner's kinds of goal in the report's order (simple to complex); others after them.
_ORDER = {"simple": 0, "medium": 1, "complex": 2}

#: How far a recorded posterior mean may be from the rebuilt one (both kept to four places).
_MEANS_TOLERANCE = 2e-4


def learner_changes(store: Store, b: Bounds) -> dict[str, Any]:
    """The learned policy this week: the goals it learned from and the strategy it chose for
    each, its updates (a goal split as needed writes two: ``_learner.goals_of``), and its
    changes of preferred strategy.

    A bucket's preferred strategy before the week is the one recorded with its last update
    before the week, unless a warm start dated after that update (and before the week)
    changed the learner: then, as for a bucket with warm starts only, the learner's own
    choice over its state at the week's start (its updates and warm starts before then). A
    warm start during the week can change the preference too (a change with its
    ``warm_start`` source instead of a ``task_id``); each update records the preference
    after it.
    """
    seeds = store.learner_seeds()
    before = learner_preferred(store, b.start)
    earlier = learner_updates(store, EARLIEST_US, b.start)
    last_update = earlier[-1].ts_us if earlier else None
    seeded = [int(r["ts_us"]) for r in seeds if int(r["ts_us"]) < b.start]
    if seeded and (last_update is None or max(seeded) >= last_update):
        before = dict(preferred_at(totals_at(store, b.start, seeds)))
    updates = learner_updates(store, b.start, b.end)
    goals = goals_of(updates)
    # the week's steps in time order: updates, and warm starts (one step per instant and source)
    steps: list[tuple[int, int, Any]] = [(u.ts_us, 1, u) for u in updates]
    in_week = sorted({(int(r["ts_us"]), str(r["source"])) for r in seeds
                      if b.start <= int(r["ts_us"]) < b.end})  # fmt: skip
    steps += [(ts, 0, source) for ts, source in in_week]
    steps.sort(key=lambda step: (step[0], step[1]))  # stable: updates keep their order
    current = dict(before)
    changes: list[dict[str, Any]] = []
    per: dict[str, dict[str, Any]] = {}

    def change(ts: int, bucket: str, to: str | None, **by: Any) -> None:
        if current.get(bucket) != to:
            changes.append(
                {"at": iso(ts), "bucket": bucket, "from": current.get(bucket), "to": to, **by}
            )
            current[bucket] = to

    for ts, _, item in steps:
        if isinstance(item, str):  # a warm start: the learner's choice over its new state
            state = totals_at(store, ts + 1, seeds)
            for bucket, arm in preferred_at(state).items():
                change(ts, bucket, arm, warm_start=item)
            continue
        r = item._asdict()
        bucket = r["bucket"]
        stats = per.setdefault(
            bucket,
            {
                "bucket": bucket,
                "goals": 0,
                "updates": 0,
                "direct": 0,
                "decompose": 0,
                "as_needed": 0,
                "successes": 0,
            },
        )
        stats["updates"] += 1
        stats["means"] = _means(r)
        stats["_last"] = ts
        change(ts, bucket, r["preferred"], task_id=r["task_id"])
    daily: Counter[tuple[str, str, str]] = Counter()
    for goal in goals.values():
        stats = per[goal.bucket]
        stats["goals"] += 1
        stats[goal.choice] = stats.get(goal.choice, 0) + 1
        stats["successes"] += goal.success
        daily[(b.days[b.day_index(goal.ts_us)].isoformat(), goal.bucket, goal.choice)] += 1
    for bucket, stats in per.items():
        stats["preferred_before"] = before.get(bucket)
        stats["preferred_after"] = current.get(bucket)
        # what the learner recorded after its last update here, against its state rebuilt
        # from what is dated before then: they differ when it used evidence dated later (a
        # warm start dated after its use) or ran under another learner configuration
        rebuilt = means_at(totals_at(store, stats.pop("_last") + 1, seeds), bucket)
        recorded = stats["means"]
        stats["record_agrees"] = all(
            recorded.get(arm) is None
            or rebuilt.get(arm) is None
            or abs(float(recorded[arm] or 0) - float(rebuilt[arm] or 0)) <= _MEANS_TOLERANCE
            for arm in recorded
        )
    return {
        "goals": len(goals),
        "updates": len(updates),
        "buckets": [per[k] for k in sorted(per, key=lambda k: (_ORDER.get(k, len(_ORDER)), k))],
        "preference_changes": sum(ch["from"] is not None for ch in changes),
        "changes": changes,
        "choices_daily": [
            {"date": d, "bucket": k, "arm": a, "goals": n} for (d, k, a), n in sorted(daily.items())
        ],
    }
