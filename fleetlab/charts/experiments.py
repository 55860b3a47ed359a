"""Charts of A/B experiments (``fleetlab.experiments``): every builder takes polars frames
(the results frame of ``experiments.load`` or a frame of ``experiments.compare``) and returns
an altair chart whose title says "simulated" when the model was."""

from __future__ import annotations

import math
from collections import defaultdict, deque
from collections.abc import Sequence
from itertools import groupby
from typing import Any, TypeAlias

import altair as alt
import polars as pl

from fleetlab.charts._tables import SIMULATED_NOTE, says_simulated

__all__ = [
    "AnyChart",
    "agents_vs_complexity_chart",
    "confusion_chart",
    "learned_choices_chart",
    "paired_differences_chart",
    "place_labels",
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
        subtitle=[SIMULATED_NOTE] if simulated else [],
        anchor="start",
    )


def _simulated(frame: pl.DataFrame, simulated: bool | None) -> bool:
    if simulated is not None:
        return simulated
    return says_simulated(frame)


def _color(order: Sequence[str], title: str = "variant", *, legend: bool = True) -> alt.Color:
    # The legend lists variants in ``order``; the colours follow the names in sorted order,
    # so a variant has one colour in every chart of a report, whichever order each uses.
    return alt.Color(
        "variant:N",
        title=title,
        sort=list(order),
        scale=alt.Scale(domain=sorted(order)),
        legend=alt.Undefined if legend else None,
    )


def _order(frame: pl.DataFrame, order: Sequence[str] | None) -> list[str]:
    if order is not None:
        return list(order)
    if "seq" in frame.columns:
        frame = frame.sort("seq")
    return list(dict.fromkeys(frame["variant"].to_list()))


def _values(frame: pl.DataFrame) -> pl.DataFrame:
    return frame  # altair embeds a polars frame's rows in the chart's own datasets


#: The frontier chart's plot area in pixels, and the label font: the labels are placed in
#: pixels, so the chart's size and the scales' domains are fixed when it is built.
FRONTIER_WIDTH = 860
FRONTIER_HEIGHT = 330
LABEL_FONT_SIZE = 12
#: A generous width per character of the label font (sans-serif averages ~0.55 em): a box
#: estimated wider than the text keeps real labels apart.
_CHAR_W = 0.62 * LABEL_FONT_SIZE
_LABEL_H = LABEL_FONT_SIZE + 4
_POINT_R = 7.0


def _padded(low: float, high: float, share: float = 0.12) -> tuple[float, float]:
    if not (math.isfinite(low) and math.isfinite(high)):
        return 0.0, 1.0
    span = high - low if high > low else max(abs(high), 1e-3) * 0.2
    return low - span * share, high + span * share


Box = tuple[float, float, float, float]  # left, top, right, bottom (pixels)


def _overlaps(a: Box, b: Box, margin: float = 2.0) -> bool:
    return not (
        a[2] + margin <= b[0]
        or b[2] + margin <= a[0]
        or a[3] + margin <= b[1]
        or b[3] + margin <= a[1]
    )


def place_labels(
    points: Sequence[tuple[float, float]],
    texts: Sequence[str],
    *,
    width: float = FRONTIER_WIDTH,
    height: float = FRONTIER_HEIGHT,
) -> list[Box]:
    """Boxes for labels beside points (pixels, y down) that overlap no other label, no point
    and stay inside the plot: each label tries spots around its point, nearest first, in a
    fixed order, and takes the first free one (deterministic: same input, same places).

    A label that finds no free spot takes the one overlapping least (never seen with a
    dozen variants on the chart's size)."""
    dots = [(x - _POINT_R, y - _POINT_R, x + _POINT_R, y + _POINT_R) for x, y in points]
    placed: list[Box] = []
    out: list[Box] = [(0.0, 0.0, 0.0, 0.0)] * len(points)
    order = sorted(range(len(points)), key=lambda i: (points[i][1], points[i][0], i))
    for i in order:
        x, y = points[i]
        w, h = len(texts[i]) * _CHAR_W + 4, float(_LABEL_H)
        best: tuple[int, Box] | None = None
        for r in (9.0, 18.0, 30.0, 44.0, 60.0, 80.0, 105.0):
            for dx, dy in ((1, -1), (1, 1), (-1, -1), (-1, 1), (1, 0), (-1, 0), (0, -1), (0, 1)):
                left = x + dx * r if dx > 0 else x - w + dx * r if dx < 0 else x - w / 2
                top = y + dy * r if dy > 0 else y - h + dy * r if dy < 0 else y - h / 2
                box = (left, top, left + w, top + h)
                if box[0] < 0 or box[1] < 0 or box[2] > width or box[3] > height:
                    continue
                clashes = sum(_overlaps(box, o) for o in placed) + sum(
                    _overlaps(box, d, 0.0) for d in dots
                )
                if best is None or clashes < best[0]:
                    best = (clashes, box)
                if clashes == 0:
                    break
            if best is not None and best[0] == 0:
                break
        box = best[1] if best is not None else (x, y, x + w, y + h)
        placed.append(box)
        out[i] = box
    return out


