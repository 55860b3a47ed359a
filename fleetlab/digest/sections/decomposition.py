"""How the work was split: agents per goal by true complexity, over-decomposed simple goals,
complex goals that failed without decomposing."""

from __future__ import annotations

from typing import Any

import altair as alt

from fleetlab.digest.sections._base import MarkdownView, Section
from fleetlab.digest.sections._charts import WIDTH, data, title
from fleetlab.digest.sections._format import (
    NONE,
    cell_id,
    cell_text,
    count,
    pct,
    plural,
    table,
)

__all__ = ["SECTION", "agents_per_goal_chart", "post_bucket"]

BUCKETS = {
    "simple": "Simple (complexity 1-2)",
    "medium": "Medium (complexity 3)",
    "complex": "Complex (complexity 4-5)",
    "unknown": "Free-form (complexity unknown)",
}
# (the post names buckets without their complexity range: every number in it is a metric)


def post_bucket(bucket: str) -> str:
    """A complexity bucket in the post's words (no complexity range: every number in the
    post is a metric)."""
    return "Free-form" if bucket == "unknown" else bucket.capitalize()


def _mean(value: Any) -> str:
    return NONE if value is None else f"{value:.2f}"


def _view(m: dict[str, Any]) -> MarkdownView:
    d = m["decomposition"]
    over, under = d["over_decomposed"], d["complex_failed_direct"]
    rows = [{**b, "label": BUCKETS.get(b["bucket"], b["bucket"])} for b in d["by_bucket"]]
    text = (
        f"{health(m)}\n\n"
        + table(
            rows,
            [
                ("label", "Goals", str),
                ("goals", "Count", count),
                ("decomposed", "Split", count),
                ("mean_agents", "Agents on average", _mean),
                ("max_agents", "Most agents", count),
                ("success_rate", "Succeeded", pct),
            ],
            what="kinds",
        )
        + f"\n\n**Over-decomposition**: {plural(over['count'], 'simple goal')} used more"
        " than one agent.\n\n"
        + table(
            over["items"],
            [
                ("title", "Goal", cell_text),
                ("complexity", "Complexity", count),
                ("agents", "Agents", count),
                ("trace_id", "Trace", cell_id),
            ],
            limit=10,
            listed=len(over["items"]),
            total=over["count"],
            what="goals",
        )
        + f"\n\n**Complex goals failed without decomposing**: {count(under['count'])}\n\n"
        + table(
            under["items"],
            [
                ("title", "Goal", cell_text),
                ("complexity", "Complexity", count),
                ("trace_id", "Trace", cell_id),
            ],
            limit=10,
            listed=len(under["items"]),
            total=under["count"],
            what="goals",
        )
    )
    return MarkdownView(text)


def health(m: dict[str, Any]) -> str:
    """Decomposition health in words."""
    d = m["decomposition"]
    over, under = d["over_decomposed"]["count"], d["complex_failed_direct"]["count"]
    buckets = {b["bucket"]: b for b in d["by_bucket"]}
    parts = []
    simple, complex_ = buckets.get("simple"), buckets.get("complex")
    if simple:
        parts.append(
            f"Simple goals mostly ran in one agent ({count(simple['mean_agents'])} agents on"
            f" average, {count(simple['decomposed'])} of {count(simple['goals'])} split)"
            if simple["decomposed"] * 2 < simple["goals"]
            else f"Simple goals were split too often ({count(simple['decomposed'])} of"
            f" {count(simple['goals'])})"
        )
    if complex_:
        parts.append(
            f"complex goals were split {plural(complex_['decomposed'], 'time')} out of"
            f" {count(complex_['goals'])} and {pct(complex_['success_rate'])} of them succeeded"
        )
    text = "; ".join(parts) + "." if parts else "No goal finished this week."
    if over or under:
        problems = []
        if over:
            problems.append(
                f"{plural(over, 'simple goal')} used more than one agent (over-decomposition)"
            )
        if under:
            problems.append(f"{plural(under, 'complex goal')} failed without decomposing")
        text += " Worth a look: " + "; ".join(problems) + "."
    else:
        text += " No simple goal was over-split and no complex goal failed for want of a split."
    return text


def _draft(m: dict[str, Any]) -> str:
    d = m["decomposition"]
    lines = [health(m), ""]
    for b in d["by_bucket"]:
        lines.append(
            f"- {post_bucket(b['bucket'])} goals: {plural(b['goals'], 'goal')},"
            f" {count(b['mean_agents'])} agents on average, {count(b['decomposed'])} split,"
            f" {pct(b['success_rate'])} succeeded."
        )
    return "\n".join(lines)


def _next_steps(m: dict[str, Any]) -> list[str]:
    d = m["decomposition"]
    steps = []
    if d["over_decomposed"]["count"]:
        steps.append(
            "Keep simple goals in one agent:"
            f" {plural(d['over_decomposed']['count'], 'was', 'were')} split this week (raise"
            " the decomposition threshold, or let the learner see more simple goals)."
        )
    if d["complex_failed_direct"]["count"]:
        steps.append(
            f"Split complex goals that fail when run directly"
            f" ({count(d['complex_failed_direct']['count'])} this week)."
        )
    return steps


def agents_per_goal_chart(metrics: dict[str, Any]) -> alt.Chart:
    """Agents per goal against the goal's true complexity (circle size: number of goals)."""
    rows = [
        {
            "complexity": str(p["complexity"]) if p["complexity"] is not None else "free-form",
            "agents": p["agents"],
            "goals": p["goals"],
        }
        for p in metrics["decomposition"]["agents_by_complexity"]
    ]
    order = ["1", "2", "3", "4", "5", "free-form"]
    chart: alt.Chart = (
        alt.Chart(data(rows), title=title("Agents per goal vs complexity", metrics))
        .mark_circle(opacity=0.7)
        .encode(
            x=alt.X(
                "complexity:O",
                sort=order,
                scale=alt.Scale(domain=order),
                axis=alt.Axis(labelAngle=0),
                title="true complexity",
            ),
            y=alt.Y("agents:Q", title="agents (root + sub-agents)"),
            size=alt.Size("goals:Q", title="goals"),
            color=alt.value("#4c78a8"),
            tooltip=["complexity:O", "agents:Q", "goals:Q"],
        )
        .properties(width=WIDTH, height=240)
    )
    return chart


def _charts(m: dict[str, Any]) -> dict[str, Any]:
    if not m["decomposition"]["agents_by_complexity"]:
        return {}
    return {"complexity": agents_per_goal_chart(m)}


SECTION = Section(
    name="decomposition",
    title="Decomposition health",
    heading="How the work was split",
    view=_view,
    draft=_draft,
    charts=_charts,
    next_steps=_next_steps,
    captions={"complexity": "Agents per goal vs true complexity"},
)
