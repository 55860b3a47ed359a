"""The comparison table: every variant against the baseline, with honest uncertainty.

* success per variant with a Wilson 95% interval, and per true-complexity bucket;
* each variant minus the baseline, paired on (task, trial): success rate with a paired BCa
  bootstrap 95% CI (resampling whole tasks when a task has several trials, whose outcomes are
  correlated) and McNemar's exact p on the discordant pairs; mean cost and mean agents
  spawned with the same paired bootstrap. An interval the bootstrap cannot support (fewer
  than 10 tasks, nearly all pairs agreeing, degenerate resamples) is flagged unreliable with
  the reason (``PairedDifference.note``), never shown as a confident interval;
* the minimum detectable effect of the design at the baseline's success rate;
* the experiment's objective (``fleetlab.objective``: success, or success minus a price on
  cost) per variant, the best variant by it, and the best against every other variant,
  paired, with Holm's correction over those comparisons (``Comparison.verdict()`` says it in
  a sentence per question); the McNemar p-values against the baseline are Holm-adjusted too;
* which variants are dominated (another has at least their success at no more cost);
* head-to-head comparisons of any pairs asked for (``pairs=[("a", "b")]``).

For scoring experiments "success" is the prompt's decision matching the label.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import polars as pl

from fleetlab.errors import UserError
from fleetlab.experiments._definition import learns
from fleetlab.experiments._results import ResultsDB, load, output_dir
from fleetlab.experiments.kinds import ExperimentKind
from fleetlab.objective import Objective
from fleetlab.stats import (
    Interval,
    PairedDifference,
    cluster_se,
    holm,
    mcnemar_exact,
    minimum_detectable_effect,
    paired_bootstrap,
    paired_z_test,
    wilson_interval,
)

__all__ = [
    "BEST",
    "BucketSummary",
    "Comparison",
    "Confusion",
    "DetectableEffect",
    "PairedComparison",
    "PassSummary",
    "VariantSummary",
    "compare",
]

BUCKETS = ("simple", "medium", "complex")

#: ``compare(baseline=BEST)``: compare with the variant that is best on the objective.
BEST = "best"
#: Significance level of the verdicts (after Holm's correction).
ALPHA = 0.05


@dataclass(frozen=True, slots=True)
class VariantSummary:
    """One variant over all its trials. ``cost_low``/``cost_high`` is a normal 95% interval
    on the mean cost with a task-clustered standard error, its low end clipped at zero (no
    trial costs less than nothing)."""

    variant: str
    trials: int
    tasks: int
    successes: int
    success: Interval
    mean_cost_usd: float
    cost_low: float
    cost_high: float
    total_cost_usd: float
    mean_agents: float
    mean_tokens: float
    mean_model_calls: float
    mean_wall_s: float
    mean_sim_time_s: float
    score: float = math.nan
    dominated_by: str | None = None
    kind: Literal["variant_summary"] = field(default="variant_summary", repr=False)


@dataclass(frozen=True, slots=True)
class PairedComparison:
    """A variant minus the baseline over the (task, trial) pairs both have.

    ``worse`` counts pairs where the baseline passed and the variant failed, ``better`` the
    reverse (McNemar's b and c). ``holm_p`` is ``mcnemar_p`` adjusted by Holm over the
    comparisons of its family (every variant against the baseline, or the best against every
    other variant). ``score`` is the difference in the experiment's objective and
    ``score_p`` its p-value (McNemar's when the objective is success alone, else a paired z
    test on task-clustered differences), ``score_holm_p`` that adjusted over the family.
    """

    variant: str
    baseline: str
    pairs: int
    tasks: int
    clustered: bool
    success: PairedDifference
    worse: int
    better: int
    mcnemar_p: float
    cost: PairedDifference
    agents: PairedDifference
    score: PairedDifference | None = None
    score_p: float = math.nan
    holm_p: float = math.nan
    score_holm_p: float = math.nan
    kind: Literal["paired_comparison"] = field(default="paired_comparison", repr=False)


@dataclass(frozen=True, slots=True)
class BucketSummary:
    """One variant on the tasks of one true-complexity bucket."""

    variant: str
    bucket: str
    trials: int
    successes: int
    success: Interval
    mean_cost_usd: float
    mean_agents: float
    kind: Literal["bucket_summary"] = field(default="bucket_summary", repr=False)


@dataclass(frozen=True, slots=True)
class PassSummary:
    """One variant on one pass over the tasks (trial index ``trial``; every task once).

    A ``learned`` variant learns as it goes, so its passes show the learning curve: the
    exploration it pays for on the first pass, and what it settled on by the last.
    """

    variant: str
    trial: int
    trials: int
    successes: int
    success: Interval
    mean_cost_usd: float
    mean_agents: float
    kind: Literal["pass_summary"] = field(default="pass_summary", repr=False)


@dataclass(frozen=True, slots=True)
class Confusion:
    """A scoring prompt's decisions against the labels (positive = decompose)."""

    variant: str
    true_positive: int
    false_positive: int
    false_negative: int
    true_negative: int
    kind: Literal["confusion"] = field(default="confusion", repr=False)

    @property
    def accuracy(self) -> float:
        n = self.true_positive + self.false_positive + self.false_negative + self.true_negative
        return (self.true_positive + self.true_negative) / n if n else math.nan


@dataclass(frozen=True, slots=True)
class DetectableEffect:
    """What the design can detect at the baseline's success rate (alpha 0.05, power 0.8).

    ``at_pairs`` treats every pair as independent; ``at_tasks`` counts only tasks (as if
    a task's trials always agreed). The truth lies between the two.
    """

    pairs: int
    tasks: int
    baseline_rate: float
    at_pairs: float | None
    at_tasks: float | None
    even: bool = True  # every task has as many pairs (False: a partial run)
    kind: Literal["detectable_effect"] = field(default="detectable_effect", repr=False)

    def text(self) -> str:
        """The MDE as one sentence."""
        if self.at_pairs is None or self.at_tasks is None:
            return (
                f"with {self.tasks} tasks ({self.pairs} pairs) and a baseline success rate of "
                f"{self.baseline_rate:.1%}, no minimum detectable effect can be computed "
                "(a baseline rate of 0% or 100% has no variance to compare against)"
            )
        if math.isinf(self.at_pairs):  # not even with independent trials: say it once
            return (
                f"with {self.pairs} pairs ({self.tasks} tasks) and a baseline success rate of"
                f" {self.baseline_rate:.1%}, no difference in success rate is detectable: too"
                " few pairs for this baseline rate (alpha 0.05, power 80%)"
            )
        if self.pairs == self.tasks:
            return (
                f"with {self.tasks} tasks and a baseline success rate of {self.baseline_rate:.1%} "
                f"you can detect a difference in success rate of {_pp(self.at_pairs)} "
                "(alpha 0.05, power 80%)"
            )
        design = (
            f"{self.tasks} tasks x {self.pairs // max(1, self.tasks)} trials ({self.pairs} pairs)"
            if self.even
            else f"{self.tasks} tasks ({self.pairs} pairs)"
        )
        return (
            f"with {design} and a baseline success rate of {self.baseline_rate:.1%} you "
            f"can detect a difference in success rate of {_pp(self.at_pairs)} if trials were "
            f"independent, up to {_pp(self.at_tasks)} if the trials of a task always agree "
            "(alpha 0.05, power 80%)"
        )


def _unit(kind: str) -> ExperimentKind:
    """The registered kind ``kind``; results of a kind no longer registered read as agents."""
    from fleetlab.experiments.kinds import get_kind

    try:
        return get_kind(kind)
    except UserError:
        return get_kind("agents")


def _pp(value: float) -> str:
    # inf: even a 100-point difference needs more pairs than there are
    return "none at all (too few pairs)" if math.isinf(value) else f"{value * 100:.1f} points"


@dataclass(frozen=True, slots=True)
class Comparison:
    """Everything ``fleetlab ab report`` shows. ``*_frame()`` give polars frames for
    notebooks and charts."""

    name: str
    kind: str
    model: str
    simulated: bool
    baseline: str
    variants: tuple[VariantSummary, ...]
    paired: tuple[PairedComparison, ...]
    buckets: tuple[BucketSummary, ...]
    passes: tuple[PassSummary, ...]
    confusion: tuple[Confusion, ...]
    mde: DetectableEffect
    objective: Objective = field(default_factory=Objective)
    best: str = ""
    versus_best: tuple[PairedComparison, ...] = ()
    head_to_head: tuple[PairedComparison, ...] = ()
    learners: tuple[str, ...] = ()
    warmup_passes: int = 0
    judged: tuple[str, ...] = ()
    planned: int | None = None
    finished: int = 0
    recorded_objective: Objective | None = None  # what the results were recorded under
    type: Literal["comparison"] = field(default="comparison", repr=False)

    @property
    def noun(self) -> str:
        """What a passing trial is called: "success", or "accuracy" for scoring prompts."""
        return self.unit.noun

    @property
    def unit(self) -> ExperimentKind:
        """The kind of experiment (``fleetlab.experiments.kinds``) the results come from."""
        return _unit(self.kind)

    def summary(self, variant: str) -> VariantSummary:
        """The summary of one variant."""
        return next(s for s in self.variants if s.variant == variant)

    def ranked(self) -> list[VariantSummary]:
        """The variants from best to worst on the objective (ties: cheaper first)."""
        return sorted(self.variants, key=lambda s: (-_finite(s.score), _finite(s.mean_cost_usd)))

    def verdict(self) -> list[str]:
        """The answer first: one sentence per question the experiment asks (see
        ``fleetlab.experiments._report.verdict_lines``)."""
        from fleetlab.experiments._report import verdict_lines

        return verdict_lines(self)

    def summary_frame(self) -> pl.DataFrame:
        """One row per variant: success with its interval, means of cost, agents, calls."""
        return pl.DataFrame(
            [
                {
                    "variant": s.variant,
                    "trials": s.trials,
                    "tasks": s.tasks,
                    "successes": s.successes,
                    "success": s.success.estimate,
                    "success_low": s.success.low,
                    "success_high": s.success.high,
                    "mean_cost_usd": s.mean_cost_usd,
                    "cost_low": s.cost_low,
                    "cost_high": s.cost_high,
                    "total_cost_usd": s.total_cost_usd,
                    "mean_agents": s.mean_agents,
                    "mean_tokens": s.mean_tokens,
                    "mean_model_calls": s.mean_model_calls,
                    "mean_wall_s": s.mean_wall_s,
                    "mean_sim_time_s": s.mean_sim_time_s,
                    "score": s.score,
                    "dominated": s.dominated_by is not None,
                    "dominated_by": s.dominated_by,
                    "simulated": self.simulated,
                }
                for s in self.variants
            ]
        )

    def paired_frame(self) -> pl.DataFrame:
        """One row per non-baseline variant: differences from the baseline with CIs.

        ``<quantity>_unreliable`` flags an interval that is not a 95% interval (too few
        tasks, nearly all pairs agreeing, degenerate resamples) and ``<quantity>_note``
        says why; see ``fleetlab.stats.paired_bootstrap``.
        """
        rows = []
        for p in self.paired:
            rows.append(
                {
                    "variant": p.variant,
                    "baseline": p.baseline,
                    "pairs": p.pairs,
                    "tasks": p.tasks,
                    "clustered": p.clustered,
                    "success_diff": p.success.estimate,
                    "success_low": p.success.low,
                    "success_high": p.success.high,
                    "worse": p.worse,
                    "better": p.better,
                    "mcnemar_p": p.mcnemar_p,
                    "holm_p": p.holm_p,
                    "cost_diff": p.cost.estimate,
                    "cost_low": p.cost.low,
                    "cost_high": p.cost.high,
                    "agents_diff": p.agents.estimate,
                    "agents_low": p.agents.low,
                    "agents_high": p.agents.high,
                    "success_unreliable": p.success.unreliable,
                    "success_note": p.success.note,
                    "cost_unreliable": p.cost.unreliable,
                    "cost_note": p.cost.note,
                    "agents_unreliable": p.agents.unreliable,
                    "agents_note": p.agents.note,
                }
            )
        return pl.DataFrame(rows, schema=_PAIRED_SCHEMA)

    def bucket_frame(self) -> pl.DataFrame:
        """One row per (variant, bucket)."""
        return pl.DataFrame(
            [
                {
                    "variant": b.variant,
                    "bucket": b.bucket,
                    "trials": b.trials,
                    "successes": b.successes,
                    "success": b.success.estimate,
                    "success_low": b.success.low,
                    "success_high": b.success.high,
                    "mean_cost_usd": b.mean_cost_usd,
                    "mean_agents": b.mean_agents,
                }
                for b in self.buckets
            ]
        )

    def pass_frame(self) -> pl.DataFrame:
        """One row per (variant, pass over the tasks)."""
        return pl.DataFrame([asdict(p) for p in self.passes]).drop("kind", strict=False)

    def confusion_frame(self) -> pl.DataFrame:
        """Scoring experiments: one row per prompt variant."""
        return pl.DataFrame([{**asdict(c), "accuracy": c.accuracy} for c in self.confusion]).drop(
            "kind", strict=False
        )


_PAIRED_SCHEMA = {
    "variant": pl.String,
    "baseline": pl.String,
    "pairs": pl.Int64,
    "tasks": pl.Int64,
    "clustered": pl.Boolean,
    "success_diff": pl.Float64,
    "success_low": pl.Float64,
    "success_high": pl.Float64,
    "worse": pl.Int64,
    "better": pl.Int64,
    "mcnemar_p": pl.Float64,
    "holm_p": pl.Float64,
    "cost_diff": pl.Float64,
    "cost_low": pl.Float64,
    "cost_high": pl.Float64,
    "agents_diff": pl.Float64,
    "agents_low": pl.Float64,
    "agents_high": pl.Float64,
    "success_unreliable": pl.Boolean,
    "success_note": pl.String,
    "cost_unreliable": pl.Boolean,
    "cost_note": pl.String,
    "agents_unreliable": pl.Boolean,
    "agents_note": pl.String,
}


def _finite(x: float) -> float:
    return x if math.isfinite(x) else -math.inf


def _mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values) if values else math.nan


