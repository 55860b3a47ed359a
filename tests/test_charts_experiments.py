"""The A/B charts: built from results, labelled simulated, showing the numbers they claim."""

from __future__ import annotations

import json
import math
import random
from typing import Any

import numpy as np
import polars as pl
import pytest
from scipy import stats as scipy_stats

from fleetlab import charts
from fleetlab.experiments import COLUMNS, compare


def _frame(kind: str = "agents") -> pl.DataFrame:
    rows: list[dict[str, Any]] = []
    seq = 0
    for trial in range(2):
        for task, c in (("core:a", 1), ("core:b", 3), ("core:c", 5)):
            for variant, policy, agents in (
                ("never", "never", 1),
                ("always", "always", 5),
                ("learned", "learned", 1 + 2 * (c > 3)),
            ):
                seq += 1
                score = min(5, c + trial)
                choice = "decompose" if agents > 1 else "direct"
                rows.append(
                    {
                        "seq": seq,
                        "experiment": "x",
                        "kind": kind,
                        "variant": variant,
                        "policy": policy,
                        "prompt": "default",
                        "task": task,
                        "trial": trial,
                        "seed": trial,
                        "complexity": c,
                        "bucket": "simple" if c < 3 else "medium" if c == 3 else "complex",
                        "passed": not (variant == "never" and c == 5),
                        "cost_usd": 0.01 * agents * c,
                        "agents": agents,
                        "tokens": 1000,
                        "model_calls": 3,
                        "wall_s": 0.1,
                        "sim_time_s": 2.0,
                        "score": score,
                        "score_bucket": "simple"
                        if score < 3
                        else "medium"
                        if score == 3
                        else "complex",
                        "choice": choice,
                        "label": "decompose" if c >= 4 else "direct",
                        "learn_arm": choice if policy == "learned" else None,
                        "simulated": True,
                        "model": "sim:instant",
                    }
                )
    return pl.DataFrame(rows).select(
        [
            pl.col(c).cast(t) if c in rows[0] else pl.lit(None, t).alias(c)
            for c, t in COLUMNS.items()
        ]
    )


def _spec(chart: Any) -> dict[str, Any]:
    spec: dict[str, Any] = chart.to_dict()
    json.dumps(spec)  # embeddable as is
    return spec


