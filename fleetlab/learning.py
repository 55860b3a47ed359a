"""The self-improvement loop: a persisted bandit over strategies per complexity bucket.

For each estimated-complexity bucket (``simple``, ``medium``, ``complex``, from the scorer's
estimate) the learner keeps, per arm — a strategy: ``direct``, ``decompose`` or
``as_needed`` (ADaPT's try-then-split) — the count, sum and sum of squares of the rewards of
finished root goals. The reward is the fleet's objective, declared once in user terms
(``FleetConfig.objective``, ``fleetlab.objective.Objective``: "a success is worth $X")::

    reward = success - cost_usd / success_value_usd

the same number the A/B report ranks variants by.

Choices are Thompson samples. Each arm's rewards are Normal with unknown mean and unknown
variance (a Normal-Gamma posterior), so an arm's mean is Student-t distributed; the arm whose
sample is largest is chosen. The samples are drawn from a narrower posterior than the data give
(``sample_scale``: 0.3 of its spread; a sharpened posterior also did better in Chapelle and
Li's evaluation of Thompson sampling, 2011): a bucket that holds a fifth of the goals sees
about nine of them in a pass over the core suite, too few for plain Thompson sampling to stop
trying an arm 0.08 worse on a success-or-failure reward. It still explores: every arm keeps a
chance in every bucket.

Measured by replaying the learner over the fixed strategies' logged trials of seeds 1-40 (as
``fleetlab ab replay`` does; exact on the simulated model), 60 trajectories a world, each on
20 of the 40 seeds: how many got 90% of the way from the worst fixed strategy to the best on
passes 6-20:

| learner | lossy_handoff | long_thinking |
|---|---|---|
| plain Thompson sampling, ``min_evidence`` 3 | 35/60 | 24/60 |
| ``sample_scale`` 0.3, ``value_scale`` 0.5, ``min_evidence`` 3 | 43/60 | 43/60 |
| the same, ``min_evidence`` 15 | 50/60 | 48/60 |

(``solo``, ``default``, ``small_context``: 40/40, 38/40, 38/40 before; 40/40, 39/40, 40/40
after, 40 trajectories each.)

**Sharing strength across buckets.** Nine (bucket, arm) cells learned apart need many goals,
and most goals are simple, so the complex cells learn slowest. The prior of a cell is what
the rest of the evidence says about it (empirical Bayes): the arm's mean reward over every
bucket (shrunk towards the grand mean by ``share_weight`` rewards), worth ``share_weight``
rewards; its spread is the variance of all rewards seen so far, worth two. So an arm bad
everywhere else starts low in a bucket where it is untried, rewards that barely vary are
explored little, and the prior is on the objective's scale whatever the world. (An additive
prior, bucket level plus arm level, was tried on the evidence seeds and did worse on average.)
Before any reward, the prior is ``prior_mean`` with
spread ``noise``; with ``share_weight = 0`` every cell has that prior (worth
``prior_weight``), as before.

**When the score is worth its price.** Scoring a goal is a paid model call
(``score_cost_usd``). The learner asks what knowing the bucket is worth: in one sample of
every cell from its posterior, the mean of each bucket's best arm minus the best single arm
over all buckets (buckets weighted by how often goals land in them); averaged over
``voi_draws`` (16) such samples, drawn at ``value_scale`` (0.5) of the posterior's spread,
the posterior's expected value of the score. It scores when
that exceeds the call's cost in reward points, so it scores while the buckets may want
different arms and stops as its posterior agrees. (One sample instead of the average, i.e.
Thompson sampling on "score or not", skipped the score on 41% of the goals after the
warm-up in the ``long_thinking`` world, where knowing the bucket was worth about four times
its price.) An unscored goal plays the arm best over
all buckets by posterior mean: greedy, because an unscored goal has no bucket and teaches
nothing, so exploring there buys nothing. One goal in ``1 / audit_rate`` (5%) is scored
anyway, so the learner keeps learning and notices when the world changes. A warm start that
already settled the choice skips the score from its first goal.

**Every arm tried in every bucket first.** Until each (bucket, arm) cell has
``min_evidence`` (15) rewards, goals are scored and a bucket plays its least-tried arm
(counting the goals still running with that arm, so concurrent goals spread over the
arms). A few early rewards that happen to agree (simple goals come first and all succeed)
otherwise make the posterior sure of itself, and the arms of a rarer bucket are never tried
there. That exploration has a price, paid once: about 31 goals a bucket, 15 of them split
up front even when simple (a try-then-split goal's first try counts for ``direct`` too; a
warm start skips it all). A bucket no goal has landed in forces the score only for the
first ``explore_rewards`` (100) rewards: a fleet that never gets complex goals stops paying
for the score to look for them. A learner warm-started from an experiment
(``warm_start``) trusts that evidence instead, from its first goal.

State, every update and every warm start live in the store, so learning survives restarts
and its history can be charted ("what the orchestrator learned").
"""

