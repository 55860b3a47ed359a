"""Markdown views of the metrics for the notebook (rendered by JupyterLab and nbconvert)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fleetlab.digest._common import COUNT_KEYS
from fleetlab.digest._factcheck import FactCheck
from fleetlab.telemetry import redact

if TYPE_CHECKING:
    from fleetlab.digest._traces import TracePages

__all__ = [
    "MarkdownView",
    "cost_view",
    "decomposition_view",
    "draft_view",
    "failures_view",
    "integrity_view",
    "numbers_view",
    "shipped_view",
]

NONE = "\u2013"  # an en dash for "no value"
#: Rows shown per table in the notebook (metrics.json keeps more).
ROWS = 25


@dataclass(frozen=True, slots=True)
class MarkdownView:
    """Markdown that notebooks render (``_repr_markdown_``) and scripts print."""

    text: str

    def _repr_markdown_(self) -> str:
        return redact(self.text)  # a notebook's saved outputs are published

    def __str__(self) -> str:
        return redact(self.text)

    def linked(self, traces: TracePages | None) -> MarkdownView:
        """This view with each id it names that has a trace page (``write_trace_pages``)
        written as a link to that page."""
        return self if traces is None else MarkdownView(traces.link(self.text))


def _cell(value: Any) -> str:
    if value is None:
        return NONE
    if isinstance(value, float):
        return f"{value:,.4f}".rstrip("0").rstrip(".") if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return " ".join(str(value).split()).replace("|", "\\|")


def _table(rows: list[dict[str, Any]], columns: list[str], limit: int = ROWS) -> str:
    if not rows:
        return "_none_"
    head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
    body = "\n".join(
        "| " + " | ".join(_cell(r.get(c)) for c in columns) + " |" for r in rows[:limit]
    )
    more = f"\n\n_{len(rows) - limit:,} more in metrics.json_" if len(rows) > limit else ""
    return head + body + more


def _pct(value: float | None) -> str:
    return NONE if value is None else f"{100 * value:.1f}%"


def numbers_view(m: dict[str, Any]) -> MarkdownView:
    """Headline counts for the week and the previous one, and both success rates."""
    c, p = m["counts"], m["previous"]["counts"]
    simulated = " **Simulated data.**" if m["simulated"] else ""
    lines = [
        f"**{m['week']}** ({m['zone']}), {m['start']} to {m['end']}, figures as of"
        f" {m['as_of']}.{simulated}",
        "",
        f"| | {m['week']} | {m['previous']['week']} | change |",
        "|---|---|---|---|",
    ]
    for key in COUNT_KEYS:
        lines.append(
            f"| {key.replace('_', ' ')} | {c[key]:,} | {p[key]:,} | {m['change'][key]:+,} |"
        )
    for key, label in (
        ("completed_over_finished", "success rate (completed / finished)"),
        ("completed_over_spawned", "success rate (completed / spawned)"),
    ):
        delta = m["change"][f"{key}_pp"]
        now, before = m["success_rate"][key], m["previous"]["success_rate"][key]
        change = NONE if delta is None else f"{delta:+.1f} pp"
        lines.append(f"| {label} | {_pct(now)} | {_pct(before)} | {change} |")
    ttc = m["time_to_completion"]
    lines += [
        "",
        "Time to completion (Kaplan-Meier, not-yet-completed tasks censored at as_of): median "
        f"{_hours(ttc['tasks']['median_h'])} per task, {_hours(ttc['goals']['median_h'])} per"
        " root goal.",
        "",
        "Completion by spawn day (share of each day's cohort completed by as_of):",
        "",
        _table(
            m["cohorts"], ["date", "spawned", "completed", "failed", "in_flight", "completion_rate"]
        ),
    ]
    return MarkdownView("\n".join(lines))


def _hours(value: float | None) -> str:
    return "not reached" if value is None else f"{value:.2f} h"


def shipped_view(m: dict[str, Any]) -> MarkdownView:
    """The completed root goals."""
    s = m["shipped"]
    head = (
        f"{s['total']:,} root goals completed, {s['agents']:,} agents,"
        f" ${s['cost_usd'] or 0:,.2f}.\n\n"
    )
    cols = ["title", "summary", "agents", "cost_usd", "duration_s", "trace_id"]
    return MarkdownView(head + _table(s["items"], cols))


def failures_view(m: dict[str, Any]) -> MarkdownView:
    """Failed tasks with reasons and traces, and the top reasons."""
    f = m["failures"]
    text = (
        f"{f['total']:,} tasks failed ({f['goals']:,} root goals, {f['sub_agents']:,}"
        " sub-agents).\n\n**Top reasons**\n\n"
        + _table(f["top_reasons"], ["reason", "count"])
        + "\n\n**Failures**\n\n"
        + _table(f["items"], ["title", "role", "reason", "trace_id"])
    )
    return MarkdownView(text)


def decomposition_view(m: dict[str, Any]) -> MarkdownView:
    """Agents per goal by true complexity, over- and under-decomposition, learner changes."""
    d = m["decomposition"]
    learner = d["learner"]
    text = (
        _table(
            d["by_bucket"],
            ["bucket", "goals", "decomposed", "mean_agents", "max_agents", "success_rate"],
        )
        + f"\n\n**Over-decomposition**: {d['over_decomposed']['count']:,} simple goals used more"
        " than one agent.\n\n"
        + _table(d["over_decomposed"]["items"], ["title", "complexity", "agents", "trace_id"], 10)
        + f"\n\n**Complex goals failed without decomposing**:"
        f" {d['complex_failed_direct']['count']:,}\n\n"
        + _table(d["complex_failed_direct"]["items"], ["title", "complexity", "trace_id"], 10)
        + f"\n\n**Learned policy**: {learner['updates']:,} updates this week,"
        f" {learner['preference_changes']:,} changes of preferred choice.\n\n"
        + _table(
            learner["buckets"],
            ["bucket", "updates", "direct", "decompose", "preferred_before", "preferred_after"],
        )
    )
    return MarkdownView(text)


def cost_view(m: dict[str, Any]) -> MarkdownView:
    """Cost and tokens per model and per role."""
    c = m["cost"]
    t = c["total"]
    cols = ["calls", "cost_usd", "tokens_in", "tokens_out", "cache_read_tokens"]
    lost = c.get("discarded") or {"calls": 0}
    paid_for = (
        f" (including {lost['calls']:,} calls for ${lost['cost_usd'] or 0:,.2f} whose turns were"
        " discarded: they ran under a lease another claim had taken over)"
        if lost["calls"]
        else ""
    )
    text = (
        f"Total: ${t['cost_usd'] or 0:,.2f} over {t['calls']:,} model calls{paid_for},"
        f" {t['tokens_in']:,} input and {t['tokens_out']:,} output tokens.\n\n**Per model**\n\n"
        + _table(c["per_model"], ["model", "simulated", *cols])
        + "\n\n**Per role**\n\n"
        + _table(c["per_role"], ["role", *cols])
    )
    return MarkdownView(text)


def integrity_view(m: dict[str, Any]) -> MarkdownView:
    """Each integrity check: passed, or what it found."""
    integrity = m["integrity"]
    lines = [
        ("All checks passed." if integrity["ok"] else f"**{integrity['failed']} checks failed.**"),
        "",
    ]
    for check in integrity["checks"]:
        mark = "✅" if check["ok"] else "❌"
        lines.append(
            f"- {mark} **{check['name']}**: {check['title']} ({check['checked']:,} checked)"
        )
        if not check["ok"]:
            lines.append(
                f"  - offending ({check['offending_count']:,}): "
                + ", ".join(f"`{i}`" for i in check["offending"][:20])
            )
            for detail in check["details"][:10]:
                where = detail.get("task_id") or detail.get("date")
                lines.append(f"  - {_cell(detail.get('problem'))}: `{_cell(where)}`")
    return MarkdownView("\n".join(lines))


def draft_view(draft: str, check: FactCheck) -> MarkdownView:
    """The fact-check verdict, then the draft post itself."""
    if check.ok:
        verdict = f"✅ {check.summary()}"
    else:
        rows = [{"number": u.text, "line": u.line, "context": u.context} for u in check.unmatched]
        verdict = f"❌ {check.summary()}\n\n" + _table(rows, ["number", "line", "context"], 50)
    body = draft.split("\n---\n", 1)[1] if draft.startswith("---\n") else draft
    return MarkdownView(f"{verdict}\n\n---\n\n{body.strip()}\n")