def _datasets(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [row for rows in spec.get("datasets", {}).values() for row in rows]


def _title(spec: dict[str, Any]) -> str:
    title = spec["title"]
    return str(title["text"] if isinstance(title, dict) else title)


def _wilson_95(successes: int, n: int) -> tuple[float, float]:
    """The Wilson score 95% interval in closed form, with ``p = successes / n``::

    (p + z²/2n ± z sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n),  z = the normal's 97.5% point."""
    z = float(scipy_stats.norm.ppf(0.975))
    p = successes / n
    centre = p + z * z / (2 * n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - half) / (1 + z * z / n), (centre + half) / (1 + z * z / n)


@pytest.mark.parametrize("simulated", [True, False])
def test_success_vs_cost_has_both_intervals_and_the_simulated_label(simulated: bool) -> None:
    """One point per variant at its success rate and mean cost per trial, with the Wilson
    95% interval of the rate and the task-clustered 95% interval of the cost, all computed
    here from _frame's rows."""
    frame = _frame().with_columns(pl.lit(simulated).alias("simulated"))
    table = compare(frame)
    spec = _spec(charts.success_vs_cost_chart(table.summary_frame()))
    assert ("simulated" in _title(spec)) is simulated
    fields = {
        enc.get("field")
        for layer in spec["layer"]
        for enc in layer.get("encoding", {}).values()
        if isinstance(enc, dict)
    }
    assert {"success_low", "success_high", "cost_low", "cost_high", "mean_cost_usd"} <= fields
    rows = {r["variant"]: r for r in _datasets(spec)}
    assert set(rows) == {"never", "always", "learned"}
    # By hand from _frame: six trials per variant (tasks a, b, c of complexity 1, 3, 5, two
    # trials each). never fails only on c: 4 of 6 pass; always and learned pass all 6.
    # Cost of one trial, the same in both trials of a task: never 0.01 x c; always 0.05 x c;
    # learned 0.01 x c on a and b (one agent), 0.03 x 5 = 0.15 on c (three agents).
    costs = {
        "never": [0.01, 0.03, 0.05],
        "always": [0.05, 0.15, 0.25],
        "learned": [0.01, 0.03, 0.15],
    }
    for variant, passes in (("never", 4), ("always", 6), ("learned", 6)):
        row = rows[variant]
        assert row["trials"] == 6
        assert row["success"] == pytest.approx(passes / 6)
        low, high = _wilson_95(passes, 6)
        if passes == 6:  # p = 1: the root cancels, low = 1 / (1 + z²/6), high = 1
            assert low == pytest.approx(1 / (1 + 1.959964**2 / 6))
            assert high == pytest.approx(1.0)
        assert (row["success_low"], row["success_high"]) == pytest.approx((low, high))
        # mean over the 6 trials = mean over the 3 tasks (each ran twice); e.g. never 0.03
        mean = sum(costs[variant]) / 3
        assert row["mean_cost_usd"] == pytest.approx(mean)
        # CR1 clustered by task, G = 3 clusters of 2 equal trials, n = 6: each cluster's
        # residual sum is 2 (x - mean); se = sqrt(G/(G-1) * sum (2 (x - mean))^2 / n^2).
        # never: sqrt(1.5 * (0.04^2 + 0 + 0.04^2) / 36) = 0.0115470, half 1.96 x = 0.0226317.
        se = math.sqrt(3 / 2 * sum((2 * (x - mean)) ** 2 for x in costs[variant]) / 36)
        half = 1.959964 * se
        # a cost is never negative: the interval's low end stops at zero (learned's is below)
        expected = (max(0.0, mean - half), mean + half)
        assert (row["cost_low"], row["cost_high"]) == pytest.approx(expected)
    assert rows["never"]["cost_high"] - rows["never"]["cost_low"] == pytest.approx(2 * 0.0226317)


def test_agents_per_complexity_is_the_mean_per_variant_and_level() -> None:
    frame = _frame()
    spec = _spec(charts.agents_vs_complexity_chart(frame, order=["never", "always", "learned"]))
    assert "simulated" in _title(spec)
    points = {(r["variant"], r["complexity"]): r["mean_agents"] for r in _datasets(spec)}
    assert points[("always", 1)] == 5
    assert points[("never", 5)] == 1
    assert points[("learned", 5)] == 3
    assert points[("learned", 1)] == 1
    # one colour per variant, the same in every chart whatever its order (the colours follow
    # the sorted names); the legend keeps the order given
    colour = spec["layer"][0]["encoding"]["color"]
    assert colour["scale"]["domain"] == ["always", "learned", "never"]
    assert colour["sort"] == ["never", "always", "learned"]


def test_success_by_bucket_has_wilson_error_bars() -> None:
    table = compare(_frame())
    spec = _spec(charts.success_by_bucket_chart(table.bucket_frame(), simulated=True))
    assert {r["bucket"] for r in _datasets(spec)} == {"simple", "medium", "complex"}
    never_complex = next(
        r for r in _datasets(spec) if r["variant"] == "never" and r["bucket"] == "complex"
    )
    assert never_complex["success"] == 0
    assert never_complex["success_high"] > 0


def _learner_rows(world: str | None = None) -> list[dict[str, Any]]:
    """A learner's goals by hand, in the order they ran (seq), one fixed variant between."""
    goals = [
        # (variant, policy, learn_bucket, score_bucket, learn_arm, choice)
        ("learned", "learned", "complex", "complex", "decompose", "decompose"),
        ("never", "never", None, None, None, "direct"),
        # not scored: it played as_needed, whose first run is direct
        ("learned", "learned", None, None, None, "direct"),
        # as_needed that split: the choice says decompose, the learner's arm is as_needed
        ("learned", "learned", "complex", "complex", "as_needed", "decompose"),
        ("learned", "learned", "simple", "simple", "direct", "direct"),
        ("learned", "learned", "complex", "complex", "as_needed", "direct"),
    ]
    return [
        {
            "seq": seq,
            "variant": variant,
            "policy": policy,
            "task": f"core:t{seq}",
            "trial": 0,
            "passed": True,
            "learn_bucket": learn_bucket,
            "score_bucket": score_bucket,
            "learn_arm": learn_arm,
            "choice": choice,
            "strategy": learn_arm or ("as_needed" if policy == "learned" else choice),
            "simulated": True,
            **({"world": world} if world else {}),
        }
        for seq, (variant, policy, learn_bucket, score_bucket, learn_arm, choice) in enumerate(
            goals, 1
        )
    ]


def _choices_frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    schema = {c: COLUMNS[c] for c in rows[0] if c in COLUMNS} | {"world": pl.String}
    return pl.DataFrame(rows, schema={c: schema[c] for c in rows[0]})


def test_learned_choices_show_every_arms_share_per_bucket_in_order() -> None:
    spec = _spec(charts.learned_choices_chart(_choices_frame(_learner_rows()), window=2))
    rows = _datasets(spec)
    shares = {(r["bucket"], r["at"], r["arm"]): r["share"] for r in rows}
    # worked by hand, window 2: the learner's goals 1-5 (the never row is not one of them);
    # goal 3's pick is its arm (as_needed), not the split it ran as; the unscored goal shows
    # the strategy it played (as_needed), not its first run (direct); each bucket's last
    # shares hold to the end of goal 5 (a step lasts one goal)
    expected = {
        ("complex", 1): (0.0, 1.0, 0.0),
        ("not scored", 2): (0.0, 0.0, 1.0),
        ("complex", 3): (0.0, 0.5, 0.5),
        ("simple", 4): (1.0, 0.0, 0.0),
        ("complex", 5): (0.0, 0.0, 1.0),
        ("complex", 6): (0.0, 0.0, 1.0),
        ("not scored", 6): (0.0, 0.0, 1.0),
        ("simple", 6): (1.0, 0.0, 0.0),
    }
    arms = ("direct", "decompose", "as_needed")
    assert shares == {
        (bucket, goal, arm): share
        for (bucket, goal), row in expected.items()
        for arm, share in zip(arms, row, strict=True)
    }
    for r in rows:  # stacked in arm order, the shares of a goal filling 0..1
        below = sum(expected[(r["bucket"], r["at"])][: arms.index(r["arm"])])
        assert (r["low"], r["high"]) == pytest.approx((below, below + r["share"]))
    assert spec["facet"]["row"]["sort"] == ["simple", "complex", "not scored"]
    assert "column" not in spec["facet"]
    colour = spec["spec"]["encoding"]["color"]["scale"]
    assert colour == {
        "domain": list(arms),
        "range": ["#4c78a8", "#f58518", "#72b7b2"],
    }
    assert "simulated" in _title(spec)
    assert "share of each arm" in _title(spec)


def test_learned_choices_keep_arm_colours_and_facet_worlds() -> None:
    # one arm only, two worlds: the three arms keep their colours, a column per world
    rows = [
        {**r, "learn_arm": "decompose", "choice": "decompose"}
        for world in ("solo", "lossy")
        for r in _learner_rows(world)
    ]
    for seq, r in enumerate(rows, 1):
        r["seq"] = seq
    spec = _spec(charts.learned_choices_chart(_choices_frame(rows), window=2))
    colour = spec["spec"]["encoding"]["color"]["scale"]
    assert colour["domain"] == ["direct", "decompose", "as_needed"]
    assert colour["range"] == ["#4c78a8", "#f58518", "#72b7b2"]
    assert spec["facet"]["column"]["sort"] == ["learned in solo", "learned in lossy"]
    data = _datasets(spec)
    # each world's learner counts its own goals: 5 each, every share "decompose"
    for series in ("learned in solo", "learned in lossy"):
        assert max(r["goal"] for r in data if r["series"] == series) == 5
    assert {r["share"] for r in data if r["arm"] == "decompose"} == {1.0}
    empty = _spec(charts.learned_choices_chart(_frame().filter(pl.col("policy") != "learned")))
    assert "no learned variant" in json.dumps(empty)


def test_scoring_charts() -> None:
    frame = _frame("scoring")
    spec = _spec(charts.scoring_calibration_chart(frame))
    means = {
        (r["variant"], r["complexity"]): r["mean_score"] for r in _datasets(spec) if "variant" in r
    }
    assert means[("never", 3)] == pytest.approx(3.5)
    table = compare(frame)
    spec = _spec(charts.confusion_chart(table.confusion_frame(), simulated=True))
    cells = _datasets(spec)
    assert sum(c["n"] for c in cells) == frame.height


def _intervals(spec: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["variant"], r["difference"]): r for r in _datasets(spec) if "difference" in r}


