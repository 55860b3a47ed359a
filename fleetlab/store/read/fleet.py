"""The fleet's read model: task counts and listings for status, workers, the orchestrator's
scheduling and the console."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from fleetlab.store.base import Store
from fleetlab.store.records import Task

__all__ = [
    "GoalBudget",
    "GoalPick",
    "StatusCounts",
    "active_tasks",
    "agents_in_tree",
    "count_in_status",
    "counts_by_status",
    "finished_counts",
    "goal_budget",
    "has_runnable",
    "pending_count",
    "recent_goals",
    "root_count",
    "running_lease_owners",
    "status_counts",
    "top_waiting_priority",
    "unfinished_children",
]

_RUNNABLE = ("queued", "preempted")
_PENDING = ("queued", "preempted", "waiting_children")
_FINAL = ("completed", "failed", "cancelled")


def _marks(values: Sequence[object]) -> str:
    return ",".join("?" * len(values))


def _scope(trace_id: str | None) -> tuple[str, list[str]]:
    return ("", []) if trace_id is None else (" AND trace_id = ?", [trace_id])


def agents_in_tree(task: Task) -> int:
    """The agents a task's tree ran: the task's own agent and every sub-agent under it
    (``tree_agents`` counts only the sub-agents), so a goal done by one agent has 1."""
    return 1 + task.tree_agents


def counts_by_status(store: Store) -> dict[str, int]:
    """Every status present in the tasks table -> how many tasks have it."""
    rows = store.query("SELECT status, COUNT(*) FROM tasks GROUP BY status ORDER BY status")
    return {str(r[0]): int(r[1]) for r in rows}


def count_in_status(store: Store, statuses: Sequence[str]) -> int:
    """How many tasks have one of ``statuses``."""
    rows = store.query(
        f"SELECT COUNT(*) FROM tasks WHERE status IN ({_marks(statuses)})", list(statuses)
    )
    return int(rows[0][0])


def root_count(store: Store) -> int:
    """How many root tasks (goals) there are."""
    return int(store.query("SELECT COUNT(*) FROM tasks WHERE parent_id IS NULL")[0][0])


def pending_count(store: Store, trace_id: str | None = None) -> int:
    """Tasks still to run or waiting for their children (in one trace, if given)."""
    scope, params = _scope(trace_id)
    rows = store.query(
        f"SELECT COUNT(*) FROM tasks WHERE status IN ({_marks(_PENDING)})" + scope,
        [*_PENDING, *params],
    )
    return int(rows[0][0])


def top_waiting_priority(store: Store, trace_id: str | None = None) -> int | None:
    """The highest priority of a task waiting to run (in one trace, if given); None if none."""
    scope, params = _scope(trace_id)
    rows = store.query(
        f"SELECT MAX(priority) FROM tasks WHERE status IN ({_marks(_RUNNABLE)})" + scope,
        [*_RUNNABLE, *params],
    )
    top = rows[0][0]
    return None if top is None else int(top)


def has_runnable(store: Store) -> bool:
    """Whether any task is waiting to run."""
    rows = store.query(
        f"SELECT 1 FROM tasks WHERE status IN ({_marks(_RUNNABLE)}) LIMIT 1", list(_RUNNABLE)
    )
    return bool(rows)


def unfinished_children(store: Store, parent_id: str) -> int:
    """How many of a task's children have not finished."""
    rows = store.query(
        f"SELECT COUNT(*) FROM tasks WHERE parent_id = ? AND status NOT IN ({_marks(_FINAL)})",
        [parent_id, *_FINAL],
    )
    return int(rows[0][0])


@dataclass(frozen=True, slots=True)
class GoalBudget:
    """A goal's status, budgets and what its whole tree has spent so far."""

    status: str
    budget_usd: float | None
    budget_tokens: int | None
    spent_usd: float
    spent_tokens: int


def goal_budget(store: Store, root_id: str) -> GoalBudget:
    """The budget state of the goal ``root_id`` (one small indexed read)."""
    [row] = store.query(
        "SELECT status, budget_usd, budget_tokens, tree_cost_usd,"
        " tree_tokens_in + tree_tokens_out FROM tasks WHERE id = ?",
        [root_id],
    )
    return GoalBudget(row[0], row[1], row[2], row[3], row[4])


