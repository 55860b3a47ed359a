"""The worlds axis: one experiment, every variant in every simulated world, paired.

An experiment file with ``worlds = ["solo", "default", ...]`` runs, for each world, the
experiment on that world's simulated model (``fleetlab.models.sim.world_spec``: the world's
``SimParams`` preset at zero latency) with the same tasks and trial seeds: every (task, trial)
meets the same seed in every world and every variant. Each world is an experiment of its own
for storage (``Experiment.for_world``): its results go to ``<name>@<world>/`` (resumable,
fingerprinted, the one-results-database-per-experiment rule unchanged), and the experiment's
own folder ``<name>/`` holds ``worlds.json`` (the worlds, in order) and the report across
worlds. ``load(name)`` gives every world's rows with a ``world`` column.

The report is per world: its verdict and frontier (the A/B report of ``<name>@<world>``,
answer first), and for each variant that learns, its learning curve (mean reward per pass over
the tasks) against each fixed strategy's, its regret against the best fixed strategy in
hindsight (paired: the same task and trial in the same world), its choices per estimated
complexity bucket, pass by pass, and how it does after its warm-up (the experiment's
``warmup_passes``: its first passes are not judged): its mean reward against every fixed
strategy's on the same tasks and trials, how far it got from the worst fixed strategy to the
best, and whether a fixed strategy dominates it (both more successful and cheaper, with both
paired 95% CIs excluding zero). Reward is the experiment's objective (``fleetlab.objective``),
the same number the learner was rewarded with and the report ranks by.
"""

from __future__ import annotations

import html
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from fleetlab.errors import NotFoundError, UserError
from fleetlab.objective import Objective

if TYPE_CHECKING:
    from collections.abc import Sequence

    from fleetlab.experiments._compare import Comparison
    from fleetlab.experiments._definition import Experiment
    from fleetlab.stats import Interval

__all__ = [
    "MANIFEST",
    "WorldSection",
    "choices_frame",
    "judged_frame",
    "learning_curve_frame",
    "load_worlds",
    "regret_frame",
    "world_sections",
    "world_tables",
    "worlds_objective",
    "worlds_of",
    "write_manifest",
    "write_worlds_report",
]

MANIFEST = "worlds.json"


def _folder(name: str, root: str | os.PathLike[str] | None) -> Path:
    from fleetlab.experiments._results import output_dir

    return output_dir(name, root)


def write_manifest(experiment: Experiment, root: str | os.PathLike[str] | None) -> Path:
    """Record which worlds ``experiment`` runs in (atomically), in its own folder: its worlds,
    then those an earlier run of the name ran in and the file no longer lists, when it ran
    under the same objective (their results are still there, and a report shows them)."""
    folder = _folder(experiment.name, root)
    folder.mkdir(parents=True, exist_ok=True)
    worlds = {w: experiment.for_world(w).name for w in experiment.worlds}
    before = _manifest(experiment.name, root) or {}
    if before.get("objective") == experiment.objective.to_dict():
        for world, sub in zip(before["worlds"], before["experiments"], strict=True):
            worlds.setdefault(world, sub)
    target = folder / MANIFEST
    partial = target.with_suffix(".partial")
    partial.write_text(
        json.dumps(
            {
                "name": experiment.name,
                "worlds": list(worlds),
                "experiments": list(worlds.values()),
                "objective": experiment.objective.to_dict(),
                "warmup_passes": experiment.warmup_passes,
            }
        ),
        encoding="utf-8",
    )
    partial.replace(target)
    return target


def _manifest(name: str, root: str | os.PathLike[str] | None) -> dict[str, Any] | None:
    """A worlds experiment's manifest (``write_manifest``), or None for any other."""
    path = _folder(name, root) / MANIFEST
    if not path.is_file():
        return None
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def worlds_of(name: str, root: str | os.PathLike[str] | None = None) -> dict[str, str] | None:
    """``{world: experiment name}`` of a worlds experiment, or None for any other."""
    data = _manifest(name, root)
    return None if data is None else dict(zip(data["worlds"], data["experiments"], strict=True))


