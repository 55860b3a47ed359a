"""Replaying the learner over an experiment's logged trials of the fixed strategies.

An agents experiment that ran ``never``, ``always``, ``as_needed`` and a ``threshold:K``
variant on the same tasks and seeds logged, for every (task, seed), what each strategy
achieved and what the scorer estimated (and what the score cost: a ``threshold:K`` trial's
cost less that of the unscored trial of the strategy it chose). On the simulated model that
is exactly what ``learned`` would meet there: every draw of ``SimModel`` is seeded by (seed,
task, role, step, purpose), never by call order, so a strategy's outcome on a (task, seed)
does not depend on who chose it (with one caveat: a split goal's sub-agents share its
workspace, so where several run at once, ``agent_concurrency`` above 1, which one runs first
can change what another reads or finds, and with it that trial's tokens and cost, rarely its
outcome; replays of such trials can differ from a run in those). So the learner can be
replayed over those trials in the experiment's plan order — the fleet's own `LearnedPolicy`
and `Learner`, in a store in memory, each goal's sampling seeded as its trial would seed it —
in about half a millisecond a goal instead of a fleet's run. The first replay is the
``learned`` variant the experiment would have run, decision for decision; the others shuffle
the order of the passes and the sampling seeds, so a learner configuration is judged over
many trajectories of the same evidence rather than by one run, which swings by ten points of
"the way from worst to best".

The trials used are those of variants with the learner's settings (depth, fan-out, agents,
budgets); the estimates, those of the first scored variant with its scoring prompt too. On a
real model a logged outcome is one draw of a random process, so a replay is an estimate, not
what a run would have given (`ReplayRun.exact` says which).
"""

from __future__ import annotations

import dataclasses
import random
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from fleetlab.errors import UserError
from fleetlab.learning import ARMS, Learner, LearnerConfig
from fleetlab.objective import Objective
from fleetlab.policies import parse
from fleetlab.policies.base import Context, Outcome
from fleetlab.policies.learned import LearnedPolicy
from fleetlab.store import open_store

if TYPE_CHECKING:
    import polars as pl

    from fleetlab.experiments._definition import Experiment, Variant

__all__ = ["ReplayRun", "ReplaySummary", "replay_learner"]


@dataclass(frozen=True, slots=True)
class ReplayRun:
    """One trajectory of the learner over the logged trials, judged after its warm-up.

    Attributes:
        seeds: the trial seeds in the order the passes were replayed.
        learned: the learner's mean reward over the counted passes.
        fixed: each fixed variant's mean reward over the same tasks and seeds.
        share: how far ``learned`` got from the worst fixed variant to the best (1 = best).
        scored: the share of the counted goals the learner paid to score.
        choices: (estimated bucket, strategy) -> counted goals that played it.
        taught: (bucket, arm) -> (rewards, their sum): what the learner was taught in all.
        exact: whether this is what a run would give: on the simulated model (its outcomes
            do not depend on call order), with no budget on the learner (a budget can stop
            a scored goal whose unscored trial finished); else an estimate.
    """

    seeds: tuple[int, ...]
    learned: float
    fixed: dict[str, float]
    share: float
    scored: float
    choices: dict[tuple[str, str], int]
    taught: dict[tuple[str, str], tuple[int, float]]
    exact: bool
    kind: Literal["replay_run"] = field(default="replay_run", repr=False)

    @property
    def best(self) -> str:
        return max(self.fixed, key=self.fixed.__getitem__)


@dataclass(frozen=True, slots=True)
class ReplaySummary:
    """Many trajectories of one learner configuration over one experiment's trials."""

    experiment: str
    variant: str  # the learning variant replayed ("learned" when the file has none)
    runs: tuple[ReplayRun, ...]
    counted_passes: tuple[int, int]  # first and last pass counted (1-based)
    kind: Literal["replay_summary"] = field(default="replay_summary", repr=False)

    def describe(self, goal: float = 0.9) -> str:
        """One line: the spread of the share over the runs, and the gap to the best."""
        shares = sorted(r.share for r in self.runs)
        gaps = [r.learned - r.fixed[r.best] for r in self.runs]
        first, last = self.counted_passes
        label = "simulated, exact" if all(r.exact for r in self.runs) else "estimate"
        return (
            f"{self.experiment}, {self.variant}: {len(self.runs)} replays ({label}),"
            f" passes {first}-{last}: {statistics.median(shares):.1%} of the way from worst to"
            f" best (median; range {shares[0]:.1%} to {shares[-1]:.1%}; the experiment's own"
            f" order {self.runs[0].share:.1%}),"
            f" {sum(s >= goal for s in shares)}/{len(shares)} at {goal:.0%} or more;"
            f" learned - best {statistics.mean(gaps):+.4f} a trial (mean),"
            f" {statistics.mean(r.scored for r in self.runs):.0%} of goals scored"
        )


