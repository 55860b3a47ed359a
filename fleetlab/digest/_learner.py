"""What the learned policy knew at the end of the week: its posterior per complexity bucket
and strategy, and the warm starts that seeded it.

The learner's table (``learner_arms``) holds its totals now; a week's report needs them as
of the week's end, so they are rebuilt from what is dated: every update before the end (each
holds its reward) plus every warm start before the end (each holds what it added). The
posterior is then the learner's own (``fleetlab.learning.Learner.posterior``), over those
totals.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from fleetlab.digest._common import Bounds, fnum, iso
from fleetlab.learning import Learner
from fleetlab.store.learner import ArmTotals
from fleetlab.store.read.week import (
    learner_seeds_before,
    learner_totals_before,
    learner_updates_before,
)

if TYPE_CHECKING:
    from fleetlab.store import Store

__all__ = ["SURE", "learner_posterior"]

#: A bucket's preferred strategy is said to be the best (``sure``) when the posterior gives it
#: at least this chance of being the best: more likely than not.
SURE = 0.5


class _TotalsAt:
    """The learner's totals at one instant, read the way ``Learner`` reads its store's (the
    two reads its posterior makes)."""

    def __init__(self, totals: dict[tuple[str, str], ArmTotals]) -> None:
        self._totals = totals

    def learner_totals(self) -> dict[tuple[str, str], ArmTotals]:
        return dict(self._totals)

    def learner_arms(self, bucket: str) -> dict[str, ArmTotals]:
        return {arm: t for (b, arm), t in self._totals.items() if b == bucket}


def learner_posterior(store: Store, b: Bounds) -> dict[str, Any]:
    """The learner at the week's end (``b.as_of``: its end, or now for a week in progress).

    Returns:
        ``as_of``; ``goals``: its updates before then (goals it learned from); ``evidence``:
        rewards in all (goals and warm-start trials); ``warm_starts``: each warm start before
        then (``source``, ``experiment`` when the source names one, ``at``, ``in_week``,
        ``trials``, ``goals_before``: updates before it); ``sure``: per bucket with evidence
        whose preferred strategy is more likely than not the best, that ``arm`` and its
        ``p_best``; ``posterior_arms``: per bucket and strategy, ``n``, ``mean_reward``,
        ``p_best`` and ``preferred`` (a table of estimates: not quotable by the post, see
        ``_factcheck``).
    """
    sums = {k: list(v) for k, v in learner_totals_before(store, b.as_of).items()}
    starts: dict[tuple[int, str], dict[str, Any]] = {}
    for r in learner_seeds_before(store, b.as_of):
        ts, source = int(r["ts_us"]), str(r["source"])
        start = starts.get((ts, source))
        if start is None:
            kind, sep, name = source.partition(":")
            start = starts[(ts, source)] = {
                "source": source,
                "experiment": name if sep and kind == "experiment" else None,
                "at": iso(ts),
                "in_week": ts >= b.start,
                "trials": 0,
                "goals_before": learner_updates_before(store, ts),
            }
        start["trials"] += int(r["n"])
        s = sums.setdefault((str(r["bucket"]), str(r["arm"])), [0, 0.0, 0.0])
        s[0] += int(r["n"])
        s[1] += float(r["reward_sum"])
        s[2] += float(r["reward_sq"])
    totals = {k: ArmTotals(int(n), total, sq) for k, (n, total, sq) in sums.items()}
    rows = Learner(cast("Store", _TotalsAt(totals))).posterior()
    evidence = {b for (b, _), t in totals.items() if t.n}
    return {
        "as_of": iso(b.as_of),
        "goals": learner_updates_before(store, b.as_of),
        "evidence": sum(t.n for t in totals.values()),
        "warm_starts": list(starts.values()),
        "sure": [
            {"bucket": r["bucket"], "arm": r["arm"], "p_best": fnum(r["p_best"], 3)}
            for r in rows
            if r["preferred"] and r["bucket"] in evidence and r["p_best"] >= SURE
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