def worlds_objective(name: str, root: str | os.PathLike[str] | None = None) -> Objective:
    """The objective a worlds experiment was run with (recorded in its manifest)."""
    return Objective.parse((_manifest(name, root) or {}).get("objective") or {})


def worlds_warmup(name: str, root: str | os.PathLike[str] | None = None) -> int:
    """The warm-up passes a worlds experiment declared (``warmup_passes``; 0 when none)."""
    return int((_manifest(name, root) or {}).get("warmup_passes") or 0)


def load_worlds(name: str, root: str | os.PathLike[str] | None = None) -> pl.DataFrame:
    """Every world's rows of experiment ``name``, with a ``world`` column (worlds in order).

    Raises:
        NotFoundError: no world has results yet.
    """
    from fleetlab.experiments._results import load

    worlds = worlds_of(name, root) or {}
    frames = []
    for world, sub in worlds.items():
        try:
            frames.append(load(sub, root=root).with_columns(pl.lit(world).alias("world")))
        except NotFoundError:
            continue
    if not frames:
        raise NotFoundError(
            f"no results yet for experiment {name!r} in any of its worlds "
            f"({', '.join(worlds)}): run it first"
        )
    return pl.concat(frames, how="vertical")


def _with_reward(frame: pl.DataFrame, objective: Objective) -> pl.DataFrame:
    return frame.with_columns(
        (pl.col("passed").cast(pl.Float64) - objective.cost_weight * pl.col("cost_usd")).alias(
            "reward"
        )
    )


def _learning(frame: pl.DataFrame) -> set[str]:
    from fleetlab.experiments._definition import learns

    return {p for p in frame["policy"].unique().to_list() if p and learns(p)}


def learning_curve_frame(frame: pl.DataFrame, objective: Objective) -> pl.DataFrame:
    """Mean reward per pass over the tasks (pass k: trial index k), per world and variant;
    ``learns`` marks the variants that learn."""
    frame = _with_reward(_worlded(frame), objective)
    learning = _learning(frame)
    return (
        frame.group_by("world", "variant", "policy", "trial")
        .agg(pl.len().alias("trials"), pl.col("reward").mean().alias("mean_reward"))
        .with_columns(
            (pl.col("trial") + 1).alias("pass"), pl.col("policy").is_in(learning).alias("learns")
        )
        .sort("world", "variant", "pass")
        .select("world", "variant", "learns", "pass", "trials", "mean_reward")
    )


def regret_frame(frame: pl.DataFrame, objective: Objective) -> pl.DataFrame:
    """Per world and learning variant: the best fixed strategy in hindsight (the fixed
    variant with the highest mean reward in that world), and the learner's regret against
    it, paired on (task, trial): mean per trial, and summed over every trial and per pass."""
    frame = _with_reward(_worlded(frame), objective)
    learning = _learning(frame)
    out = []
    for world in frame["world"].unique(maintain_order=True).to_list():
        here = frame.filter(pl.col("world") == world)
        fixed = here.filter(~pl.col("policy").is_in(learning))
        if fixed.is_empty():
            continue
        means = fixed.group_by("variant").agg(pl.col("reward").mean()).sort("reward", "variant")
        best, best_mean = means.row(-1)
        best_rows = fixed.filter(pl.col("variant") == best).select(
            "task", "trial", pl.col("reward").alias("best_reward")
        )
        for learner in sorted(here.filter(pl.col("policy").is_in(learning))["variant"].unique()):
            rows = (
                here.filter(pl.col("variant") == learner)
                .join(best_rows, on=["task", "trial"], how="inner")
                .with_columns((pl.col("best_reward") - pl.col("reward")).alias("regret"))
            )
            if rows.is_empty():
                continue
            per_pass = (
                rows.group_by("trial")
                .agg(pl.col("regret").sum(), pl.len().alias("n"))
                .sort("trial")
            )
            out.append(
                {
                    "world": world,
                    "variant": learner,
                    "best_fixed": best,
                    "best_fixed_mean_reward": best_mean,
                    "mean_reward": rows["reward"].mean(),
                    "pairs": rows.height,
                    "mean_regret": rows["regret"].mean(),
                    "total_regret": rows["regret"].sum(),
                    "regret_per_pass": per_pass["regret"].to_list(),
                    "passes": (per_pass["trial"] + 1).to_list(),  # the pass of each sum above
                    "pairs_per_pass": per_pass["n"].to_list(),
                }
            )
    schema: dict[str, Any] = {
        "world": pl.String,
        "variant": pl.String,
        "best_fixed": pl.String,
        "best_fixed_mean_reward": pl.Float64,
        "mean_reward": pl.Float64,
        "pairs": pl.Int64,
        "mean_regret": pl.Float64,
        "total_regret": pl.Float64,
        "regret_per_pass": pl.List(pl.Float64),
        "passes": pl.List(pl.Int64),
        "pairs_per_pass": pl.List(pl.Int64),
    }
    return pl.DataFrame(out, schema=schema)