def _subset(rows: list[dict[str, Any]]) -> tuple[int, int, Interval, float, float]:
    """Trials, successes, success interval, mean cost and mean agents of some trials."""
    wins = sum(1 for r in rows if r["passed"])
    return (
        len(rows),
        wins,
        wilson_interval(wins, len(rows)),
        _mean([float(r["cost_usd"] or 0) for r in rows]),
        _mean([float(r["agents"] or 0) for r in rows]),
    )


def _summary(variant: str, rows: list[dict[str, Any]]) -> VariantSummary:
    passed = [bool(r["passed"]) for r in rows]
    costs = [float(r["cost_usd"] or 0.0) for r in rows]
    tasks = [r["task"] for r in rows]
    mean_cost = _mean(costs)
    se = cluster_se(costs, tasks) if rows else math.nan
    half = 1.959963984540054 * se if math.isfinite(se) else math.nan
    return VariantSummary(
        variant=variant,
        trials=len(rows),
        tasks=len(set(tasks)),
        successes=sum(passed),
        success=wilson_interval(sum(passed), len(rows)),
        mean_cost_usd=mean_cost,
        cost_low=max(0.0, mean_cost - half) if math.isfinite(half) else math.nan,
        cost_high=mean_cost + half,
        total_cost_usd=math.fsum(costs),
        mean_agents=_mean([float(r["agents"] or 0) for r in rows]),
        mean_tokens=_mean([float(r["tokens"] or 0) for r in rows]),
        mean_model_calls=_mean([float(r["model_calls"] or 0) for r in rows]),
        mean_wall_s=_mean([float(r["wall_s"] or 0.0) for r in rows]),
        mean_sim_time_s=_mean([float(r["sim_time_s"] or 0.0) for r in rows]),
    )