#: The chart's panels: the result column each shows, and the factor to its unit.
PANELS = {
    "Δ success (points)": ("passed", 100.0),
    "Δ cost per trial (USD)": ("cost_usd", 1.0),
    "Δ agents per trial": ("agents", 1.0),
}


def _differences(
    frame: pl.DataFrame, variant: str, column: str, baseline: str = "never"
) -> tuple[list[str], list[float]]:
    """Tasks and paired differences ``variant - baseline`` of ``column``, one per (task,
    trial) both ran, in (task, trial) order: computed here from the trial rows."""
    rows = frame.to_dicts()
    base = {(r["task"], r["trial"]): float(r[column]) for r in rows if r["variant"] == baseline}
    mine = {(r["task"], r["trial"]): float(r[column]) for r in rows if r["variant"] == variant}
    keys = sorted(base.keys() & mine.keys())
    return [k[0] for k in keys], [mine[k] - base[k] for k in keys]


def test_paired_differences_show_unreliable_intervals_dashed_with_the_reason() -> None:
    """Each variant's difference from the baseline is the mean of its paired trial
    differences, its interval brackets it within the per-task extremes, and three tasks are
    too few: drawn dashed, with the reason."""
    frame = _frame()
    table = compare(frame)  # three tasks: too few for a bootstrap interval
    assert table.baseline == "never"
    spec = _spec(charts.experiments.paired_differences_chart(table.paired_frame(), simulated=True))
    assert "simulated" in _title(spec)
    rows = _intervals(spec)
    assert set(rows) == {(v, d) for v in ("always", "learned") for d in PANELS}
    # By hand from _frame (tasks a, b, c of complexity 1, 3, 5; two trials each): never fails
    # only on c; always spawns 5 agents at 0.05 x c USD, never 1 at 0.01 x c; learned spawns 3
    # on c (0.03 x 5 = 0.15 USD) and 1 elsewhere.
    by_hand = {
        ("always", "Δ success (points)"): 100 * 2 / 6,  # +1 on both trials of c
        ("always", "Δ cost per trial (USD)"): (0.04 + 0.12 + 0.20) * 2 / 6,  # 0.04 x c: 0.12
        ("always", "Δ agents per trial"): 4.0,
        ("learned", "Δ success (points)"): 100 * 2 / 6,
        ("learned", "Δ cost per trial (USD)"): 0.10 * 2 / 6,  # 0.15 - 0.05 on c only
        ("learned", "Δ agents per trial"): 2 * 2 / 6,  # 3 - 1 on c only
    }
    for (variant, difference), row in rows.items():
        column, scale = PANELS[difference]
        tasks, diffs = _differences(frame, variant, column)
        assert len(diffs) == 6
        assert row["estimate"] == pytest.approx(scale * sum(diffs) / len(diffs))
        assert row["estimate"] == pytest.approx(by_hand[(variant, difference)])
        per_task = {t: [d for d, u in zip(diffs, tasks, strict=True) if u == t] for t in tasks}
        means = [scale * sum(v) / len(v) for v in per_task.values()]
        # every resample is a mean over drawn tasks: it cannot leave their range
        assert min(means) - 1e-9 <= row["low"] <= row["estimate"] <= row["high"]
        assert row["high"] <= max(means) + 1e-9
        assert row["interval"] == "unreliable"
        assert "only 3 tasks" in row["note"]
    [interval_layer] = [
        layer for layer in spec["spec"]["layer"] if "strokeDash" in layer.get("encoding", {})
    ]
    dash = interval_layer["encoding"]["strokeDash"]
    assert dash["condition"] == {"test": "(datum.interval === 'unreliable')", "value": [4, 3]}
    assert dash["value"] == [1, 0]  # a trustworthy interval stays solid


