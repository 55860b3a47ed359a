"""The learner's tables: per (bucket, arm) reward totals, the history of its updates, and the
warm starts that seeded it (``learner_seeds``: what each added, from where, under which
objective)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fleetlab.telemetry import Event

__all__ = ["ArmTotals", "LearnerOps", "LearnerSeed", "LearnerUpdate", "LearnerWarmStart"]

_HISTORY = (
    "seq",
    "ts_us",
    "task_id",
    "bucket",
    "arm",
    "reward",
    "success",
    "cost_usd",
    "mean_direct",
    "mean_decompose",
    "preferred",
    "means",
)


@dataclass(frozen=True, slots=True)
class ArmTotals:
    """What one arm of one bucket has earned: how many rewards, their sum and sum of squares."""

    n: int
    reward_sum: float
    reward_sq: float


@dataclass(frozen=True, slots=True)
class LearnerUpdate:
    """One row of the learner's history: a finished root task's reward and the learner's
    view of its bucket right after it."""

    ts_us: int
    task_id: str
    bucket: str
    arm: str
    reward: float
    success: bool
    cost_usd: float
    mean_direct: float | None
    mean_decompose: float | None
    preferred: str | None
    #: every arm's posterior mean, as JSON ``{arm: mean}`` (None in rows older than v6)
    means: str | None = None


@dataclass(frozen=True, slots=True)
class LearnerSeed:
    """What one warm start added to one (bucket, arm), and from where."""

    ts_us: int
    source: str
    bucket: str
    arm: str
    n: int
    reward_sum: float
    reward_sq: float
    objective: str  # the objective's table as JSON
    simulated: bool | None = None  # the evidence came from a simulated model (None: unknown)


@dataclass(frozen=True, slots=True)
class LearnerWarmStart:
    """One warm start: its seed rows together (those of one time and source)."""

    ts_us: int
    source: str
    trials: int  # the rewards it added, over every (bucket, arm)
    objective: str  # the objective's table as JSON
    simulated: bool | None = None  # from a simulated model (None: seeded before it was kept)


class LearnerOps:
    """The learner's state and history (a mixin of ``Store``)."""

    if TYPE_CHECKING:

        def tx(self) -> AbstractContextManager[Any]: ...
        def query(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> list[Any]: ...
        def append(self, event: Event) -> None: ...

    def learner_arms(self, bucket: str) -> dict[str, ArmTotals]:
        """Each arm of ``bucket`` that has a reward -> its totals."""
        rows = self.query(
            "SELECT arm, n, reward_sum, reward_sq FROM learner_arms WHERE bucket = ? ORDER BY arm",
            [bucket],
        )
        return {str(r[0]): ArmTotals(int(r[1]), float(r[2]), float(r[3])) for r in rows}

    def learner_totals(self) -> dict[tuple[str, str], ArmTotals]:
        """Every (bucket, arm) that has a reward -> its totals."""
        rows = self.query(
            "SELECT bucket, arm, n, reward_sum, reward_sq FROM learner_arms ORDER BY bucket, arm"
        )
        return {
            (str(r[0]), str(r[1])): ArmTotals(int(r[2]), float(r[3]), float(r[4])) for r in rows
        }

    def add_learner_reward(self, bucket: str, arm: str, reward: float) -> None:
        """Add one reward to an arm's totals (creating them at the first)."""
        with self.tx() as conn:
            conn.execute(
                "INSERT INTO learner_arms (bucket, arm, n, reward_sum, reward_sq)"
                " VALUES (?, ?, 1, ?, ?) ON CONFLICT (bucket, arm) DO UPDATE"
                " SET n = learner_arms.n + 1,"
                " reward_sum = learner_arms.reward_sum + excluded.reward_sum,"
                " reward_sq = learner_arms.reward_sq + excluded.reward_sq",
                [bucket, arm, reward, reward * reward],
            )

    def seed_learner(self, totals: Mapping[tuple[str, str], ArmTotals]) -> None:
        """Give an empty learner the totals of each (bucket, arm), in one transaction."""
        with self.tx() as conn:
            for (bucket, arm), t in totals.items():
                conn.execute(
                    "INSERT INTO learner_arms (bucket, arm, n, reward_sum, reward_sq)"
                    " VALUES (?, ?, ?, ?, ?)",
                    [bucket, arm, int(t.n), float(t.reward_sum), float(t.reward_sq)],
                )

    def add_learner_seeds(self, seeds: Sequence[LearnerSeed]) -> None:
        """Add a warm start's totals to the learner's (an empty learner or one that already
        learned) and record where they came from, in one transaction."""
        with self.tx() as conn:
            for s in seeds:
                conn.execute(
                    "INSERT INTO learner_arms (bucket, arm, n, reward_sum, reward_sq)"
                    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (bucket, arm) DO UPDATE"
                    " SET n = learner_arms.n + excluded.n,"
                    " reward_sum = learner_arms.reward_sum + excluded.reward_sum,"
                    " reward_sq = learner_arms.reward_sq + excluded.reward_sq",
                    [s.bucket, s.arm, int(s.n), float(s.reward_sum), float(s.reward_sq)],
                )
                conn.execute(
                    "INSERT INTO learner_seeds (ts_us, source, bucket, arm, n, reward_sum,"
                    " reward_sq, objective, simulated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [s.ts_us, s.source, s.bucket, s.arm, int(s.n), float(s.reward_sum),
                     float(s.reward_sq), s.objective, _flag(s.simulated)],
                )  # fmt: skip

    def learner_seeds(self) -> list[dict[str, Any]]:
        """Every warm start's rows, in the order they were added."""
        cols = ("seq", "ts_us", "source", "bucket", "arm", "n", "reward_sum", "reward_sq",
                "objective", "simulated")  # fmt: skip
        rows = self.query(f"SELECT {', '.join(cols)} FROM learner_seeds ORDER BY seq")
        return [dict(zip(cols, r, strict=True)) | {"simulated": _bool(r[-1])} for r in rows]

    def learner_warm_starts(self) -> list[LearnerWarmStart]:
        """Every warm start, in the order they were added (inside ``tx()``, what it sees)."""
        rows = self.query(
            "SELECT ts_us, source, SUM(n), MIN(objective), MAX(simulated) FROM learner_seeds"
            " GROUP BY ts_us, source ORDER BY MIN(seq)"
        )
        return [
            LearnerWarmStart(int(r[0]), str(r[1]), int(r[2]), str(r[3]), _bool(r[4])) for r in rows
        ]

    def record_learner_update(self, update: LearnerUpdate, event: Event) -> None:
        """Append ``update`` to the learner's history and ``event`` to the log, in one
        transaction (join it to ``add_learner_reward``'s with an outer ``tx()``)."""
        u = update
        with self.tx() as conn:
            conn.execute(
                "INSERT INTO learner_updates (ts_us, task_id, bucket, arm, reward, success,"
                " cost_usd, mean_direct, mean_decompose, preferred, means)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    u.ts_us,
                    u.task_id,
                    u.bucket,
                    u.arm,
                    u.reward,
                    int(u.success),
                    u.cost_usd,
                    u.mean_direct,
                    u.mean_decompose,
                    u.preferred,
                    u.means,
                ],
            )
            self.append(event)

    def learner_history(self) -> list[dict[str, Any]]:
        """Every update in order, as ``{column: value}`` (``success`` as 0 or 1)."""
        rows = self.query(f"SELECT {', '.join(_HISTORY)} FROM learner_updates ORDER BY seq")
        return [dict(zip(_HISTORY, r, strict=True)) for r in rows]


def _flag(value: bool | None) -> int | None:
    """A stored ``simulated``: 1, 0 or NULL (not known)."""
    return None if value is None else int(bool(value))


def _bool(value: Any) -> bool | None:
    return None if value is None else bool(value)