from __future__ import annotations

import json
import math
import random
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from fleetlab.clock import to_us
from fleetlab.errors import UserError
from fleetlab.objective import MIN_SUCCESS_VALUE_USD, Objective, usd
from fleetlab.policies.base import STRATEGIES, Strategy
from fleetlab.store import Store
from fleetlab.store.learner import ArmTotals, LearnerSeed, LearnerUpdate, LearnerWarmStart
from fleetlab.store.lifecycle import ACTIVE
from fleetlab.telemetry import Event

if TYPE_CHECKING:
    import polars as pl

__all__ = [
    "ARMS",
    "BUCKETS",
    "DEFAULT_OBJECTIVE",
    "ArmStats",
    "Learner",
    "LearnerConfig",
    "WarmStart",
    "posterior_frame",
    "seeded_from_model",
    "warm_start",
]

ARMS: tuple[Strategy, ...] = STRATEGIES
BUCKETS = ("simple", "medium", "complex")
Arm = Strategy

#: The fleet's objective when none is declared: a success is worth $1 (a goal is worth
#: spending up to a dollar on). On the simulated model a task costs $0.03-0.10, so this
#: mostly ranks by success and breaks ties by cost.
DEFAULT_OBJECTIVE = Objective(success_value_usd=1.0)

_MC_DRAWS = 2000
#: The smallest prior reward variance learned from the data ((1 point in 100)^2): rewards
#: that never varied still leave room for a difference of about a cent.
_MIN_VARIANCE = 1e-4
#: The most reward points a USD (or 1,000 tokens) may cost: a success worth the least an
#: objective allows. More makes rewards, and their squares, overflow.
_MAX_WEIGHT = 1 / MIN_SUCCESS_VALUE_USD


