"""The trace pages of the goals a weekly report names, and the links to them.

``write_trace_pages`` reads what the report shows (its Markdown views and the draft post),
finds the task ids and trace ids in it, and writes one offline page per goal they name into
``<report>/traces/<trace id>.html`` (``fleetlab trace ID --html``'s page, with a link back to
the report). Only the goals the report shows get a page: the views' tables show their first
rows, metrics.json keeps more, and those have none. The returned `TracePages` turns each id
in a view or the draft into a relative link to its page (``traces/<trace id>.html``, or
``#agent-<task id>`` on it for a task), so the report opens them offline from its folder.

The pages are written where the report is being built (the kernel's ``out_dir``), so they
are published with the rest of it, or not at all.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from fleetlab.digest.sections import SECTIONS, MarkdownView
from fleetlab.errors import NotFoundError
from fleetlab.store import Store
from fleetlab.store.read.mentions import resolve_mentions

__all__ = ["TRACES_DIR", "TracePages", "link_ids", "mentioned_ids", "write_trace_pages"]

#: The report's sub-folder of trace pages.
TRACES_DIR = "traces"
#: The views of the report that may name goals, tasks or traces (all of them but the draft's).
VIEWS: tuple[Callable[[dict[str, Any]], MarkdownView], ...] = tuple(s.view for s in SECTIONS)

# An id as the store writes them (12 hex digits for a task, 32 for a trace; any length from 8
# is looked up), standing alone: not part of a longer word, a path, a URL or a fragment.
_ID = r"(?<![\w/#.\-])[0-9a-f]{8,64}(?![\w\-])"
# What a Markdown text is made of, for linking: spans left alone (fenced code, existing links,
# HTML tags), code spans (linked when they are exactly an id), and bare ids.
_TOKENS = re.compile(
    r"(?P<keep>```.*?```|\[[^\]\n]*\]\([^)\n]*\)|<[^>\n]*>)"
    r"|`(?P<code>[^`\n]*)`"
    rf"|(?P<bare>{_ID})",
    re.DOTALL,
)
_WHOLE_ID = re.compile(r"[0-9a-f]{8,64}")
# A link the post writes itself, around a title: ``[title](traces/<trace id>.html)``.
_PAGE_LINK = re.compile(rf"\]\({TRACES_DIR}/([0-9a-f]{{8,64}})\.html(?:#agent-[0-9a-f]+)?\)")


def mentioned_ids(text: str) -> list[str]:
    """The ids that ``text`` (Markdown) names and `link_ids` would link, first mention first:
    bare, or alone in a code span; not inside fenced code, a link or an HTML tag."""
    found: dict[str, None] = {}
    for m in _PAGE_LINK.finditer(text):
        found.setdefault(m[1], None)
    for m in _TOKENS.finditer(text):
        ident = m["bare"] or (m["code"].strip() if m["code"] is not None else None)
        if ident and _WHOLE_ID.fullmatch(ident):
            found.setdefault(ident, None)
    return list(found)


def link_ids(text: str, hrefs: Mapping[str, str], *, code: bool = False) -> str:
    """``text`` (Markdown) with every id that ``hrefs`` maps written as a link to it:
    ``[id](href)``, or with ``code`` `` [`id`](href) `` (a post's fact-check reads code as a
    label, never as a number). Only ids, brackets, backticks and the hrefs (relative paths of
    hex digits) are added: nothing a text could turn into markup."""
    if not hrefs:
        return text
    tick = "`" if code else ""

    def replace(m: re.Match[str]) -> str:
        ident = m["bare"] or (m["code"].strip() if m["code"] is not None else None)
        href = hrefs.get(ident) if ident else None
        return m[0] if href is None else f"[{tick}{ident}{tick}]({href})"

    return _TOKENS.sub(replace, text)


@dataclass(frozen=True, slots=True)
class TracePages:
    """The trace pages a report wrote, and the link of each id that leads to one.

    Attributes:
        hrefs: task id or trace id → the page's address relative to the report folder.
        pages: trace id → the page's file.
    """

    hrefs: Mapping[str, str] = field(default_factory=dict)
    pages: Mapping[str, Path] = field(default_factory=dict)
    kind: Literal["trace_pages"] = field(default="trace_pages", repr=False)

    def link(self, text: str, *, code: bool = False) -> str:
        """``text`` (Markdown) with its ids linked to their pages (see `link_ids`)."""
        return link_ids(text, self.hrefs, code=code)

    def __len__(self) -> int:
        return len(self.pages)


def _page_href(trace_id: str) -> str:
    return f"{TRACES_DIR}/{trace_id}.html"


def write_trace_pages(
    out_dir: str | Path | None,
    store: Store,
    metrics: dict[str, Any],
    draft: str = "",
    *,
    workspaces: Path | None = None,
) -> TracePages:
    """Write the page of every goal the report's views and ``draft`` name into
    ``<out_dir>/traces/`` and return their links (`MarkdownView.linked` and
    ``write_report_files(..., traces=)`` use them). Nothing is written, and nothing will be
    linked, when ``out_dir`` is empty.

    Args:
        out_dir: the report folder being built.
        store: the fleet's store (the metrics' source).
        metrics: ``compute_metrics``'s result, which the views show.
        draft: the draft post, whose ids are linked in ``digest.md``.
        workspaces: where the fleet kept workspaces (default: beside the database). A goal
            whose workspace is gone still gets its page, which says so.
    """
    if not out_dir:
        return TracePages()
    texts = [view(metrics).text for view in VIEWS] + [draft]
    idents = [i for text in texts for i in mentioned_ids(text)]
    mentions = resolve_mentions(store, idents)
    folder = Path(out_dir) / TRACES_DIR
    hrefs: dict[str, str] = {}
    pages: dict[str, Path] = {}
    missing: set[str] = set()
    for ident in dict.fromkeys(idents):
        mention = mentions.get(ident)
        if mention is None or mention.trace_id in missing:
            continue
        trace_id = mention.trace_id
        if not _WHOLE_ID.fullmatch(trace_id):  # not a file name the store would make
            continue
        if trace_id not in pages:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{trace_id}.html"
            try:
                _write_page(store, trace_id, path, workspaces)
            except NotFoundError:  # a task with no goal (an integrity check's finding)
                missing.add(trace_id)
                continue
            pages[trace_id] = path
        href = _page_href(trace_id)
        hrefs[ident] = href if mention.task_id is None else f"{href}#agent-{mention.task_id}"
    return TracePages(hrefs, pages)


def _write_page(store: Store, trace_id: str, path: Path, workspaces: Path | None) -> None:
    from fleetlab.trace import write_trace_page

    write_trace_page(
        store, trace_id, path, workspaces=workspaces, back=("../index.html", "the weekly report")
    )
