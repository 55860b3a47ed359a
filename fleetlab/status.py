"""Fleet counts: spawned, finished and in flight, for all time or one week window.

Two views, because they answer different questions:

* the **cohort** of tasks spawned in the window and where each stands now (these add up:
  ``spawned = completed + failed + cancelled + in_flight``), and
* the tasks that **finished** in the window, whenever they were spawned.

A running task whose last heartbeat is older than ``stale_after_s`` counts as ``stale``,
not ``running``: its worker has probably died, and its lease will let another reclaim it. So
does a running task leased to a worker process of this machine that has exited (a fleet that
died on a full disk, say), at once: nothing will heartbeat it again, and the next fleet to
start here reclaims it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from fleetlab.clock import WeekWindow, to_us
from fleetlab.store import Store
from fleetlab.workers import dead_local_workers

__all__ = ["DEFAULT_STALE_AFTER_S", "FleetStatus", "fleet_status"]

DEFAULT_STALE_AFTER_S = 300.0


@dataclass(frozen=True, slots=True)
class FleetStatus:
    """Counts of tasks (every agent is a task: root goals and their sub-agents)."""

    window: str
    spawned: int
    completed: int
    failed: int
    cancelled: int
    in_flight: int
    running: int
    queued: int
    preempted: int
    waiting_children: int
    stale: int
    roots_spawned: int
    finished_in_window: dict[str, int] = field(default_factory=dict)
    kind: Literal["fleet_status"] = "fleet_status"

    @property
    def success_rate_finished(self) -> float | None:
        """Completed / (completed + failed): of the tasks with a verdict, the share that passed."""
        finished = self.completed + self.failed
        return self.completed / finished if finished else None

    @property
    def success_rate_spawned(self) -> float | None:
        """Completed / spawned: what share of the work asked for has been done."""
        return self.completed / self.spawned if self.spawned else None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["success_rate_finished"] = self.success_rate_finished
        data["success_rate_spawned"] = self.success_rate_spawned
        return data


def fleet_status(
    store: Store, window: WeekWindow | None = None, *, stale_after_s: float = DEFAULT_STALE_AFTER_S
) -> FleetStatus:
    """Count tasks by status, for all time or for the cohort spawned in ``window``."""
    cutoff = to_us(store.stale_cutoff(stale_after_s))
    dead = dead_local_workers(store)
    gone = f"lease_owner IN ({','.join('?' * len(dead))})" if dead else "0"
    where, params = "", []
    if window is not None:
        where = "WHERE created_us >= ? AND created_us < ?"
        params = [to_us(window.start), to_us(window.end)]
    row = store.query(
        "SELECT COUNT(*) AS spawned,"
        " COALESCE(SUM(parent_id IS NULL), 0) AS roots,"
        " COALESCE(SUM(status = 'completed'), 0) AS completed,"
        " COALESCE(SUM(status = 'failed'), 0) AS failed,"
        " COALESCE(SUM(status = 'cancelled'), 0) AS cancelled,"
        f" COALESCE(SUM(status = 'running' AND heartbeat_us >= ? AND NOT {gone}), 0) AS running,"
        " COALESCE(SUM(status = 'running'"
        f"   AND (heartbeat_us IS NULL OR heartbeat_us < ? OR {gone})), 0) AS stale,"
        " COALESCE(SUM(status = 'queued'), 0) AS queued,"
        " COALESCE(SUM(status = 'preempted'), 0) AS preempted,"
        " COALESCE(SUM(status = 'waiting_children'), 0) AS waiting"
        f" FROM tasks {where}",
        [cutoff, *dead, cutoff, *dead, *params],
    )[0]
    finished: dict[str, int] = {}
    if window is not None:
        finished = {
            r["status"]: r["n"]
            for r in store.query(
                "SELECT status, COUNT(*) AS n FROM tasks WHERE finished_us >= ? AND finished_us < ?"
                " GROUP BY status",
                params,
            )
        }
        finished = {s: finished.get(s, 0) for s in ("completed", "failed", "cancelled")}
    in_flight = row["running"] + row["stale"] + row["queued"] + row["preempted"] + row["waiting"]
    return FleetStatus(
        window=window.label + f" ({window.zone})" if window else "all time",
        spawned=row["spawned"],
        completed=row["completed"],
        failed=row["failed"],
        cancelled=row["cancelled"],
        in_flight=in_flight,
        running=row["running"],
        queued=row["queued"],
        preempted=row["preempted"],
        waiting_children=row["waiting"],
        stale=row["stale"],
        roots_spawned=row["roots"],
        finished_in_window=finished,
    )