@dataclass(frozen=True, slots=True)
class LearnerConfig:
    """The prior and the skip-scoring rule (the reward is the fleet's objective).

    Attributes:
        cost_weight: overrides the objective's reward points per USD (``1 / success_value_usd``);
            None (the default) uses the objective. Kept for older experiment files.
        token_weight: reward points lost per 1,000 tokens (0: cost alone).
        prior_mean: the prior's mean reward before any reward at all.
        prior_weight: how many rewards that prior is worth (``share_weight`` 0 only).
        noise: the prior's reward spread before any reward at all.
        share_weight: how many rewards an arm's mean over every bucket is worth as its
            prior in one bucket (sharing strength across buckets); 0: buckets independent,
            each arm's prior ``prior_mean`` worth ``prior_weight`` with spread ``noise``.
        score_cost_usd: what one scoring call costs (USD): the price of the information
            a score buys, against which ``needs_score`` weighs it. Set it from the scoring
            model's price; the default is about one short call to a mid-size model.
        settle_p: the probability of best at which an arm is called settled in a bucket
            (what the console and the decision's reason say).
        audit_rate: the share of goals scored even when the score seems not worth it
            (so the learner keeps learning, and notices a world that changed).
        min_evidence: rewards every (bucket, arm) cell gets before the posterior decides:
            until then goals are scored, and a bucket plays its least-tried arm.
        voi_draws: posterior samples averaged for the value of a score (1: Thompson
            sampling on "score or not").
        explore_rewards: how long a bucket no goal has landed in keeps forcing the score
            (``min_evidence``): until the learner holds this many rewards.
        sample_scale: the spread of ``choose``'s Thompson draws as a share of the
            posterior's (1: plain Thompson sampling; smaller explores less).
        value_scale: the same for the draws that value a score (``value_of_scoring``).
    """

    cost_weight: float | None = None
    token_weight: float = 0.0
    prior_mean: float = 0.5
    prior_weight: float = 1.0
    noise: float = 0.5
    share_weight: float = 2.0
    score_cost_usd: float = 0.008
    settle_p: float = 0.95
    audit_rate: float = 0.05
    min_evidence: int = 15
    voi_draws: int = 16
    explore_rewards: int = 100
    sample_scale: float = 0.3
    value_scale: float = 0.5

    def __post_init__(self) -> None:
        def bad(name: str, what: str) -> UserError:
            return UserError(f"LearnerConfig.{name} must be {what}, not {getattr(self, name)!r}")

        def number(name: str) -> float:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise bad(name, "a number")
            if not math.isfinite(value):
                raise bad(name, "a finite number")
            return float(value)

        for name in ("share_weight", "score_cost_usd", "sample_scale", "value_scale"):
            if number(name) < 0:
                raise bad(name, "a number >= 0")
        for name in ("cost_weight", "token_weight"):
            if getattr(self, name) is not None and not 0 <= number(name) <= _MAX_WEIGHT:
                none = " (or none: the objective's)" if name == "cost_weight" else ""
                raise bad(name, f"a number from 0 to {_MAX_WEIGHT:g}{none}")
        number("prior_mean")
        for name in ("prior_weight", "noise"):
            if number(name) <= 0:
                raise bad(name, "a number > 0")
        if not 0 < number("settle_p") <= 1:
            raise bad("settle_p", "a probability above 0, at most 1")
        if not 0 <= number("audit_rate") <= 1:
            raise bad("audit_rate", "a probability between 0 and 1")
        for name, low in (("min_evidence", 0), ("voi_draws", 1), ("explore_rewards", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise bad(name, f"a whole number >= {low}")


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
    """Thompson sampling over strategies per complexity bucket, kept in the store."""

    def __init__(
        self,
        store: Store,
        config: LearnerConfig | None = None,
        *,
        objective: Objective | None = None,
        seed: int = 0,
    ) -> None:
        self.store = store
        self.config = config or LearnerConfig()
        self.objective = objective or DEFAULT_OBJECTIVE
        self._rng = random.Random(seed)
        self._p_best_cache: tuple[Any, dict[str, dict[str, float]]] | None = None

    def check_objective(self) -> None:
        """Refuse to learn under this objective on evidence a warm start added under another:
        rewards under two objectives do not add up.

        Raises:
            UserError: a warm start's objective is not this learner's; the message names
                both and the way out.
        """
        other = _other_objective(self.store.learner_warm_starts(), self.objective)
        if other is None:
            return
        start, value = other
        if value is not None and value >= MIN_SUCCESS_VALUE_USD:
            how = f"run the fleet with --success-value-usd {value!r}, or seed"
        else:  # success only (or stored before values were bounded): no fleet runs under it
            how = "seed"
        raise UserError(
            f"the learner was warm-started from {start.source} under the objective"
            f" {_worth(value)!r} and this fleet runs under"
            f" {_worth(self.objective.success_value_usd)!r}: rewards under two objectives do not"
            f" add up; {how} a fresh fleet database (--db) under the fleet's objective"
            " (fleetlab learn --from-experiment NAME --success-value-usd X)"
        )

    @property
    def cost_weight(self) -> float:
        """Reward points lost per USD."""
        c = self.config.cost_weight
        return self.objective.cost_weight if c is None else c

    def reward(self, success: bool, cost_usd: float, tokens: int = 0) -> float:
        """The reward of one finished root goal: the objective's score of its outcome."""
        return (
            float(success)
            - self.cost_weight * float(cost_usd)
            - self.config.token_weight * tokens / 1000
        )

    def _totals(self) -> dict[tuple[str, str], ArmTotals]:
        """The store's totals the learner can use (``_usable``)."""
        return _usable(self.store.learner_totals())

    def left_out(self) -> list[tuple[str, str]]:
        """The (bucket, arm) cells whose stored totals are not finite numbers, so unused
        (rewards under an objective too extreme to compute, stored before objectives were
        bounded)."""
        totals = self.store.learner_totals()
        return sorted(totals.keys() - _usable(totals).keys())

    def _priors(
        self, everything: dict[tuple[str, str], ArmTotals]
    ) -> tuple[dict[str, float], float, float]:
        """Each arm's prior mean in a bucket, how many rewards it is worth, and the prior
        reward variance (see the module docstring: *sharing strength across buckets*)."""
        c = self.config
        if c.share_weight <= 0:
            return dict[str, float].fromkeys(ARMS, c.prior_mean), c.prior_weight, c.noise**2
        n = sum(t.n for t in everything.values())
        total = sum(t.reward_sum for t in everything.values())
        squares = sum(t.reward_sq for t in everything.values())
        if n >= 2:
            grand = total / n
            variance = max(squares / n - grand * grand, _MIN_VARIANCE)
        else:
            grand, variance = c.prior_mean, c.noise**2

        means: dict[str, float] = {}
        for arm in ARMS:  # the arm's mean over every bucket, shrunk towards the grand mean
            arm_n = sum(t.n for (_, a), t in everything.items() if a == arm)
            arm_sum = sum(t.reward_sum for (_, a), t in everything.items() if a == arm)
            means[arm] = (c.share_weight * grand + arm_sum) / (c.share_weight + arm_n)
        return means, c.share_weight, variance

    def _stats_of(
        self, bucket: str, everything: dict[tuple[str, str], ArmTotals]
    ) -> dict[str, ArmStats]:
        means, k0, variance = self._priors(everything)
        a0 = 1.0
        out: dict[str, ArmStats] = {}
        for arm in ARMS:
            m0 = means[arm]
            t = everything.get((bucket, arm))
            n, total, squares = (t.n, t.reward_sum, t.reward_sq) if t is not None else (0, 0.0, 0.0)
            # Normal-Gamma update; the Gamma prior says "this variance, worth 2 rewards".
            weight = k0 + n
            spread = a0 * variance
            if n:
                xbar = total / n
                spread += max(squares - total * xbar, 0.0) / 2
                gap = xbar - m0  # squared by multiplying: huge is inf, never an OverflowError
                spread += k0 * n * gap * gap / (2 * weight)
            alpha = a0 + n / 2
            mean = (k0 * m0 + total) / weight
            scale = math.sqrt(spread / (alpha * weight))
            out[arm] = ArmStats(bucket, arm, n, mean, scale, 2 * alpha)
        return out

    def stats(self, bucket: str) -> dict[str, ArmStats]:
        """Posterior summary of each arm in ``bucket``."""
        return self._stats_of(bucket, self._totals())

    def _shares(self, everything: dict[tuple[str, str], ArmTotals]) -> dict[str, float]:
        """How often goals land in each bucket (scored goals so far, plus one each)."""
        counts = dict.fromkeys(BUCKETS, 1.0)
        for (b, _), t in everything.items():
            if b in counts:
                counts[b] += t.n
        whole = sum(counts.values())
        return {b: v / whole for b, v in counts.items()}

    def _draw(self, s: ArmStats, rng: random.Random, scale: float = 1.0) -> float:
        """One sample of the arm's mean from its Student-t posterior, its spread times
        ``scale`` (a standard Normal over sqrt(chi-square / dof), chi2/dof ~ Gamma)."""
        chi = rng.gammavariate(s.dof / 2, 2 / s.dof)
        return s.mean + scale * s.posterior_sd * rng.gauss(0.0, 1.0) / math.sqrt(chi)

    def _exploring(self) -> bool:
        """Whether ``min_evidence`` applies: a warm start's evidence is trusted instead."""
        return self.config.min_evidence > 0 and not self.store.learner_seeds()

    def _untried(
        self, everything: dict[tuple[str, str], ArmTotals], bucket: str, *, running: bool = False
    ) -> Arm | None:
        """The least-tried arm of ``bucket`` while it has fewer than ``min_evidence``
        rewards (the first such in ``ARMS`` order), else None. ``running``: count the root
        goals still running with each arm in the bucket as tried."""
        counts = {a: t.n if (t := everything.get((bucket, a))) else 0 for a in ARMS}
        if running:
            for task in self.store.tasks(status=ACTIVE, roots=True):
                decision = task.spec.get("decision") or {}
                if decision.get("bucket") == bucket:
                    arm = decision.get("arm")
                    if arm in counts:
                        counts[arm] += 1
        arm = min(ARMS, key=lambda a: (counts[a], ARMS.index(a)))
        return arm if counts[arm] < self.config.min_evidence else None

    def _must_score(self, everything: dict[tuple[str, str], ArmTotals]) -> bool:
        """Whether ``min_evidence`` forces the next goal's score: a bucket goals landed in
        has an arm short of it, or a bucket no goal landed in yet, within the first
        ``explore_rewards`` rewards."""
        if not self._exploring():
            return False
        seen = {b for (b, _), t in everything.items() if t.n}
        total = sum(t.n for t in everything.values())
        if len(seen) < len(BUCKETS) and total < self.config.explore_rewards:
            return True
        return any(self._untried(everything, b) is not None for b in seen)

    def choose(self, bucket: str) -> tuple[Arm, dict[str, Any]]:
        """Sample each arm's posterior and pick the largest; returns the arm and the draws.
        While an arm of ``bucket`` has fewer than ``min_evidence`` rewards, that arm."""
        everything = self._totals()
        untried = self._untried(everything, bucket, running=True) if self._exploring() else None
        if untried is not None:
            return untried, {"min_evidence": self.config.min_evidence}
        stats = self._stats_of(bucket, everything)
        scale = self.config.sample_scale
        draws = {name: self._draw(s, self._rng, scale) for name, s in stats.items()}
        arm = max(ARMS, key=lambda a: (draws[a], -ARMS.index(a)))
        return arm, {f"sample_{k}": round(v, 4) for k, v in draws.items()}

    def preferred(self, bucket: str) -> Arm:
        """The arm with the highest posterior mean (what the learner would exploit)."""
        s = self.stats(bucket)
        return max(ARMS, key=lambda a: (s[a].mean, -ARMS.index(a)))

    def p_best(self) -> dict[str, dict[str, float]]:
        """Per bucket, each arm's posterior probability of being the best arm (seeded Monte
        Carlo over the Student-t posteriors: the same state always gives the same answer)."""
        everything = self._totals()
        key = (tuple(sorted(everything.items())), self.config, self.cost_weight)
        if self._p_best_cache is not None and self._p_best_cache[0] == key:
            return self._p_best_cache[1]
        rng = random.Random(20240917)
        out: dict[str, dict[str, float]] = {}
        for bucket in BUCKETS:
            stats = self._stats_of(bucket, everything)
            wins = dict.fromkeys(ARMS, 0)
            for _ in range(_MC_DRAWS):
                draws = {a: self._draw(stats[a], rng) for a in ARMS}
                wins[max(ARMS, key=lambda a: (draws[a], -ARMS.index(a)))] += 1
            out[bucket] = {a: wins[a] / _MC_DRAWS for a in ARMS}
        self._p_best_cache = (key, out)
        return out

    def settled_arm(self) -> Arm | None:
        """The arm every bucket prefers with probability >= ``settle_p``, else None.

        Only once every arm of every bucket has been tried at least once (an untried arm's
        wide prior never makes another arm's probability that high anyway; this just saves
        the Monte Carlo).
        """
        totals = self._totals()
        if any(totals.get((b, a), ArmTotals(0, 0, 0)).n == 0 for b in BUCKETS for a in ARMS):
            return None
        p = self.p_best()
        for arm in ARMS:
            if all(p[b][arm] >= self.config.settle_p for b in BUCKETS):
                return arm
        return None

    def value_of_scoring(
        self,
        rng: random.Random | None = None,
        *,
        everything: dict[tuple[str, str], ArmTotals] | None = None,
        stats: dict[str, dict[str, ArmStats]] | None = None,
    ) -> float:
        """One posterior sample of what knowing a goal's bucket is worth, in reward points:
        the mean over buckets of each bucket's best arm, minus the best single arm over all
        buckets (both in the same Thompson draw of every (bucket, arm) mean; buckets
        weighted by how often goals land in them). Zero when one arm is best everywhere.
        ``everything``: the learner's totals, and ``stats``: each bucket's posterior from
        them, when the caller already has them."""
        rng = rng or self._rng
        if everything is None:
            everything = self._totals()
        if stats is None:
            stats = {b: self._stats_of(b, everything) for b in BUCKETS}
        shares = self._shares(everything)
        scale = self.config.value_scale
        draws = {b: {a: self._draw(s, rng, scale) for a, s in stats[b].items()} for b in BUCKETS}
        per_bucket = sum(shares[b] * max(draws[b].values()) for b in BUCKETS)
        one_arm = max(sum(shares[b] * draws[b][a] for b in BUCKETS) for a in ARMS)
        return per_bucket - one_arm

    def needs_score(self) -> bool:
        """Whether to pay for the next goal's score: while ``min_evidence`` forces it (see
        the module docstring); when the posterior expects knowing the bucket to be worth
        more than the scoring call costs (``value_of_scoring`` averaged over ``voi_draws``
        samples, above ``score_cost_usd`` in reward points); else for one goal in
        ``1 / audit_rate`` (seeded draws). So the learner scores while the buckets may want
        different arms, and stops as its posterior agrees on one arm everywhere (or on a
        difference too small to pay for the call)."""
        everything = self._totals()  # read once for every sample below
        if self._must_score(everything):
            return True
        stats = {b: self._stats_of(b, everything) for b in BUCKETS}  # the same for each sample
        draws = self.config.voi_draws
        value = (
            sum(self.value_of_scoring(everything=everything, stats=stats) for _ in range(draws))
            / draws
        )
        if value > self.config.score_cost_usd * self.cost_weight:
            return True
        return self._rng.random() < self.config.audit_rate

    def unscored_arm(self) -> Arm:
        """The arm for a goal that was not scored: the best posterior mean over all buckets
        (weighted by how often goals land in each). Greedy, not sampled: an unscored goal
        has no bucket, so it teaches nothing and exploring there would buy nothing."""
        everything = self._totals()
        shares = self._shares(everything)
        stats = {b: self._stats_of(b, everything) for b in BUCKETS}

        def pooled(arm: Arm) -> float:
            return sum(shares[b] * stats[b][arm].mean for b in BUCKETS)

        return max(ARMS, key=lambda a: (pooled(a), -ARMS.index(a)))

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
        """Record a finished root goal's reward (state, history row and event in one commit)."""
        reward = self.reward(success, cost_usd, tokens)
        with self.store.tx():
            self.store.add_learner_reward(bucket, arm, reward)
            stats = self.stats(bucket)
            preferred = self.preferred(bucket)
            means = {a: round(s.mean, 6) for a, s in stats.items()}
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
                means=json.dumps(means, sort_keys=True),
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
                        "mean_direct": means["direct"],
                        "mean_decompose": means["decompose"],
                        "mean_as_needed": means["as_needed"],
                    },
                ),
            )
        return reward

    def history(self) -> list[dict[str, Any]]:
        """Every update in order: the data for "what the orchestrator learned"."""
        return self.store.learner_history()

    def posterior(self) -> list[dict[str, Any]]:
        """Per bucket and arm: n, mean reward, posterior sd, probability of best, and
        whether it is the bucket's preferred arm (rows in bucket then arm order). A bucket
        without evidence has no preferred arm: every arm is at the prior, a tie (the policy
        still has to pick one there: ``preferred``)."""
        p = self.p_best()
        rows = []
        for bucket in BUCKETS:
            stats = self.stats(bucket)
            top = max(ARMS, key=lambda a: (stats[a].mean, -ARMS.index(a)))
            best = top if any(stats[a].n for a in ARMS) else None
            for arm in ARMS:
                s = stats[arm]
                rows.append(
                    {
                        "bucket": bucket,
                        "arm": arm,
                        "n": s.n,
                        "mean_reward": s.mean,
                        "posterior_sd": s.posterior_sd,
                        "p_best": p[bucket][arm],
                        "preferred": arm == best,
                    }
                )
        return rows