@dataclass(frozen=True, slots=True)
class _Logged:
    """What each strategy did on one (task, seed), and what a score would have said."""

    outcome: dict[str, tuple[bool, float, int]]  # strategy -> (passed, cost, tokens)
    split: bool  # whether as_needed's direct attempt failed
    score: int
    score_cost: float
    score_tokens: int
    reward: dict[str, float]  # fixed variant -> its reward


def _settings(v: Variant) -> tuple[Any, ...]:
    """What changes a strategy's outcome besides the strategy (the prompt only changes a score)."""
    return (v.max_depth, v.max_fanout, v.agent_concurrency, v.budget_usd, v.budget_tokens)


def _sources(exp: Experiment, learner: Variant | None) -> tuple[dict[str, str], str]:
    """The variant whose trials stand for each strategy, and the scored one whose estimates
    (and their cost) a scored goal of the learner gets: run with the learner's settings (and
    scoring prompt), the first of each in the file."""
    fixed: dict[str, str] = {}  # strategy -> the variant that always plays it
    scored = None
    for v in exp.variants:
        policy = parse(v.policy)
        if policy.learns or (learner is not None and _settings(v) != _settings(learner)):
            continue
        strategies = {policy.arm_of(c) for c in ("direct", "decompose")}
        if len(strategies) == 1 and None not in strategies:
            fixed.setdefault(str(strategies.pop()), v.name)
        elif None not in strategies and (learner is None or v.prompt == learner.prompt):
            scored = scored or v.name
    names = {"direct": "never", "decompose": "always", "as_needed": "as_needed"}
    missing = [names[a] for a in ARMS if a not in fixed] + ([] if scored else ["threshold:K"])
    if missing:
        alike = f" with {learner.name}'s settings" if learner is not None else ""
        raise UserError(
            f"{exp.name}: a replay needs trials of never, always, as_needed and a scored fixed"
            f" strategy (threshold:K){alike} on the same tasks and seeds; missing:"
            f" {', '.join(missing)}"
        )
    return fixed, str(scored)


def _logged(
    exp: Experiment, frame: pl.DataFrame, objective: Objective, learner: Variant | None
) -> dict[tuple[str, int], _Logged]:
    """Per (task, seed): the unscored strategies' outcomes and one scored trial's estimate."""
    fixed, scored_variant = _sources(exp, learner)
    learners = {v.name for v in exp.variants if v.learns}
    rows: dict[tuple[str, int], dict[str, dict[str, Any]]] = {}
    for r in frame.filter(~frame["variant"].is_in(sorted(learners))).to_dicts():
        rows.setdefault((r["task"], int(r["seed"])), {})[r["variant"]] = r
    wanted = {*fixed.values(), scored_variant}
    out: dict[tuple[str, int], _Logged] = {}
    for key, by_variant in rows.items():
        if not wanted <= by_variant.keys():
            continue
        played = {a: by_variant[fixed[a]] for a in ARMS}
        s = by_variant[scored_variant]
        chose = played["decompose" if s["decomposed"] else "direct"]
        out[key] = _Logged(
            outcome={
                a: (bool(r["passed"]), float(r["cost_usd"]), int(r["tokens"] or 0))
                for a, r in played.items()
            },
            split=bool(played["as_needed"]["decomposed"]),
            score=int(s["score"]),
            score_cost=max(float(s["cost_usd"]) - float(chose["cost_usd"]), 0.0),
            score_tokens=max(int(s["tokens"] or 0) - int(chose["tokens"] or 0), 0),
            reward={
                v: objective.score(bool(r["passed"]), float(r["cost_usd"]))
                for v, r in by_variant.items()
            },
        )
    return out


