"""The weekly digest's reads: a week's events, cohort, finished rows, model calls, learner
updates and trend, in portable SQL.

Every read of the week's events is a range of the ``events (kind, ts_us)`` index; the cohort
is a range of ``tasks (created_us)``; look-ups by task go through ``events (task_id, seq)``
and the tasks' primary key. ``tasks.finished_us`` has no index on SQLite, so the rows that
finished in a week take one scan of the task table.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

from fleetlab.store.base import Row, Store

__all__ = [
    "PICO",
    "CallGroup",
    "CohortRow",
    "FinishedRow",
    "LearnerUpdate",
    "LifecycleEvent",
    "TaskDetails",
    "call_groups",
    "chunks",
    "discarded_calls",
    "event_kinds",
    "first_created_from",
    "kind_counts",
    "kind_spans",
    "last_lifecycle",
    "learner_goal_count",
    "learner_preferred",
    "learner_totals_before",
    "learner_updates",
    "lifecycle_events",
    "task_details",
    "task_ids_created",
    "tasks_finished_or_future",
    "week_cohort",
]

#: Most values passed in one ``IN (...)`` list.
CHUNK = 500


def chunks(ids: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    """``ids`` in slices small enough for one ``IN (...)`` list."""
    for i in range(0, len(ids), size):
        yield ids[i : i + size]


def marks(n: int) -> str:
    """``n`` comma-separated ``?`` placeholders."""
    return ",".join("?" * n)


def query_in(store: Store, sql: str, ids: Sequence[Any], params: Sequence[Any] = ()) -> list[Row]:
    """Run ``sql`` (one ``{ids}`` field, followed by ``params``) for every chunk of ``ids``."""
    rows: list[Row] = []
    for part in chunks(ids):
        rows += store.query(sql.format(ids=marks(len(part))), [*part, *params])
    return rows


def day_case(column: str, day_ends: Sequence[int]) -> tuple[str, list[int]]:
    """A ``CASE`` giving the day (0 = the first) of ``column``: the first day whose end is
    after it, else the last; and its parameters."""
    whens = " ".join(f"WHEN {column} < ? THEN {i}" for i in range(len(day_ends)))
    return f"CASE {whens} ELSE {len(day_ends) - 1} END", list(day_ends)


# --- the week's events -------------------------------------------------------------------


class LifecycleEvent(NamedTuple):
    """One lifecycle event: ``frm`` is the status the task left (its ``from`` attribute),
    ``epoch`` the lease it was written under (None when it names none, or was not read)."""

    task_id: str
    seq: int
    kind: str
    ts_us: int
    frm: str | None
    epoch: int | None = None


def lifecycle_events(
    store: Store, kinds: Sequence[str], start: int, end: int
) -> list[LifecycleEvent]:
    """The events of ``kinds`` in ``[start, end)``, with their epoch, in no particular
    order."""
    rows = store.query(
        "SELECT task_id, seq, kind, ts_us, attrs ->> 'from' AS frm,"
        " CAST(attrs ->> 'epoch' AS BIGINT) AS epoch FROM events"
        f" WHERE kind IN ({marks(len(kinds))}) AND ts_us >= ? AND ts_us < ?",
        [*kinds, start, end],
    )
    # the engines give integers for integer columns and casts: the rows are the events
    return list(map(LifecycleEvent._make, rows))


def kind_spans(
    store: Store, kinds: Sequence[str], start: int, end: int
) -> list[tuple[str, int, int, int]]:
    """Per task, the first and last instant and the number of its events of ``kinds`` in
    ``[start, end)``."""
    rows = store.query(
        "SELECT task_id, MIN(ts_us), MAX(ts_us), COUNT(*) FROM events"
        f" WHERE kind IN ({marks(len(kinds))}) AND ts_us >= ? AND ts_us < ? GROUP BY task_id",
        [*kinds, start, end],
    )
    return [(r[0], int(r[1]), int(r[2]), int(r[3])) for r in rows]


def kind_counts(store: Store, kinds: Sequence[str], start: int, end: int) -> dict[str, int]:
    """How many events of each of ``kinds`` fall in ``[start, end)`` (kinds with none are
    left out). A count over a range of the covering ``(kind, ts_us)`` index: no table reads."""
    rows = store.query(
        "SELECT kind, COUNT(*) AS n FROM events"
        f" WHERE kind IN ({marks(len(kinds))}) AND ts_us >= ? AND ts_us < ? GROUP BY kind",
        [*kinds, start, end],
    )
    return {r[0]: int(r[1]) for r in rows}


def last_lifecycle(
    store: Store, ids: Sequence[str], kinds: Sequence[str], before: int
) -> dict[str, tuple[int | None, int]]:
    """Per task of ``ids`` with events before ``before``: the ``seq`` of its last event of
    ``kinds`` (None if none) and the instant of its last event of any kind."""
    case = f"MAX(CASE WHEN kind IN ({marks(len(kinds))}) THEN seq END)"
    out: dict[str, tuple[int | None, int]] = {}
    for part in chunks(ids):
        for r in store.query(
            f"SELECT task_id, {case}, MAX(ts_us) FROM events"
            f" WHERE task_id IN ({marks(len(part))}) AND ts_us < ? GROUP BY task_id",
            [*kinds, *part, before],
        ):
            out[r[0]] = (None if r[1] is None else int(r[1]), int(r[2]))
    return out


def event_kinds(store: Store, seqs: Sequence[int]) -> dict[int, str]:
    """The kind of each event of ``seqs``."""
    return {
        int(r[0]): r[1]
        for r in query_in(store, "SELECT seq, kind FROM events WHERE seq IN ({ids})", seqs)
    }


# --- model calls ---------------------------------------------------------------------------


class CallGroup(NamedTuple):
    """Model calls (paid, committed or discarded) of one task, day, model and role: their
    sums (dollars in whole picodollars, ``PICO`` a dollar), and of the committed ones
    (``model.call``) the first and last instant and count, and their turns: how many name
    one, the lowest and highest, and the turns as bits (``turn_bits``: bit ``t`` for turn
    ``t``; None unless every turn is within ``0..TURN_BITS - 1``). ``epochs``: how many of
    the group's calls (either kind) name an epoch."""

    task_id: str
    day: int
    model: str | None
    role: str
    calls: int
    pico_usd: int
    input: int
    output: int
    cache_read: int
    cache_write: int
    simulated: bool
    first: int | None
    last: int | None
    committed: int
    turns: int
    min_turn: int | None
    max_turn: int | None
    turn_bits: int | None
    epochs: int


