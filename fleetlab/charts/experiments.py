"""Charts of A/B experiments (``fleetlab.experiments``): every builder takes polars frames
(the results frame of ``experiments.load`` or a frame of ``experiments.compare``) and returns
an altair chart whose title says "simulated" when the model was."""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Sequence
from typing import Any, TypeAlias

import altair as alt
import polars as pl

__all__ = [
    "AnyChart",
    "agents_vs_complexity_chart",
    "confusion_chart",
    "learned_choices_chart",
    "paired_differences_chart",
    "scoring_calibration_chart",
    "success_by_bucket_chart",
    "success_vs_cost_chart",
]

BUCKET_ORDER = ["simple", "medium", "complex"]

#: What the builders return: a single, layered or faceted chart.
AnyChart: TypeAlias = alt.Chart | alt.LayerChart | alt.FacetChart


def _title(text: str, simulated: bool) -> alt.TitleParams:
    return alt.TitleParams(
        text + (" (simulated)" if simulated else ""),
        subtitle=["SIMULATED model: not a measurement of Claude"] if simulated else [],
        anchor="start",
    )


def _simulated(frame: pl.DataFrame, simulated: bool | None) -> bool:
    if simulated is not None:
        return simulated
    return "simulated" in frame.columns and bool(frame["simulated"].any())


def _color(order: Sequence[str], title: str = "variant") -> alt.Color:
    # one fixed domain: a variant keeps its colour from chart to chart
    return alt.Color(
        "variant:N", title=title, sort=list(order), scale=alt.Scale(domain=list(order))
    )


def _order(frame: pl.DataFrame, order: Sequence[str] | None) -> list[str]:
    if order is not None:
        return list(order)
    if "seq" in frame.columns:
        frame = frame.sort("seq")
    return list(dict.fromkeys(frame["variant"].to_list()))


def _values(frame: pl.DataFrame) -> pl.DataFrame:
    return frame  # altair embeds a polars frame's rows in the chart's own datasets


def success_vs_cost_chart(summary: pl.DataFrame, *, simulated: bool | None = None) -> AnyChart:
    """Success rate against mean cost per trial, one point per variant, with the Wilson 95%
    interval (vertical) and the cost's 95% interval (horizontal).

    Args:
        summary: ``Comparison.summary_frame()``.
        simulated: label the chart simulated (default: the frame's ``simulated`` column).
    """
    data = _values(summary)
    base = alt.Chart(data).encode(color=_color(summary["variant"].to_list()))
    points = base.mark_point(filled=True, size=90).encode(
        x=alt.X("mean_cost_usd:Q", title="mean cost per trial (USD)"),
        # zoomed on the intervals (they set the range): the differences are what matters
        y=alt.Y("success:Q", title="success rate", scale=alt.Scale(zero=False)),
        tooltip=[
            "variant:N",
            alt.Tooltip("success:Q", format=".1%"),
            alt.Tooltip("success_low:Q", format=".1%", title="95% low"),
            alt.Tooltip("success_high:Q", format=".1%", title="95% high"),
            alt.Tooltip("mean_cost_usd:Q", format="$.4f"),
            alt.Tooltip("mean_agents:Q", format=".2f"),
            "trials:Q",
        ],
    )
    y_err = base.mark_rule().encode(x="mean_cost_usd:Q", y="success_low:Q", y2="success_high:Q")
    x_err = base.mark_rule().encode(x="cost_low:Q", x2="cost_high:Q", y="success:Q")
    labels = base.mark_text(align="left", dx=7, dy=-7, fontSize=11).encode(
        x="mean_cost_usd:Q", y="success:Q", text="variant:N"
    )
    return alt.layer(y_err, x_err, points, labels).properties(
        title=_title("Success vs cost per variant (95% CIs)", _simulated(summary, simulated)),
        width=520,
        height=320,
    )


#: The paired differences charted: (column prefix, label, scale from the frame's unit).
_DIFFERENCES = (
    ("success", "Δ success (points)", 100.0),
    ("cost", "Δ cost per trial (USD)", 1.0),
    ("agents", "Δ agents per trial", 1.0),
)


