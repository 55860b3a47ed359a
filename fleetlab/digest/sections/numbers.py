"""The numbers: the week's cohort (spawned, completed, failed, in flight), success rates, the
previous week, completion by spawn day, time to completion and the weekly trend."""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any

import altair as alt

from fleetlab.digest._common import COUNT_KEYS
from fleetlab.digest._trend import weekly_trend
from fleetlab.digest.sections._base import Load, MarkdownView, Section
from fleetlab.digest.sections._charts import SERIES_COLOR, WIDTH, data, title
from fleetlab.digest.sections._format import (
    NONE,
    count,
    duration,
    md_code,
    pct,
    plural,
    signed,
    table,
    usd,
)

__all__ = ["SECTION", "empty_week", "previous_has_data"]

LABELS = {
    "spawned": "Spawned (every agent)",
    "roots_spawned": "Root goals",
    "completed": "Completed",
    "failed": "Failed",
    "cancelled": "Cancelled",
    "in_flight": "Still in flight",
    "running": "\u2003running",
    "queued": "\u2003queued",
    "preempted": "\u2003preempted",
    "waiting_children": "\u2003waiting on sub-agents",
    "stale": "\u2003stale",
}


def empty_week(m: dict[str, Any]) -> bool:
    """Nothing at all happened in the week: no task spawned or finished, no model call."""
    fin = m["finished_in_week"]
    return not (m["counts"]["spawned"] or any(fin.values()) or m["cost"]["total"]["calls"])


def previous_has_data(m: dict[str, Any]) -> bool:
    return bool(m["previous"]["counts"]["spawned"])


def empty_notice(m: dict[str, Any]) -> str:
    """What an empty week says: the database or the week is probably wrong, naming both."""
    return (
        f"**No data.** The database {md_code(m.get('database') or 'unknown')} has no task"
        f" spawned or finished and no model call in {m['week']} ({m['zone']}, {m['start'][:10]}"
        f" to {m['end'][:10]}). The database or the week is probably wrong: check `--db`"
        " (or `$FLEETLAB_DB`) and `--week`; `fleetlab status` shows what the database holds."
    )


def by_end(m: dict[str, Any]) -> str:
    """When the figures stand: "by the end of the week", or "so far" for a week still in
    progress (``as_of`` is then now, and the week has not ended)."""
    return "by the end of the week" if m["complete"] else "so far"


def headline(m: dict[str, Any]) -> str:
    """The week's headline numbers in one sentence or two."""
    c, rate = m["counts"], m["success_rate"]
    total = m["cost"]["total"]
    rate_text = (
        f", a success rate of **{pct(rate['completed_over_finished'])}** of the tasks that finished"
        if rate["completed_over_finished"] is not None
        else ""
    )
    return (
        f"The fleet took on **{plural(c['roots_spawned'], 'goal')}** this week and spawned"
        f" {plural(c['spawned'], 'agent')} in all, sub-agents included: **{count(c['completed'])}"
        f" completed** and **{count(c['failed'])} failed**{rate_text}; {count(c['in_flight'])}"
        + (
            f" {'was' if c['in_flight'] == 1 else 'were'} still in flight when the week ended."
            if m["complete"]
            else f" {'is' if c['in_flight'] == 1 else 'are'} still in flight so far (the week is"
            " not over)."
        )
        + f" Model calls cost **{usd(total['cost_usd'] or 0)}**"
        f" ({plural(total['calls'], 'call')})."
    )


def _view(m: dict[str, Any]) -> MarkdownView:
    if empty_week(m):
        return MarkdownView(empty_notice(m))
    c, p = m["counts"], m["previous"]["counts"]
    simulated = " **Simulated data.**" if m["simulated"] else ""
    lines = [
        headline(m),
        "",
        f"{m['week']} ({m['zone']}), {m['start'][:10]} to {m['end'][:10]}; figures as of"
        f" {m['as_of']}.{simulated}",
        "",
    ]
    rates = (
        ("completed_over_finished", "Success rate (completed / finished)"),
        ("completed_over_spawned", "Completed / spawned"),
    )
    if previous_has_data(m):
        lines += [
            f"| | This week ({m['week']}) | Previous week ({m['previous']['week']}) | Change |",
            "|---|---:|---:|---:|",
        ]
        for key in COUNT_KEYS:
            lines.append(f"| {LABELS[key]} | {c[key]:,} | {p[key]:,} | {m['change'][key]:+,} |")
        for key, label in rates:
            delta = m["change"][f"{key}_pp"]
            now, before = m["success_rate"][key], m["previous"]["success_rate"][key]
            change = NONE if delta is None else f"{delta:+.1f} pp"
            lines.append(f"| {label} | {pct(now)} | {pct(before)} | {change} |")
    else:
        lines += [f"| | This week ({m['week']}) |", "|---|---:|"]
        lines += [f"| {LABELS[key]} | {c[key]:,} |" for key in COUNT_KEYS]
        lines += [f"| {label} | {pct(m['success_rate'][key])} |" for key, label in rates]
        lines += ["", f"_No data for the previous week ({m['previous']['week']})._"]
    ttc = m["time_to_completion"]
    lines += [
        "",
        f"Time to completion (Kaplan-Meier; tasks not completed {by_end(m)} count as"
        f" censored): median {duration(ttc['tasks']['median_s'])} per task,"
        f" {duration(ttc['goals']['median_s'])} per root goal.",
        "",
        f"**Completion by spawn day** (the share of each day's tasks completed {by_end(m)}):",
        "",
        table(
            m["cohorts"],
            [
                ("date", "Day", _day),
                ("spawned", "Spawned", count),
                ("completed", "Completed", count),
                ("failed", "Failed", count),
                ("in_flight", "In flight", count),
                ("completion_rate", "Completed so far", pct),
            ],
            what="days",
        ),
    ]
    return MarkdownView("\n".join(lines))