def running_lease_owners(store: Store) -> list[str]:
    """The distinct workers holding a running task's lease, sorted."""
    rows = store.query(
        "SELECT DISTINCT lease_owner FROM tasks"
        " WHERE status = 'running' AND lease_owner IS NOT NULL ORDER BY lease_owner"
    )
    return [str(r[0]) for r in rows]


@dataclass(frozen=True, slots=True)
class StatusCounts:
    """Tasks by where they stand now; ``stale`` are running ones whose worker seems gone."""

    spawned: int
    roots: int
    completed: int
    failed: int
    cancelled: int
    running: int
    stale: int
    queued: int
    preempted: int
    waiting: int


def status_counts(
    store: Store,
    *,
    stale_cutoff_us: int,
    dead_owners: Sequence[str] = (),
    created: tuple[int, int] | None = None,
) -> StatusCounts:
    """Count tasks (those created in ``[start_us, end_us)`` if ``created`` is given) by
    status. A running task counts as stale when its last heartbeat is older than
    ``stale_cutoff_us`` (or missing) or its lease is held by one of ``dead_owners``."""
    dead = list(dead_owners)
    alive = f" AND lease_owner NOT IN ({_marks(dead)})" if dead else ""
    gone = f" OR lease_owner IN ({_marks(dead)})" if dead else ""
    where, params = "", []
    if created is not None:
        where, params = " WHERE created_us >= ? AND created_us < ?", list(created)
    row = store.query(
        "SELECT COUNT(*),"
        " COUNT(*) FILTER (WHERE parent_id IS NULL),"
        " COUNT(*) FILTER (WHERE status = 'completed'),"
        " COUNT(*) FILTER (WHERE status = 'failed'),"
        " COUNT(*) FILTER (WHERE status = 'cancelled'),"
        f" COUNT(*) FILTER (WHERE status = 'running' AND heartbeat_us >= ?{alive}),"
        " COUNT(*) FILTER (WHERE status = 'running'"
        f"   AND (heartbeat_us IS NULL OR heartbeat_us < ?{gone})),"
        " COUNT(*) FILTER (WHERE status = 'queued'),"
        " COUNT(*) FILTER (WHERE status = 'preempted'),"
        " COUNT(*) FILTER (WHERE status = 'waiting_children')"
        f" FROM tasks{where}",
        [stale_cutoff_us, *dead, stale_cutoff_us, *dead, *params],
    )[0]
    return StatusCounts(*(int(v) for v in row))


def finished_counts(store: Store, start_us: int, end_us: int) -> dict[str, int]:
    """Tasks that finished in ``[start_us, end_us)``: each final status -> count (0 if none)."""
    found = {
        str(r[0]): int(r[1])
        for r in store.query(
            "SELECT status, COUNT(*) FROM tasks WHERE finished_us >= ? AND finished_us < ?"
            " GROUP BY status",
            [start_us, end_us],
        )
    }
    return {s: found.get(s, 0) for s in _FINAL}


def active_tasks(store: Store, statuses: Sequence[str], limit: int) -> list[Task]:
    """Up to ``limit`` tasks with one of ``statuses``: running first, then preempted, then
    queued, then the rest; by priority (highest first), then oldest first."""
    rows = store.query(
        f"SELECT * FROM tasks WHERE status IN ({_marks(statuses)}) ORDER BY"
        " CASE status WHEN 'running' THEN 0 WHEN 'preempted' THEN 1"
        " WHEN 'queued' THEN 2 ELSE 3 END, priority DESC, created_us,"
        f" {store._INSERT_ORDER} LIMIT ?",
        [*statuses, int(limit)],
    )
    return [Task.from_row(r) for r in rows]


@dataclass(frozen=True, slots=True)
class GoalPick:
    """A goal as a picker lists it."""

    id: str
    title: str
    status: str


def recent_goals(store: Store, limit: int) -> list[GoalPick]:
    """The ``limit`` most recently created goals (root tasks), newest first."""
    rows = store.query(
        "SELECT id, title, status FROM tasks WHERE parent_id IS NULL"
        f" ORDER BY created_us DESC, {store._INSERT_ORDER} DESC LIMIT ?",
        [int(limit)],
    )
    return [GoalPick(str(r[0]), str(r[1]), str(r[2])) for r in rows]