def posterior_frame(
    store: Store, *, objective: Objective | None = None, config: LearnerConfig | None = None
) -> pl.DataFrame:
    """What the learner believes, as a polars frame: one row per (bucket, arm) with ``n``,
    ``mean_reward`` (the prior's mean where ``n`` is 0), ``posterior_sd``, ``p_best`` (the
    probability that it is the bucket's best arm) and ``preferred``.

    ``objective`` only matters for a ``cost_weight`` override in ``config``: the stored
    rewards were computed when each goal finished (or at the warm start).
    """
    import polars as pl

    rows = Learner(store, config, objective=objective).posterior()
    return pl.DataFrame(
        rows,
        schema={
            "bucket": pl.String,
            "arm": pl.String,
            "n": pl.Int64,
            "mean_reward": pl.Float64,
            "posterior_sd": pl.Float64,
            "p_best": pl.Float64,
            "preferred": pl.Boolean,
        },
        orient="row",
    )


def _usable(totals: dict[tuple[str, str], ArmTotals]) -> dict[tuple[str, str], ArmTotals]:
    """``totals`` without a (bucket, arm) whose sums are not finite numbers: nothing can be
    learned from those, and they would make every posterior NaN."""
    return {
        k: t
        for k, t in totals.items()
        if math.isfinite(t.reward_sum) and math.isfinite(t.reward_sq)
    }


