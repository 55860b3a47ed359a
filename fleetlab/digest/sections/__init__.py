"""The sections of the weekly report, each one module (its figures, view, charts and part of
the post), registered here once: the notebook, the draft, the charts and the trace pages loop
over ``SECTIONS``. A new section is a new module ending in ``SECTION = Section(...)`` and one
line below."""

from __future__ import annotations

from typing import Any

from fleetlab.digest.sections import (
    cost,
    decomposition,
    failures,
    integrity,
    learner,
    numbers,
    shipped,
)
from fleetlab.digest.sections._base import Load, MarkdownView, Section

__all__ = ["SECTIONS", "Load", "MarkdownView", "Section", "report_sections", "section"]

#: The report's sections, in report order (``load`` runs in this order too: a section may
#: read what an earlier one put in the metrics).
SECTIONS: tuple[Section, ...] = (
    numbers.SECTION,
    shipped.SECTION,
    failures.SECTION,
    decomposition.SECTION,
    learner.SECTION,
    cost.SECTION,
    integrity.SECTION,
)


def section(name: str) -> Section:
    """The registered section called ``name``."""
    for s in SECTIONS:
        if s.name == name:
            return s
    raise KeyError(name)


def report_sections(metrics: dict[str, Any]) -> tuple[Section, ...]:
    """The sections to show for ``metrics``: all of them, or for an empty week (the database
    or the week is probably wrong) only the numbers, which say so."""
    return SECTIONS[:1] if numbers.empty_week(metrics) else SECTIONS