def _day(iso_date: Any) -> str:
    return f"{datetime.fromisoformat(str(iso_date)):%a %d %b}"


def _draft(m: dict[str, Any]) -> str:
    c, rate, prev, change = m["counts"], m["success_rate"], m["previous"], m["change"]
    out = [
        f"- **{count(c['completed'])} completed**, **{count(c['failed'])} failed**,"
        f" {count(c['cancelled'])} cancelled, **{count(c['in_flight'])} still in flight**"
        f" ({count(c['running'])} running, {count(c['queued'])} queued,"
        f" {count(c['preempted'])} preempted, {count(c['waiting_children'])} waiting on"
        f" sub-agents, {count(c['stale'])} stale), out of {count(c['spawned'])} agents"
        f" spawned for {plural(c['roots_spawned'], 'goal')}.",
    ]
    if rate["completed_over_finished"] is not None:
        out.append(
            f"- Success rate: **{pct(rate['completed_over_finished'])}** of the tasks that"
            f" finished; {pct(rate['completed_over_spawned'])} of everything spawned had"
            f" completed {by_end(m)}."
        )
    if previous_has_data(m):
        pc = prev["counts"]
        pp = change["completed_over_finished_pp"]
        out.append(
            f"- Against the previous week ({prev['week']}: {count(pc['spawned'])} spawned,"
            f" {count(pc['completed'])} completed, {count(pc['failed'])} failed):"
            f" {signed(change['spawned'])} spawned, {signed(change['completed'])} completed,"
            f" {signed(change['failed'])} failed"
            + (f"; success rate {signed(pp, ' pp')}." if pp is not None else ".")
        )
    else:
        out.append(f"- No data for the previous week ({prev['week']}) to compare with.")
    fin = m["finished_in_week"]
    out.append(
        f"- Finished during the week, whenever spawned: {count(fin['completed'])} completed,"
        f" {count(fin['failed'])} failed, {count(fin['cancelled'])} cancelled."
    )
    tasks, goals = m["time_to_completion"]["tasks"], m["time_to_completion"]["goals"]
    within = tasks["completed_within"]
    out.append(
        f"- Half the tasks completed within {duration(tasks['median_s'])} of being spawned"
        f" (goals: {duration(goals['median_s'])}); {pct(within['1h'])} within an hour,"
        f" {pct(within['24h'])} within a day."
    )
    best = max(m["cohorts"], key=lambda d: d["completion_rate"] or 0.0, default=None)
    if best is not None and best["completion_rate"] is not None:
        out.append(
            f"- Best day: {datetime.fromisoformat(best['date']):%A}"
            f" ({count(best['spawned'])} spawned, {pct(best['completion_rate'])} of them"
            f" completed {by_end(m)})."
        )
    return "\n".join(out)


def _next_steps(m: dict[str, Any]) -> list[str]:
    c = m["counts"]
    steps = []
    if c["stale"]:
        steps.append(
            f"Find out why the workers of {plural(c['stale'], 'stale task')} stopped"
            " heartbeating; reclaim or cancel them."
        )
    if c["in_flight"]:
        steps.append(
            f"Watch the {count(c['in_flight'])} tasks still in flight (oldest:"
            f" {_oldest(m)}): next week's time-to-completion curve shows whether they land."
        )
    return steps


def _oldest(m: dict[str, Any]) -> str:
    bins = [a["bin"] for a in m["in_flight_age"] if a["tasks"]]
    return bins[-1] if bins else NONE