# Calls' dollars are summed as whole picodollars: integer sums are exact in any order, so a
# week's cost is the same on every backend (floating-point sums depend on the scan order).
PICO = 10**12
_USD_SUM = (
    "COALESCE(SUM(CAST(ROUND(CAST(attrs ->> 'cost_usd' AS DOUBLE PRECISION) * 1e12) AS BIGINT)), 0)"
)
#: Turns summed as bits, in two words of 31 bits (a sum of distinct bits is their union; a
#: turn counted twice carries into another bit, so the sum has fewer bits than turns). A
#: word's sum stays below 2**63 unless one group holds over 2**32 calls.
TURN_BITS = 62
#: A LIMIT no week reaches: it keeps SQLite from merging the subquery into the grouping
#: query, so each call's attributes are read once, before the sort, and the sort carries
#: small numbers instead of the attributes' JSON text (which it would parse again after it).
_WHOLE = " LIMIT 9223372036854775807"


def call_groups(store: Store, start: int, end: int, day_ends: Sequence[int]) -> list[CallGroup]:
    """The ``model.call`` and ``model.discarded`` events in ``[start, end)`` summed by task,
    day (``day_ends``: each day's end), model and role, in one pass over the week's calls:
    what the cost section, the lifetime check and the lease checks need of them."""
    day, params = day_case("ts_us", day_ends)
    call = "kind = 'model.call'"
    rows = store.query(
        "SELECT task_id, d, model, role, COUNT(*), COALESCE(SUM(usd), 0), COALESCE(SUM(i), 0),"
        " COALESCE(SUM(o), 0), COALESCE(SUM(cr), 0), COALESCE(SUM(cw), 0), MAX(sim),"
        f" MIN(CASE WHEN {call} THEN ts_us END), MAX(CASE WHEN {call} THEN ts_us END),"
        f" COUNT(CASE WHEN {call} THEN 1 END), COUNT(turn), MIN(turn), MAX(turn),"
        " SUM(CASE WHEN turn BETWEEN 0 AND 30 THEN CAST(1 AS BIGINT) << CAST(turn AS INTEGER)"
        "  ELSE 0 END),"
        " SUM(CASE WHEN turn BETWEEN 31 AND 61"
        "  THEN CAST(1 AS BIGINT) << CAST(turn - 31 AS INTEGER) ELSE 0 END),"
        " COUNT(epoch)"
        f" FROM (SELECT task_id, role, kind, ts_us, {day} AS d, attrs ->> 'model' AS model,"
        "  CAST(ROUND(CAST(attrs ->> 'cost_usd' AS DOUBLE PRECISION) * 1e12) AS BIGINT) AS usd,"
        "  CAST(attrs ->> 'input_tokens' AS BIGINT) AS i,"
        "  CAST(attrs ->> 'output_tokens' AS BIGINT) AS o,"
        "  CAST(attrs ->> 'cache_read_input_tokens' AS BIGINT) AS cr,"
        "  CAST(attrs ->> 'cache_creation_input_tokens' AS BIGINT) AS cw,"
        "  CASE WHEN CAST(attrs ->> 'simulated' AS TEXT) IN ('1', 'true') THEN 1 ELSE 0 END"
        "   AS sim,"
        f"  CASE WHEN {call} THEN CAST(attrs ->> 'turn' AS BIGINT) END AS turn,"
        "  CAST(attrs ->> 'epoch' AS BIGINT) AS epoch"
        "  FROM events WHERE kind IN ('model.call', 'model.discarded')"
        f"  AND ts_us >= ? AND ts_us < ?{_WHOLE}) c"
        " GROUP BY task_id, d, model, role",
        [*params, start, end],
    )
    out = []
    for r in rows:
        lowest, highest = r[15], r[16]
        bits = None
        if lowest is not None and highest is not None and lowest >= 0 and highest < TURN_BITS:
            bits = int(r[17]) | int(r[18]) << 31
        out.append(
            CallGroup(
                r[0],
                int(r[1]),
                r[2],
                r[3],
                int(r[4]),
                int(r[5]),
                int(r[6]),
                int(r[7]),
                int(r[8]),
                int(r[9]),
                bool(r[10]),
                None if r[11] is None else int(r[11]),
                None if r[12] is None else int(r[12]),
                int(r[13]),
                int(r[14]),
                None if lowest is None else int(lowest),
                None if highest is None else int(highest),
                bits,
                int(r[19]),
            )
        )
    return out


