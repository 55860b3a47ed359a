"""Recurring goals ("weekly digest, Monday 07:00 Europe/London"), stored in the db.

A schedule fires when the fleet's clock passes its next local time; firing queues the goal
and moves the schedule to its next week in one transaction, so a crash never fires it twice
or skips it.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from fleetlab.clock import ensure_utc, from_us, get_zone, to_us
from fleetlab.errors import NotFoundError, UserError
from fleetlab.orchestrator._goals import Goal, submit_goals
from fleetlab.store import Store, Task
from fleetlab.store.schedules import StoredSchedule
from fleetlab.telemetry import new_task_id

__all__ = [
    "WEEKDAYS",
    "Schedule",
    "add_schedule",
    "fire_due",
    "list_schedules",
    "next_time",
    "remove_schedule",
]

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True, slots=True)
class Schedule:
    """A goal queued every week on ``weekday`` at ``at_time`` local time in ``zone``.

    ``existing``: ``add_schedule`` found this very schedule stored and added nothing.
    """

    id: str
    goal: Goal
    weekday: int
    at_time: str
    zone: str
    next_at: datetime
    existing: bool = False
    kind: Literal["schedule"] = field(default="schedule", repr=False)


def next_time(after: datetime, weekday: int, at_time: str, zone: str) -> datetime:
    """The first local ``weekday`` ``at_time`` in ``zone`` strictly after ``after`` (UTC)."""
    match = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", at_time)
    if match is None:
        raise UserError(f"time {at_time!r} is malformed: use HH:MM, e.g. 07:00")
    tz = get_zone(zone)
    local = ensure_utc(after, "schedule reference").astimezone(tz)
    day = local.date() + timedelta(days=(weekday - local.weekday()) % 7)
    for _ in range(3):
        candidate = datetime(day.year, day.month, day.day, int(match[1]), int(match[2]), tzinfo=tz)
        if candidate.astimezone(after.tzinfo) > after:
            return ensure_utc(candidate)
        day += timedelta(days=7)
    raise AssertionError("unreachable: a later week always exists")


def add_schedule(store: Store, goal: Goal, *, weekday: str, at_time: str, zone: str) -> Schedule:
    """Store a weekly schedule for ``goal``."""
    day = weekday.strip().lower()[:3]
    if day not in WEEKDAYS:
        raise UserError(f"weekday {weekday!r} is unknown: use one of {', '.join(WEEKDAYS)}")
    title, spec = goal.validated()
    first = next_time(store.clock.now(), WEEKDAYS.index(day), at_time, zone)
    schedule_id = new_task_id()
    data = {
        "title": goal.title,
        "task": goal.task,
        "priority": goal.priority,
        "budget_usd": goal.budget_usd,
        "policy": goal.policy,
        "prompt": goal.prompt,
        "action": goal.action,
    }
    stored = store.save_schedule(
        schedule_id,
        title,
        data,
        priority=goal.priority,
        weekday=WEEKDAYS.index(day),
        at_time=at_time,
        zone=zone,
        next_us=to_us(first),
    )
    del spec
    if stored != schedule_id:  # the same goal at the same time: kept once
        return dataclasses.replace(_stored(store, stored), existing=True)
    return Schedule(schedule_id, goal, WEEKDAYS.index(day), at_time, zone, first)


def remove_schedule(store: Store, ident: str) -> Schedule:
    """Remove the schedule whose id (or unique id prefix) is ``ident``; returns it.

    Raises:
        NotFoundError: no schedule has that id.
        UserError: the prefix names several.
    """
    ids = store.schedule_ids(ident.strip().lower())
    if not ids:
        raise NotFoundError(
            f"no schedule {ident!r}: `fleetlab schedule list` shows the schedules and their ids"
        )
    if len(ids) > 1:
        raise UserError(f"schedule id prefix {ident!r} names {len(ids)} schedules: give more")
    removed = _stored(store, ids[0])
    store.remove_schedule(removed.id)
    return removed


def _stored(store: Store, schedule_id: str) -> Schedule:
    """The stored schedule of that id (one that exists)."""
    return _from_stored(next(s for s in store.schedules() if s.id == schedule_id))


def _from_stored(stored: StoredSchedule) -> Schedule:
    return Schedule(
        stored.id,
        Goal(**stored.goal),
        stored.weekday,
        stored.at_time,
        stored.zone,
        from_us(stored.next_us),
    )


def list_schedules(store: Store) -> list[Schedule]:
    """Every schedule, soonest first."""
    return [_from_stored(s) for s in store.schedules()]


def fire_due(store: Store) -> list[Task]:
    """Queue every schedule whose time has come (once, even if several weeks were missed)."""
    now = store.clock.now()
    fired: list[Task] = []
    # The fleet calls this on every tick: look first, and open a write transaction (which
    # waits for any commit in flight) only when something is due.
    if not store.any_schedule_due(to_us(now)):
        return fired
    with store.tx():
        for stored in store.due_schedules(to_us(now)):
            schedule = _from_stored(stored)
            fired += submit_goals(store, [schedule.goal])
            following = next_time(now, schedule.weekday, schedule.at_time, schedule.zone)
            store.advance_schedule(schedule.id, to_us(following))
    return fired
