"""What a digest section is: its figures, its view, its charts and its part of the post.

A section is one module under ``fleetlab/digest/sections/`` that ends with
``SECTION = Section(...)``, registered once in ``sections/__init__.py``'s ``SECTIONS``; the
notebook, the draft, ``metrics.json``, the report's charts and its trace pages all loop over
that list, so a new section is one new file plus one registration.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from markdown_it import MarkdownIt
from markdown_it.rules_core import StateCore

from fleetlab.telemetry import redact

if TYPE_CHECKING:
    from fleetlab.digest._common import Bounds
    from fleetlab.digest._traces import TracePages
    from fleetlab.store import Store

__all__ = ["Load", "MarkdownView", "Section"]

Metrics = dict[str, Any]


@functools.cache
def _markdown() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False}).enable("table")

    def left(state: StateCore) -> None:  # as a Markdown table shows (HTML cells sit right)
        for token in state.tokens:
            if token.type in ("th_open", "td_open") and not token.attrGet("style"):
                token.attrSet("style", "text-align: left")

    md.core.ruler.push("fleetlab_left_cells", left)
    return md


@dataclass(frozen=True, slots=True)
class MarkdownView:
    """Markdown that notebooks render (``_repr_markdown_``) and scripts print."""

    text: str

    def _repr_markdown_(self) -> str:
        return redact(self.text)  # a notebook's saved outputs are published

    def _repr_html_(self) -> str:
        """The Markdown rendered here (CommonMark with GitHub's tables, raw HTML off), so
        index.html and JupyterLab show what digest.md means: their own renderers read the text
        between two ``$`` as maths (``**$6.69** ... $1.12`` lost its bold) and leave the ``\\|``
        of a code span in a table cell as typed."""
        return str(_markdown().render(redact(self.text)))

    def __str__(self) -> str:
        return redact(self.text)

    def linked(self, traces: TracePages | None) -> MarkdownView:
        """This view with each id it names that has a trace page (``write_trace_pages``)
        written as a link to that page."""
        return self if traces is None else MarkdownView(traces.link(self.text))


@dataclass(frozen=True, slots=True)
class Load:
    """What a section's ``load`` reads from: a connection of its own, the week's bounds and
    the rows that finished in the week (``fleetlab.digest._sections.Finished``)."""

    store: Store
    bounds: Bounds
    finished: Any
    max_items: int


def _nothing(_: Metrics) -> Any:
    return {}


def _no_steps(_: Metrics) -> list[str]:
    return []


@dataclass(frozen=True, slots=True)
class Section:
    """One section of the weekly report.

    Attributes:
        name: its key (``shipped``).
        title: its heading in the notebook and index.html.
        view: the metrics → its Markdown view (tables; ids left bare, to be linked).
        draft: the metrics → its part of the post, under ``heading`` (Markdown; every text
            that came from an agent escaped, every number one of the metrics).
        heading: its heading in the post (None: it writes under the previous one).
        charts: the metrics → its charts by file stem, leaving out any with nothing to show.
        next_steps: the metrics → what the post's "What's next" says about it.
        load: reads its figures (``Load``) into the metrics being built (a dict it may add
            keys to), on the thread that read the week's rows; None when the shared parts of
            ``compute_metrics`` hold all it shows.
        captions: chart file stem → the chart's caption in digest.md.
    """

    name: str
    title: str
    view: Callable[[Metrics], MarkdownView]
    draft: Callable[[Metrics], str]
    heading: str | None = None
    charts: Callable[[Metrics], Mapping[str, Any]] = _nothing
    next_steps: Callable[[Metrics], list[str]] = _no_steps
    load: Callable[[Load, Metrics], None] | None = None
    captions: Mapping[str, str] = field(default_factory=dict)
