"""The comparison table: every variant against the baseline, with honest uncertainty.

* success per variant with a Wilson 95% interval, and per true-complexity bucket;
* each variant minus the baseline, paired on (task, trial): success rate with a paired BCa
  bootstrap 95% CI (resampling whole tasks when a task has several trials, whose outcomes are
  correlated) and McNemar's exact p on the discordant pairs; mean cost and mean agents
  spawned with the same paired bootstrap. An interval the bootstrap cannot support (fewer
  than 10 tasks, nearly all pairs agreeing, degenerate resamples) is flagged unreliable with
  the reason (``PairedDifference.note``), never shown as a confident interval;
* the minimum detectable effect of the design at the baseline's success rate.

For scoring experiments "success" is the prompt's decision matching the label.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import polars as pl

from fleetlab.errors import UserError
from fleetlab.experiments._results import ResultsDB, load, output_dir
from fleetlab.stats import (
    Interval,
    PairedDifference,
    cluster_se,
    mcnemar_exact,
    minimum_detectable_effect,
    paired_bootstrap,
    wilson_interval,
)

__all__ = [
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


@dataclass(frozen=True, slots=True)
class VariantSummary:
    """One variant over all its trials. ``cost_low``/``cost_high`` is a normal 95% interval
    on the mean cost with a task-clustered standard error."""

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
    kind: Literal["variant_summary"] = field(default="variant_summary", repr=False)


@dataclass(frozen=True, slots=True)
class PairedComparison:
    """A variant minus the baseline over the (task, trial) pairs both have.

    ``worse`` counts pairs where the baseline passed and the variant failed, ``better`` the
    reverse (McNemar's b and c).
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
    kind: Literal["detectable_effect"] = field(default="detectable_effect", repr=False)

    def text(self) -> str:
        """The MDE as one sentence."""
        if self.at_pairs is None or self.at_tasks is None:
            return (
                f"with {self.tasks} tasks ({self.pairs} pairs) and a baseline success rate of "
                f"{self.baseline_rate:.1%}, no minimum detectable effect can be computed "
                "(a baseline rate of 0% or 100% has no variance to compare against)"
            )
        if self.pairs == self.tasks:
            return (
                f"with {self.tasks} tasks and a baseline success rate of {self.baseline_rate:.1%} "
                f"you can detect a difference in success rate of {_pp(self.at_pairs)} "
                "(alpha 0.05, power 80%)"
            )
        return (
            f"with {self.tasks} tasks x {self.pairs // max(1, self.tasks)} trials "
            f"({self.pairs} pairs) and a baseline success rate of {self.baseline_rate:.1%} you "
            f"can detect a difference in success rate of {_pp(self.at_pairs)} if trials were "
            f"independent, up to {_pp(self.at_tasks)} if the trials of a task always agree "
            "(alpha 0.05, power 80%)"
        )


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
    type: Literal["comparison"] = field(default="comparison", repr=False)

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
        cost_low=mean_cost - half,
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
    n_boot: int,
    seed: int,
) -> PairedComparison | None:
    keys = sorted(set(mine) & set(base))
    if not keys:
        return None
    tasks = [k[0] for k in keys]
    clustered = len(set(tasks)) < len(keys)
    clusters = tasks if clustered else None

    def diff(column: str) -> PairedDifference:
        return paired_bootstrap(
            [float(base[k][column] or 0) for k in keys],
            [float(mine[k][column] or 0) for k in keys],
            clusters=clusters,
            n_boot=n_boot,
            seed=seed,
        )

    worse = sum(1 for k in keys if base[k]["passed"] and not mine[k]["passed"])
    better = sum(1 for k in keys if mine[k]["passed"] and not base[k]["passed"])
    return PairedComparison(
        variant=variant,
        baseline=baseline,
        pairs=len(keys),
        tasks=len(set(tasks)),
        clustered=clustered,
        success=diff("passed"),
        worse=worse,
        better=better,
        mcnemar_p=mcnemar_exact(worse, better),
        cost=diff("cost_usd"),
        agents=diff("agents"),
    )


def _mde(rows: list[dict[str, Any]]) -> DetectableEffect:
    pairs = len(rows)
    tasks = len({r["task"] for r in rows})
    rate = _mean([float(bool(r["passed"])) for r in rows]) if rows else math.nan
    if not rows or not 0.0 < rate < 1.0:
        return DetectableEffect(pairs, tasks, rate, None, None)
    return DetectableEffect(
        pairs,
        tasks,
        rate,
        minimum_detectable_effect(pairs, rate),
        minimum_detectable_effect(tasks, rate),
    )


def compare(
    results: pl.DataFrame | str,
    *,
    baseline: str | None = None,
    root: str | Path | None = None,
    n_boot: int = 2000,
    seed: int = 0,
) -> Comparison:
    """Build the comparison table of an experiment.

    Args:
        results: the results frame (``load(name)``), or the experiment's name.
        baseline: the variant to compare with (default: the experiment's baseline, else the
            first variant in the results).
        root: the experiments folder, when ``results`` is a name.
        n_boot: bootstrap replicates.
        seed: bootstrap seed (the table is reproducible).

    Raises:
        UserError: no finished trials yet, or the baseline has no results.
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
    if frame.is_empty():
        raise UserError("the experiment has no finished trials yet: run it first")
    rows = frame.sort("seq").to_dicts() if "seq" in frame.columns else frame.to_dicts()
    order = list(dict.fromkeys(r["variant"] for r in rows))
    if meta.get("variants"):
        import json

        declared = [v for v in json.loads(meta["variants"]) if v in order]
        order = declared + [v for v in order if v not in declared]
    base_name = baseline or meta.get("baseline") or order[0]
    if base_name not in order:
        raise UserError(f"baseline {base_name!r} has no results: use one of {', '.join(order)}")
    by_variant: dict[str, list[dict[str, Any]]] = {v: [] for v in order}
    for r in rows:
        by_variant[r["variant"]].append(r)
    keyed = {v: {(r["task"], int(r["trial"])): r for r in rs} for v, rs in by_variant.items()}
    summaries = tuple(_summary(v, by_variant[v]) for v in order)
    paired = tuple(
        p
        for v in order
        if v != base_name
        and (p := _paired(v, base_name, keyed[v], keyed[base_name], n_boot=n_boot, seed=seed))
    )
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
    kind = str(rows[0].get("kind") or "agents")
    confusion: tuple[Confusion, ...] = ()
    if kind == "scoring":
        confusion = tuple(
            Confusion(
                variant=v,
                true_positive=sum(
                    1 for r in by_variant[v] if r["choice"] == "decompose" == r["label"]
                ),
                false_positive=sum(
                    1
                    for r in by_variant[v]
                    if r["choice"] == "decompose" and r["label"] == "direct"
                ),
                false_negative=sum(
                    1
                    for r in by_variant[v]
                    if r["choice"] == "direct" and r["label"] == "decompose"
                ),
                true_negative=sum(
                    1 for r in by_variant[v] if r["choice"] == "direct" == r["label"]
                ),
            )
            for v in order
        )
    return Comparison(
        name=str(meta.get("name") or rows[0].get("experiment") or ""),
        kind=kind,
        model=str(rows[0].get("model") or ""),
        simulated=any(bool(r.get("simulated")) for r in rows),
        baseline=base_name,
        variants=summaries,
        paired=paired,
        buckets=tuple(buckets),
        passes=tuple(passes),
        confusion=confusion,
        mde=_mde(by_variant[base_name]),
    )