def paired_differences_chart(
    paired: pl.DataFrame, *, simulated: bool = False, scoring: bool = False
) -> AnyChart:
    """Each variant minus the baseline, with its paired bootstrap 95% interval, one panel per
    difference (success in points, cost, agents) and a rule at zero.

    An interval flagged unreliable (``<quantity>_unreliable``: too few tasks, nearly all
    pairs agreeing, degenerate resamples) is drawn grey and dashed, says "unreliable" in its
    label and gives the reason in its tooltip: it is not a 95% interval.

    Args:
        paired: ``Comparison.paired_frame()``.
        simulated: label the chart simulated.
        scoring: a scoring experiment (no agents run: no agents panel; "correct", not success).
    """
    title = _title("Versus the baseline: paired differences (95% CIs)", simulated)
    shown = [
        (name, label.replace("success", "correct") if scoring else label, scale)
        for name, label, scale in _DIFFERENCES
        if not (scoring and name == "agents")
    ]
    rows = [
        {
            "variant": row["variant"],
            "difference": label,
            "estimate": row[f"{name}_diff"] * scale,
            "low": row[f"{name}_low"] * scale,
            "high": row[f"{name}_high"] * scale,
            "interval": "unreliable" if row[f"{name}_unreliable"] else "95% CI",
            "note": row[f"{name}_note"] or "",
        }
        for row in paired.iter_rows(named=True)
        for name, label, scale in shown
    ]
    if not rows:
        empty: alt.Chart = (
            alt.Chart(pl.DataFrame({"note": ["only one variant: nothing to compare"]}))
            .mark_text(size=14)
            .encode(text="note:N")
            .properties(title=title)
        )
        return empty
    unreliable = alt.datum.interval == "unreliable"
    base = alt.Chart().encode(
        y=alt.Y("variant:N", sort=list(dict.fromkeys(r["variant"] for r in rows)), title=None),
        tooltip=[
            "variant:N",
            "difference:N",
            alt.Tooltip("estimate:Q", format="+.4~f"),
            alt.Tooltip("low:Q", format="+.4~f", title="95% low"),
            alt.Tooltip("high:Q", format="+.4~f", title="95% high"),
            "interval:N",
            alt.Tooltip("note:N", title="why unreliable"),
        ],
    )
    # an unreliable interval is grey and dashed, whatever the variant
    colour = alt.condition(unreliable, alt.value("#999999"), alt.value("black"))
    zero = alt.Chart().mark_rule(color="lightgray").encode(x=alt.datum(0))
    bars = base.mark_rule(strokeWidth=2).encode(
        x=alt.X("low:Q", title=None),
        x2="high:Q",
        color=colour,
        strokeDash=alt.condition(unreliable, alt.value([4, 3]), alt.value([1, 0])),
    )
    points = base.mark_point(filled=True, size=70).encode(x="estimate:Q", color=colour)
    flags = (
        base.mark_text(align="left", dy=-10, fontSize=10, color="#999999")
        .encode(x="estimate:Q", text="flag:N")
        .transform_calculate(flag="datum.interval == 'unreliable' ? 'unreliable' : ''")
    )
    chart: alt.FacetChart = (
        alt.layer(zero, bars, points, flags, data=pl.DataFrame(rows))
        .properties(width=220, height=alt.Step(30))
        .facet(column=alt.Column("difference:N", title=None, sort=[d[1] for d in shown]))
        .resolve_scale(x="independent")
        .properties(title=title)
    )
    return chart


