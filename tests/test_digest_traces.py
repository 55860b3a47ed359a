"""The weekly report's trace pages: ``fleetlab digest`` writes the offline page of every goal
the report names into ``reports/<week>/traces/`` and links each id to it, in index.html and
digest.md, and writes no other page.

The oracle for what a page must show, and for which ids are ids at all, is the store's tasks
rows read with SQL; the report's ids are read from its files (the visible text of index.html,
the Markdown of digest.md), never from the code that linked them.
"""

from __future__ import annotations

import contextlib
import io
import re
import shutil
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest

from fleetlab import telemetry
from fleetlab.cli import main
from fleetlab.clock import FakeClock, parse_week
from fleetlab.digest import _report as report_module
from fleetlab.digest import compute_metrics, failures_view, write_draft, write_trace_pages
from fleetlab.digest._traces import link_ids, mentioned_ids
from fleetlab.errors import FleetlabError
from fleetlab.store import open_store
from tests.helpers.browser import CHROMIUM_ARGS
from tests.helpers.refusals import snapshot
from tests.helpers.simulated_week import WEEK, copy_week

#: A task id (12 hex digits) or a trace id (32), standing alone.
ID = re.compile(r"(?<![0-9A-Za-z_])(?:[0-9a-f]{32}|[0-9a-f]{12})(?![0-9A-Za-z_])")
PAGE_HREF = re.compile(r"traces/([0-9a-f]{32})\.html(?:#agent-([0-9a-f]{12}))?")
FAKE_KEY = "sk-ant-api03-" + "Z8k2" * 10
#: A key registered in the test's process only (as ``AnthropicModel(api_key=...)`` does).
HOST_KEY = "plain-trace-page-secret-5531"


@dataclass(frozen=True)
class Known:
    """The store's tasks: each task id's trace and role, and the goals' trace ids."""

    trace_of: dict[str, str]
    role_of: dict[str, str]
    goals: set[str]

    def trace(self, ident: str) -> str | None:
        """The trace an id names (a goal's trace id, or any task's id), or None."""
        if ident in self.goals:
            return ident
        return self.trace_of.get(ident)

    def agents(self, trace_id: str) -> dict[str, str]:
        return {t: self.role_of[t] for t, tr in self.trace_of.items() if tr == trace_id}


def known(db: Path) -> Known:
    with open_store(db) as store:
        rows = store.query("SELECT id, trace_id, parent_id, role FROM tasks ORDER BY id")
    return Known(
        {str(r[0]): str(r[1]) for r in rows},
        {str(r[0]): str(r[3]) for r in rows},
        {str(r[1]) for r in rows if r[2] is None},
    )


@dataclass(frozen=True)
class Report:
    db: Path
    folder: Path
    gone: str  # the trace id of the goal whose workspace was deleted before the run
    keyed: str  # the trace id of the failed goal whose error holds HOST_KEY
    err: str