def _paired(values: pl.Series) -> tuple[float, float, float]:
    """Mean of paired differences and its 95% CI (normal approximation, every pair its own
    cluster: ``fleetlab.stats.cluster_se``)."""
    from fleetlab.stats import cluster_se

    data = values.to_list()
    mean = sum(data) / len(data)
    se = cluster_se(data, range(len(data))) if len(data) > 1 else float("nan")
    return mean, mean - 1.96 * se, mean + 1.96 * se


def judged_frame(frame: pl.DataFrame, objective: Objective, warmup_passes: int) -> pl.DataFrame:
    """Each learning variant after its warm-up, per world, against every fixed strategy.

    Only trials with index ``>= warmup_passes`` count, the learner's and each fixed
    strategy's alike, paired on (task, trial), and only the (task, trial)s that the learner
    and every fixed strategy finished (a partial run compares like with like). One row per
    (world, learner, fixed strategy): both mean rewards, the learner's reward minus the fixed
    strategy's with its 95% CI, the fixed strategy's success and cost minus the learner's
    with theirs, and ``dominates``
    (the fixed strategy is both more successful and cheaper, both CIs excluding zero). Per
    (world, learner), ``share_of_way`` is ``(learner - worst) / (best - worst)`` of the fixed
    strategies' mean rewards on the counted trials (1: as good as the best; None when every
    fixed strategy has the same mean), ``share_lo`` and ``share_hi`` its 95% CI
    (``fleetlab.stats.share_of_way``: Fieller's, unbounded when the worst and the best are
    within noise of each other; spanning every choice where strategies tie for worst or
    best), and ``beats_every_fixed`` says whether its mean is above every one of them.
    """
    frame = _with_reward(_worlded(frame), objective).filter(pl.col("trial") >= warmup_passes)
    learning = _learning(frame)
    cols = ["task", "trial", "reward", "passed", "cost_usd"]
    out: list[dict[str, Any]] = []
    for world in frame["world"].unique(maintain_order=True).to_list():
        here = frame.filter(pl.col("world") == world)
        fixed = sorted(here.filter(~pl.col("policy").is_in(learning))["variant"].unique())
        for learner in sorted(here.filter(pl.col("policy").is_in(learning))["variant"].unique()):
            # the (task, trial)s every fixed strategy and the learner finished: one set of
            # pairs for every comparison, so the learner has one mean and the shares agree
            mine = here.filter(pl.col("variant") == learner).select(cols)
            for other in fixed:
                mine = mine.join(
                    here.filter(pl.col("variant") == other).select("task", "trial"),
                    on=["task", "trial"],
                    how="semi",
                )
            rows = []
            paired_rewards: dict[str, pl.DataFrame] = {}
            for other in fixed:
                pairs = mine.join(
                    here.filter(pl.col("variant") == other).select(cols),
                    on=["task", "trial"],
                    suffix="_f",
                ).with_columns(
                    pl.col("passed").cast(pl.Float64), pl.col("passed_f").cast(pl.Float64)
                )
                if pairs.is_empty():
                    continue
                paired_rewards[other] = pairs.select("task", "trial", "reward_f")
                reward = _paired(pairs["reward"] - pairs["reward_f"])
                success = _paired(pairs["passed_f"] - pairs["passed"])
                cost = _paired(pairs["cost_usd_f"] - pairs["cost_usd"])
                rows.append(
                    {
                        "world": world,
                        "variant": learner,
                        "fixed": other,
                        "pairs": pairs.height,
                        "mean_reward": pairs["reward"].mean(),
                        "fixed_mean_reward": pairs["reward_f"].mean(),
                        "reward_diff": reward[0],
                        "reward_lo": reward[1],
                        "reward_hi": reward[2],
                        "success_diff": success[0],
                        "success_lo": success[1],
                        "cost_diff": cost[0],
                        "cost_hi": cost[2],
                        "dominates": success[1] > 0 and cost[2] < 0,
                    }
                )
            if not rows:
                continue
            means = [r["fixed_mean_reward"] for r in rows]
            share = _share(mine, paired_rewards, rows) if max(means) > min(means) else None
            mean = rows[0]["mean_reward"]
            for r in rows:
                r["share_of_way"] = share.estimate if share else None
                r["share_lo"] = share.low if share else None
                r["share_hi"] = share.high if share else None
                r["beats_every_fixed"] = all(mean > m for m in means)
            out.extend(rows)
    schema: dict[str, Any] = {
        "world": pl.String,
        "variant": pl.String,
        "fixed": pl.String,
        "pairs": pl.Int64,
        "mean_reward": pl.Float64,
        "fixed_mean_reward": pl.Float64,
        "reward_diff": pl.Float64,
        "reward_lo": pl.Float64,
        "reward_hi": pl.Float64,
        "success_diff": pl.Float64,
        "success_lo": pl.Float64,
        "cost_diff": pl.Float64,
        "cost_hi": pl.Float64,
        "dominates": pl.Boolean,
        "share_of_way": pl.Float64,
        "share_lo": pl.Float64,
        "share_hi": pl.Float64,
        "beats_every_fixed": pl.Boolean,
    }
    return pl.DataFrame(out, schema=schema)


