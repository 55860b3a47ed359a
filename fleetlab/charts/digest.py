"""Charts of the weekly digest, built from ``metrics.json`` (``fleetlab.digest.compute_metrics``),
and an offline renderer so they draw without the internet.

Each builder takes the metrics dict and returns an ``altair`` chart with tooltips; titles say
"simulated" when the week's model calls came from a simulated model.

Offline rendering: altair's default HTML output loads vega from a CDN. ``enable_offline()``
switches altair to a renderer whose output is a ``<div>`` plus a call to ``vegaEmbed``, and
returns an object that displays the vega, vega-lite and vega-embed JavaScript inline (from
``vl-convert``) once; put it in the first cell of a notebook. In JupyterLab and in the HTML
that nbconvert exports, the charts then draw and stay interactive with no network.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from functools import cache
from typing import Any, cast

import altair as alt

__all__ = [
    "agents_per_goal_chart",
    "cost_per_day_chart",
    "daily_activity_chart",
    "digest_charts",
    "enable_offline",
    "in_flight_age_chart",
    "learner_daily_chart",
    "status_funnel_chart",
    "time_to_completion_chart",
    "vega_script_html",
    "weekly_trend_chart",
]

WIDTH = 560
_counter = itertools.count()


def _data(rows: list[dict[str, Any]]) -> Any:
    return cast(Any, alt.Data)(values=rows)


def _title(text: str, metrics: dict[str, Any]) -> alt.TitleParams:
    suffix = " (simulated)" if metrics.get("simulated") else ""
    return alt.TitleParams(f"{text}{suffix}", subtitle=f"{metrics['week']} ({metrics['zone']})")


#: spawned / completed / failed keep their colours from chart to chart
_SERIES_COLOR = alt.Color(
    "series:N",
    sort=["spawned", "completed", "failed"],
    scale=alt.Scale(
        domain=["spawned", "completed", "failed"], range=["#4c78a8", "#54a24b", "#e45756"]
    ),
    title=None,
)


def daily_activity_chart(metrics: dict[str, Any]) -> alt.Chart:
    """Tasks spawned, completed and failed on each local day of the week (by event time)."""
    rows = [
        {"date": d["date"], "series": series, "tasks": d[series]}
        for d in metrics["daily"]
        for series in ("spawned", "completed", "failed")
    ]
    pick = alt.selection_point(fields=["series"], bind="legend")
    chart: alt.Chart = (
        alt.Chart(_data(rows), title=_title("Tasks per day", metrics))
        .mark_bar()
        .encode(
            x=alt.X("date:O", title="local day", axis=alt.Axis(labelAngle=0)),
            xOffset=alt.XOffset("series:N", sort=["spawned", "completed", "failed"]),
            y=alt.Y("tasks:Q", title="tasks"),
            color=_SERIES_COLOR,
            opacity=alt.condition(pick, alt.value(1.0), alt.value(0.25)),
            tooltip=["date:O", "series:N", "tasks:Q"],
        )
        .add_params(pick)
        .properties(width=WIDTH, height=240)
    )
    return chart


_IN_FLIGHT = ("running", "queued", "preempted", "waiting_children", "stale")


def status_funnel_chart(metrics: dict[str, Any]) -> alt.Chart:
    """The week's cohort: spawned, then where it stood at ``as_of`` (in flight split)."""
    c = metrics["counts"]
    order = ["spawned", "completed", "failed", "cancelled", "in flight"]
    parts = ["spawned", "completed", "failed", "cancelled", *_IN_FLIGHT]
    rows = [
        {"stage": part if part in order else "in flight", "part": part, "rank": i, "tasks": c[part]}
        for i, part in enumerate(parts)
    ]
    colors = ["#4c78a8", "#54a24b", "#e45756", "#9d755d", "#f58518", "#72b7b2", "#b279a2"]
    colors += ["#ff9da6", "#bab0ac"]
    chart: alt.Chart = (
        alt.Chart(_data(rows), title=_title("Where this week's tasks stand", metrics))
        .mark_bar()
        .encode(
            y=alt.Y("stage:N", sort=order, title=None),
            x=alt.X("sum(tasks):Q", title="tasks"),
            color=alt.Color(
                "part:N", scale=alt.Scale(domain=parts, range=colors), sort=parts, title=None
            ),
            order=alt.Order("rank:Q"),
            tooltip=["stage:N", "part:N", alt.Tooltip("sum(tasks):Q", title="tasks")],
        )
        .properties(width=WIDTH, height=180)
    )
    return chart


