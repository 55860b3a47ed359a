"""The orchestrator's own writes: recurring goals (the schedules table) and a task's phase,
kept in its spec."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fleetlab.store.records import Lease

__all__ = ["ScheduleOps", "StoredSchedule"]

_COLUMNS = "id, spec, weekday, at_time, zone, next_us"
_spec_json = json.JSONEncoder(separators=(",", ":"), sort_keys=True).encode


@dataclass(frozen=True, slots=True)
class StoredSchedule:
    """A schedule as stored: its goal's fields, weekday (0 = Monday), local time and zone,
    and the next instant it fires (microseconds since the epoch, UTC)."""

    id: str
    goal: dict[str, Any]
    weekday: int
    at_time: str
    zone: str
    next_us: int


def _schedule(row: Any) -> StoredSchedule:
    return StoredSchedule(
        str(row[0]), json.loads(row[1]), int(row[2]), str(row[3]), str(row[4]), int(row[5])
    )


class ScheduleOps:
    """Schedules and task specs (a mixin of ``Store``)."""

    if TYPE_CHECKING:

        def tx(self) -> AbstractContextManager[Any]: ...
        def query(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> list[Any]: ...
        def check_lease(self, lease: Lease) -> None: ...
        def _now_us(self) -> int: ...

    def save_schedule(
        self,
        schedule_id: str,
        title: str,
        goal: Mapping[str, Any],
        *,
        priority: int,
        weekday: int,
        at_time: str,
        zone: str,
        next_us: int,
    ) -> str:
        """Store a new weekly schedule of the goal whose fields are ``goal``, unless one of
        the same goal at the same time is stored: returns the id of the one stored (the new
        ``schedule_id``, or the existing one's)."""
        spec = json.dumps(dict(goal))
        with self.tx() as conn:
            same = self.query(
                "SELECT id FROM schedules WHERE spec = ? AND weekday = ? AND at_time = ?"
                " AND zone = ? ORDER BY created_us, id LIMIT 1",
                [spec, weekday, at_time, zone],
            )
            if same:
                return str(same[0][0])
            conn.execute(
                "INSERT INTO schedules (id, title, spec, priority, weekday, at_time, zone,"
                " next_us, created_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    schedule_id,
                    title,
                    spec,
                    priority,
                    weekday,
                    at_time,
                    zone,
                    next_us,
                    self._now_us(),
                ],
            )
        return schedule_id

    def schedules(self) -> list[StoredSchedule]:
        """Every schedule, soonest first."""
        return [
            _schedule(r)
            for r in self.query(
                f"SELECT {_COLUMNS} FROM schedules ORDER BY next_us, created_us, id"
            )
        ]

    def schedule_ids(self, prefix: str) -> list[str]:
        """The ids of the schedules that start with ``prefix`` (hex digits; else none)."""
        if not prefix or any(c not in "0123456789abcdef" for c in prefix):
            return []
        rows = self.query("SELECT id FROM schedules WHERE id LIKE ? || '%' ORDER BY id", [prefix])
        return [str(r[0]) for r in rows]

    def remove_schedule(self, schedule_id: str) -> None:
        """Remove a schedule (none of that id: nothing changes)."""
        with self.tx() as conn:
            conn.execute("DELETE FROM schedules WHERE id = ?", [schedule_id])

    def any_schedule_due(self, now_us: int) -> bool:
        """Whether some schedule fires at or before ``now_us`` (a cheap look, no write)."""
        return bool(self.query("SELECT 1 FROM schedules WHERE next_us <= ? LIMIT 1", [now_us]))

    def due_schedules(self, now_us: int) -> list[StoredSchedule]:
        """The schedules that fire at or before ``now_us``, soonest first. Read them inside
        the transaction that fires and advances them."""
        return [
            _schedule(r)
            for r in self.query(
                f"SELECT {_COLUMNS} FROM schedules WHERE next_us <= ?"
                " ORDER BY next_us, created_us, id",
                [now_us],
            )
        ]

    def advance_schedule(self, schedule_id: str, next_us: int) -> None:
        """Move a schedule to the next instant it fires."""
        with self.tx() as conn:
            conn.execute("UPDATE schedules SET next_us = ? WHERE id = ?", [next_us, schedule_id])

    def set_task_spec(
        self, task_id: str, spec: Mapping[str, Any], *, lease: Lease | None = None
    ) -> None:
        """Replace a task's spec (the orchestrator keeps its phase there).

        Raises:
            LeaseLost: ``lease`` is given and the task no longer runs under it; nothing is
                written.
        """
        with self.tx() as conn:
            if lease is not None:
                self.check_lease(lease)
            conn.execute(
                "UPDATE tasks SET spec = ? WHERE id = ?", [_spec_json(dict(spec)), task_id]
            )
