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
from datetime import UTC
from typing import Any, Literal

from fleetlab.clock import WeekWindow, to_us
from fleetlab.store import Store
from fleetlab.store.read.fleet import finished_counts, status_counts
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
    #: the instant the counts are of (ISO 8601, UTC): where things stand changes with time
    as_of: str
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
    now = store.clock.now()
    cutoff = to_us(store.stale_cutoff(stale_after_s))
    created = None if window is None else (to_us(window.start), to_us(window.end))
    row = status_counts(
        store, stale_cutoff_us=cutoff, dead_owners=dead_local_workers(store), created=created
    )
    finished: dict[str, int] = {}
    if created is not None:
        finished = finished_counts(store, *created)
    in_flight = row.running + row.stale + row.queued + row.preempted + row.waiting
    return FleetStatus(
        window=window.label + f" ({window.zone})" if window else "all time",
        spawned=row.spawned,
        completed=row.completed,
        failed=row.failed,
        cancelled=row.cancelled,
        in_flight=in_flight,
        running=row.running,
        queued=row.queued,
        preempted=row.preempted,
        waiting_children=row.waiting,
        stale=row.stale,
        roots_spawned=row.roots,
        as_of=now.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        finished_in_window=finished,
    )
