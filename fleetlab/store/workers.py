"""The fleet's worker processes: who is running, on which host, and when each last beat.

A worker on one host cannot see a process on another, so liveness is a heartbeat: a fleet
registers when it starts, beats with its lease renewals and signs off when it stops. A
worker that stops beating (killed, its host gone) loses its tasks when their leases expire
(the claim's epoch fences any late write); ``fleetlab workers`` shows it as silent.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

__all__ = ["WorkerOps", "WorkerRow"]


@dataclass(frozen=True, slots=True)
class WorkerRow:
    """A worker as stored (instants in microseconds since the epoch, UTC), with the number
    of tasks running under its leases now."""

    id: str
    host: str
    pid: int
    started_us: int
    heartbeat_us: int
    stopped_us: int | None
    running: int


class WorkerOps:
    """Mixed into ``Store``: the workers table."""

    if TYPE_CHECKING:

        def tx(self) -> AbstractContextManager[Any]: ...
        def query(self, sql: str, params: Any = ()) -> list[Any]: ...
        def _now_us(self) -> int: ...

    def register_worker(self, worker: str, host: str, pid: int) -> None:
        """Record that ``worker`` (a fleet process on ``host``) has started, beating now."""
        now = self._now_us()
        with self.tx() as conn:
            conn.execute(
                "INSERT INTO workers (id, host, pid, started_us, heartbeat_us) VALUES"
                " (?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET heartbeat_us = excluded"
                ".heartbeat_us, stopped_us = NULL",
                (worker, host, pid, now, now),
            )

    def worker_beat(self, worker: str) -> None:
        """``worker`` is alive now."""
        with self.tx() as conn:
            conn.execute(
                "UPDATE workers SET heartbeat_us = ? WHERE id = ?", (self._now_us(), worker)
            )

    def worker_stopped(self, worker: str) -> None:
        """``worker`` stopped cleanly (its tasks were handed back)."""
        now = self._now_us()
        with self.tx() as conn:
            conn.execute(
                "UPDATE workers SET heartbeat_us = ?, stopped_us = ? WHERE id = ?",
                (now, now, worker),
            )

    def workers(self, *, since_us: int = 0) -> list[WorkerRow]:
        """Workers that beat at or after ``since_us``, most recent beat first."""
        rows = self.query(
            "SELECT w.id, w.host, w.pid, w.started_us, w.heartbeat_us, w.stopped_us,"
            " (SELECT COUNT(*) FROM tasks t WHERE t.lease_owner = w.id"
            " AND t.status = 'running') AS running"
            " FROM workers w WHERE w.heartbeat_us >= ? ORDER BY w.heartbeat_us DESC, w.id",
            (since_us,),
        )
        return [WorkerRow(*r) for r in rows]