def agents_vs_complexity_chart(
    results: pl.DataFrame,
    *,
    order: Sequence[str] | None = None,
    simulated: bool | None = None,
) -> AnyChart:
    """Mean agents spawned per trial against the task's true complexity, per variant:
    over-decomposition shows as many agents on complexity 1-2.

    Args:
        results: the results frame (``experiments.load``).
        order: the variants in legend order (default: as they first finished).
    """
    frame = (
        results.group_by("variant", "complexity")
        .agg(
            pl.col("agents").mean().alias("mean_agents"),
            pl.col("agents").count().alias("trials"),
        )
        .sort("variant", "complexity")
    )
    base = alt.Chart(_values(frame)).encode(
        x=alt.X(
            "complexity:O",
            title="true complexity (1 = trivial, 5 = long job)",
            axis=alt.Axis(labelAngle=0),
        ),
        y=alt.Y("mean_agents:Q", title="agents spawned per trial (mean)"),
        color=_color(_order(results, order)),
        tooltip=[
            "variant:N",
            "complexity:O",
            alt.Tooltip("mean_agents:Q", format=".2f"),
            "trials:Q",
        ],
    )
    return alt.layer(base.mark_line(), base.mark_point(filled=True)).properties(
        title=_title("Agents per task vs true complexity", _simulated(results, simulated)),
        width=520,
        height=300,
    )


def success_by_bucket_chart(buckets: pl.DataFrame, *, simulated: bool = False) -> AnyChart:
    """Success per true-complexity bucket and variant, with Wilson 95% intervals.

    Args:
        buckets: ``Comparison.bucket_frame()``.
    """
    order = list(dict.fromkeys(buckets["variant"].to_list()))
    base = alt.Chart(_values(buckets)).encode(
        x=alt.X(
            "bucket:N",
            sort=BUCKET_ORDER,
            title="true complexity bucket",
            axis=alt.Axis(labelAngle=0),
        ),
        xOffset=alt.XOffset("variant:N", sort=order),
        color=_color(order),
    )
    bars = base.mark_bar().encode(
        y=alt.Y("success:Q", title="success rate", scale=alt.Scale(domain=[0, 1])),
        tooltip=[
            "variant:N",
            "bucket:N",
            alt.Tooltip("success:Q", format=".1%"),
            alt.Tooltip("success_low:Q", format=".1%"),
            alt.Tooltip("success_high:Q", format=".1%"),
            "trials:Q",
        ],
    )
    errors = base.mark_rule(color="black").encode(y="success_low:Q", y2="success_high:Q")
    return alt.layer(bars, errors).properties(
        title=_title("Success by complexity bucket (95% CIs)", simulated),
        width=520,
        height=300,
    )


def _choice_history(results: pl.DataFrame, window: int) -> list[dict[str, Any]]:
    learned = results.filter(pl.col("policy") == "learned").sort("seq")
    out: list[dict[str, Any]] = []
    recent: dict[tuple[str, str], deque[int]] = defaultdict(lambda: deque(maxlen=window))
    position: dict[str, int] = defaultdict(int)
    for row in learned.iter_rows(named=True):
        bucket = row["score_bucket"]
        if not bucket or row["choice"] is None:
            continue
        variant = row["variant"]
        position[variant] += 1
        choices = recent[(variant, bucket)]
        # the learner's pick, before ADaPT-style repairs: learn_arm when it learned
        picked = row["learn_arm"] or row["choice"]
        choices.append(1 if picked == "decompose" else 0)
        out.append(
            {
                "variant": variant,
                "bucket": bucket,
                "trial_order": position[variant],
                "decompose_share": sum(choices) / len(choices),
                "choice": picked,
                "task": row["task"],
                "passed": bool(row["passed"]),
            }
        )
    return out


def learned_choices_chart(
    results: pl.DataFrame, *, window: int = 8, simulated: bool | None = None
) -> AnyChart:
    """What the ``learned`` policy chose over time, per estimated-complexity bucket: the share
    of "decompose" among its last ``window`` choices in that bucket, trial by trial.

    Args:
        results: the results frame; rows of variants with policy ``learned`` are used.
        window: choices per bucket in the moving share.
    """
    history = _choice_history(results, window)
    chart: alt.Chart
    if not history:
        chart = (
            alt.Chart(pl.DataFrame({"note": ["no learned variant in this experiment"]}))
            .mark_text(size=14)
            .encode(text="note:N")
            .properties(
                title=_title("Learned policy: choices over time", _simulated(results, simulated))
            )
        )
        return chart
    chart = (
        alt.Chart(pl.DataFrame(history))
        .mark_line(point=True, interpolate="step-after")
        .encode(
            x=alt.X("trial_order:Q", title="learned variant's trials, in the order they ran"),
            y=alt.Y(
                "decompose_share:Q",
                title=f"share 'decompose' (last {window} in bucket)",
                scale=alt.Scale(domain=[0, 1]),
            ),
            color=alt.Color("bucket:N", sort=BUCKET_ORDER, title="estimated bucket"),
            tooltip=["variant:N", "bucket:N", "trial_order:Q", "choice:N", "task:N", "passed:N"],
        )
        .properties(
            title=_title(
                "Learned policy: decompose share per bucket over time",
                _simulated(results, simulated),
            ),
            width=520,
            height=260,
        )
    )
    if len({h["variant"] for h in history}) > 1:
        faceted: alt.FacetChart = chart.facet(row="variant:N")
        return faceted
    return chart


