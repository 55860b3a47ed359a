"""The week's events, read once through the ``events (kind, ts_us)`` index.

What the event sections need is read once and kept in memory, so the daily activity and the
integrity checks share one read of the events table:

* ``lc``: the week's lifecycle events (task id, ``seq``, kind, instant and ``frm``, the status
  the task left), by task and commit order;
* ``spans``: for every task, the first and last instant and the count of its other events in
  the week (decisions, budget and stall events; see ``OTHER_KINDS``).

Model calls are read separately with their cost and tokens (``_calls.read_calls``), which also
gives their per-task spans.
"""

from __future__ import annotations

from dataclasses import dataclass

from fleetlab.digest._common import LIFECYCLE, Bounds
from fleetlab.store import Store
from fleetlab.store.read.week import LifecycleEvent, kind_spans, lifecycle_events
from fleetlab.telemetry import EVENT_KINDS

__all__ = ["OTHER_KINDS", "WeekEvents", "week_events"]

#: Event kinds other than the lifecycle's whose instants are held to their task's lifetime.
#: Model calls are read with their cost (``_calls.read_calls``). Tool calls are left out:
#: an agent stamps them with the same clock, in the same transaction, just after the model
#: call of their turn (``fleetlab.agents``), so a clock fault shows in that model call, and
#: reading them would double the events the report reads (half a week's events are tool
#: calls). ``learner.updated`` is written just after its goal finishes: it has no lifetime.
OTHER_KINDS = tuple(
    sorted(EVENT_KINDS - set(LIFECYCLE) - {"learner.updated", "model.call", "tool.call"})
)


@dataclass(frozen=True, slots=True)
class WeekEvents:
    """The week's lifecycle events (by task, then ``seq``) and other events' spans."""

    store: Store
    bounds: Bounds
    lc: tuple[LifecycleEvent, ...]
    spans: tuple[tuple[str, int, int, int], ...]


def week_events(store: Store, b: Bounds) -> WeekEvents:
    """Read the week's lifecycle events and the other events' per-task spans."""
    lc = lifecycle_events(store, LIFECYCLE, b.start, b.end)
    lc.sort()  # by task, then seq (unique): the tuples' own order
    return WeekEvents(store, b, tuple(lc), tuple(kind_spans(store, OTHER_KINDS, b.start, b.end)))
