"""A failure reason and a goal title full of markup, planted in a real fleet database through
the store's own API, go through ``fleetlab digest``: index.html shows them as text in Chromium
(no element of theirs exists, no script of theirs ran) and digest.md holds them escaped (a
Markdown renderer makes no heading, link or HTML of them).

The screenshot of the failures section is saved as ``/tmp/h/shots/digest_hostile.png`` when
that folder exists, and in the test's temp folder.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
from datetime import timedelta
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from fleetlab.cli import main
from fleetlab.clock import FakeClock, parse_week
from fleetlab.simulate import simulate
from fleetlab.store import open_store
from tests.helpers.browser import CHROMIUM_ARGS

WEEK = "2026-W45"
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
TITLE = "Goal <b id='pwned-b'>bold</b> # not a heading [x](javascript:alert(1)) | cell"


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sim") / "fleet.db"
    window = parse_week(WEEK)
    asyncio.run(
        simulate(
            lambda clock: open_store(path, clock=clock),
            window.start,
            days=7,
            tasks_per_day=5,
            seed=3,
        )
    )
    clock = FakeClock(window.start + timedelta(days=2))
    with open_store(path, clock=clock) as store:
        goal = store.create_task(TITLE, role="orchestrator")
        store.transition(goal.id, "running", worker="w", lease_s=600)
        clock.advance(60)
        store.transition(goal.id, "failed", error=REASON)
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