def _paired(
    variant: str,
    baseline: str,
    mine: dict[tuple[str, int], dict[str, Any]],
    base: dict[tuple[str, int], dict[str, Any]],
    *,
    objective: Objective,
    n_boot: int,
    seed: int,
) -> PairedComparison | None:
    keys = sorted(set(mine) & set(base))
    if not keys:
        return None
    tasks = [k[0] for k in keys]
    clustered = len(set(tasks)) < len(keys)
    clusters = tasks if clustered else None

    def value(row: dict[str, Any], column: str) -> float:
        if column == "score":
            return objective.score(bool(row["passed"]), float(row["cost_usd"] or 0.0))
        return float(row[column] or 0)

    def diff(column: str) -> PairedDifference:
        return paired_bootstrap(
            [value(base[k], column) for k in keys],
            [value(mine[k], column) for k in keys],
            clusters=clusters,
            n_boot=n_boot,
            seed=seed,
        )

    worse = sum(1 for k in keys if base[k]["passed"] and not mine[k]["passed"])
    better = sum(1 for k in keys if mine[k]["passed"] and not base[k]["passed"])
    success = diff("passed")
    p = mcnemar_exact(worse, better)
    if objective.prices_cost:
        score = diff("score")
        score_p = paired_z_test(
            [value(mine[k], "score") - value(base[k], "score") for k in keys], clusters
        )
    else:  # the score is the outcome: McNemar's exact test is the test
        score, score_p = success, p
    return PairedComparison(
        variant=variant,
        baseline=baseline,
        pairs=len(keys),
        tasks=len(set(tasks)),
        clustered=clustered,
        success=success,
        worse=worse,
        better=better,
        mcnemar_p=p,
        cost=diff("cost_usd"),
        agents=diff("agents"),
        score=score,
        score_p=score_p,
    )