# --- warm start ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WarmStart:
    """What a warm start added to the learner.

    Attributes:
        source: where the evidence came from (an experiment's name).
        objective: the objective its rewards were computed under.
        trials: trials used.
        skipped: trials not used (a learning or unknown policy, no bucket, another kind).
        estimated: of the trials used, how many had a scorer's estimate of their own or of
            a paired trial (same task and seed) in the experiment; the rest used the task's
            true complexity as the bucket.
        totals: per (bucket, arm), what was added.
        before: the earlier warm start from the same source, if there was one: then
            nothing was added (``totals`` is empty; ``trials`` says what would have been).
        simulated: the trials used came from a simulated model (None: the results do not
            say); when nothing was added, what was recorded with ``before``.
    """

    source: str
    objective: Objective
    trials: int
    skipped: int
    estimated: int
    totals: dict[tuple[str, str], ArmTotals]
    before: LearnerWarmStart | None = None
    simulated: bool | None = None
    kind: Literal["warm_start"] = field(default="warm_start", repr=False)


def seeded_from_model(simulated: bool | None) -> str:
    """What follows a warm start's trial count in words, by ``simulated``: " of the SIMULATED
    model", nothing for a real model's, or that it was not recorded (seeded before it was)."""
    if simulated is None:
        return ", not recorded whether simulated"
    return " of the SIMULATED model" if simulated else ""