def _share(
    mine: pl.DataFrame, paired: dict[str, pl.DataFrame], rows: list[dict[str, Any]]
) -> Interval:
    """The learner's share of the way from the worst fixed strategy to the best, with its
    interval (``fleetlab.stats.share_of_way``) over the pairs all of them finished. Where
    several strategies tie for worst or best the interval spans each choice's: which of them
    is named is arbitrary, and the interval must not depend on it."""
    from fleetlab import stats

    means = [r["fixed_mean_reward"] for r in rows]
    worsts = [r["fixed"] for r in rows if r["fixed_mean_reward"] == min(means)]
    bests = [r["fixed"] for r in rows if r["fixed_mean_reward"] == max(means)]
    found = []
    for worst in worsts:
        for best in bests:
            three = mine.join(paired[worst], on=["task", "trial"]).join(
                paired[best], on=["task", "trial"], suffix="_b"
            )
            learner, low, high = (three[c].to_list() for c in ("reward", "reward_f", "reward_f_b"))
            if not all(math.isfinite(v) for v in (*learner, *low, *high)):
                return stats.Interval(math.nan, math.nan, math.nan)  # a reward is missing
            found.append(stats.share_of_way(learner, low, high))
    return stats.Interval(found[0].estimate, min(i.low for i in found), max(i.high for i in found))


def _ci(lo: float, hi: float) -> str:
    if math.isnan(lo) or math.isnan(hi):
        return "[CI n/a: one pair]"
    return f"[{lo:+.3f}, {hi:+.3f}]"


def _share_ci(lo: float, hi: float) -> str:
    if math.isnan(lo) or math.isnan(hi):
        return "[CI n/a]"
    if math.isinf(lo) or math.isinf(hi):
        return "[CI unbounded: the worst and the best are within noise of each other]"
    return f"[{lo:.0%}, {hi:.0%}]"


