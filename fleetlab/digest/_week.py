"""The week's events, read once through the ``events (kind, ts_us)`` index.

Two temporary tables hold what the event sections need, so every later aggregate runs on a
few tens of thousands of rows instead of the events table:

* ``<name>_lc``: the week's lifecycle events (``task_id``, ``seq``, ``kind``, ``ts_us`` and
  ``frm``, the status the task left);
* ``<name>_span``: for every task, the first and last instant and the count of its other
  events in the week (decisions, budget and stall events; see ``OTHER_KINDS``).

Model calls are read separately with their cost and tokens (``_sections.model_calls``),
which also gives their per-task spans.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from dataclasses import dataclass

from fleetlab.digest._common import LIFECYCLE, Bounds
from fleetlab.store import Store
from fleetlab.telemetry import EVENT_KINDS

__all__ = ["OTHER_KINDS", "WeekEvents", "sql_list", "week_events"]

#: Event kinds other than the lifecycle's whose instants are held to their task's lifetime.
#: Model calls are read with their cost (``_sections.model_calls``). Tool calls are left out:
#: an agent stamps them with the same clock, in the same transaction, just after the model
#: call of their turn (``fleetlab.agents``), so a clock fault shows in that model call, and
#: reading them would double the events the report reads (half a week's events are tool
#: calls). ``learner.updated`` is written just after its goal finishes: it has no lifetime.
OTHER_KINDS = tuple(
    sorted(EVENT_KINDS - set(LIFECYCLE) - {"learner.updated", "model.call", "tool.call"})
)


def sql_list(values: tuple[str, ...] | list[str]) -> str:
    """Quoted SQL literals (only ever fixed event kinds, never user input)."""
    return ",".join(f"'{v}'" for v in values)


@dataclass(frozen=True, slots=True)
class WeekEvents:
    """The week's events in two temporary tables, ``lc`` and ``span`` (see the module)."""

    store: Store
    bounds: Bounds
    lc: str
    span: str


@contextlib.contextmanager
def week_events(store: Store, b: Bounds) -> Iterator[WeekEvents]:
    """Read the week's events into temporary tables for the duration of the block."""
    name = f"digest_week_{secrets.token_hex(4)}"
    week = WeekEvents(store, b, f"{name}_lc", f"{name}_span")
    try:
        store.query(
            f"CREATE TEMP TABLE {week.lc} AS SELECT task_id, seq, kind, ts_us,"
            " attrs ->> '$.from' AS frm FROM events"
            f" WHERE kind IN ({sql_list(list(LIFECYCLE))}) AND ts_us >= ? AND ts_us < ?",
            (b.start, b.end),
        )
        store.query(
            f"CREATE TEMP TABLE {week.span} AS SELECT task_id, MIN(ts_us) AS lo,"
            " MAX(ts_us) AS hi, COUNT(*) AS n FROM events"
            f" WHERE kind IN ({sql_list(OTHER_KINDS)}) AND ts_us >= ? AND ts_us < ?"
            " GROUP BY task_id",
            (b.start, b.end),
        )
        yield week
    finally:
        store.query(f"DROP TABLE IF EXISTS temp.{week.lc}")
        store.query(f"DROP TABLE IF EXISTS temp.{week.span}")