def _true_bucket(complexity: Any) -> str | None:
    from fleetlab.policies.base import score_bucket

    try:
        c = int(complexity)
    except (TypeError, ValueError):
        return None
    return score_bucket(c) if 1 <= c <= 5 else None


def warm_start(
    store: Store,
    results: pl.DataFrame,
    *,
    objective: Objective | None = None,
    source: str | None = None,
) -> WarmStart:
    """Seed the learner from an experiment's trials of fixed strategies.

    Each trial of a fixed policy counts as one reward for its strategy's arm (``never`` ->
    ``direct``, ``always`` -> ``decompose``, ``as_needed`` -> ``as_needed``; a
    ``threshold:K`` trial for the arm it chose) in its estimated-complexity bucket: the
    trial's own estimate, else the estimate of a scored trial of the same task and seed in
    the experiment (the simulated scorer's estimate depends on task, seed and prompt only),
    else the task's true complexity. Learning policies' trials are skipped (their arms
    were chosen by the rewards themselves). The totals, and a row per (bucket, arm) saying
    where they came from, are added in one transaction.

    A source seeds a learner once: when it already did, nothing is added (``before`` says
    when, and how many trials); a source under another objective than the warm starts
    before it (their rewards are on another scale) is refused.

    Args:
        store: the fleet's store.
        results: the experiment's results (``fleetlab.experiments.load(name)``).
        objective: what a trial's outcome is worth (default: the fleet's default objective);
            use the objective the fleet will run under.
        source: recorded with the seed rows (e.g. ``experiment:decomposition_ab``; default:
            ``experiment:NAME`` from the results' ``experiment`` column).

    Raises:
        UserError: the results have no usable trial of a fixed strategy, or their objective
            is not the one of the learner's earlier warm starts.
    """
    from fleetlab.policies import parse

    objective = objective or DEFAULT_OBJECTIVE
    if source is None:
        column = results.get_column("experiment", default=None)
        names = [] if column is None else column.drop_nulls().unique().to_list()
        source = f"experiment:{names[0]}" if len(names) == 1 else "experiment"
    rows = results.to_dicts()
    estimates: dict[tuple[Any, Any], dict[Any, str]] = defaultdict(dict)
    for r in rows:
        if r.get("score_bucket"):
            estimates[(r.get("task"), r.get("seed"))].setdefault(r.get("prompt"), r["score_bucket"])
    sums: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0, 0.0, 0.0])
    used = skipped = estimated = 0
    # from a simulated model if any trial used says it was; real if they all say not; not
    # known if none says (no such column, or nulls)
    simulated: bool | None = None
    for r in rows:
        if r.get("kind") not in (None, "agents") or r.get("passed") is None:
            skipped += 1
            continue
        try:
            policy = parse(str(r.get("policy") or ""))
        except UserError:
            skipped += 1
            continue
        arm = policy.arm_of(r.get("choice"))
        paired = estimates.get((r.get("task"), r.get("seed")), {})
        estimate = r.get("score_bucket") or paired.get(r.get("prompt"))
        estimate = estimate or next(iter(paired.values()), None)
        bucket = estimate or _true_bucket(r.get("complexity"))
        if arm is None or bucket is None:
            skipped += 1
            continue
        estimated += estimate is not None
        reward = objective.score(bool(r["passed"]), float(r.get("cost_usd") or 0.0))
        s = sums[(bucket, arm)]
        s[0] += 1
        s[1] += reward
        s[2] += reward * reward
        used += 1
        said = r.get("simulated")
        if said is not None:
            simulated = bool(simulated) or bool(said)
    if not used:
        raise UserError(
            f"{source}: no trial of a fixed strategy (never, always, as_needed, threshold:K)"
            " to learn from: run an experiment with such variants first"
        )
    totals = {k: ArmTotals(int(n), total, sq) for k, (n, total, sq) in sorted(sums.items())}
    now = to_us(store.clock.now())
    table = json.dumps(objective.to_dict(), sort_keys=True)
    seeds = [
        LearnerSeed(now, source, bucket, arm, t.n, t.reward_sum, t.reward_sq, table, simulated)
        for (bucket, arm), t in totals.items()
    ]
    with store.tx():  # the check and the seeds in one transaction: no writer in between
        earlier = store.learner_warm_starts()
        before = next((w for w in earlier if w.source == source), None)
        if before is not None:
            # nothing added: what the learner has is what was recorded then
            return WarmStart(
                source, objective, used, skipped, estimated, {}, before, before.simulated
            )
        _same_objective(earlier, objective, source)
        store.add_learner_seeds(seeds)
    return WarmStart(source, objective, used, skipped, estimated, totals, simulated=simulated)


def _worth(value: float | None) -> str:
    return "success only" if value is None else f"a success is worth {usd(value)}"


def _other_objective(
    starts: list[LearnerWarmStart], objective: Objective
) -> tuple[LearnerWarmStart, float | None] | None:
    """The first warm start under another objective than ``objective``, and its success
    value (None: success only)."""
    for start in starts:
        value = json.loads(start.objective).get("success_value_usd")
        if value != objective.success_value_usd:
            return start, value
    return None


def _same_objective(earlier: list[LearnerWarmStart], objective: Objective, source: str) -> None:
    """Refuse a warm start whose rewards are on another scale than the earlier ones'."""
    other = _other_objective(earlier, objective)
    if other is None:
        return
    start, value = other
    if value is None:
        how = "seed it under the same objective (no success_value_usd) or "
    elif value >= MIN_SUCCESS_VALUE_USD:  # else stored before values were bounded
        how = f"seed it under the same objective (--success-value-usd {value!r}) or "
    else:
        how = ""
    raise UserError(
        f"{source} is under the objective {_worth(objective.success_value_usd)!r}, the"
        f" learner's evidence from {start.source} under {_worth(value)!r}: rewards under"
        f" two objectives do not add up; {how}seed it into a fresh fleet database (--db)"
    )