def scoring_calibration_chart(
    results: pl.DataFrame,
    *,
    order: Sequence[str] | None = None,
    simulated: bool | None = None,
) -> AnyChart:
    """Mean score against true complexity per prompt variant, with a 95% interval of the mean
    and the diagonal of a perfectly calibrated scorer.

    Args:
        results: the results frame of a scoring experiment.
        order: the prompt variants in legend order (default: as they first finished).
    """
    frame = (
        results.group_by("variant", "complexity")
        .agg(
            pl.col("score").mean().alias("mean_score"),
            pl.col("score").std().fill_null(0.0).alias("sd"),
            pl.col("score").count().alias("n"),
        )
        .with_columns(
            (1.96 * pl.col("sd") / pl.col("n").sqrt()).alias("half"),
        )
        .with_columns(
            (pl.col("mean_score") - pl.col("half")).alias("low"),
            (pl.col("mean_score") + pl.col("half")).alias("high"),
        )
        .sort("variant", "complexity")
    )
    diagonal = (
        alt.Chart(pl.DataFrame({"c": range(1, 6), "s": range(1, 6)}))
        .mark_line(color="gray", strokeDash=[4, 4])
        .encode(x="c:Q", y="s:Q")
    )
    base = alt.Chart(_values(frame)).encode(
        x=alt.X("complexity:Q", title="true complexity", scale=alt.Scale(domain=[0.5, 5.5])),
        color=_color(_order(results, order), title="prompt"),
    )
    line = base.mark_line(point=True).encode(
        y=alt.Y("mean_score:Q", title="score given (mean)", scale=alt.Scale(domain=[0.5, 5.5])),
        tooltip=["variant:N", "complexity:Q", alt.Tooltip("mean_score:Q", format=".2f"), "n:Q"],
    )
    bars = base.mark_rule().encode(y="low:Q", y2="high:Q")
    return alt.layer(diagonal, bars, line).properties(
        title=_title(
            "Scoring calibration: score vs true complexity", _simulated(results, simulated)
        ),
        width=480,
        height=320,
    )


def confusion_chart(confusion: pl.DataFrame, *, simulated: bool = False) -> AnyChart:
    """Each prompt's decisions against the labels, as counts (positive = decompose).

    Args:
        confusion: ``Comparison.confusion_frame()``.
    """
    cells = []
    for row in confusion.iter_rows(named=True):
        for column, label, decided in (
            ("true_positive", "decompose", "decompose"),
            ("false_negative", "decompose", "direct"),
            ("false_positive", "direct", "decompose"),
            ("true_negative", "direct", "direct"),
        ):
            cells.append(
                {"variant": row["variant"], "label": label, "decided": decided, "n": row[column]}
            )
    base = alt.Chart(pl.DataFrame(cells)).encode(
        x=alt.X("decided:N", title="prompt decided", sort=["decompose", "direct"]),
        y=alt.Y("label:N", title="label (true complexity)", sort=["decompose", "direct"]),
    )
    heat = base.mark_rect().encode(color=alt.Color("n:Q", title="trials"))
    text = base.mark_text(fontSize=13).encode(text="n:Q")
    return (
        alt.layer(heat, text)
        .properties(width=140, height=140)
        .facet(column=alt.Column("variant:N", title=None))
        .properties(title=_title("Decisions vs labels", simulated))
    )
