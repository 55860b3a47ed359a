"""The self-improvement loop: a persisted bandit that learns when decomposition pays.

For each complexity bucket (``simple``, ``medium``, ``complex``, from the scorer's estimate)
the learner keeps, per arm (``direct`` or ``decompose``), the count, sum and sum of squares of
the rewards of finished root tasks. The reward counts success and charges cost::

    reward = success - cost_weight * cost_usd - token_weight * tokens / 1000

Choices are Thompson samples. Each arm's rewards are Normal with unknown mean and unknown
variance (a Normal-Gamma posterior: prior mean ``prior_mean`` worth ``prior_weight``
observations, prior spread ``noise`` worth two), so an arm's mean is Student-t distributed;
the arm whose sample is larger is chosen. The learner explores while unsure and settles when
one arm is clearly better, and because the spread is learned too, a bucket whose rewards
barely vary (simple tasks that always pass) settles in a few tasks while a noisy one (long
tasks that pass half the time) keeps exploring longer. State and every update live in the
store, so learning survives restarts and its history can be charted ("what the
orchestrator learned").
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any, Literal

from fleetlab.clock import to_us
from fleetlab.store import Store
from fleetlab.store.learner import LearnerUpdate
from fleetlab.telemetry import Event

__all__ = ["ARMS", "ArmStats", "Learner", "LearnerConfig"]

ARMS = ("direct", "decompose")
Arm = Literal["direct", "decompose"]


@dataclass(frozen=True, slots=True)
class LearnerConfig:
    """Weights of the reward and the prior. ``cost_weight`` is reward points per USD.

    The default weight, 5 points per dollar, says a success is worth 20 cents. On the
    simulated model every weight from 2 to 8 gives the same best choice per bucket (direct for
    simple and medium, decompose for complex); above about 9 the extra agents of a complex
    task cost more than the successes they add, and the learner stops decomposing.
    """

    cost_weight: float = 5.0
    token_weight: float = 0.0
    prior_mean: float = 0.5
    prior_weight: float = 1.0
    noise: float = 0.5


@dataclass(frozen=True, slots=True)
class ArmStats:
    """What the learner knows about one arm in one bucket."""

    bucket: str
    arm: str
    n: int
    mean: float
    posterior_sd: float  # scale of the mean's Student-t posterior
    dof: float  # its degrees of freedom
    kind: Literal["arm_stats"] = field(default="arm_stats", repr=False)


class Learner:
    """Thompson sampling over {direct, decompose} per complexity bucket, kept in the store."""

    def __init__(self, store: Store, config: LearnerConfig | None = None, *, seed: int = 0) -> None:
        self.store = store
        self.config = config or LearnerConfig()
        self._rng = random.Random(seed)

    def reward(self, success: bool, cost_usd: float, tokens: int) -> float:
        """The reward of one finished root task."""
        c = self.config
        return float(success) - c.cost_weight * cost_usd - c.token_weight * tokens / 1000

    def stats(self, bucket: str) -> dict[str, ArmStats]:
        """Posterior summary of each arm in ``bucket``."""
        totals = self.store.learner_arms(bucket)
        c = self.config
        k0, m0, a0 = c.prior_weight, c.prior_mean, 1.0
        out = {}
        for arm in ARMS:
            t = totals.get(arm)
            n, total, squares = (t.n, t.reward_sum, t.reward_sq) if t is not None else (0, 0.0, 0.0)
            # Normal-Gamma update; the Gamma prior says "variance noise**2, worth 2 rewards".
            weight = k0 + n
            spread = a0 * c.noise**2
            if n:
                xbar = total / n
                spread += max(squares - total * xbar, 0.0) / 2
                spread += k0 * n * (xbar - m0) ** 2 / (2 * weight)
            alpha = a0 + n / 2
            mean = (k0 * m0 + total) / weight
            scale = math.sqrt(spread / (alpha * weight))
            out[arm] = ArmStats(bucket, arm, n, mean, scale, 2 * alpha)
        return out

    def choose(self, bucket: str) -> tuple[Arm, dict[str, Any]]:
        """Sample each arm's posterior and pick the larger; returns the arm and the draws."""
        draws = {}
        for name, s in self.stats(bucket).items():
            # Student-t: a standard Normal over sqrt(chi-square / dof), chi2/dof ~ Gamma.
            chi = self._rng.gammavariate(s.dof / 2, 2 / s.dof)
            draws[name] = s.mean + s.posterior_sd * self._rng.gauss(0.0, 1.0) / math.sqrt(chi)
        arm: Arm = "decompose" if draws["decompose"] > draws["direct"] else "direct"
        return arm, {f"sample_{k}": round(v, 4) for k, v in draws.items()}

    def preferred(self, bucket: str) -> Arm:
        """The arm with the higher posterior mean (what the learner would exploit)."""
        s = self.stats(bucket)
        return "decompose" if s["decompose"].mean > s["direct"].mean else "direct"

    def update(
        self,
        *,
        task_id: str,
        trace_id: str,
        bucket: str,
        arm: str,
        success: bool,
        cost_usd: float,
        tokens: int,
    ) -> float:
        """Record a finished root task's reward (state, history row and event in one commit)."""
        reward = self.reward(success, cost_usd, tokens)
        with self.store.tx():
            self.store.add_learner_reward(bucket, arm, reward)
            stats = self.stats(bucket)
            preferred = self.preferred(bucket)
            now = self.store.clock.now()
            update = LearnerUpdate(
                ts_us=to_us(now),
                task_id=task_id,
                bucket=bucket,
                arm=arm,
                reward=reward,
                success=success,
                cost_usd=cost_usd,
                mean_direct=stats["direct"].mean,
                mean_decompose=stats["decompose"].mean,
                preferred=preferred,
            )
            self.store.record_learner_update(
                update,
                Event(
                    kind="learner.updated",
                    ts=now,
                    trace_id=trace_id,
                    task_id=task_id,
                    role="orchestrator",
                    attrs={
                        "bucket": bucket,
                        "arm": arm,
                        "reward": round(reward, 6),
                        "success": success,
                        "cost_usd": cost_usd,
                        "preferred": preferred,
                        "mean_direct": round(stats["direct"].mean, 6),
                        "mean_decompose": round(stats["decompose"].mean, 6),
                    },
                ),
            )
        return reward

    def history(self) -> list[dict[str, Any]]:
        """Every update in order: the data for "what the orchestrator learned"."""
        return self.store.learner_history()