def judged_lines(frame: pl.DataFrame, objective: Objective, warmup_passes: int) -> list[str]:
    """One sentence per learner of one experiment's (or world's) rows: how it did after its
    warm-up against the fixed strategies (``judged_frame``)."""
    judged = judged_frame(frame, objective, warmup_passes)
    last = int(frame.select(pl.col("trial").max()).item()) + 1 if frame.height else 0
    word = objective.name
    learners = sorted(
        _worlded(frame).filter(pl.col("policy").is_in(_learning(frame)))["variant"].unique()
    )
    lines = []
    for learner in learners:
        rows = judged.filter(pl.col("variant") == learner).sort("fixed_mean_reward", "fixed")
        first = warmup_passes + 1
        if not warmup_passes:
            span = f"over every pass ({f'1-{last}' if last > 1 else 'pass 1'}, no warm-up set"
        elif last > first:
            span = f"after its warm-up (passes {first}-{last}"
        elif last == first:
            span = f"after its warm-up (pass {first}"
        else:
            span = f"after its warm-up (from pass {first}: the run has reached pass {last}"
        if rows.is_empty():
            lines.append(
                f"{learner} {span}): no trial yet that it and every fixed strategy finished "
                "after the warm-up"
            )
            continue
        worst, best = rows.row(0, named=True), rows.row(-1, named=True)
        n = best["pairs"]
        head = (
            f"{learner} {span}, {n} trial{'s' if n != 1 else ''}): "
            f"mean {word} {best['mean_reward']:.3f}, "
        )
        if best["share_of_way"] is None:
            where = (
                f"every fixed strategy has the same mean {word} ({best['fixed_mean_reward']:.3f}); "
            )
        else:
            where = (
                f"{best['share_of_way']:.0%} {_share_ci(best['share_lo'], best['share_hi'])} "
                "of the way from the worst fixed strategy "
                f"({worst['fixed']}, {worst['fixed_mean_reward']:.3f}) to the best "
                f"({best['fixed']}, {best['fixed_mean_reward']:.3f}); "
                f"{best['reward_diff']:+.3f} {_ci(best['reward_lo'], best['reward_hi'])} against "
                "the best (each pair of trials a unit: about these tasks, where the verdict's "
                "intervals resample tasks); "
            )
        dominators = rows.filter(pl.col("dominates"))["fixed"].to_list()
        lines.append(
            head
            + where
            + (
                f"dominated by {', '.join(dominators)} (more successful and cheaper, both "
                "paired 95% CIs excluding zero)"
                if dominators
                else "no fixed strategy is both more successful and cheaper with both paired "
                "95% CIs excluding zero"
            )
            + ("; above every fixed strategy" if best["beats_every_fixed"] else "")
        )
    return lines


def choices_frame(frame: pl.DataFrame) -> pl.DataFrame:
    """What each learning variant chose, per world, pass and estimated complexity bucket:
    trials, and the count ``n`` and share of each arm (the strategy it played; as first run,
    ``direct`` or ``decompose``, for a goal recorded before results had a ``strategy`` column)."""
    frame = _worlded(frame)
    if "strategy" not in frame.columns:  # a frame from before results recorded it
        frame = frame.with_columns(pl.lit(None, pl.String).alias("strategy"))
    learning = _learning(frame)
    rows = frame.filter(pl.col("policy").is_in(learning)).with_columns(
        pl.coalesce("learn_bucket", "score_bucket", pl.lit("unscored")).alias("estimated"),
        pl.coalesce("learn_arm", "strategy", "choice", pl.lit("?")).alias("arm"),
        (pl.col("trial") + 1).alias("pass"),
    )
    counts = rows.group_by("world", "variant", "pass", "estimated", "arm").agg(pl.len().alias("n"))
    totals = counts.group_by("world", "variant", "pass", "estimated").agg(
        pl.col("n").sum().alias("trials")
    )
    return (
        counts.join(totals, on=["world", "variant", "pass", "estimated"])
        .with_columns((pl.col("n") / pl.col("trials")).alias("share"))
        .sort("world", "variant", "pass", "estimated", "arm")
        .select("world", "variant", "pass", "estimated", "arm", "trials", "n", "share")
    )


def _money(value: float) -> str:
    """A signed dollar difference: ``+$0.0123``, ``-$0.0015``."""
    return f"{'-' if value < 0 else '+'}${abs(value):.4f}"


def _num(value: Any) -> str:
    return "-" if value is None else f"{float(value):.3f}"


def _worlded(frame: pl.DataFrame) -> pl.DataFrame:
    return frame if "world" in frame.columns else frame.with_columns(pl.lit("-").alias("world"))


