"""Shared pieces of the digest: the week's bounds, local-day buckets, the lifecycle."""

from __future__ import annotations

import bisect
import functools
import itertools
import math
from dataclasses import dataclass
from datetime import date, datetime

from fleetlab.clock import WeekWindow, from_us, to_us
from fleetlab.errors import UserError
from fleetlab.store import TRANSITIONS

__all__ = [
    "COUNT_KEYS",
    "LIFECYCLE",
    "STATUS_AFTER",
    "Bounds",
    "fnum",
    "iso",
    "true_complexity",
]

#: The task counts of a week, in the order the report shows them.
COUNT_KEYS = (
    "spawned",
    "roots_spawned",
    "completed",
    "failed",
    "cancelled",
    "in_flight",
    "running",
    "queued",
    "preempted",
    "waiting_children",
    "stale",
)

#: Lifecycle event kinds (the events that change, or reclaim, a task's status).
LIFECYCLE: tuple[str, ...] = (
    "task.spawned",
    *sorted({*TRANSITIONS.values(), "task.reclaimed"}),
)

#: The status a task is in after each lifecycle event. ``task.spawned`` leaves a task
#: ``queued`` or ``waiting_children`` (``Store.create_task`` allows both).
STATUS_AFTER: dict[str, frozenset[str]] = {
    "task.spawned": frozenset({"queued", "waiting_children"}),
    "task.reclaimed": frozenset({"running"}),
    **{kind: frozenset({to}) for (_, to), kind in TRANSITIONS.items()},
}


def _check_status_after() -> None:
    # Every transition kind must name exactly one target status, or replay is ambiguous.
    for kind in STATUS_AFTER:
        targets = {to for (_, to), k in TRANSITIONS.items() if k == kind}
        if kind not in ("task.spawned", "task.reclaimed") and len(targets) != 1:
            raise AssertionError(f"{kind} leads to several statuses: {targets}")


_check_status_after()


@dataclass(frozen=True, slots=True)
class Bounds:
    """One week window as the integers the store keeps, plus its local days.

    ``as_of`` is the instant the figures describe: the end of the week, or ``now`` for a
    week still in progress. Everything the digest reports is as of that instant, so a report
    re-run later gives the same numbers.
    """

    window: WeekWindow
    start: int
    end: int
    as_of: int
    now: int
    day_ends: tuple[int, ...]
    days: tuple[date, ...]

    @classmethod
    def of(cls, window: WeekWindow, now: datetime) -> Bounds:
        days = window.days()
        start, end, now_us = to_us(window.start), to_us(window.end), to_us(now)
        return cls(
            window=window,
            start=start,
            end=end,
            as_of=min(end, now_us),
            now=now_us,
            day_ends=tuple(to_us(e) for _, _, e in days),
            days=tuple(d for d, _, _ in days),
        )

    def day_index(self, us: int) -> int:
        """The local day (0 = Monday) of an instant inside the week."""
        return min(bisect.bisect_right(self.day_ends, us), len(self.day_ends) - 1)

    def per_day(self, instants: list[int]) -> list[int]:
        """How many of ``instants`` fall on each local day (``day_index`` of each, counted):
        sorted once, then cut at the days' ends (``instants`` is sorted in place)."""
        instants.sort()
        cuts = [0, *(bisect.bisect_left(instants, end) for end in self.day_ends[:-1])]
        cuts.append(len(instants))
        return [hi - lo for lo, hi in itertools.pairwise(cuts)]


def iso(us: int | None) -> str | None:
    """An instant as ISO 8601 UTC (``2026-11-23T07:00:00Z``)."""
    if us is None:
        return None
    return from_us(us).strftime("%Y-%m-%dT%H:%M:%SZ")


def fnum(value: float | None, digits: int = 6) -> float | None:
    """A float rounded for JSON (``None`` and non-finite values become ``None``)."""
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits)


@functools.cache
def true_complexity(key: str) -> int | None:
    """The true complexity (1-5) of suite task ``key``, or ``None`` if it is unknown here."""
    from fleetlab.suites import get_task

    try:
        return get_task(key).complexity
    except UserError:
        return None
