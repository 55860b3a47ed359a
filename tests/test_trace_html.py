"""The trace page: one self-contained offline file, drawn in headless Chromium.

The timeline is drawn (one lane per agent, bars for its states and calls), a conversation
opens, a diff shows, nothing leaves the machine (every request the page makes is logged,
and its Content-Security-Policy forbids fetches and scripts), and hostile agent text (a
``<script>``, an ``<img onerror>``, a fake API key) comes out as escaped, redacted text.
Screenshots at 1,400 and 1,280 px are kept in the test's temp folder.
"""

from __future__ import annotations

import re
from html import escape
from pathlib import Path

import pytest

from fleetlab.clock import FakeClock
from fleetlab.store import Store
from fleetlab.trace import CSP, load_goal_trace, render_html
from tests.helpers.browser import CHROMIUM_ARGS
from tests.helpers.trace_scenario import FAKE_KEY, HOSTILE, TAMPERED, Scenario, run_scenario


@pytest.fixture
async def page_file(store: Store, clock: FakeClock, tmp_path: Path) -> tuple[Scenario, Path]:
    s = await run_scenario(store, clock, tmp_path / "workspaces")
    trace = load_goal_trace(store, s.goal.id, workspaces=s.workspaces)
    target = tmp_path / "trace.html"
    target.write_text(render_html(trace), encoding="utf-8")
    return s, target


def test_the_page_is_offline_escaped_and_redacted(page_file: tuple[Scenario, Path]) -> None:
    s, target = page_file
    html = target.read_text(encoding="utf-8")
    assert f'<meta http-equiv="Content-Security-Policy" content="{escape(CSP)}">' in html
    assert "default-src 'none'" in CSP
    assert "script-src" not in CSP  # none: default-src 'none' forbids every script
    assert "<script" not in html.lower()
    assert "<img" not in html.lower()
    assert FAKE_KEY not in html
    assert "sk-ant-" not in html
    assert (
        "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;"
        in (html)
    )
    # no attribute points anywhere but into the page (the SVG namespace is a name, not a fetch)
    links = re.findall(r'(?:src|href|action)\s*=\s*"([^"]*)"', html)
    assert links
    assert all(link.startswith("#agent-") for link in links), links
    assert "<link" not in html
    assert "@import" not in html
    assert "url(" not in html
    for t in s.store.tasks(trace_id=s.goal.trace_id):
        assert f'id="agent-{t.id}"' in html


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.timeout(120)
def test_the_page_in_chromium(
    page_file: tuple[Scenario, Path], chromium: Path, tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    s, target = page_file
    tasks = s.store.tasks(trace_id=s.goal.trace_id)
    executor = next(t for t in tasks if t.role == "executor")
    requests: list[str] = []
    dialogs: list[str] = []
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.on("request", lambda r: requests.append(r.url))
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(target.as_uri())
            # the timeline: one label per agent, a bar per state stretch, the model calls
            labels = page.locator("svg.timeline .lane-label").count()
            segments = page.locator("svg.timeline rect.seg").count()
            calls = page.locator("svg.timeline rect.mark-model_call").count()
            box = page.locator("svg.timeline").bounding_box()
            page.screenshot(path=str(tmp_path / "trace-1400.png"), full_page=False)
            # a conversation, closed, then opened from its summary
            conv = page.locator(f"#conv-{executor.id}")
            first_msg = conv.locator(".msg.assistant").first
            hidden_before = first_msg.is_visible()
            conv.locator("summary").first.click()
            shown_after = first_msg.is_visible()
            shown_text = first_msg.inner_text()
            # the tampered file's diff, with the hostile line as text
            diff = page.locator("details.file", has_text=TAMPERED)
            diff_visible = diff.locator("pre.diff").is_visible()
            diff_text = diff.locator("pre.diff").inner_text()
            injected = page.evaluate(
                "document.querySelectorAll('script, img, iframe, object, embed').length"
            )
            page.set_viewport_size({"width": 1280, "height": 800})
            scroll_w = page.evaluate("document.documentElement.scrollWidth")
            page.screenshot(path=str(tmp_path / "trace-1280.png"), full_page=False)
        finally:
            browser.close()
    assert requests == [target.as_uri()]  # nothing but the file itself
    assert dialogs == []
    assert errors == []
    assert labels == len(tasks)
    assert segments >= len(tasks)
    assert calls == len(s.store.events(trace_id=s.goal.trace_id, kind="model.call"))
    assert box is not None
    assert box["width"] > 1000
    assert (hidden_before, shown_after) == (False, True)
    assert "turn 1" in shown_text
    assert diff_visible
    reason = HOSTILE.replace(FAKE_KEY, "[REDACTED]")
    assert "+" + reason in diff_text
    assert injected == 0
    assert scroll_w <= 1280  # no sideways scrolling on a laptop screen
    print(f"screenshots: {tmp_path / 'trace-1400.png'} {tmp_path / 'trace-1280.png'}")