def _with_holm(family: Sequence[PairedComparison]) -> tuple[PairedComparison, ...]:
    """The family with Holm-adjusted p-values (McNemar's, and the objective's)."""
    adjusted = holm([p.mcnemar_p for p in family])
    adjusted_score = holm([p.score_p for p in family])
    return tuple(
        dataclasses.replace(p, holm_p=a, score_holm_p=b)
        for p, a, b in zip(family, adjusted, adjusted_score, strict=True)
    )


def _dominated_by(summaries: Sequence[VariantSummary], s: VariantSummary) -> str | None:
    """The first variant with at least ``s``'s success at no more cost, better in one."""
    for other in summaries:
        if other.variant == s.variant:
            continue
        a, b = other.success.estimate, s.success.estimate
        ca, cb = other.mean_cost_usd, s.mean_cost_usd
        if a >= b and ca <= cb and (a > b or ca < cb):
            return other.variant
    return None


def _mde(rows: list[dict[str, Any]]) -> DetectableEffect:
    pairs = len(rows)
    per_task = Counter(r["task"] for r in rows)
    tasks = len(per_task)
    even = len(set(per_task.values())) <= 1
    rate = _mean([float(bool(r["passed"])) for r in rows]) if rows else math.nan
    if not rows or not 0.0 < rate < 1.0:
        return DetectableEffect(pairs, tasks, rate, None, None, even)
    return DetectableEffect(
        pairs,
        tasks,
        rate,
        minimum_detectable_effect(pairs, rate),
        minimum_detectable_effect(tasks, rate),
        even,
    )