def success_vs_cost_chart(summary: pl.DataFrame, *, simulated: bool | None = None) -> AnyChart:
    """The frontier: success rate against mean cost per trial, one point per variant, with
    the Wilson 95% interval (vertical) and the cost's 95% interval (horizontal).

    A variant is *dominated* when another has at least its success at no more cost (and is
    better in one): it is drawn hollow and labelled so; the others are joined by the frontier
    line. Labels are placed beside their points so that none overlaps another label or a
    point (``place_labels``); the colours match the other charts' (no legend needed).

    Args:
        summary: ``Comparison.summary_frame()`` (its ``dominated`` column is used when
            present, else dominance is worked out from the estimates).
        simulated: label the chart simulated (default: the frame's ``simulated`` column).
    """
    rows = list(summary.iter_rows(named=True))
    order = [r["variant"] for r in rows]
    for r in rows:
        if "dominated" not in r or r["dominated"] is None:
            r["dominated"] = any(
                o is not r
                and o["success"] >= r["success"]
                and o["mean_cost_usd"] <= r["mean_cost_usd"]
                and (o["success"] > r["success"] or o["mean_cost_usd"] < r["mean_cost_usd"])
                for o in rows
            )

    def finite(values: list[Any]) -> list[float]:
        return [float(v) for v in values if v is not None and math.isfinite(v)]

    xs = finite([r["cost_low"] for r in rows] + [r["cost_high"] for r in rows])
    xs += finite([r["mean_cost_usd"] for r in rows])
    ys = finite([r["success_low"] for r in rows] + [r["success_high"] for r in rows])
    x0, x1 = _padded(min(xs, default=0.0), max(xs, default=1.0))
    y0, y1 = _padded(min(ys, default=0.0), max(ys, default=1.0))
    x0 = max(x0, 0.0)

    def px(x: float) -> float:
        return (x - x0) / (x1 - x0) * FRONTIER_WIDTH

    def py(y: float) -> float:
        return (y1 - y) / (y1 - y0) * FRONTIER_HEIGHT

    texts = [r["variant"] + (" (dominated)" if r["dominated"] else "") for r in rows]
    points = [(px(r["mean_cost_usd"]), py(r["success"])) for r in rows]
    boxes = place_labels(points, texts)
    data = []
    for r, text, box, (x, y) in zip(rows, texts, boxes, points, strict=True):
        # the leader line ends at the label's nearest edge
        ex = min(max(x, box[0]), box[2])
        ey = min(max(y, box[1]), box[3])
        data.append(
            {
                **{k: r.get(k) for k in _FRONTIER_COLUMNS},
                "dominated": bool(r["dominated"]),
                "label": text,
                "label_x": x0 + box[0] / FRONTIER_WIDTH * (x1 - x0),
                "label_y": y1 - (box[1] + box[3]) / 2 / FRONTIER_HEIGHT * (y1 - y0),
                "leader_x": x0 + ex / FRONTIER_WIDTH * (x1 - x0),
                "leader_y": y1 - ey / FRONTIER_HEIGHT * (y1 - y0),
                "far": math.hypot(ex - x, ey - y) > _POINT_R + 4,
            }
        )
    frontier = sorted(
        (d for d in data if not d["dominated"]), key=lambda d: (d["mean_cost_usd"], d["success"])
    )
    frame = pl.DataFrame(data)
    colour = _color(order, legend=False)
    x_scale = alt.Scale(domain=[x0, x1], nice=False, zero=False)
    y_scale = alt.Scale(domain=[y0, y1], nice=False, zero=False)
    x_enc = alt.X(
        "mean_cost_usd:Q",
        title="mean cost per trial (USD; bars: 95% CI)",
        scale=x_scale,
        axis=alt.Axis(format="$.3f"),
    )
    y_enc = alt.Y(
        "success:Q",
        title="success rate (bars: Wilson 95% CI)",
        scale=y_scale,
        # whole percents repeat on a narrow range (98% to 100%): one decimal there
        axis=alt.Axis(format=".0%" if y1 - y0 >= 0.08 else ".1%"),
    )
    base = alt.Chart(frame)
    line = (
        alt.Chart(pl.DataFrame(frontier, schema=frame.schema) if frontier else frame.head(0))
        .mark_line(color="#bbbbbb", strokeDash=[6, 4])
        .encode(x=x_enc, y=y_enc, order="mean_cost_usd:Q")
    )
    y_err = base.mark_rule(strokeWidth=1.5).encode(
        x=alt.X("mean_cost_usd:Q", scale=x_scale),
        y=alt.Y("success_low:Q", scale=y_scale),
        y2="success_high:Q",
        color=colour,
    )
    x_err = base.mark_rule(strokeWidth=1.5).encode(
        x=alt.X("cost_low:Q", scale=x_scale),
        x2="cost_high:Q",
        y=alt.Y("success:Q", scale=y_scale),
        color=colour,
    )
    points_layer = base.mark_point(size=120, strokeWidth=2, opacity=1).encode(
        x=x_enc,
        y=y_enc,
        color=colour,
        fill=alt.condition(alt.datum.dominated, alt.value("white"), colour),
        tooltip=[
            "variant:N",
            alt.Tooltip("success:Q", format=".1%"),
            alt.Tooltip("success_low:Q", format=".1%", title="95% low"),
            alt.Tooltip("success_high:Q", format=".1%", title="95% high"),
            alt.Tooltip("mean_cost_usd:Q", format="$.4f", title="cost/trial"),
            alt.Tooltip("cost_low:Q", format="$.4f", title="cost 95% low"),
            alt.Tooltip("cost_high:Q", format="$.4f", title="cost 95% high"),
            "dominated:N",
            "trials:Q",
        ],
    )
    leaders = (
        base.transform_filter(alt.datum.far)
        .mark_rule(color="#999999", strokeWidth=0.8)
        .encode(
            x=alt.X("mean_cost_usd:Q", scale=x_scale),
            y=alt.Y("success:Q", scale=y_scale),
            x2="leader_x:Q",
            y2="leader_y:Q",
        )
    )
    labels = base.mark_text(
        align="left", baseline="middle", dx=2, fontSize=LABEL_FONT_SIZE, fontWeight="bold"
    ).encode(
        x=alt.X("label_x:Q", scale=x_scale),
        y=alt.Y("label_y:Q", scale=y_scale),
        text="label:N",
        color=alt.value("#333333"),  # readable on white whatever the variant's colour
    )
    sim = _simulated(summary, simulated)
    title = alt.TitleParams(
        "Success vs cost per trial: the frontier" + (" (simulated)" if sim else ""),
        subtitle=([SIMULATED_NOTE] if sim else [])
        + [
            "hollow = dominated (another variant has at least its success for less); "
            "dashed line = the frontier"
        ],
        anchor="start",
    )
    return alt.layer(line, y_err, x_err, leaders, points_layer, labels).properties(
        title=title, width=FRONTIER_WIDTH, height=FRONTIER_HEIGHT
    )