def _load(load: Load, m: dict[str, Any]) -> None:
    b = load.bounds
    m["trend"] = weekly_trend(load.store, 12, b.window.zone, until=b.window)


# --- charts ---------------------------------------------------------------------------------


def daily_activity_chart(metrics: dict[str, Any]) -> alt.Chart:
    """Tasks spawned, completed and failed on each local day of the week (by event time)."""
    rows = [
        {"date": d["date"], "series": series, "tasks": d[series]}
        for d in metrics["daily"]
        for series in ("spawned", "completed", "failed")
    ]
    pick = alt.selection_point(fields=["series"], bind="legend")
    chart: alt.Chart = (
        alt.Chart(data(rows), title=title("Tasks per day", metrics))
        .mark_bar()
        .encode(
            x=alt.X("date:O", title="local day", axis=alt.Axis(labelAngle=0)),
            xOffset=alt.XOffset("series:N", sort=["spawned", "completed", "failed"]),
            y=alt.Y("tasks:Q", title="tasks"),
            color=SERIES_COLOR,
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
        alt.Chart(data(rows), title=title("Where this week's tasks stand", metrics))
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


AGE_BINS = [f"{lo}-{hi} h" for lo, hi in itertools.pairwise((0, 1, 6, 24, 48, 72, 120, 168))]


def in_flight_age_chart(metrics: dict[str, Any]) -> alt.Chart:
    """How long the tasks still in flight at ``as_of`` had been waiting, by status."""
    rows = metrics["in_flight_age"]
    chart: alt.Chart = (
        alt.Chart(data(rows), title=title("Age of in-flight tasks", metrics))
        .mark_bar()
        .encode(
            x=alt.X(
                "bin:O",
                sort=AGE_BINS,
                scale=alt.Scale(domain=AGE_BINS),
                axis=alt.Axis(labelAngle=0),
                title="age at the end of the week" if metrics["complete"] else "age so far",
            ),
            y=alt.Y("sum(tasks):Q", title="tasks"),
            color=alt.Color("status:N", title=None),
            tooltip=["bin:O", "status:N", alt.Tooltip("sum(tasks):Q", title="tasks")],
        )
        .properties(width=WIDTH, height=220)
    )
    return chart


def _ttc_rows(metrics: dict[str, Any]) -> list[dict[str, Any]]:
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
    return rows


def time_to_completion_chart(metrics: dict[str, Any]) -> alt.LayerChart:
    """Kaplan-Meier share completed by age (tasks and root goals), with its 95% band."""
    rows = _ttc_rows(metrics) or [
        {"series": "all tasks", "hours": 0, "completed": 0, "low": 0, "high": 0}
    ]
    base = alt.Chart(data(rows), title=title("Time to completion (Kaplan-Meier)", metrics)).encode(
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


def weekly_trend_chart(trend: list[dict[str, Any]], *, simulated: bool = False) -> alt.Chart:
    """Spawned / completed / failed per week (``fleetlab.digest.weekly_trend``)."""
    rows = [
        {"week": w["week"], "start": w["start"], "series": s, "tasks": w[s]}
        for w in trend
        for s in ("spawned", "completed", "failed")
    ]
    name = "Weekly trend" + (" (simulated)" if simulated else "")
    chart: alt.Chart = (
        alt.Chart(data(rows), title=name)
        .mark_line(point=True)
        .encode(
            x=alt.X("start:T", title="week"),
            y=alt.Y("tasks:Q"),
            color=SERIES_COLOR,
            tooltip=["week:N", "series:N", "tasks:Q"],
        )
        .properties(width=WIDTH, height=220)
        .interactive(bind_y=False)
    )
    return chart


def _charts(m: dict[str, Any]) -> dict[str, Any]:
    if empty_week(m):
        return {}
    charts: dict[str, Any] = {"funnel": status_funnel_chart(m), "daily": daily_activity_chart(m)}
    if _ttc_rows(m):
        charts["completion"] = time_to_completion_chart(m)
    if any(a["tasks"] for a in m["in_flight_age"]):
        charts["age"] = in_flight_age_chart(m)
    trend = m.get("trend") or []
    if sum(1 for w in trend if w["spawned"] or w["completed"] or w["failed"]) > 1:
        charts["trend"] = weekly_trend_chart(trend, simulated=m["simulated"])
    return charts


SECTION = Section(
    name="numbers",
    title="The numbers",
    heading="The numbers",
    view=_view,
    draft=_draft,
    charts=_charts,
    next_steps=_next_steps,
    load=_load,
    captions={
        "funnel": "Where this week's tasks stand",
        "daily": "Tasks spawned, completed and failed per day",
        "completion": "Time to completion (Kaplan-Meier)",
        "age": "Age of the tasks still in flight",
        "trend": "Tasks per week",
    },
)
