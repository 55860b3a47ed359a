"""Can we trust these numbers: the telemetry integrity checks, and anything else a reader
should look at that no other section already says (stale work, days with no activity)."""

from __future__ import annotations

from typing import Any

from fleetlab.digest.sections._base import MarkdownView, Section
from fleetlab.digest.sections._format import cell_text, count, listed, md_text, plural

__all__ = ["SECTION"]

#: Anomalies another section already states in its own words.
SAID_ELSEWHERE = ("over_decomposition", "complex_failed_direct")


#: Each check in a few words (a check not named here is told by its name).
SAID = {
    "lifecycle": "legal lifecycles",
    "row_event_counts": "task rows that agree with their events",
    "future_timestamps": "no future timestamps",
    "event_in_lifetime": "no event outside its task's lifetime",
    "daily_completions": "completion events on every day with completions",
    "learner_goals": "the learner's goals counted once each",
    "turns_once": "every turn committed once",
    "epochs": "one lease at a time on each task",
    "discarded_calls": "calls paid under a lost lease counted once",
    "database": "a consistent database",
}


def _said(check: dict[str, Any]) -> str:
    return SAID.get(check["name"]) or md_text(str(check["name"]).replace("_", " "))


def _view(m: dict[str, Any]) -> MarkdownView:
    integrity = m["integrity"]
    lines = [
        (
            "All checks passed."
            if integrity["ok"]
            else f"**{plural(integrity['failed'], 'check')} failed.**"
        ),
        "",
    ]
    for check in integrity["checks"]:
        mark = "✓" if check["ok"] else "✗"  # in every font (no emoji font needed)
        lines.append(
            f"- {mark} **{md_text(check['name'])}**: {md_text(check['title'], 300)}"
            f" ({count(check['checked'])} {check.get('checked_label', 'checked')})"
        )
        if not check["ok"]:
            lines.append(
                f"  - offending ({count(check['offending_count'])}): "
                + ", ".join(f"`{i}`" for i in check["offending"][:20])
            )
            for detail in check["details"][:10]:
                where = detail.get("task_id") or detail.get("date")
                lines.append(f"  - {cell_text(detail.get('problem'))}: `{cell_text(where)}`")
    return MarkdownView("\n".join(lines))


def _others(m: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        a
        for a in m["anomalies"]
        if not a["kind"].startswith("integrity:") and a["kind"] not in SAID_ELSEWHERE
    ]


def _draft(m: dict[str, Any]) -> str:
    integrity = m["integrity"]
    bad = [ch for ch in integrity["checks"] if not ch["ok"]]
    if not bad:
        out = [
            f"Yes: all {count(integrity['passed'])} telemetry checks passed"
            f" ({listed([_said(ch) for ch in integrity['checks']])})."
        ]
    else:
        out = [
            f"Not entirely: {count(integrity['failed'])} of {count(integrity['total'])}"
            " telemetry checks failed.",
            "",
        ]
        for ch in bad:
            ids = ", ".join(f"`{i}`" for i in ch["offending"][:5])
            out.append(
                f"- {md_text(ch['title'], 200)}: {count(ch['offending_count'])} offending ({ids})"
            )
    others = _others(m)
    if others:
        out += [
            "",
            "Also worth a look: " + "; ".join(md_text(a["detail"], 300) for a in others) + ".",
        ]
    return "\n".join(out)


def _next_steps(m: dict[str, Any]) -> list[str]:
    if m["integrity"]["ok"]:
        return []
    return ["Fix the telemetry gaps named above before trusting next week's numbers."]


SECTION = Section(
    name="integrity",
    title="Telemetry integrity",
    heading="Can we trust these numbers?",
    view=_view,
    draft=_draft,
    next_steps=_next_steps,
)