def world_tables(
    frame: pl.DataFrame, objective: Objective, warmup_passes: int = 0
) -> dict[str, tuple[list[str], list[list[str]]]]:
    """The learning tables of one world's rows as text cells: ``{title: (header, rows)}``."""
    tables: dict[str, tuple[list[str], list[list[str]]]] = {}
    curve = learning_curve_frame(frame, objective)
    if curve.filter(pl.col("learns")).is_empty():
        return tables
    spans = _pass_spans(sorted(curve["pass"].unique().to_list()))
    grouped = len(spans[0]) > 1
    per = f"per {len(spans[0])} passes" if grouped else "per pass"
    word = objective.name
    tables[f"Learning curve: mean {word} {per} (learners and every fixed strategy)"] = (
        ["variant", *[_span_label(span) for span in spans]],
        [
            [
                variant + (" (learns)" if sub["learns"][0] else ""),
                *[_num(_pooled_mean(sub.filter(pl.col("pass").is_in(span)))) for span in spans],
            ]
            for variant, sub in (
                (v, curve.filter(pl.col("variant") == v))
                for v in curve["variant"].unique(maintain_order=True).to_list()
            )
        ],
    )
    regret = regret_frame(frame, objective)
    tables["Regret against the best fixed strategy in hindsight (paired on task and trial)"] = (
        [
            "variant",
            "best fixed",
            f"its mean {word}",
            f"learner's mean {word}",
            "pairs",
            "mean regret",
            "total regret",
            f"mean regret a trial, {per}" if grouped else "regret per pass",
        ],
        [
            [
                r["variant"],
                r["best_fixed"],
                f"{r['best_fixed_mean_reward']:.3f}",
                f"{r['mean_reward']:.3f}",
                str(r["pairs"]),
                f"{r['mean_regret']:+.3f}",
                f"{r['total_regret']:+.2f}",
                " / ".join(_span_regrets(r, spans, mean=grouped)),
            ]
            for r in regret.iter_rows(named=True)
        ],
    )
    judged = judged_frame(frame, objective, warmup_passes)
    tables[
        (
            f"After the warm-up (passes {warmup_passes + 1} on)"
            if warmup_passes
            else "Over every pass (no warm-up set)"
        )
        + ": each learner against every fixed strategy, paired on task and trial"
    ] = (
        [
            "variant",
            "fixed strategy",
            "pairs",
            f"learner's mean {word}",
            f"fixed mean {word}",
            "learner - fixed [95% CI]",
            "fixed - learner success [CI low]",
            "fixed - learner cost [CI high]",
            "dominates the learner",
        ],
        [
            [
                r["variant"],
                r["fixed"],
                str(r["pairs"]),
                f"{r['mean_reward']:.3f}",
                f"{r['fixed_mean_reward']:.3f}",
                f"{r['reward_diff']:+.3f} {_ci(r['reward_lo'], r['reward_hi'])}",
                f"{r['success_diff']:+.1%} "
                + ("[n/a]" if math.isnan(r["success_lo"]) else f"[{r['success_lo']:+.1%}]"),
                f"{_money(r['cost_diff'])} "
                + ("[n/a]" if math.isnan(r["cost_hi"]) else f"[{_money(r['cost_hi'])}]"),
                "yes" if r["dominates"] else "no",
            ]
            for r in judged.iter_rows(named=True)
        ],
    )
    span_of = {p: i for i, span in enumerate(spans) for p in span}
    choices = (
        choices_frame(frame)
        .with_columns(pl.col("pass").replace_strict(span_of, return_dtype=pl.Int64))
        .group_by("variant", "pass", "estimated", "arm")
        .agg(pl.col("n").sum())
        .sort("variant", "pass", "estimated", "arm")
    )
    trials = choices.group_by("variant", "pass", "estimated", maintain_order=True).agg(
        pl.col("n").sum().alias("trials"),
        pl.format("{} {}%", "arm", (pl.col("n") * 100 / pl.col("n").sum()).round().cast(pl.Int64))
        .str.join(", ")
        .alias("choices"),
    )
    over = f"{len(spans[0])} passes at a time" if grouped else "pass by pass"
    tables[f"Choices per estimated bucket over time (share of each arm, {over})"] = (
        ["variant", "pass", "bucket", "trials", "choices"],
        [
            [r["variant"], _span_range(spans[r["pass"]]), r["estimated"], str(r["trials"]),
             r["choices"]]
            for r in trials.iter_rows(named=True)
        ],
    )  # fmt: skip
    return tables


