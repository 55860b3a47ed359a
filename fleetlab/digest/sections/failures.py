"""What went wrong: the tasks that failed in the week, grouped by cause, each cause described
in plain words (ours), with one example reason (the agent's or verifier's text, escaped) and
its trace."""

from __future__ import annotations

import re
from typing import Any

from fleetlab.digest.sections._base import Load, MarkdownView, Section
from fleetlab.digest.sections._format import (
    cell_code,
    cell_id,
    cell_text,
    count,
    md_code,
    md_text,
    plural,
    table,
)
from fleetlab.digest.sections.shipped import trace_link

__all__ = ["CAUSES", "SECTION", "cause_of"]

#: (cause, what it means, pattern on the failure reason), first match wins. Our words, never
#: the agent's: the reason itself is only ever shown as an escaped example.
CAUSES: tuple[tuple[str, str, re.Pattern[str]], ...] = tuple(
    (name, meaning, re.compile(pattern, re.IGNORECASE | re.DOTALL))
    for name, meaning, pattern in (
        (
            "check script failed",
            "the task's own check script found the result wrong (an assertion failed, or the"
            " code the agent wrote raised an error)",
            r"^verifier: \S+ failed \(exit",
        ),
        (
            "wrong file content",
            "a file the agent wrote differs from what the task expects",
            r"^verifier: .*(differs|expected)",
        ),
        (
            "missing or extra files",
            "files the task expects are missing, or files it forbids were left behind",
            r"^verifier: .*(missing|unexpected|still exists|not found|does not exist)",
        ),
        (
            "verifier failed",
            "the task's verifier rejected the result",
            r"^verifier:",
        ),
        (
            "rejected by the validator",
            "the validating agent judged the result incomplete or not what was asked",
            r"does not match the instructions|looks incomplete|validation failed",
        ),
        (
            "budget exhausted",
            "the goal's budget ran out before the work was done",
            r"budget",
        ),
        (
            "out of turns",
            "the agent used all its turns without finishing",
            r"turn limit|max(imum)? turns|too many turns",
        ),
        (
            "no usable plan",
            "the planner's split of the goal could not be used",
            r"no usable plan|planner",
        ),
        (
            "model error",
            "the model's API failed or refused the call",
            r"model error|api error|overloaded|rate limit",
        ),
        (
            "no answer",
            "the agent stopped without an answer",
            r"^no answer",
        ),
        (
            "internal error",
            "fleetlab itself failed while running the task (a bug to report)",
            r"^internal error",
        ),
    )
)
OTHER = ("other", "a reason none of the causes above describes")
#: Causes listed in the post (the view lists them all).
LISTED = 6


def cause_of(reason: str | None) -> tuple[str, str]:
    """The cause of a failure and what it means, from its reason."""
    if not reason or not reason.strip():
        return "no reason recorded", "the task failed without saying why"
    for name, meaning, pattern in CAUSES:
        if pattern.search(reason.strip()):
            return name, meaning
    return OTHER


def _load(load: Load, m: dict[str, Any]) -> None:
    fin = load.finished
    failed = [r for r in fin.rows if r.status == "failed"]
    examples = {i["task_id"]: i for i in m["failures"]["items"]}
    causes: dict[str, dict[str, Any]] = {}
    for r in failed:
        name, meaning = cause_of(r.error)
        c = causes.setdefault(
            name,
            {"cause": name, "meaning": meaning, "count": 0, "goals": 0, "example": None},
        )
        c["count"] += 1
        c["goals"] += r.parent_id is None
        if c["example"] is None and r.id in examples:
            item = examples[r.id]
            c["example"] = {
                "reason": r.error,
                "title": item.get("title"),
                "trace_id": item.get("trace_id"),
            }
    m["failures"]["causes"] = sorted(causes.values(), key=lambda c: (-c["count"], c["cause"]))


def _view(m: dict[str, Any]) -> MarkdownView:
    f = m["failures"]
    causes = [
        {**c, "example_reason": (c["example"] or {}).get("reason")} for c in f.get("causes", [])
    ]
    text = (
        f"{plural(f['total'], 'task')} failed ({plural(f['goals'], 'root goal')},"
        f" {plural(f['sub_agents'], 'sub-agent')}).\n\n**By cause**\n\n"
        + table(
            causes,
            [
                ("cause", "Cause", str),
                ("count", "Tasks", count),
                ("meaning", "What it means", str),
                ("example_reason", "Example", cell_code),
            ],
            what="causes",
        )
        + "\n\n**Failures**\n\n"
        + table(
            f["items"],
            [
                ("title", "Task", cell_text),
                ("role", "Role", cell_text),
                ("reason", "Reason", cell_code),
                ("trace_id", "Trace", cell_id),
            ],
            listed=len(f["items"]),
            total=f["total"],
            what="failures",
        )
    )
    return MarkdownView(text)


def _draft(m: dict[str, Any]) -> str:
    f = m["failures"]
    if not f["total"]:
        return "Nothing failed this week."
    out = [
        f"{plural(f['total'], 'task')} failed ({plural(f['goals'], 'goal')},"
        f" {plural(f['sub_agents'], 'sub-agent')}). By cause:",
        "",
    ]
    for c in f.get("causes", [])[:LISTED]:
        line = f"- **{c['cause'].capitalize()}** ({c['count']:,}): {c['meaning']}."
        ex = c["example"]
        if ex:
            goal = trace_link(md_text(ex["title"] or "a task", 60), ex["trace_id"])
            line += f" Example: {goal} failed with {md_code(ex['reason'], 110)}."
        out.append(line)
    rest = f.get("causes", [])[LISTED:]
    if rest:
        out.append(f"- {plural(len(rest), 'other cause')}: see the report.")
    return "\n".join(out)


def _next_steps(m: dict[str, Any]) -> list[str]:
    causes = m["failures"].get("causes", [])
    if not causes:
        return []
    top = causes[0]
    return [
        f"Look at the most common cause of failure, {top['cause']}"
        f" ({plural(top['count'], 'task')}): {top['meaning']}."
    ]


SECTION = Section(
    name="failures",
    title="Failures",
    heading="What went wrong",
    view=_view,
    draft=_draft,
    next_steps=_next_steps,
    load=_load,
)