def discarded_calls(store: Store, start: int, end: int) -> tuple[int, float]:
    """How many ``model.discarded`` events fall in ``[start, end)``, and their cost."""
    [(n, cost)] = store.query(
        f"SELECT COUNT(*), {_USD_SUM}"
        " FROM events WHERE kind = 'model.discarded' AND ts_us >= ? AND ts_us < ?",
        (start, end),
    )
    return int(n), int(cost) / PICO


# --- task rows ------------------------------------------------------------------------------


class CohortRow(NamedTuple):
    """A task row created in the week, as it is now."""

    id: str
    root: bool
    status: str
    created_us: int
    finished_us: int | None
    heartbeat_us: int | None


def week_cohort(store: Store, start: int, end: int) -> list[CohortRow]:
    """The task rows created in ``[start, end)``, by creation time (then id)."""
    rows = store.query(
        "SELECT id, CASE WHEN parent_id IS NULL THEN 1 ELSE 0 END, status, created_us,"
        " finished_us, heartbeat_us FROM tasks WHERE created_us >= ? AND created_us < ?"
        " ORDER BY created_us, id",
        (start, end),
    )
    return [CohortRow(r[0], bool(r[1]), r[2], int(r[3]), r[4], r[5]) for r in rows]


def first_created_from(store: Store, start: int) -> int | None:
    """The earliest ``created_us`` at or after ``start`` (through the ``created_us`` index),
    or None when no task row was created since."""
    rows = store.query("SELECT MIN(created_us) FROM tasks WHERE created_us >= ?", (start,))
    return None if not rows or rows[0][0] is None else int(rows[0][0])


def task_ids_created(store: Store, start: int, end: int) -> set[str]:
    """Ids of the task rows created in ``[start, end)``."""
    rows = store.query(
        "SELECT id FROM tasks WHERE created_us >= ? AND created_us < ?", (start, end)
    )
    return {r[0] for r in rows}


class FinishedRow(NamedTuple):
    """A task row (``suite_task``, ``policy`` and ``choice`` from a root's spec; ``error``
    only for a failed task; ``latest``: its latest timestamp)."""

    id: str
    parent_id: str | None
    status: str
    created_us: int
    finished_us: int | None
    tree_agents: int
    tree_cost_usd: float
    suite_task: Any
    policy: Any
    choice: Any
    error: str | None
    latest: int


