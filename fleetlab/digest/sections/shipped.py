"""What shipped: the root goals completed in the week, grouped by kind of goal (a suite task's
first tag; free-form goals are one kind), with counts and a line per kind."""

from __future__ import annotations

import functools
from collections import Counter, defaultdict
from typing import Any

from fleetlab.digest._common import fnum
from fleetlab.digest.sections._base import Load, MarkdownView, Section
from fleetlab.digest.sections._format import (
    cell_id,
    cell_text,
    count,
    duration,
    md_text,
    plural,
    table,
    usd,
)
from fleetlab.errors import UserError

__all__ = ["SECTION", "goal_kind", "trace_link"]

#: A suite task's first tag → the kind of goal a reader sees.
KINDS = {
    "python": "Python code",
    "files": "File housekeeping",
    "docs": "Documentation",
    "data": "Data and reports",
    "config": "Configuration",
    "json": "Configuration",
    "csv": "Data and reports",
    "logs": "Data and reports",
}
FREE_FORM = "Free-form requests"
#: Titles named per kind in the post.
EXAMPLES = 3


@functools.cache
def goal_kind(suite_task: str | None) -> str:
    """The kind of goal of a suite task (its first tag, in words), or ``FREE_FORM``."""
    if not suite_task:
        return FREE_FORM
    from fleetlab.suites import get_task

    try:
        tags = get_task(suite_task).tags
    except UserError:
        return "Other suite tasks"
    return KINDS.get(tags[0], tags[0].capitalize()) if tags else "Other suite tasks"


def trace_link(text: str, trace_id: Any) -> str:
    """``text`` (already Markdown) linked to its trace page (ids are the store's hex digits)."""
    if not trace_id:
        return text
    return f"[{text}](traces/{trace_id}.html)"


def _load(load: Load, m: dict[str, Any]) -> None:
    fin = load.finished
    goals = [r for r in fin.rows if r.parent_id is None and r.status == "completed"]
    details = fin.details([r.id for r in goals])
    kinds: dict[str, dict[str, Any]] = {}
    titles: dict[str, Counter[str]] = defaultdict(Counter)
    first_trace: dict[tuple[str, str], Any] = {}
    for r in goals:
        kind = goal_kind(r.suite_task)
        d = details.get(r.id, {})
        k = kinds.setdefault(kind, {"kind": kind, "goals": 0, "agents": 0, "cost_usd": 0.0})
        k["goals"] += 1
        k["agents"] += 1 + r.tree_agents
        k["cost_usd"] += r.tree_cost_usd
        title = " ".join(str(d.get("title") or "").split())
        titles[kind][title] += 1
        first_trace.setdefault((kind, title), d.get("trace_id"))
    by_kind = []
    for kind, k in sorted(kinds.items(), key=lambda kv: (-kv[1]["goals"], kv[0])):
        common = titles[kind].most_common()
        by_kind.append(
            {
                **k,
                "cost_usd": fnum(k["cost_usd"]),
                "different_goals": len(common),
                "examples": [
                    {"title": t, "goals": n, "trace_id": first_trace[(kind, t)]}
                    for t, n in common[:EXAMPLES]
                ],
                "other_goals": len(common) - min(EXAMPLES, len(common)),
            }
        )
    m["shipped"]["by_kind"] = by_kind


def _view(m: dict[str, Any]) -> MarkdownView:
    s = m["shipped"]
    head = (
        f"{plural(s['total'], 'root goal')} completed, using {plural(s['agents'], 'agent')}"
        f" and {usd(s['cost_usd'] or 0)}.\n\n"
    )
    kinds = table(
        s.get("by_kind", []),
        [
            ("kind", "Kind of goal", cell_text),
            ("goals", "Goals", count),
            ("agents", "Agents", count),
            ("cost_usd", "Cost", usd),
            ("different_goals", "Different goals", count),
        ],
        what="kinds",
    )
    goals = table(
        s["items"],
        [
            ("title", "Goal", cell_text),
            ("summary", "Result", cell_text),
            ("agents", "Agents", count),
            ("cost_usd", "Cost", usd),
            ("duration_s", "Took", duration),
            ("trace_id", "Trace", cell_id),
        ],
        listed=len(s["items"]),
        total=s["total"],
        what="goals",
    )
    return MarkdownView(f"{head}**By kind of goal**\n\n{kinds}\n\n**Goals**\n\n{goals}")


def _draft(m: dict[str, Any]) -> str:
    s = m["shipped"]
    if not s["total"]:
        return "No goal was completed this week."
    out = [
        f"{plural(s['total'], 'goal')} completed, using {plural(s['agents'], 'agent')} and"
        f" {usd(s['cost_usd'])} in all:",
        "",
    ]
    for k in s.get("by_kind", []):
        named = [
            trace_link(md_text(e["title"], 70), e["trace_id"])
            + (f" ({e['goals']:,} times)" if e["goals"] > 1 else "")
            for e in k["examples"]
        ]
        if k["other_goals"]:
            named.append(f"and {plural(k['other_goals'], 'other goal')}")
        out.append(
            f"- **{md_text(k['kind'])}**: {plural(k['goals'], 'goal')} for {usd(k['cost_usd'])}:"
            f" {', '.join(named)}."
        )
    return "\n".join(out)


SECTION = Section(
    name="shipped",
    title="What shipped",
    heading="What shipped",
    view=_view,
    draft=_draft,
    load=_load,
)