def compare(
    results: pl.DataFrame | str,
    *,
    baseline: str | None = None,
    root: str | Path | None = None,
    n_boot: int = 2000,
    seed: int = 0,
    objective: Objective | None = None,
    pairs: Sequence[tuple[str, str]] = (),
    warmup_passes: int | None = None,
) -> Comparison:
    """Build the comparison table of an experiment.

    Args:
        results: the results frame (``load(name)``), or the experiment's name.
        baseline: the variant to compare with (default: the experiment's baseline, else the
            first variant in the results); ``"best"``: the best on the objective.
        root: the experiments folder, when ``results`` is a name.
        n_boot: bootstrap replicates.
        seed: bootstrap seed (the table is reproducible).
        objective: what ranks the variants (default: the one recorded with the results, else
            success alone).
        pairs: ``(a, b)`` pairs to compare head to head (``a`` minus ``b``).
        warmup_passes: a learning variant's passes not judged against the fixed strategies
            (``judged``; default: the experiment's ``warmup_passes``, recorded with the results).

    Raises:
        UserError: no finished trials yet, the baseline or a variant of ``pairs`` has no
            results.
    """
    meta: dict[str, str] = {}
    if isinstance(results, str):
        folder = output_dir(results, root)
        frame = load(results, root=root)
        if (folder / "results.db").exists():
            with ResultsDB(folder) as db:
                meta = db.meta()
    else:
        frame = results
    if "world" in frame.columns and frame["world"].n_unique() > 1:
        raise UserError(
            "these results come from several worlds, which are not paired with each other: "
            "compare one world at a time (compare('NAME@WORLD'), or "
            "frame.filter(pl.col('world') == WORLD))"
        )
    if frame.is_empty():
        raise UserError("the experiment has no finished trials yet: run it first")
    recorded: Objective | None = None
    if meta.get("objective"):
        import json

        try:
            recorded = Objective.parse(json.loads(meta["objective"]))
        except UserError as exc:  # recorded before objectives were bounded
            if objective is None:
                raise UserError(
                    f"{output_dir(str(results), root) / 'results.db'} records an objective no"
                    f" longer accepted ({exc}): set [objective] in the experiment file and"
                    " report with `fleetlab ab report FILE`"
                ) from None
    objective = objective or recorded
    if objective is None:  # the experiment file's, found by name
        from fleetlab.experiments._toml import recorded_objective

        named = meta.get("name") or (
            frame["experiment"][0] if "experiment" in frame.columns else ""
        )
        objective = recorded_objective(str(named or ""))
    rows = frame.sort("seq").to_dicts() if "seq" in frame.columns else frame.to_dicts()
    order = list(dict.fromkeys(r["variant"] for r in rows))
    if meta.get("variants"):
        import json

        declared = [v for v in json.loads(meta["variants"]) if v in order]
        order = declared + [v for v in order if v not in declared]
    by_variant: dict[str, list[dict[str, Any]]] = {v: [] for v in order}
    for r in rows:
        by_variant[r["variant"]].append(r)
    keyed = {v: {(r["task"], int(r["trial"])): r for r in rs} for v, rs in by_variant.items()}
    summaries = [_summary(v, by_variant[v]) for v in order]
    summaries = [
        dataclasses.replace(s, score=objective.score(s.success.estimate, s.mean_cost_usd))
        for s in summaries
    ]
    summaries = [
        dataclasses.replace(s, dominated_by=_dominated_by(summaries, s)) for s in summaries
    ]
    best = min(summaries, key=lambda s: (-_finite(s.score), _finite(s.mean_cost_usd))).variant
    base_name = baseline or meta.get("baseline") or order[0]
    if base_name == BEST:
        base_name = best
    if base_name not in order:
        raise UserError(
            f"baseline {base_name!r} has no results: use one of {', '.join(order)} or 'best'"
        )
    for pair in pairs:
        for name in pair:
            if name not in order:
                raise UserError(f"{name!r} has no results: compare two of {', '.join(order)}")
        if pair[0] == pair[1]:
            raise UserError(
                f"{pair[0]!r} compared with itself differs by nothing: compare two different"
                f" variants of {', '.join(order)}"
            )

    def paired(a: str, b: str) -> PairedComparison | None:
        return _paired(a, b, keyed[a], keyed[b], objective=objective, n_boot=n_boot, seed=seed)

    versus_baseline = _with_holm(
        [p for v in order if v != base_name and (p := paired(v, base_name))]
    )
    # the best against each other variant: the family the verdict's "significant" is about
    versus_best = _with_holm([p for v in order if v != best and (p := paired(best, v))])
    head_to_head = tuple(p for a, b in pairs if (p := paired(a, b)))
    buckets = [
        BucketSummary(v, bucket, *_subset(sub))
        for v in order
        for bucket in BUCKETS
        if (sub := [r for r in by_variant[v] if r["bucket"] == bucket])
    ]
    passes = [
        PassSummary(v, trial, *_subset(sub))
        for v in order
        for trial in sorted({int(r["trial"]) for r in by_variant[v]})
        if (sub := [r for r in by_variant[v] if int(r["trial"]) == trial])
    ]
    # a variant that learns across its trials: its passes are a learning curve
    learners = tuple(
        v for v in order if any(learns(str(r.get("policy") or "")) for r in by_variant[v])
    )
    kind = str(rows[0].get("kind") or "agents")
    confusion = _unit(kind).confusion(by_variant, order)
    if warmup_passes is None:
        warmup_passes = int(meta.get("warmup_passes") or 0)
    judged: list[str] = []
    if learners and len(learners) < len(order):
        from fleetlab.experiments._worlds import judged_lines

        judged = judged_lines(frame, objective, warmup_passes)
    return Comparison(
        name=str(meta.get("name") or rows[0].get("experiment") or ""),
        kind=kind,
        model=str(rows[0].get("model") or ""),
        simulated=any(bool(r.get("simulated")) for r in rows),
        baseline=base_name,
        variants=tuple(summaries),
        paired=versus_baseline,
        buckets=tuple(buckets),
        passes=tuple(passes),
        confusion=confusion,
        mde=_mde(by_variant[base_name]),
        objective=objective,
        best=best,
        versus_best=versus_best,
        head_to_head=head_to_head,
        learners=learners,
        warmup_passes=warmup_passes,
        judged=tuple(judged),
        planned=int(meta["planned"]) if meta.get("planned") else None,
        finished=len(rows),
        recorded_objective=recorded,
    )