def tasks_finished_or_future(store: Store, start: int, end: int, now: int) -> list[FinishedRow]:
    """The task rows that finished in ``[start, end)``, and those created by ``now`` but
    started, finished or updated after it (one scan of the task table), in table order."""
    out: list[FinishedRow] = []
    for r in store.query(
        "SELECT id, parent_id, status, created_us, finished_us, tree_agents, tree_cost_usd,"
        " CASE WHEN parent_id IS NULL THEN spec END AS spec,"
        " CASE WHEN status = 'failed' THEN error END AS error,"
        " started_us, updated_us FROM tasks WHERE (finished_us >= ? AND finished_us < ?)"
        " OR (created_us <= ? AND (started_us > ? OR finished_us > ? OR updated_us > ?))",
        (start, end, now, now, now, now),
    ):
        created, finished, started, updated = r[3], r[4], r[9], r[10]
        suite, policy, choice = _facts(r[7]) if r[7] is not None else (None, None, None)
        out.append(
            FinishedRow(
                r[0],
                r[1],
                r[2],
                int(created),
                finished,
                int(r[5]),
                float(r[6]),
                suite,
                policy,
                choice,
                r[8],
                max(created, started or 0, finished or 0, updated),
            )
        )
    return out


def _facts(spec: str) -> tuple[Any, Any, Any]:
    """A root's (suite task, decision policy, decision choice) from its spec."""
    try:
        data = json.loads(spec)
    except ValueError:
        return None, None, None
    if not isinstance(data, dict):
        return None, None, None
    decision = data.get("decision")
    if not isinstance(decision, dict):
        decision = {}
    return data.get("suite_task"), decision.get("policy"), decision.get("choice")


class TaskDetails(NamedTuple):
    """What a report lists about a task besides its numbers."""

    trace_id: str
    role: str
    title: str
    summary: Any
    tokens: int


def task_details(store: Store, ids: Sequence[str]) -> dict[str, TaskDetails]:
    """Trace id, role, title, result summary and tree tokens of the listed tasks."""
    return {
        r[0]: TaskDetails(r[1], r[2], r[3], _summary(r[4]), int(r[5]))
        for r in query_in(
            store,
            "SELECT id, trace_id, role, title, result, tree_tokens_in + tree_tokens_out"
            " FROM tasks WHERE id IN ({ids})",
            ids,
        )
    }


def _summary(result: str | None) -> Any:
    """The ``summary`` of a task's result (a nested value as compact JSON text)."""
    if result is None:
        return None
    try:
        data = json.loads(result)
    except ValueError:
        return None
    value = data.get("summary") if isinstance(data, dict) else None
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return value


# --- the learner -------------------------------------------------------------------------------


class LearnerUpdate(NamedTuple):
    """One update of the decomposition learner."""

    ts_us: int
    task_id: str
    bucket: str
    arm: str
    reward: float
    success: int
    mean_direct: float | None
    mean_decompose: float | None
    preferred: str | None
    #: every arm's posterior mean right after the update, as JSON (None in rows before v6)
    means: str | None = None


def learner_preferred(store: Store, before: int) -> dict[str, str | None]:
    """Each bucket's preferred arm after its last update before ``before``."""
    rows = store.query(
        "SELECT u.bucket, u.preferred FROM learner_updates u JOIN (SELECT MAX(seq) AS seq"
        " FROM learner_updates WHERE ts_us < ? GROUP BY bucket) m ON m.seq = u.seq",
        (before,),
    )
    return {r[0]: r[1] for r in rows}


def learner_updates(store: Store, start: int, end: int) -> list[LearnerUpdate]:
    """The learner's updates in ``[start, end)``, in the order they were written."""
    rows = store.query(
        "SELECT ts_us, task_id, bucket, arm, reward, success, mean_direct, mean_decompose,"
        " preferred, means FROM learner_updates WHERE ts_us >= ? AND ts_us < ? ORDER BY seq",
        (start, end),
    )
    return [
        LearnerUpdate(int(r[0]), r[1], r[2], r[3], r[4], int(r[5]), r[6], r[7], r[8], r[9])
        for r in rows
    ]


def learner_totals_before(
    store: Store, end: int
) -> dict[tuple[str, str], tuple[int, float, float]]:
    """Per (bucket, arm), the rewards of the learner's updates before ``end``: how many,
    their sum and their sum of squares (warm starts aside: ``Store.learner_seeds``)."""
    rows = store.query(
        "SELECT bucket, arm, COUNT(*), SUM(reward), SUM(reward * reward) FROM learner_updates"
        " WHERE ts_us < ? GROUP BY bucket, arm ORDER BY bucket, arm",
        (end,),
    )
    return {(str(r[0]), str(r[1])): (int(r[2]), float(r[3]), float(r[4])) for r in rows}


def learner_goal_count(store: Store) -> int:
    """How many goals the learner learned from (distinct goals: a goal split as needed wrote
    two updates)."""
    return int(store.query("SELECT COUNT(DISTINCT task_id) FROM learner_updates")[0][0])
