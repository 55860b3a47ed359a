"""A failure reason and a goal title full of markup, planted in a real fleet database through
the store's own API, go through ``fleetlab digest``: index.html shows them as text in Chromium
(no element of theirs exists, no script of theirs ran) and digest.md holds them escaped (a
Markdown renderer makes no heading, link or HTML of them).

The screenshot of the failures section is saved as ``/tmp/h/shots/digest_hostile.png`` when
that folder exists, and in the test's temp folder.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from datetime import timedelta
from html import unescape
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from fleetlab.cli import main
from fleetlab.clock import FakeClock, parse_week
from fleetlab.store import open_store
from tests.helpers.browser import CHROMIUM_ARGS
from tests.helpers.simulated_week import WEEK, copy_week

#: Everything an agent could try: a tag, the end of the table it sits in, a script, an element
#: with a handler, a Markdown heading, a javascript: link, backticks, a pipe, a static-site diff.
REASON = (
    "agent said: <file> is wrong </td></tr></table><script>window.pwned = 1</script>"
    '<img id="pwned-img" src="x" onerror="window.pwned = 2">\n'
    "# pwned heading\n"
    "[click me](javascript:window.pwned=3) `tick` ``two`` | a pipe |\n"
    "--- a/site/index.html\n+++ b/site/index.html\n@@ -1 +1 @@\n-<h1>Old</h1>\n+<h1>New</h1>\n"
    "- a list item\n"
)
#: A short reason (whole in every table cell) with pipes in and out of backticks.
PIPE_REASON = "verifier: check.py failed (exit 1): got a | pipe and `x | y`"
TITLE = "Goal <b id='pwned-b'>bold</b> # not a heading [x](javascript:alert(1)) | cell"


@pytest.fixture(scope="module")
def report(simulated_week: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = copy_week(simulated_week, tmp_path_factory.mktemp("sim"))  # this module's own
    window = parse_week(WEEK)
    clock = FakeClock(window.start + timedelta(days=2))
    with open_store(path, clock=clock) as store:
        goal = store.create_task(TITLE, role="orchestrator")
        store.transition(goal.id, "running", worker="w", lease_s=600)
        clock.advance(60)
        store.transition(goal.id, "failed", error=REASON)
        piped = store.create_task("Split a line on pipes", role="orchestrator")
        store.transition(piped.id, "running", worker="w", lease_s=600)
        clock.advance(60)
        store.transition(piped.id, "failed", error=PIPE_REASON)
    out = tmp_path_factory.mktemp("reports")
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main(["digest", "--week", WEEK, "--db", str(path), "--out", str(out)])
    assert code == 0, err.getvalue()
    return out / WEEK


def _tokens(text: str) -> list[object]:
    md = MarkdownIt("commonmark").enable("table")
    flat = []
    stack = list(md.parse(text))
    while stack:
        tok = stack.pop(0)
        flat.append(tok)
        stack[:0] = tok.children or []
    return flat


@pytest.mark.slow
def test_digest_md_holds_the_hostile_text_escaped(report: Path) -> None:
    text = (report / "digest.md").read_text("utf-8")
    assert "<file> is wrong" in text  # shown (in a code span), not dropped
    tokens = _tokens(text)
    kinds = {t.type for t in tokens}  # type: ignore[attr-defined]
    assert "html_block" not in kinds
    assert "html_inline" not in kinds
    headings = [
        tokens[i + 1].content  # type: ignore[attr-defined]
        for i, t in enumerate(tokens)
        if t.type == "heading_open"  # type: ignore[attr-defined]
    ]
    assert not [h for h in headings if "pwned" in h or "heading" in h], headings
    links = [t for t in tokens if t.type == "link_open"]  # type: ignore[attr-defined]
    hrefs = [t.attrs.get("href", "") for t in links]  # type: ignore[attr-defined]
    assert not [h for h in hrefs if "javascript" in str(h)], hrefs
    assert all(str(h).startswith("traces/") for h in hrefs), hrefs
    rendered = MarkdownIt("commonmark").enable("table").render(text)
    assert "&lt;script&gt;window.pwned = 1&lt;/script&gt;" in rendered
    for tag in ("<script", "<img id=", "onerror=", "<b ", "<h1>Old"):  # the charts are <img src=
        assert tag not in rendered, tag


@pytest.mark.slow
@pytest.mark.browser
def test_index_html_shows_the_hostile_text_as_text(
    report: Path, chromium: Path, tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    html = (report / "index.html").read_text("utf-8")
    assert "<script>window.pwned" not in html
    shot = tmp_path / "digest_hostile.png"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto((report / "index.html").as_uri())
            page.wait_for_selector(".fleetlab-chart svg, .fleetlab-chart canvas")
            assert page.evaluate("window.pwned") is None  # no script of theirs ran
            for selector in ("#pwned-img", "#pwned-b", "a[href^='javascript']"):
                assert page.locator(selector).count() == 0, selector
            body = page.inner_text("body")
            assert "<file> is wrong </td></tr></table><script>window.pwned = 1</script>" in body
            assert "Goal <b id='pwned-b'>bold</b> # not a heading" in body
            headings = page.locator("h1, h2, h3, h4").all_inner_texts()
            assert not [h for h in headings if "pwned" in h], headings
            cell = page.get_by_text("<file> is wrong").first
            cell.scroll_into_view_if_needed()
            page.screenshot(path=str(shot))
        finally:
            browser.close()
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    shots = Path("/tmp/h/shots")
    if shots.is_dir():
        (shots / "digest_hostile.png").write_bytes(shot.read_bytes())


def _failure_tables(report: Path) -> list[str]:
    """The Markdown the notebook showed for its failures section (the tables of causes and of
    failures, as index.html renders them)."""
    notebook = json.loads((report / "weekly_digest.ipynb").read_text("utf-8"))
    texts = [
        "".join(o["data"]["text/markdown"])
        for c in notebook["cells"]
        for o in c.get("outputs", [])
        if "text/markdown" in o.get("data", {})
    ]
    return [t for t in texts if "| Reason |" in t or "| Example |" in t]


@pytest.mark.slow
def test_a_pipe_in_a_reason_stays_in_its_cell(report: Path) -> None:
    tables = _failure_tables(report)
    assert tables
    md = MarkdownIt("commonmark").enable("table")
    cells = []
    for text in tables:
        tokens = md.parse(text)
        rows = [i for i, t in enumerate(tokens) if t.type == "tr_open"]
        widths = set()
        for start in rows:
            end = next(j for j in range(start, len(tokens)) if tokens[j].type == "tr_close")
            row = [
                tokens[j + 1] for j in range(start, end) if tokens[j].type in ("th_open", "td_open")
            ]
            widths.add(len(row))
            cells += ["".join(c.content for c in (t.children or [])) for t in row]
        assert len(widths) == 1, widths  # no pipe split a row into more cells
    assert PIPE_REASON.replace("`", "") in [c.replace("`", "") for c in cells]
    html = (report / "index.html").read_text("utf-8")
    shown = re.sub(r"<[^>]+>", "", html)
    assert "got a | pipe and `x | y`" in unescape(shown)
    assert "\\|" not in unescape(shown)
