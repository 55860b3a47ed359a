"""What the learned policy knew at the end of the week: its posterior per complexity bucket
and strategy, and the warm starts that seeded it; the goals it learned from.

A goal teaches the learner once per strategy it played: a goal split as needed (ADaPT's
try-then-split) writes two updates, ``direct`` for its first try and then ``as_needed``
(``fleetlab.policies.learned``). So goals are counted by task id (``goals_of``), and a goal's
*choice* is the strategy the learner decided for it: its update other than ``direct`` when it
has one (``as_needed``), else ``direct``.

The learner's table (``learner_arms``) holds its totals now; a week's report needs them as
of the week's end, so they are rebuilt from what is dated: every update before the end (each
holds its reward) plus every warm start before the end (each holds what it added). The
posterior is then the learner's own (``fleetlab.learning.Learner.posterior``), over those
totals.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from fleetlab.digest._common import Bounds, fnum, iso
from fleetlab.learning import Learner
from fleetlab.store.learner import ArmTotals
from fleetlab.store.read.week import LearnerUpdate, learner_totals_before, learner_updates

if TYPE_CHECKING:
    from fleetlab.store import Store

__all__ = [
    "EARLIEST_US",
    "SURE",
    "Goal",
    "goals_of",
    "learner_posterior",
    "means_at",
    "preferred_at",
    "totals_at",
]

#: A bucket's preferred strategy is said to be the best (``sure``) when the posterior gives it
#: more than this chance of being the best: more likely than not (50% is a coin toss).
SURE = 0.5

#: An instant before any the store holds (the learner's whole history starts after it).
EARLIEST_US = -(2**62)


@dataclass(frozen=True, slots=True)
class Goal:
    """One goal the learner learned from: its bucket, the strategy it chose for it, when it
    learned (the choice's update), whether the goal succeeded, and its updates' arms."""

    task_id: str
    bucket: str
    choice: str
    ts_us: int
    success: bool
    arms: tuple[str, ...]


def goals_of(updates: Iterable[LearnerUpdate]) -> dict[str, Goal]:
    """The goals behind ``updates`` (in the order they were written), by task id: one per
    task however many updates it wrote; its choice is its update other than ``direct`` (the
    first try of a goal split as needed is a ``direct`` update too), else ``direct``."""
    rows: dict[str, list[LearnerUpdate]] = {}
    for u in updates:
        rows.setdefault(u.task_id, []).append(u)
    goals: dict[str, Goal] = {}
    for task_id, mine in rows.items():
        chosen = [u for u in mine if u.arm != "direct"] or mine
        last = chosen[-1]
        goals[task_id] = Goal(
            task_id, last.bucket, last.arm, last.ts_us, bool(last.success),
            tuple(u.arm for u in mine),
        )  # fmt: skip
    return goals


class _TotalsAt:
    """The learner's totals at one instant, read the way ``Learner`` reads its store's (the
    two reads its posterior makes)."""

    def __init__(self, totals: dict[tuple[str, str], ArmTotals]) -> None:
        self._totals = totals

    def learner_totals(self) -> dict[tuple[str, str], ArmTotals]:
        return dict(self._totals)

    def learner_arms(self, bucket: str) -> dict[str, ArmTotals]:
        return {arm: t for (b, arm), t in self._totals.items() if b == bucket}


def totals_at(
    store: Store, instant: int, seeds: Iterable[dict[str, Any]]
) -> dict[tuple[str, str], ArmTotals]:
    """The learner's totals at ``instant``: its updates before then plus the warm starts
    (``seeds``: rows of ``learner_seeds``) dated before then."""
    sums = {k: list(v) for k, v in learner_totals_before(store, instant).items()}
    for r in seeds:
        if int(r["ts_us"]) < instant:
            s = sums.setdefault((str(r["bucket"]), str(r["arm"])), [0, 0.0, 0.0])
            s[0] += int(r["n"])
            s[1] += float(r["reward_sum"])
            s[2] += float(r["reward_sq"])
    return {k: ArmTotals(int(n), total, sq) for k, (n, total, sq) in sums.items()}


def preferred_at(totals: dict[tuple[str, str], ArmTotals]) -> dict[str, str]:
    """Each bucket with evidence in ``totals`` -> the strategy the learner prefers there (its
    highest posterior mean, ``Learner.preferred``); a bucket without evidence has none."""
    learner = Learner(cast("Store", _TotalsAt(totals)))
    buckets = sorted({b for (b, _), t in totals.items() if t.n})
    return {b: str(learner.preferred(b)) for b in buckets}


def means_at(totals: dict[tuple[str, str], ArmTotals], bucket: str) -> dict[str, float | None]:
    """Every strategy's posterior mean reward in ``bucket`` over ``totals`` (four places, as
    the report keeps an update's means)."""
    stats = Learner(cast("Store", _TotalsAt(totals))).stats(bucket)
    return {arm: fnum(s.mean, 4) for arm, s in sorted(stats.items())}


def learner_posterior(store: Store, b: Bounds) -> dict[str, Any]:
    """The learner at the week's end (``b.as_of``: its end, or now for a week in progress).

    Returns:
        ``as_of``; ``goals``: the goals it learned from before then (by task id: a goal split
        as needed wrote two updates); ``updates``: its updates before then; ``evidence``:
        rewards in all (updates and warm-start trials); ``warm_starts``: each warm start
        before then (``source``, ``experiment`` when the source names one, ``at``,
        ``in_week``, ``trials``, ``goals_before``: goals it had learned from before it,
        ``simulated``: its trials came from a simulated model, None if not recorded);
        ``later_warm_starts``: the warm starts dated at or after then (``source``,
        ``experiment``, ``at``, ``trials``, ``simulated``), which the state at ``as_of``
        leaves out; ``sure``:
        per bucket with evidence whose preferred strategy is more likely than not the best,
        that ``arm`` and its ``p_best``; ``posterior_arms``: per bucket and strategy, ``n``,
        ``mean_reward``, ``p_best`` and ``preferred`` (none in a bucket without evidence; a
        table of estimates: not quotable by the post, see ``_factcheck``).
    """
    seeds = store.learner_seeds()
    history = learner_updates(store, EARLIEST_US, b.as_of)
    first_at: dict[str, int] = {}  # each goal's first update (histories are in seq order)
    for u in history:
        first_at.setdefault(u.task_id, u.ts_us)
    starts: dict[tuple[int, str], dict[str, Any]] = {}
    later: dict[tuple[int, str], dict[str, Any]] = {}
    for r in seeds:
        ts, source = int(r["ts_us"]), str(r["source"])
        into = starts if ts < b.as_of else later
        start = into.get((ts, source))
        if start is None:
            kind, sep, name = source.partition(":")
            start = into[(ts, source)] = {
                "source": source,
                "experiment": name if sep and kind == "experiment" else None,
                "at": iso(ts),
                "trials": 0,
                # a warm start's rows say alike: its trials came from a simulated model (None:
                # seeded before that was recorded)
                "simulated": r["simulated"],
            }
            if into is starts:
                start["in_week"] = ts >= b.start
                start["goals_before"] = sum(t < ts for t in first_at.values())
        start["trials"] += int(r["n"])
    totals = totals_at(store, b.as_of, seeds)
    rows = Learner(cast("Store", _TotalsAt(totals))).posterior()
    evidence = {b for (b, _), t in totals.items() if t.n}
    return {
        "as_of": iso(b.as_of),
        "goals": len(first_at),
        "updates": len(history),
        "evidence": sum(t.n for t in totals.values()),
        "warm_starts": [
            {
                k: s[k]
                for k in (
                    "source",
                    "experiment",
                    "at",
                    "in_week",
                    "trials",
                    "goals_before",
                    "simulated",
                )
            }
            for s in starts.values()
        ],
        "later_warm_starts": list(later.values()),
        "sure": [
            {"bucket": r["bucket"], "arm": r["arm"], "p_best": fnum(r["p_best"], 3)}
            for r in rows
            if r["preferred"] and r["bucket"] in evidence and r["p_best"] > SURE
        ],
        "posterior_arms": [
            {
                "bucket": r["bucket"],
                "arm": r["arm"],
                "n": r["n"],
                "mean_reward": fnum(r["mean_reward"], 3),
                # a Monte Carlo estimate (2,000 draws): three places are all it has
                "p_best": fnum(r["p_best"], 3),
                "preferred": r["preferred"],
            }
            for r in rows
        ],
    }