#: A text table shows at most this many columns (or row groups) of passes; a longer run's
#: passes are shown in equal spans (150 passes: 10 spans of 15).
_MOST_SPANS = 10


def _pass_spans(passes: list[int]) -> list[list[int]]:
    """``passes`` in order, one span each, or in spans of equal length when there are more
    than `_MOST_SPANS` (the last span may be shorter)."""
    size = max(1, math.ceil(len(passes) / _MOST_SPANS))
    return [passes[i : i + size] for i in range(0, len(passes), size)]


def _span_range(span: list[int]) -> str:
    return str(span[0]) if len(span) == 1 else f"{span[0]}-{span[-1]}"


def _span_label(span: list[int]) -> str:
    return ("pass " if len(span) == 1 else "passes ") + _span_range(span)


def _pooled_mean(rows: pl.DataFrame) -> float | None:
    """The mean reward over every trial of ``rows`` (per-pass means weighed by trials)."""
    trials = int(rows["trials"].sum())
    total = float((rows["mean_reward"] * rows["trials"]).sum())
    return total / trials if trials else None


def _span_regrets(row: dict[str, Any], spans: list[list[int]], *, mean: bool) -> list[str]:
    """A `regret_frame` row's regret span by span: the sum a pass, or with ``mean`` the mean
    a trial (so a span the learner has only partly reached, or a shorter last span, is
    comparable with the others); "-" where the learner has no trial paired yet."""
    regret = dict(zip(row["passes"], row["regret_per_pass"], strict=True))
    pairs = dict(zip(row["passes"], row["pairs_per_pass"], strict=True))
    out = []
    for span in spans:
        n = sum(pairs.get(p, 0) for p in span)
        total = sum(regret.get(p, 0.0) for p in span)
        if not n:
            out.append("-")
        elif mean:
            out.append(f"{total / n:+.3f}")
        else:
            out.append(f"{total:+.2f}")
    return out


@dataclass(frozen=True, slots=True)
class WorldSection:
    """What the report says about one world (the CLI, the HTML report and the notebook panel
    all show these): ``comparison`` is None while the world has no results."""

    world: str
    experiment: str
    frame: pl.DataFrame | None = None
    comparison: Comparison | None = None
    lines: list[str] = field(default_factory=list)
    tables: dict[str, tuple[list[str], list[list[str]]]] = field(default_factory=dict)

    def charts(self, objective: Objective) -> list[Any]:
        """The world's frontier, and for a learner its learning curve and choices."""
        from fleetlab.charts.experiments import (
            learned_choices_chart,
            reward_curve_chart,
            success_vs_cost_chart,
        )

        if self.comparison is None or self.frame is None:
            return []
        out = [success_vs_cost_chart(self.comparison.summary_frame(), simulated=True)]
        curve = learning_curve_frame(self.frame.with_columns(world=pl.lit(self.world)), objective)
        if not curve.filter(pl.col("learns")).is_empty():
            out.append(reward_curve_chart(curve, objective=objective, simulated=True))
            out.append(learned_choices_chart(self.frame, simulated=True))
        return out


def world_sections(
    name: str,
    root: str | os.PathLike[str] | None = None,
    *,
    baseline: str | None = None,
    pairs: Sequence[tuple[str, str]] = (),
) -> tuple[Objective, list[WorldSection]]:
    """A worlds experiment's report, world by world: its objective, and per world the A/B
    verdict (with the head-to-head ``pairs`` asked for), the learners judged after their
    warm-up, and the learning tables."""
    from fleetlab.experiments._compare import compare
    from fleetlab.experiments._results import load

    objective = worlds_objective(name, root)
    warmup = worlds_warmup(name, root)
    sections = []
    compared: set[tuple[str, str]] = set()
    for world, sub in (worlds_of(name, root) or {}).items():
        try:
            frame = load(sub, root=root)
        except NotFoundError:
            sections.append(WorldSection(world, sub))
            continue
        ran = set(frame["variant"].unique().to_list())
        here = [(a, b) for a, b in pairs if a in ran and b in ran]  # a world run before
        compared.update(here)  # a variant was added has no results of it
        comparison = compare(
            sub,
            root=None if root is None else Path(root),
            objective=objective,
            baseline=baseline,
            warmup_passes=warmup,
            pairs=here,
        )
        sections.append(
            WorldSection(
                world,
                sub,
                frame,
                comparison,
                comparison.verdict(),
                world_tables(frame, objective, warmup),
            )
        )
    missing = [f"{a} and {b}" for a, b in pairs if (a, b) not in compared]
    if missing:
        raise UserError(
            f"no world of {name!r} has results of both {'; of both '.join(missing)}: compare"
            " variants the experiment ran (its report lists them per world)"
        )
    return objective, sections