@pytest.fixture(scope="module")
def week_db(simulated_week: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This module's copy of the session's simulated week (tests/helpers/simulated_week.py)."""
    return copy_week(simulated_week, tmp_path_factory.mktemp("sim"))


@pytest.fixture(scope="module")
def report(week_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Report]:
    """One ``fleetlab digest`` run, after the workspace of the first goal completed in the week
    (the first row of the report's table of shipped goals) was deleted, and a failed goal's
    error given a key that only this process knows (the notebook's kernel cannot redact it:
    the report's publisher must)."""
    window = parse_week(WEEK)
    span = (int(window.start.timestamp() * 1e6), int(window.end.timestamp() * 1e6))
    with open_store(week_db) as store:
        root_id, trace_id = store.query(
            "SELECT id, trace_id FROM tasks WHERE parent_id IS NULL AND status = 'completed'"
            " AND finished_us >= ? AND finished_us < ? ORDER BY finished_us, id LIMIT 1",
            span,
        )[0]
        failed = store.query(
            "SELECT trace_id, id FROM tasks WHERE parent_id IS NULL AND status = 'failed'"
            " AND finished_us >= ? AND finished_us < ? ORDER BY id LIMIT 1",
            span,
        )[0]
    with sqlite3.connect(week_db) as conn:  # as a database written before redaction would
        conn.execute(
            "UPDATE tasks SET error = ? WHERE id = ?", (f"verifier: printed {HOST_KEY}", failed[1])
        )
    conn.close()
    shutil.rmtree(week_db.parent / "workspaces" / root_id)
    reports = tmp_path_factory.mktemp("reports")
    registered = telemetry._registered
    telemetry.register_secret(HOST_KEY)
    try:
        err = io.StringIO()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            code = main(["digest", "--week", WEEK, "--db", str(week_db), "--out", str(reports)])
        assert code == 0, err.getvalue()
        yield Report(week_db, reports / WEEK, str(trace_id), str(failed[0]), err.getvalue())
    finally:
        telemetry._registered = registered


class _Text(HTMLParser):
    """The visible text of a page, each piece with the href of the link it is in."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.pieces: list[tuple[str, str | None]] = []
        self._href: list[str | None] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._hidden += 1
        elif tag == "a":
            self._href.append(dict(attrs).get("href"))

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._hidden -= 1
        elif tag == "a" and self._href:
            self._href.pop()

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.pieces.append((data, next((h for h in reversed(self._href) if h), None)))


def html_ids(path: Path, k: Known) -> list[tuple[str, str | None]]:
    """Every id of a task or a goal in the page's visible text, with its link."""
    parser = _Text()
    parser.feed(path.read_text("utf-8"))
    return [
        (m[0], href) for text, href in parser.pieces for m in ID.finditer(text) if k.trace(m[0])
    ]


def page_link(href: str | None) -> tuple[str, str] | None:
    """A link to a trace page, as the id it names (the agent's task id when it points at
    one, else the goal's trace id) and the href; None for any other link."""
    m = PAGE_HREF.fullmatch(href or "")
    return None if m is None else (m[2] or m[1], str(href))


def html_links(path: Path) -> list[tuple[str, str]]:
    """Every link of the page to a trace page (a goal's title linked to its page), whatever
    its text says."""
    parser = _Text()
    parser.feed(path.read_text("utf-8"))
    found = [page_link(href) for _, href in parser.pieces]
    return [f for f in found if f is not None]


#: An id written as a link: `` [`id`](href) ``.
_MD_ID_LINK = re.compile(r"\[`([0-9a-f]+)`\]\(([^)\s]*)\)")
#: Any other Markdown link (a goal's title linked to its page): ``[text](href)``.
_MD_LINK = re.compile(r"\[((?:\\.|[^\[\]\n])*)\]\(([^)\s]*)\)")


def markdown_ids(text: str, k: Known) -> tuple[list[tuple[str, str]], list[str]]:
    """The ids of digest.md: those written as links (an id linked to its target, or a link to
    a trace page, which names the id in its href), and those written without a link."""
    linked = [(m[1], m[2]) for m in _MD_ID_LINK.finditer(text)]
    rest_text = _MD_ID_LINK.sub("", text)
    for m in _MD_LINK.finditer(rest_text):
        found = page_link(m[2])
        if found is not None:
            linked.append(found)
    rest_text = _MD_LINK.sub(lambda m: m[1], rest_text)  # a link's text still counts
    rest = [m[0] for m in ID.finditer(rest_text) if k.trace(m[0])]
    return linked, rest


def check_href(ident: str, href: str | None, k: Known) -> str:
    """The href is the page of the goal ``ident`` names (at its agent, for a task id)."""
    assert href is not None, f"{ident} is not a link"
    m = PAGE_HREF.fullmatch(href)
    assert m is not None, href
    assert m[1] == k.trace(ident), (ident, href)
    if ident not in k.goals:
        assert m[2] == ident, (ident, href)
    return str(m[1])


@pytest.mark.slow
def test_every_id_the_report_names_links_to_its_goals_page(report: Report) -> None:
    k = known(report.db)
    index = report.folder / "index.html"
    in_index = html_ids(index, k) + html_links(index)
    post = (report.folder / "digest.md").read_text("utf-8")
    linked, unlinked = markdown_ids(post, k)
    assert unlinked == []
    assert len(in_index) > 30
    assert len(linked) > 5
    shown = set()
    for ident, href in in_index + linked:
        shown.add(check_href(ident, href, k))
        assert (report.folder / href.split("#")[0]).is_file(), href  # type: ignore[union-attr]
    # what the sections name: every shipped goal in the table, every failure, the draft's
    assert {i for i, _ in linked} <= {i for i, _ in in_index}  # index.html shows the draft
    assert report.gone in shown
    # the post links goals' titles to their pages (traces/<trace id>.html), ids not in its prose
    assert [i for i, href in linked if f"](traces/{i}.html)" in post and i in k.goals]
    pages = len(list((report.folder / "traces").iterdir()))
    said = f"{pages} trace page(s) of the goals it names in {report.folder / 'traces'}"
    assert said in report.err


@pytest.mark.slow
def test_each_page_names_its_goal_and_its_agents(report: Report) -> None:
    k = known(report.db)
    pages = sorted((report.folder / "traces").iterdir())
    assert pages
    for path in pages:
        trace_id = path.stem
        html = path.read_text("utf-8")
        assert f"trace <code>{trace_id}</code>" in html, path.name
        agents = k.agents(trace_id)
        assert agents, path.name
        for task_id, role in agents.items():
            assert f'id="agent-{task_id}"' in html, (path.name, task_id)
            assert f"<code>{task_id}</code>" in html
            assert f">{role}<" in html, (path.name, role)
        assert "Content-Security-Policy" in html
        assert '<a href="../index.html">' in html  # back to the report
    keyed = (report.folder / "traces" / f"{report.keyed}.html").read_text("utf-8")
    assert "printed [REDACTED]" in keyed
    assert not [p.name for p in pages if HOST_KEY in p.read_text("utf-8")]
    gone = (report.folder / "traces" / f"{report.gone}.html").read_text("utf-8")
    assert "is not there (deleted, or the fleet ran elsewhere)" in gone
    assert "Conversations" in gone


@pytest.mark.slow
def test_only_the_goals_the_report_shows_get_a_page(report: Report) -> None:
    k = known(report.db)
    named = {k.trace(i) for i, _ in html_ids(report.folder / "index.html", k)}
    # a goal the post names by its title links to its page without showing its id
    parser = _Text()
    parser.feed((report.folder / "index.html").read_text("utf-8"))
    linked = [page_link(href) for _, href in parser.pieces]
    named |= {k.trace(link[0]) for link in linked if link is not None}
    pages = {p.name for p in (report.folder / "traces").iterdir()}
    assert pages == {f"{t}.html" for t in named}
    # metrics.json lists more goals than the report shows (the tables show 25 rows): those
    # have no page
    metrics = (report.folder / "metrics.json").read_text("utf-8")
    listed = {t for t in ID.findall(metrics) if t in k.goals}
    assert listed - named, "the week should list goals the report does not show"


@pytest.mark.slow
def test_a_failing_cell_leaves_the_old_traces_intact(
    week_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real notebook's cells up to the one that writes the trace pages, then a cell that
    fails: the pages were written (the error says how many), and none reached the report."""
    import nbformat

    nb = nbformat.read(report_module.default_notebook(), as_version=4)
    last = next(i for i, c in enumerate(nb.cells) if "write_trace_pages(" in c.source)
    nb.cells = nb.cells[: last + 1]
    nb.cells.append(nbformat.v4.new_code_cell('raise RuntimeError(f"{len(traces)} pages written")'))
    broken = tmp_path / "notebooks" / "weekly_digest.ipynb"
    broken.parent.mkdir()
    nbformat.write(nb, broken)
    reports = tmp_path / "reports"
    old = reports / WEEK / "traces"
    old.mkdir(parents=True)
    (reports / WEEK / "index.html").write_text('<a href="traces/old.html">old</a>')
    (old / "old.html").write_text("last week's page")
    before = snapshot(reports)
    with pytest.raises(FleetlabError, match=r"RuntimeError: (\d+) pages written") as caught:
        report_module.run_digest(WEEK, "UTC", week_db, out_dir=reports, notebook=broken)
    written = re.search(r"RuntimeError: (\d+) pages written", str(caught.value))
    assert written is not None
    assert int(written[1]) > 0
    assert snapshot(reports) == before
    kept = re.search(r"executed notebook kept at (.+)\)", str(caught.value))
    assert kept is not None
    shutil.rmtree(Path(kept[1]).parent)


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_trace_link_opens_its_page_offline(
    report: Report, tmp_path: Path, chromium: Path
) -> None:
    from playwright.sync_api import sync_playwright

    k = known(report.db)
    requests: list[str] = []
    shot = tmp_path / "trace.png"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("request", lambda r: requests.append(r.url))
            page.route(re.compile(r"^https?://"), lambda route: route.abort())
            page.goto((report.folder / "index.html").as_uri())
            link = page.locator('a[href^="traces/"]').first
            ident = link.inner_text().strip()
            with page.expect_navigation():
                link.click()
            url = page.url
            heading = page.locator("header p.meta code").first.inner_text()
            agents = page.locator("section.agent").count()
            page.screenshot(path=str(shot))
        finally:
            browser.close()
    trace_id = k.trace(ident)
    assert trace_id is not None
    assert url.split("#")[0] == (report.folder / "traces" / f"{trace_id}.html").as_uri()
    assert heading == trace_id
    assert agents == len(k.agents(trace_id))
    assert all(r.startswith("file://") for r in requests), requests
    assert shot.stat().st_size > 20_000
    print(f"screenshot: {shot}")


# ---- without papermill -------------------------------------------------------------------


def test_links_are_added_around_ids_and_nowhere_else() -> None:
    t, task = "0f" * 16, "ab" * 6
    hrefs = {t: f"traces/{t}.html", task: f"traces/{t}.html#agent-{task}"}
    text = (
        f"| goal | {t} |\n"
        f"trace `{t}`, task `{task}`, unknown `{'cd' * 6}`\n"
        f"`a reason naming {t}` [{t}](elsewhere) <img alt='{t}'> x{t} {t}y /{t}\n"
        f"```\n{t}\n```\n"
    )
    assert mentioned_ids(text) == [t, task, "cd" * 6]
    assert link_ids(text, hrefs) == (
        f"| goal | [{t}](traces/{t}.html) |\n"
        f"trace [{t}](traces/{t}.html), task [{task}](traces/{t}.html#agent-{task}),"
        f" unknown `{'cd' * 6}`\n"
        f"`a reason naming {t}` [{t}](elsewhere) <img alt='{t}'> x{t} {t}y /{t}\n"
        f"```\n{t}\n```\n"
    )
    assert link_ids(text, {}) == text
    assert link_ids(f"trace `{t}`", hrefs, code=True) == f"trace [`{t}`](traces/{t}.html)"


def test_hostile_goal_text_is_escaped_and_redacted_on_its_page(tmp_path: Path) -> None:
    """A failed goal whose title and error carry markup and a key: the failures view links
    its trace id, its page is written, escaped and redacted; no out_dir, no page."""
    window = parse_week(WEEK)
    clock = FakeClock(window.start + timedelta(days=1))
    hostile = f"<script>alert(1)</script> {FAKE_KEY}"
    with open_store(tmp_path / "fleet.db", clock=clock) as store:
        goal = store.create_task(f"goal {hostile}", role="orchestrator")
        store.transition(goal.id, "running", worker="w", lease_s=600)
        clock.advance(60)
        store.transition(goal.id, "failed", error=f"boom: {hostile}")
        metrics = compute_metrics(store, window)
        draft = write_draft(metrics, "sim:default")
        assert len(write_trace_pages("", store, metrics, draft)) == 0
        draft += f"\nIts task `{goal.id}`, and `{'ef' * 6}`, a task of no goal.\n"
        traces = write_trace_pages(tmp_path / "out", store, metrics, draft)
    page = f"traces/{goal.trace_id}.html"
    assert dict(traces.hrefs) == {goal.trace_id: page, goal.id: f"{page}#agent-{goal.id}"}
    assert [p.name for p in (tmp_path / "out" / "traces").iterdir()] == [f"{goal.trace_id}.html"]
    html = (tmp_path / "out" / "traces" / f"{goal.trace_id}.html").read_text("utf-8")
    assert FAKE_KEY not in html
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    view = failures_view(metrics).linked(traces).text
    assert f"[{goal.trace_id}](traces/{goal.trace_id}.html)" in view
    assert FAKE_KEY not in str(failures_view(metrics).linked(traces))
    assert "is not there" in html  # no workspace folder: the page still renders, and says so