_FRONTIER_COLUMNS = (
    "variant",
    "trials",
    "success",
    "success_low",
    "success_high",
    "mean_cost_usd",
    "cost_low",
    "cost_high",
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


#: The learner's arms in legend and stacking order, and their colours: fixed whatever the
#: data, and the colours of the fixed-strategy variants that play each arm in the shipped
#: worlds experiment (never = direct, always = decompose, as_needed), in altair's default
#: palette, so an arm reads as the same thing from chart to chart.
ARM_COLOURS = {"direct": "#4c78a8", "decompose": "#f58518", "as_needed": "#72b7b2"}
#: The facet of goals the learner did not score (no bucket: they taught it nothing).
NOT_SCORED = "not scored"


def _choice_history(results: pl.DataFrame, window: int) -> list[dict[str, Any]]:
    """One row per (goal of a learning variant, arm): the arm's share among the last
    ``window`` goals of that variant (and world) in the goal's estimated bucket."""
    from fleetlab.experiments._definition import learns

    learning = {p for p in results["policy"].unique().to_list() if p and learns(p)}
    learned = results.filter(pl.col("policy").is_in(learning)).sort("seq")
    worlds = "world" in learned.columns and learned["world"].n_unique() > 1
    arms = list(ARM_COLOURS)
    extra = sorted(
        {a for a in [*learned["learn_arm"].to_list(), *learned["choice"].to_list()] if a}
        - set(arms)
    )
    arms += extra  # an arm this chart does not know yet still shows, in the default colours
    out: list[dict[str, Any]] = []
    recent: dict[tuple[str, str], deque[str]] = defaultdict(lambda: deque(maxlen=window))
    position: dict[str, int] = defaultdict(int)
    last: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in learned.iter_rows(named=True):
        # the learner's pick (learn_arm; before ADaPT-style repairs), credited to its bucket;
        # a goal it did not score has neither: the strategy it played shows instead (results
        # from before the ``strategy`` column: what ran first, ``choice``)
        bucket = row["learn_bucket"] or row["score_bucket"] or NOT_SCORED
        picked = row["learn_arm"] or row.get("strategy") or row["choice"]
        if picked is None:
            continue  # the goal ended before any decision
        series = f"{row['variant']} in {row['world']}" if worlds else row["variant"]
        position[series] += 1
        choices = recent[(series, bucket)]
        choices.append(picked)
        low = 0.0
        rows = []
        for order, arm in enumerate(arms):
            share = choices.count(arm) / len(choices)
            rows.append(
                {
                    "series": series,
                    "bucket": bucket,
                    "goal": position[series],
                    "at": position[series],  # where the step starts; it lasts one goal
                    "arm": arm,
                    "arm_order": order,
                    "share": share,
                    # stacked here, not by the chart: a bucket's shares hold until its next
                    # goal, with no zeros drawn at the other buckets' goals in between
                    "low": low,
                    "high": low + share,
                    "of": len(choices),
                    "choice": picked,
                    "task": row["task"],
                    "passed": bool(row["passed"]),
                }
            )
            low += share
        out.extend(rows)
        last[(series, bucket)] = rows
    for (series, _), rows in last.items():  # each bucket's last shares run to the series' end
        out.extend({**r, "at": position[series] + 1} for r in rows)
    return out


#: Rows above which the choices chart keeps only the goals where a bucket's shares change
#: (altair refuses data frames of more than 5,000 rows by default, to keep notebooks light).
CHOICE_ROWS = 5000


def _steps_only(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``history`` without the goals whose shares equal their bucket's previous ones: a
    step-after area draws the same steps from the rows that remain (each holds until the
    next row of its bucket). A series' closing rows (``at`` past the goal) always stay."""
    kept: list[dict[str, Any]] = []
    previous: dict[tuple[str, str], tuple[float, ...]] = {}
    for _, group in groupby(history, key=lambda r: (r["series"], r["bucket"], r["goal"], r["at"])):
        rows = list(group)
        first = rows[0]
        key = (first["series"], first["bucket"])
        shares = tuple(r["share"] for r in rows)
        if first["at"] != first["goal"] or previous.get(key) != shares:
            kept.extend(rows)
        previous[key] = shares
    return kept


def learned_choices_chart(
    results: pl.DataFrame, *, window: int = 8, simulated: bool | None = None
) -> AnyChart:
    """What each learning variant chose over time, per estimated-complexity bucket: at each
    of its goals, the share of every arm (direct, decompose, as_needed) among its last
    ``window`` goals in that goal's bucket, stacked (the shares sum to 1). One facet row per
    bucket, and one for the goals it did not score (the strategy each played); one facet column per
    learning variant (and world, when ``results`` spans several worlds). A long run (past
    ``CHOICE_ROWS`` rows) keeps only the goals where a bucket's shares change: the same steps.

    Args:
        results: the results frame; rows of variants whose policy learns are used.
        window: goals per bucket in the moving share.
    """
    if window < 1:
        raise ValueError(f"window must be at least 1, got {window}")
    history = _choice_history(results, window)
    if len(history) > CHOICE_ROWS:  # a long run: the steps, not every goal
        history = _steps_only(history)
    sim = _simulated(results, simulated)
    if not history:
        note: alt.Chart = (
            alt.Chart(pl.DataFrame({"note": ["no learned variant in this experiment"]}))
            .mark_text(size=14)
            .encode(text="note:N")
            .properties(title=_title("Learned policy: choices over time", sim))
        )
        return note
    data = pl.DataFrame(history)
    arms = data.sort("arm_order")["arm"].unique(maintain_order=True).to_list()
    known = [a for a in arms if a in ARM_COLOURS]
    scale = alt.Scale(
        domain=arms,
        range=[ARM_COLOURS[a] for a in known]
        + ["#bab0ac", "#9d755d", "#b279a2"][: len(arms) - len(known)],
    )
    buckets = [b for b in [*BUCKET_ORDER, NOT_SCORED] if b in set(data["bucket"].to_list())]
    buckets += sorted(set(data["bucket"].to_list()) - set(buckets))
    series = data["series"].unique(maintain_order=True).to_list()
    # still too many (a learner that keeps changing its mind): inline values, which altair
    # does not limit; the HTML is larger, the chart the same
    source = data if data.height <= CHOICE_ROWS else alt.InlineData(values=history)
    chart = (
        alt.Chart(source)
        .mark_area(interpolate="step-after")
        .encode(
            x=alt.X(
                "at:Q",
                title="the learner's goals, in the order they ran",
                scale=alt.Scale(nice=False),
                axis=alt.Axis(format="d", tickMinStep=1),
            ),
            y=alt.Y(
                "low:Q",
                title=f"share of last {window}",
                scale=alt.Scale(domain=[0, 1]),
                axis=alt.Axis(format="%", tickCount=3),
            ),
            y2="high:Q",
            color=alt.Color(
                "arm:N",
                title="arm",
                sort=arms,
                scale=scale,
                legend=alt.Legend(orient="top", direction="horizontal"),
            ),
            tooltip=[
                "series:N",
                "bucket:N",
                "goal:Q",
                "choice:N",
                "task:N",
                "passed:N",
                "arm:N",
                alt.Tooltip("share:Q", format=".0%"),
                alt.Tooltip("of:Q", title="goals in window"),
            ],
        )
        .properties(width=520 if len(series) == 1 else 300, height=80)
    )
    facet: dict[str, Any] = {
        "row": alt.Row(
            "bucket:N",
            sort=buckets,
            title="estimated complexity bucket",
            header=alt.Header(labelAngle=0, labelAlign="left", labelFontWeight="bold"),
        )
    }
    if len(series) > 1:
        facet["column"] = alt.Column("series:N", sort=series, title=None)
    faceted: alt.FacetChart = chart.facet(**facet, spacing=8).properties(
        title=_title(
            f"Learned policy: share of each arm among its last {window} choices per bucket",
            sim,
        )
    )
    return faceted


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


#: The most passes a learning curve marks with a point each.
_MOST_POINTED_PASSES = 30


def reward_curve_chart(
    curve: pl.DataFrame, *, objective: Any = None, simulated: bool = False
) -> AnyChart:
    """Learning curves: mean reward per pass over the tasks, one line per variant, the
    variants that learn drawn solid and the fixed strategies dashed (their passes differ only
    by chance: the learner should climb towards the best of them).

    Args:
        curve: ``fleetlab.experiments._worlds.learning_curve_frame`` of one world.
        objective: the ``Objective`` rewards were computed with (names the axis).
    """
    word = str(getattr(objective, "name", "reward"))
    data = curve.with_columns(
        pl.when(pl.col("learns")).then(pl.lit("learns")).otherwise(pl.lit("fixed")).alias("kind")
    )
    order = data["variant"].unique(maintain_order=True).to_list()
    base = alt.Chart(data).encode(
        # Quantitative, not ordinal: 150 passes would be 150 crowded labels.
        x=alt.X(
            "pass:Q",
            title="pass over the tasks",
            axis=alt.Axis(format="d", tickMinStep=1),
            scale=alt.Scale(zero=False, nice=False),
        ),
        y=alt.Y("mean_reward:Q", title=f"mean {word} per trial", scale=alt.Scale(zero=False)),
        color=_color(order),
        tooltip=["variant:N", "pass:Q", "trials:Q", alt.Tooltip("mean_reward:Q", format=".3f")],
    )
    lines = base.mark_line().encode(
        strokeDash=alt.StrokeDash(
            "kind:N",
            title="",
            sort=["learns", "fixed"],
            # Drawn as strokes: a point symbol would not show the dash pattern.
            legend=alt.Legend(orient="bottom", symbolType="stroke", symbolStrokeColor="black"),
        )
    )
    # A point per pass helps a short run; past a few dozen passes the points hide the lines.
    layers = [lines]
    if data["pass"].n_unique() <= _MOST_POINTED_PASSES:
        layers.append(base.mark_point(filled=True))
    return alt.layer(*layers).properties(
        title=_title(f"Learning curve: mean {word} per pass", simulated), width=520, height=260
    )