def _empty(text: str, metrics: dict[str, Any], title: str) -> alt.Chart:
    """A chart that says there is nothing to show (rather than empty axes)."""
    chart: alt.Chart = (
        alt.Chart(_data([{"text": text}]), title=_title(title, metrics))
        .mark_text(fontSize=14, color="#666")
        .encode(text="text:N")
        .properties(width=WIDTH, height=60)
    )
    return chart


def in_flight_age_chart(metrics: dict[str, Any]) -> alt.Chart:
    """How long the tasks still in flight at ``as_of`` had been waiting, by status."""
    rows = metrics["in_flight_age"]
    if not rows:
        return _empty(
            "No task was in flight at the end of the week.", metrics, "Age of in-flight tasks"
        )
    bins = [f"{lo}-{hi} h" for lo, hi in itertools.pairwise((0, 1, 6, 24, 48, 72, 120, 168))]
    chart: alt.Chart = (
        alt.Chart(_data(rows), title=_title("Age of in-flight tasks", metrics))
        .mark_bar()
        .encode(
            x=alt.X(
                "bin:O",
                sort=bins,
                scale=alt.Scale(domain=bins),
                axis=alt.Axis(labelAngle=0),
                title="age at the end of the week",
            ),
            y=alt.Y("sum(tasks):Q", title="tasks"),
            color=alt.Color("status:N", title=None),
            tooltip=["bin:O", "status:N", alt.Tooltip("sum(tasks):Q", title="tasks")],
        )
        .properties(width=WIDTH, height=220)
    )
    return chart


def time_to_completion_chart(metrics: dict[str, Any]) -> alt.LayerChart:
    """Kaplan-Meier share completed by age (tasks and root goals), with its 95% band."""
    rows = []
    for series, key in (("all tasks", "tasks"), ("root goals", "goals")):
        for p in metrics["time_to_completion"][key]["curve"]:
            rows.append(
                {
                    "series": series,
                    "hours": p["t_h"],
                    "completed": 1 - p["survival"],
                    "low": 1 - p["upper"] if p["upper"] is not None else None,
                    "high": 1 - p["lower"] if p["lower"] is not None else None,
                }
            )
    if not rows:
        rows = [{"series": "all tasks", "hours": 0, "completed": 0, "low": 0, "high": 0}]
    base = alt.Chart(
        _data(rows), title=_title("Time to completion (Kaplan-Meier)", metrics)
    ).encode(
        x=alt.X("hours:Q", title="hours since spawn"),
        color=alt.Color("series:N", title=None),
    )
    band = base.mark_area(opacity=0.15, interpolate="step-after").encode(y="low:Q", y2="high:Q")
    line = base.mark_line(interpolate="step-after").encode(
        y=alt.Y("completed:Q", title="share completed", axis=alt.Axis(format="%")),
        tooltip=[
            "series:N",
            alt.Tooltip("hours:Q", format=".2f"),
            alt.Tooltip("completed:Q", format=".1%"),
        ],
    )
    layered: alt.LayerChart = (
        (band + line).properties(width=WIDTH, height=260).interactive(bind_y=False)
    )
    return layered


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
        alt.Chart(_data(rows), title=_title("Agents per goal vs complexity", metrics))
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


def cost_per_day_chart(metrics: dict[str, Any]) -> alt.Chart:
    """Model spend per local day, with calls and tokens in the tooltip."""
    rows = metrics["cost"]["per_day"]
    chart: alt.Chart = (
        alt.Chart(_data(rows), title=_title("Cost per day", metrics))
        .mark_bar(color="#f58518")
        .encode(
            x=alt.X("date:O", title="local day", axis=alt.Axis(labelAngle=0)),
            y=alt.Y("cost_usd:Q", title="USD"),
            tooltip=[
                "date:O",
                alt.Tooltip("cost_usd:Q", format="$.4f"),
                "calls:Q",
                alt.Tooltip("tokens_in:Q", format=","),
                alt.Tooltip("tokens_out:Q", format=","),
            ],
        )
        .properties(width=WIDTH, height=220)
    )
    return chart


def learner_daily_chart(metrics: dict[str, Any]) -> alt.Chart:
    """What the learned policy chose each day, per complexity bucket."""
    rows = metrics["decomposition"]["learner"]["choices_daily"]
    if not rows:
        return _empty(
            "The learned policy made no choice this week.", metrics, "Learner choices per day"
        )
    chart: alt.Chart = (
        alt.Chart(_data(rows), title=_title("Learner choices per day", metrics))
        .mark_bar()
        .encode(
            x=alt.X("date:O", title=None, axis=alt.Axis(labelAngle=-45)),
            y=alt.Y("sum(goals):Q", title="goals"),
            color=alt.Color(
                "arm:N",
                scale=alt.Scale(domain=["direct", "decompose"], range=["#4c78a8", "#f58518"]),
                title=None,
            ),
            column=alt.Column("bucket:N", sort=["simple", "medium", "complex"], title=None),
            tooltip=["date:O", "bucket:N", "arm:N", alt.Tooltip("sum(goals):Q", title="goals")],
        )
        .properties(width=170, height=200)
    )
    return chart


