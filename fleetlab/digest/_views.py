"""The Markdown views of the report's sections, by their old names (each is its section's
``view``: ``fleetlab.digest.sections``), and the draft's view."""

from __future__ import annotations

from typing import Any

from fleetlab.digest._factcheck import FactCheck
from fleetlab.digest.sections import MarkdownView, section
from fleetlab.digest.sections._format import Column, cell_code, count, table

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


def numbers_view(m: dict[str, Any]) -> MarkdownView:
    """Headline counts for the week and the previous one, and both success rates."""
    return section("numbers").view(m)


def shipped_view(m: dict[str, Any]) -> MarkdownView:
    """The completed root goals, by kind."""
    return section("shipped").view(m)


def failures_view(m: dict[str, Any]) -> MarkdownView:
    """Failed tasks by cause, with reasons and traces."""
    return section("failures").view(m)


def decomposition_view(m: dict[str, Any]) -> MarkdownView:
    """Agents per goal by true complexity, over- and under-decomposition, learner changes."""
    return MarkdownView(
        section("decomposition").view(m).text + "\n\n" + section("learner").view(m).text
    )


def cost_view(m: dict[str, Any]) -> MarkdownView:
    """Cost and tokens per model and per role."""
    return section("cost").view(m)


def integrity_view(m: dict[str, Any]) -> MarkdownView:
    """Each integrity check: passed, or what it found."""
    return section("integrity").view(m)


_UNMATCHED: list[Column] = [
    ("number", "Number", cell_code),
    ("line", "Line", count),
    ("context", "Context", cell_code),
]


def draft_view(draft: str, check: FactCheck) -> MarkdownView:
    """The fact-check verdict, then the draft post itself."""
    if check.ok:
        verdict = f"✓ {check.summary()}"
    else:
        rows = [{"number": u.text, "line": u.line, "context": u.context} for u in check.unmatched]
        verdict = f"✗ {check.summary()}\n\n" + table(rows, _UNMATCHED, limit=50, what="numbers")
    body = draft.split("\n---\n", 1)[1] if draft.startswith("---\n") else draft
    return MarkdownView(f"{verdict}\n\n---\n\n{body.strip()}\n")