def _bootstrap_95(diffs: list[float]) -> tuple[float, float]:
    """scipy's BCa 95% interval of the mean of ``diffs`` resampled pair by pair: 2,000
    resamples from numpy's generator seeded 0, as the comparison documents."""
    result = scipy_stats.bootstrap(
        (np.array(diffs),),
        lambda x, axis=-1: np.mean(x, axis=axis),
        vectorized=True,
        n_resamples=2000,
        method="BCa",
        rng=np.random.default_rng(0),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def test_paired_differences_of_trustworthy_intervals_are_plain() -> None:
    """Thirty tasks of varied outcomes: solid 95% intervals, at the mean paired difference
    and the bootstrap bounds computed here from the rows."""
    rng = random.Random(3)
    template = _frame().row(0, named=True)
    rows: list[dict[str, Any]] = []
    for n in range(30):
        for variant, p_pass in (("never", 0.5), ("always", 0.8)):
            rows.append(
                {
                    **template,
                    "seq": len(rows),
                    "variant": variant,
                    "task": f"core:t{n}",
                    "trial": 0,
                    "passed": rng.random() < p_pass,
                    "cost_usd": rng.random(),
                    "agents": rng.randint(1, 6),
                }
            )
    frame = pl.DataFrame(rows, schema=_frame().schema)
    table = compare(frame)
    intervals = _intervals(_spec(charts.experiments.paired_differences_chart(table.paired_frame())))
    assert set(intervals) == {("always", d) for d in PANELS}
    for (variant, difference), row in intervals.items():
        assert (row["interval"], row["note"]) == ("95% CI", "")
        column, scale = PANELS[difference]
        _, diffs = _differences(frame, variant, column)
        assert len(diffs) == 30
        assert row["estimate"] == pytest.approx(scale * sum(diffs) / 30)
        low, high = _bootstrap_95(diffs)
        assert (row["low"], row["high"]) == pytest.approx((scale * low, scale * high))


def test_paired_differences_of_scoring_have_no_agents_and_one_variant_has_none() -> None:
    table = compare(_frame("scoring"))
    chart = charts.experiments.paired_differences_chart(table.paired_frame(), scoring=True)
    differences = {d for _, d in _intervals(_spec(chart))}
    assert differences == {"Δ correct (points)", "Δ cost per trial (USD)"}
    alone = compare(_frame().filter(pl.col("variant") == "never"))
    empty = _spec(charts.experiments.paired_differences_chart(alone.paired_frame()))
    assert "nothing to compare" in json.dumps(empty)


def _long_learner(goals: int, pick: Any) -> pl.DataFrame:
    """A learner's ``goals`` goals alternating two buckets; ``pick(i)`` is goal i's arm."""
    rows = [
        {
            "seq": i,
            "variant": "learned",
            "policy": "learned",
            "task": f"core:t{i % 7}",
            "trial": i // 7,
            "passed": True,
            "learn_bucket": ("simple", "complex")[i % 2],
            "score_bucket": ("simple", "complex")[i % 2],
            "learn_arm": pick(i),
            "choice": pick(i),
            "strategy": pick(i),
            "simulated": True,
        }
        for i in range(1, goals + 1)
    ]
    return _choices_frame(rows)


def test_a_long_learner_run_charts_its_steps_not_every_goal() -> None:
    """3,000 goals (9,000 rows of shares) is past what altair takes as a data frame: the chart
    keeps the goals where a bucket's shares change, and draws the same steps. Oracle: the
    share of each arm among the last 4 choices of each bucket, counted here from the picks."""
    rng = random.Random(2)
    arms = ("direct", "decompose", "as_needed")
    picks = {}
    current = "direct"
    for i in range(1, 3001):
        if rng.random() < 0.02:  # long runs of one arm, as a learner that has settled
            current = rng.choice(arms)
        picks[i] = current
    spec = _spec(charts.learned_choices_chart(_long_learner(3000, picks.__getitem__), window=4))
    rows = _datasets(spec)
    assert 0 < len(rows) < 5000  # altair's limit for a data frame
    steps: dict[str, list[tuple[int, dict[str, float]]]] = {}
    for r in sorted(rows, key=lambda r: r["at"]):
        points = steps.setdefault(r["bucket"], [])
        if not points or points[-1][0] != r["at"]:
            points.append((r["at"], {}))
        points[-1][1][r["arm"]] = r["share"]
    seen: dict[str, list[str]] = {"simple": [], "complex": []}
    for goal in range(1, 3001):
        bucket = ("simple", "complex")[goal % 2]
        seen[bucket].append(picks[goal])
        window = seen[bucket][-4:]
        drawn = [shares for at, shares in steps[bucket] if at <= goal][-1]  # step-after
        assert drawn == {a: window.count(a) / len(window) for a in arms}, goal
    assert [steps[b][-1][0] for b in ("simple", "complex")] == [3001, 3001]  # to the end
    # a learner that changes its mind at every goal keeps every row, inline
    flip = charts.learned_choices_chart(_long_learner(2000, lambda i: arms[i % 3]), window=1)
    assert len(_datasets(_spec(flip))) == 3 * 2000 + 3 * 2


def _curve(passes: int) -> pl.DataFrame:
    rows = [
        {"world": "w", "variant": v, "learns": v == "learned", "pass": p, "trials": 3}
        | {"mean_reward": (p % 7) / 7}
        for v in ("learned", "always")
        for p in range(1, passes + 1)
    ]
    return pl.DataFrame(rows)


@pytest.mark.parametrize(("passes", "pointed"), [(5, True), (30, True), (31, False), (150, False)])
def test_a_learning_curve_marks_passes_only_when_few_and_shows_its_dashes(
    passes: int, pointed: bool
) -> None:
    """Points on every pass crowd out 150 passes' lines; the learns/fixed legend must draw
    strokes (a point symbol has no dash). Oracle: the pass counts chosen here."""
    from fleetlab.charts.experiments import reward_curve_chart

    spec = _spec(reward_curve_chart(_curve(passes), simulated=True))
    marks = [
        layer["mark"]["type"] if isinstance(layer["mark"], dict) else layer["mark"]
        for layer in spec["layer"]
    ]
    assert marks == (["line", "point"] if pointed else ["line"])
    dash = spec["layer"][0]["encoding"]["strokeDash"]
    assert dash["legend"]["symbolType"] == "stroke"
    assert dash["field"] == "kind"
    assert "SIMULATED" in json.dumps(spec["title"])
    assert sorted({r["pass"] for r in _datasets(spec)}) == list(range(1, passes + 1))