def write_worlds_report(
    name: str, *, root: str | Path | None = None, path: str | Path | None = None
) -> Path:
    """The report across worlds (``<name>/report.html``), answer first, world by world:
    the verdict and frontier, then the learners' curves, regret and choices; each world's
    full A/B report (``<name>@<world>/report.html``) is written too and linked."""
    objective, sections = world_sections(name, root)
    return write_sections_report(name, objective, sections, root=root, path=path)


def write_sections_report(
    name: str,
    objective: Objective,
    sections: Sequence[WorldSection],
    *,
    root: str | Path | None = None,
    path: str | Path | None = None,
) -> Path:
    """`write_worlds_report` of the sections already computed (``world_sections``)."""
    from fleetlab.charts._offline import vega_bundle
    from fleetlab.experiments._report import _CSS, write_report

    target = Path(path) if path is not None else _folder(name, root) / "report.html"
    charts: list[str] = []

    def chart(c: Any) -> str:
        n = len(charts)
        spec = json.dumps(c.to_dict()).replace("</", "<\\/")
        charts.append(
            f"<script>vegaEmbed('#chart{n}', {spec}, {{actions: false, renderer: 'svg'}});</script>"
        )
        return f"<div id='chart{n}' class='chart'></div>"

    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(name)}: A/B report per world</title>",
        f"<style>{_CSS}</style>",
        f"<script>{vega_bundle()}</script></head><body>",
        f"<h1>{html.escape(name)}: which variant to use, world by world</h1>",
        "<p class='sim'>SIMULATED: every world is a preset of the simulated model, an explicit "
        "assumption about when decomposition pays, not a measurement of Claude.</p>",
        f"<p class='meta'>Ranked by {html.escape(objective.describe())}; the same tasks and "
        "trial seeds in every world and variant (paired).</p>",
    ]
    for section in sections:
        world = section.world
        parts.append(f"<h2 id='world-{html.escape(world)}'>World: {html.escape(world)}</h2>")
        if section.comparison is None or section.frame is None:
            parts.append("<p>No results yet in this world: run the experiment.</p>")
            continue
        page = write_report(
            section.experiment, root=root, comparison=section.comparison, frame=section.frame
        )
        parts.append("<ol class='verdict'>")
        parts.extend(f"<li>{html.escape(line)}.</li>" for line in section.lines)
        parts.append(
            f"</ol><p class='meta'>{section.frame.height} trials on "
            f"{html.escape(section.comparison.model)}; "
            f"<a href='{html.escape(os.path.relpath(page, target.parent))}'>the full report "
            "of this world</a>.</p>"
        )
        parts.extend(chart(c) for c in section.charts(objective))
        for title, (header, rows) in section.tables.items():
            # the pass-by-pass choices (the chart above, as numbers) are long: folded
            folded = title.startswith("Choices per")
            heading = html.escape(title)
            parts.append(
                f"<details><summary><h3 class=inline>{heading}</h3></summary><table><tr>"
                if folded
                else f"<h3>{heading}</h3><table><tr>"
            )
            parts.extend(f"<th>{html.escape(h)}</th>" for h in header)
            parts.append("</tr>")
            for row in rows:
                parts.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>")
            parts.append("</table></details>" if folded else "</table>")
    parts.extend(charts)
    parts.append("</body></html>")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    partial.write_text("\n".join(parts), encoding="utf-8")
    partial.replace(target)
    return target