def weekly_trend_chart(trend: list[dict[str, Any]], *, simulated: bool = False) -> alt.Chart:
    """Spawned / completed / failed per week (``fleetlab.digest.weekly_trend``)."""
    rows = [
        {"week": w["week"], "start": w["start"], "series": s, "tasks": w[s]}
        for w in trend
        for s in ("spawned", "completed", "failed")
    ]
    title = "Weekly trend" + (" (simulated)" if simulated else "")
    chart: alt.Chart = (
        alt.Chart(_data(rows), title=title)
        .mark_line(point=True)
        .encode(
            x=alt.X("start:T", title="week"),
            y=alt.Y("tasks:Q"),
            color=_SERIES_COLOR,
            tooltip=["week:N", "series:N", "tasks:Q"],
        )
        .properties(width=WIDTH, height=220)
        .interactive(bind_y=False)
    )
    return chart


def digest_charts(metrics: dict[str, Any]) -> dict[str, alt.TopLevelMixin]:
    """Every digest chart by file stem (``daily``, ``funnel``, ...), in report order."""
    return {
        "daily": daily_activity_chart(metrics),
        "funnel": status_funnel_chart(metrics),
        "age": in_flight_age_chart(metrics),
        "completion": time_to_completion_chart(metrics),
        "complexity": agents_per_goal_chart(metrics),
        "cost": cost_per_day_chart(metrics),
        "learner": learner_daily_chart(metrics),
    }


# --- offline rendering -----------------------------------------------------------------


@cache
def _vl_version() -> str:
    from altair.utils._importers import vl_version_for_vl_convert

    return str(vl_version_for_vl_convert())


@cache
def _bundle() -> str:
    import vl_convert

    return str(cast(Any, vl_convert).javascript_bundle(vl_version=_vl_version()))


def vega_script_html() -> str:
    """A ``<script>`` defining ``vegaEmbed`` (vega, vega-lite, vega-embed inline, ~1 MB).

    Wrapped in a function and guarded, so running it twice on one page is harmless.
    """
    return (
        '<script type="text/javascript">\n'
        "if (!window.vegaEmbed) { (function () {\n"
        + _bundle().replace("</script", "<\\/script")
        + "\n})(); }\n</script>"
    )


_DRAW = """<div id="{id}" class="fleetlab-chart"></div>
<script type="text/javascript">
(function () {{
  var spec = {spec};
  var script = document.currentScript;
  var el = script && script.previousElementSibling;
  if (!el || el.id !== "{id}") {{ el = document.getElementById("{id}"); }}
  function draw() {{
    vegaEmbed(el, spec, {{"mode": "vega-lite", "actions": false}}).catch(function (err) {{
      el.textContent = "chart error: " + err;
    }});
  }}
  if (window.vegaEmbed) {{ draw(); return; }}
  var tries = 0;
  var timer = setInterval(function () {{
    if (window.vegaEmbed) {{ clearInterval(timer); draw(); }}
    else if (++tries > 200) {{
      clearInterval(timer);
      el.textContent = "The chart library is not loaded: run the cell that calls "
        + "fleetlab.charts.enable_offline().";
    }}
  }}, 50);
}})();
</script>"""


def _offline_renderer(spec: dict[str, Any], **_: Any) -> dict[str, str]:
    text = json.dumps(spec, separators=(",", ":"), sort_keys=True)
    digest = hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:10]
    html = _DRAW.format(
        id=f"fleetlab-chart-{digest}-{next(_counter)}", spec=text.replace("</", "<\\/")
    )
    return {"text/html": html, "text/plain": "<altair chart>"}


class _OfflineScript:
    """Displays the vega JavaScript once (what ``enable_offline`` returns)."""

    def _repr_html_(self) -> str:
        return vega_script_html()

    def __repr__(self) -> str:
        return "<offline chart rendering enabled>"


def enable_offline() -> _OfflineScript:
    """Render altair charts without a CDN, in JupyterLab and in exported HTML.

    Returns:
        An object to display once, early in the notebook: it carries the chart library.
    """
    if "fleetlab-offline" not in alt.renderers.names():
        alt.renderers.register("fleetlab-offline", _offline_renderer)
    alt.renderers.enable("fleetlab-offline")
    return _OfflineScript()