def _one_run(
    exp: Experiment,
    tasks: Sequence[str],
    logged: dict[tuple[str, int], _Logged],
    config: LearnerConfig,
    objective: Objective,
    seeds: Sequence[int],
    salt: int,
    *,
    exact: bool,
) -> ReplayRun:
    from fleetlab.experiments._trial import learner_seed

    policy = LearnedPolicy()
    learned: list[float] = []
    fixed: dict[str, list[float]] = {}
    choices: Counter[tuple[str, str]] = Counter()
    scored = 0
    with open_store(":memory:") as store:
        for index, seed in enumerate(seeds):
            counted = index >= exp.warmup_passes
            for task in tasks:
                got = logged[(task, seed)]
                learner = Learner(
                    store, config, objective=objective, seed=learner_seed(seed, task, index) ^ salt
                )
                context = Context(task_id=task, learner=learner)
                score = got.score if policy.needs_score(context) else None
                decision = policy.decide(Context(task_id=task, score=score, learner=learner))
                passed, cost, tokens = got.outcome[decision.strategy]
                if score is not None:
                    cost += got.score_cost
                    tokens += got.score_tokens
                policy.learn(
                    Outcome(
                        task_id=task,
                        trace_id=f"replay-{index}",
                        decision={"bucket": decision.bucket, "arm": decision.arm},
                        success=passed,
                        cost_usd=cost,
                        tokens=tokens,
                        learner=learner,
                        split=decision.strategy == "as_needed" and got.split,
                        own_cost_usd=got.outcome["direct"][1] + (got.score_cost if score else 0),
                    )
                )
                if counted:
                    learned.append(objective.score(passed, cost))
                    scored += score is not None
                    choices[(decision.bucket or "unscored", decision.strategy)] += 1
                    for variant, reward in got.reward.items():
                        fixed.setdefault(variant, []).append(reward)
        taught = {k: (t.n, t.reward_sum) for k, t in store.learner_totals().items()}
    means = {v: statistics.fmean(r) for v, r in fixed.items()}
    mean = statistics.fmean(learned)
    worst, best = min(means.values()), max(means.values())
    return ReplayRun(
        seeds=tuple(seeds),
        learned=mean,
        fixed=means,
        share=(mean - worst) / (best - worst) if best > worst else 1.0,
        scored=scored / len(learned),
        choices=dict(choices),
        taught=taught,
        exact=exact,
    )


def replay_learner(
    exp: Experiment,
    frame: pl.DataFrame,
    *,
    variant: str | None = None,
    config: LearnerConfig | None = None,
    runs: int = 20,
    progress: Any = None,
) -> ReplaySummary:
    """Replay ``learned`` over ``exp``'s logged trials of the fixed strategies ``runs`` times.

    Run 1 replays the experiment's own seeds in plan order with its trials' sampling seeds:
    on the simulated model, decision for decision what the experiment's ``learned`` variant
    gives. Each further run replays the passes in another (seeded) order with other
    sampling seeds. Every run is judged like the experiment: after ``warmup_passes``,
    against every fixed variant's trials of the same tasks and seeds.

    Args:
        exp: the experiment (one world of it: ``Experiment.for_world``).
        frame: its results (``fleetlab.experiments.load``).
        variant: the learning variant replayed (default: the file's first; with none, a
            learner with the fixed variants' settings); its trials are not used, but its
            settings choose the fixed variants' trials that are, and its ``cost_weight``
            is the learner's unless ``config`` sets one.
        config: the learner's configuration (default: the fleet's default).
        runs: how many trajectories.
        progress: called with (runs done, runs) after each run, if given.

    Raises:
        UserError: not an agents experiment, no such learning variant, ``runs`` below 1, a
            fixed strategy's trials are missing, or some (task, seed) of the plan lacks one
            of them (run the experiment to the end first).
    """
    if exp.kind != "agents":
        raise UserError(f"{exp.name}: a replay needs an agents experiment, not {exp.kind!r}")
    if runs < 1:
        raise UserError(f"runs must be 1 or more, not {runs}")
    learners = [v for v in exp.variants if v.learns]
    learner = next((v for v in learners if v.name == variant), None) if variant else None
    if variant and learner is None:
        names = ", ".join(v.name for v in learners) or "none"
        raise UserError(f"{exp.name}: no learning variant {variant!r} (its learners: {names})")
    learner = learner or next(iter(learners), None)
    objective = exp.objective
    logged = _logged(exp, frame, objective, learner)
    config = config or LearnerConfig()
    if learner is not None and learner.cost_weight is not None and config.cost_weight is None:
        config = dataclasses.replace(config, cost_weight=learner.cost_weight)  # as its trials'
    # A budget can stop a scored goal that its unscored trial finished: then an estimate.
    exact = exp.simulated and (
        learner is None or (learner.budget_usd is None and learner.budget_tokens is None)
    )
    tasks = [t.key for t in exp.selected_tasks()]
    seeds = list(exp.seeds)
    gaps = sum((t, s) not in logged for t in tasks for s in seeds)
    if gaps:
        raise UserError(
            f"{exp.name}: {gaps} (task, seed) pairs of the plan lack a fixed strategy's trial:"
            f" finish the run first (fleetlab ab run)"
        )
    if len(seeds) <= exp.warmup_passes:
        raise UserError(
            f"{exp.name}: {len(seeds)} passes and a {exp.warmup_passes}-pass warm-up leave"
            " nothing to judge: raise trials or lower warmup_passes"
        )
    out = []
    for k in range(runs):
        order = list(seeds)
        salt = 0
        if k:
            rng = random.Random(k)
            rng.shuffle(order)
            salt = rng.getrandbits(64)
        out.append(_one_run(exp, tasks, logged, config, objective, order, salt, exact=exact))
        if progress is not None:
            progress(k + 1, runs)
    name = learner.name if learner is not None else "learned"
    return ReplaySummary(exp.name, name, tuple(out), (exp.warmup_passes + 1, len(seeds)))
