"""``weekly_trend``: spawned / completed / failed / cancelled per ISO week, for many weeks.

Cheap by design: per week, counts over a range of the covering ``events (kind, ts_us)``
index: no table reads, no JSON, no task rows.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fleetlab.clock import WeekWindow, ensure_utc, to_us, week_of
from fleetlab.digest._common import fnum
from fleetlab.errors import UserError
from fleetlab.store import Store
from fleetlab.store.read.week import kind_counts

__all__ = ["weekly_trend"]

_KINDS = {
    "task.spawned": "spawned",
    "task.completed": "completed",
    "task.failed": "failed",
    "task.cancelled": "cancelled",
}


def weekly_trend(
    store: Store,
    weeks: int = 52,
    tz: str = "UTC",
    *,
    until: WeekWindow | None = None,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """Activity per ISO week in zone ``tz``, oldest first, ending with ``until``.

    Args:
        store: the fleet database.
        weeks: how many weeks (1-520).
        tz: the IANA zone whose local Mondays bound the weeks.
        until: the last week (default: the week containing ``now``).
        now: the current instant (default: the store's clock).

    Returns:
        One dict per week: ``week``, ``start`` (UTC ISO), ``spawned``, ``completed``,
        ``failed``, ``cancelled``, ``success_rate`` (completed / (completed + failed)).
        Counts are events in the week, whatever week the task was spawned in.
    """
    if not 1 <= weeks <= 520:
        raise UserError(f"weeks must be from 1 to 520, got {weeks}")
    instant = ensure_utc(now, "now") if now is not None else store.clock.now()
    last = until if until is not None else week_of(instant, tz)
    windows = [last]
    while len(windows) < weeks:
        windows.append(windows[-1].previous())
    windows.reverse()
    table = []
    for window in windows:
        counts = dict.fromkeys(_KINDS.values(), 0)
        found = kind_counts(store, list(_KINDS), to_us(window.start), to_us(window.end))
        for kind, n in found.items():
            counts[_KINDS[kind]] = n
        table.append(counts)
    out = []
    for window, counts in zip(windows, table, strict=True):
        finished = counts["completed"] + counts["failed"]
        out.append(
            {
                "week": window.label,
                "start": window.start.isoformat().replace("+00:00", "Z"),
                **counts,
                "success_rate": fnum(counts["completed"] / finished, 4) if finished else None,
            }
        )
    return out
