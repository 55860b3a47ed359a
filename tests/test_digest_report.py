"""``fleetlab digest`` end to end: papermill runs the notebook on a small simulated week and
the report folder gets its four artefacts; bad parameters fail in one line and leave nothing.
The report's charts are checked in headless Chromium (they must draw with no network).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import secrets
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from fleetlab.cli import main
from fleetlab.clock import parse_week
from fleetlab.digest import DigestResult, FactCheck, Unmatched, run_digest
from fleetlab.digest import _report as report_module
from fleetlab.errors import FleetlabError, UserError
from fleetlab.store import open_store
from tests.helpers.browser import CHROMIUM_ARGS
from tests.helpers.lab import running_lab
from tests.helpers.refusals import one_error_line, snapshot
from tests.helpers.simulated_week import WEEK, copy_week

NOTEBOOK = "weekly_digest.ipynb"


@dataclass(frozen=True)
class Run:
    db: Path
    reports: Path
    code: int
    out: str
    err: str


@pytest.fixture(scope="module")
def small_db(simulated_week: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This module's copy of the session's simulated week (tests/helpers/simulated_week.py)."""
    return copy_week(simulated_week, tmp_path_factory.mktemp("sim"))


def _us(instant: datetime) -> int:
    return int(instant.timestamp() * 1e6)


def expected_issue(db: Path) -> int:
    """The post's issue number, from the tasks rows: how many ISO weeks (UTC) up to and
    including WEEK had a task created."""
    with open_store(db) as store:
        created = store.query(
            "SELECT created_us FROM tasks WHERE created_us < ?", (_us(parse_week(WEEK).end),)
        )
    weeks = {datetime.fromtimestamp(us / 1e6, UTC).isocalendar()[:2] for (us,) in created}
    return len(weeks)


def expected_charts(db: Path) -> set[str]:
    """The charts the week has data for, read from the database with SQL: the tasks spawned
    in the week (where they stand, per day), the ones that completed (time to completion),
    the ones still in flight at its end (their age), more than one week of activity (the
    trend), model calls (cost), root goals that finished (agents per goal) and learner
    updates (its choices)."""
    window = parse_week(WEEK)
    start, end = _us(window.start), _us(window.end)
    week = (start, end)
    with open_store(db) as store:

        def any_row(sql: str, params: tuple[int, ...] = week) -> bool:
            return bool(store.query(sql, params))

        charts = set()
        if any_row("SELECT 1 FROM tasks WHERE created_us >= ? AND created_us < ?"):
            charts |= {"funnel", "daily"}
        if any_row(
            "SELECT 1 FROM tasks WHERE created_us >= ? AND created_us < ?"
            " AND status = 'completed' AND finished_us < ?",
            (start, end, end),
        ):
            charts.add("completion")
        if any_row(
            "SELECT 1 FROM tasks WHERE created_us >= ? AND created_us < ?"
            " AND (finished_us IS NULL OR finished_us >= ?)",
            (start, end, end),
        ):
            charts.add("age")
        year_ago = end - 52 * 7 * 86_400 * 1_000_000
        active = store.query(
            "SELECT ts_us FROM events WHERE kind IN ('task.spawned', 'task.completed',"
            " 'task.failed') AND ts_us >= ? AND ts_us < ?",
            (year_ago, end),
        )
        if len({(ts - year_ago) // (7 * 86_400 * 1_000_000) for (ts,) in active}) > 1:
            charts.add("trend")
        if any_row("SELECT 1 FROM events WHERE kind = 'model.call' AND ts_us >= ? AND ts_us < ?"):
            charts.add("cost")
        if any_row(
            "SELECT 1 FROM tasks WHERE parent_id IS NULL AND finished_us >= ? AND finished_us < ?"
        ):
            charts.add("complexity")
        if any_row("SELECT 1 FROM learner_updates WHERE ts_us >= ? AND ts_us < ?"):
            charts.add("learner")
    return charts


_SPEC = re.compile(r"var spec = (\{.*?\});\n", re.DOTALL)


def chart_specs(html: str) -> list[dict[str, Any]]:
    """The Vega-Lite spec of each chart drawn in a page."""
    return [json.loads(m[1]) for m in _SPEC.finditer(html)]


def _measures(node: Any) -> set[str]:
    """The fields a spec encodes as quantities (its bars' lengths, its lines' heights)."""
    found: set[str] = set()
    if isinstance(node, dict):
        if node.get("type") == "quantitative" and isinstance(node.get("field"), str):
            found.add(node["field"])
        for value in node.values():
            found |= _measures(value)
    elif isinstance(node, list):
        for value in node:
            found |= _measures(value)
    return found


def _rows(spec: dict[str, Any]) -> list[dict[str, Any]]:
    rows = list(spec.get("data", {}).get("values", []))
    for values in spec.get("datasets", {}).values():
        rows += values
    return rows


def has_data(spec: dict[str, Any]) -> bool:
    """The chart draws something: one of its rows has a quantity above zero."""
    fields = _measures(spec)
    return any(
        isinstance(row.get(f), int | float) and row[f] > 0 for row in _rows(spec) for f in fields
    )


@pytest.fixture(scope="module")
def run(small_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Run:
    home = tmp_path_factory.mktemp("home")
    out, err = io.StringIO(), io.StringIO()
    with (
        contextlib.chdir(home),  # the default --out is relative: ./reports
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        code = main(["digest", "--week", WEEK, "--db", str(small_db)])
    return Run(small_db, home / "reports", code, out.getvalue(), err.getvalue())


@pytest.mark.slow
def test_digest_writes_the_report_folder(run: Run) -> None:
    assert run.code == 0, run.err
    folder = run.reports / WEEK
    assert run.out.strip() == "reports/2026-W45/index.html"
    assert "fact-check: all" in run.err
    assert "digest notebook" not in run.err  # piped: no per-cell progress
    names = {p.name for p in folder.iterdir()}
    assert {"index.html", "digest.md", "metrics.json", "weekly_digest.ipynb"} <= names
    charts = expected_charts(run.db)
    assert {"daily", "funnel", "completion", "cost"} <= charts  # the week has data
    assert {n.removesuffix(".png") for n in names if n.endswith(".png")} == charts
    assert [p.name for p in run.reports.iterdir()] == [WEEK]  # no temporary folder left

    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["week"] == WEEK
    assert metrics["simulated"] is True
    with open_store(run.db) as store:
        spawned = store.query(
            "SELECT COUNT(*) FROM tasks WHERE created_us >= ? AND created_us < ?",
            (
                int(parse_week(WEEK).start.timestamp() * 1e6),
                int(parse_week(WEEK).end.timestamp() * 1e6),
            ),
        )[0][0]
    assert metrics["counts"]["spawned"] == spawned > 0
    assert metrics["integrity"]["ok"]

    post = (folder / "digest.md").read_text()
    issue = expected_issue(run.db)
    assert issue == 1  # the database holds one simulated week: not the ISO week number (45)
    assert post.startswith(f'---\ntitle: "Fleet weekly #{issue}:')
    assert "![Tasks spawned, completed and failed per day](daily.png)" in post
    figures = re.findall(r"^!\[[^\]]+\]\(([\w.]+)\.png\)$", post, re.MULTILINE)
    assert sorted(figures) == sorted(charts)

    notebook = json.loads((folder / "weekly_digest.ipynb").read_text())
    executed = [c for c in notebook["cells"] if c["cell_type"] == "code"]
    assert all(c["execution_count"] for c in executed)
    assert any("injected-parameters" in c["metadata"].get("tags", []) for c in executed)

    html = (folder / "index.html").read_text()
    assert "digest.compute_metrics(" not in html  # no code cells
    assert not re.search(r'class="jp-(InputPrompt|OutputPrompt)', html)  # no prompts
    assert html.count('class="fleetlab-chart"') == len(charts)
    specs = chart_specs(html)
    assert len(specs) == len(charts)
    assert [s.get("title") for s in specs if not has_data(s)] == []  # no empty chart
    assert "window.vegaEmbed" in html  # the chart library is inline
    assert not re.search(r'<script[^>]+src="https?://', html)  # nothing from a CDN


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--week", "2026-W99"], "week '2026-W99' does not exist"),
        (["--week", "48"], "malformed week '48'"),
        (["--tz", "Mars/Olympus"], "unknown time zone 'Mars/Olympus'"),
        (["--db", "{tmp}/missing.db"], "no fleet database at"),
        (["--model", "gpt:4"], "unknown model backend"),
    ],
)
def test_bad_parameters_fail_in_one_line_and_leave_nothing(
    args: list[str],
    message: str,
    small_db: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    reports = tmp_path / "reports"
    argv = ["digest", "--week", WEEK, "--db", str(small_db), "--out", str(reports)]
    argv += [a.format(tmp=tmp_path) for a in args]
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("error:")
    assert message in lines[0]
    assert "Traceback" not in captured.err
    assert captured.out == ""
    assert not reports.exists() or not any(reports.iterdir())


def test_strict_exits_non_zero_when_a_number_is_unmatched(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = FactCheck(checked=3, unmatched=(Unmatched("41", 41.0, 12, "**41 spawned**"),))
    monkeypatch.setattr(
        "fleetlab.digest.run_digest", lambda **_: DigestResult(tmp_path / WEEK, bad)
    )
    assert main(["digest", "--week", WEEK]) == 0
    assert "'41' (line 12)" in capsys.readouterr().err
    assert main(["digest", "--week", WEEK, "--strict"]) == 1
    captured = capsys.readouterr()
    assert captured.out.strip() == str(tmp_path / WEEK / "index.html")
    assert "--strict" in captured.err


@pytest.mark.parametrize("terminal", [False, True])
def test_per_cell_progress_only_on_a_terminal(
    terminal: bool,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``fleetlab digest`` shows the cell it is running on one transient stderr line when
    stderr is a terminal (as ``fleet run`` and ``run-task`` do), and nothing when piped: then
    stderr holds only the result lines. A cell's text is shown as text, never as markup."""
    cells = ["check the parameters", "read the week's [bold]figures[/]", "each section"]

    def fake(**kwargs: Any) -> DigestResult:
        for number, what in enumerate(cells, 1):
            kwargs["progress"](number, len(cells), what)
        return DigestResult(tmp_path / WEEK, FactCheck(checked=4, unmatched=()))

    monkeypatch.setattr("fleetlab.digest.run_digest", fake)
    monkeypatch.setenv("TTY_COMPATIBLE", "1" if terminal else "0")
    assert main(["digest", "--week", WEEK]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == str(tmp_path / WEEK / "index.html")
    if terminal:
        # the last state is drawn when the line is taken down
        assert "digest notebook" in captured.err
        assert "each section" in captured.err
        assert "2/3" in captured.err
    else:
        assert one_error_line(captured.err).startswith("fact-check: all 4")
        assert "cell" not in captured.err


def test_a_failed_run_leaves_no_half_written_folder(
    small_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reports = tmp_path / "reports"
    (reports / WEEK).mkdir(parents=True)
    (reports / WEEK / "index.html").write_text("last good report")

    def broken(params: Any, notebook: Path, folder: Path, progress: Any = None) -> None:
        (folder / "metrics.json").write_text("{}")
        raise FleetlabError("the digest notebook failed in cell 5: boom")

    monkeypatch.setattr(report_module, "_run_notebook", broken)
    with pytest.raises(FleetlabError, match="boom"):
        run_digest(WEEK, "UTC", small_db, out_dir=reports)
    assert sorted(p.name for p in reports.iterdir()) == [WEEK]
    assert (reports / WEEK / "index.html").read_text() == "last good report"


@pytest.mark.slow
def test_the_notebook_fails_fast_in_its_first_cell(small_db: Path, tmp_path: Path) -> None:
    import papermill
    from papermill.exceptions import PapermillExecutionError

    output = tmp_path / "out.ipynb"
    with pytest.raises(PapermillExecutionError) as caught:
        papermill.execute_notebook(
            str(report_module.default_notebook()),
            str(output),
            parameters={"week": "2026-W99", "db": str(small_db)},
            kernel_name="python3",
            progress_bar=False,
        )
    assert caught.value.ename == "UserError"
    assert "does not exist: 2026 has weeks W01 to W53" in caught.value.evalue
    cells = json.loads(output.read_text())["cells"]
    failed = next(
        i
        for i, c in enumerate(cells)
        if c.get("outputs") and any(o.get("output_type") == "error" for o in c["outputs"])
    )
    assert "validate_params" in "".join(cells[failed]["source"])
    later = [c for c in cells[failed + 1 :] if c["cell_type"] == "code"]
    assert later
    assert all(c["execution_count"] is None for c in later)
    with pytest.raises(UserError, match="2026-W99"):
        report_module.validate_params(week="2026-W99", db=small_db)


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.timeout(120)
def test_index_html_draws_the_charts_in_chromium(run: Run, tmp_path: Path, chromium: Path) -> None:
    from playwright.sync_api import sync_playwright

    index = run.reports / WEEK / "index.html"
    charts = expected_charts(run.db)
    shot = tmp_path / "digest.png"
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on("pageerror", lambda e: errors.append(str(e)))
            # no network: anything fetched from outside the file would fail here
            page.route(re.compile(r"^https?://"), lambda route: route.abort())
            page.goto(index.as_uri())
            sizes = _chart_sizes(page, len(charts), timeout_ms=30_000)
            marks = page.eval_on_selector_all(
                ".fleetlab-chart", "els => els.map(e => e.querySelectorAll('path, rect').length)"
            )
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert len(sizes) == len(charts)
    assert all(w > 100 and h > 100 for w, h in sizes), sizes
    assert all(n > 0 for n in marks), marks
    assert errors == []
    assert shot.stat().st_size > 50_000
    print(f"screenshot: {shot}")


def _chart_sizes(page: Any, n: int, *, timeout_ms: int) -> list[list[float]]:
    """Once ``n`` charts are drawn on ``page`` (vega-embed's svg or canvas), the width and
    height of each."""
    page.wait_for_function(
        "n => document.querySelectorAll('.fleetlab-chart svg, .fleetlab-chart canvas').length >= n",
        arg=n,
        timeout=timeout_ms,
    )
    sizes: list[list[float]] = page.eval_on_selector_all(
        ".fleetlab-chart",
        "els => els.map(e => { const c = e.querySelector('canvas, svg');"
        " const r = c ? c.getBoundingClientRect() : {width: 0, height: 0};"
        " return [r.width, r.height]; })",
    )
    return sizes


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.timeout(180)
def test_the_notebook_draws_its_charts_in_jupyterlab(
    small_db: Path, tmp_path: Path, chromium: Path
) -> None:
    """Opened in JupyterLab and run there (not through papermill), the charts still draw."""
    from playwright.sync_api import sync_playwright

    charts = expected_charts(small_db)
    home = tmp_path / "jupyter"
    news = home / "settings" / "@jupyterlab" / "apputils-extension"
    news.mkdir(parents=True)
    (news / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )
    # a copy, so nothing the server saves can put outputs into the committed notebook
    folder = tmp_path / "notebooks"
    folder.mkdir()
    shutil.copy(report_module.default_notebook(), folder)
    token = secrets.token_hex(8)
    env = os.environ | {
        "FLEETLAB_DB": str(small_db),
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_DATA_DIR": str(home / "data"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
        "IPYTHONDIR": str(home / "ipython"),
    }
    with running_lab(folder, token, env, tmp_path / "lab.log") as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1600})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{url}/lab/tree/{NOTEBOOK}?token={token}")
            page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=60_000)
            # as a user would: name the week in the parameters cell, then run all
            page.evaluate(
                "src => window.jupyterapp.shell.currentWidget.content.widgets[1]"
                ".model.sharedModel.setSource(src)",
                f'week = "{WEEK}"\ntz = "UTC"\ndb = ""\nmodel = "sim:default"\n'
                'out_dir = ""\nnow = ""',
            )
            page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
            sizes = _chart_sizes(page, len(charts), timeout_ms=90_000)
            page.locator(".fleetlab-chart").nth(1).scroll_into_view_if_needed()
            page.screenshot(path=str(tmp_path / "lab.png"))
        finally:
            browser.close()
    assert len(sizes) == len(charts)
    assert all(w > 100 and h > 100 for w, h in sizes), sizes
    assert errors == []


def test_a_kernel_that_will_not_start_is_one_line_and_leaves_nothing(
    small_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import papermill

    def no_kernel(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("Kernel didn't respond in 60 seconds")

    monkeypatch.setattr(papermill, "execute_notebook", no_kernel)
    reports = tmp_path / "reports"
    with pytest.raises(FleetlabError, match="cannot run the digest notebook on kernel"):
        run_digest(WEEK, "UTC", small_db, out_dir=reports)
    assert list(reports.iterdir()) == []


@pytest.mark.slow
def test_a_failing_cell_in_fleetlab_digest_leaves_the_old_report_intact(
    small_db: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A real notebook cell failing during ``fleetlab digest``, after the cells before it
    wrote metrics.json, digest.md and the charts: one ``failed:`` line naming the cell, exit 1,
    and the reports folder byte for byte as it was, last week's good report included (the
    half-built one is gone)."""
    import nbformat

    nb = nbformat.read(report_module.default_notebook(), as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell('raise RuntimeError("the last cell exploded")'))
    broken = tmp_path / "notebooks" / NOTEBOOK
    broken.parent.mkdir()
    nbformat.write(nb, broken)
    monkeypatch.setattr(report_module, "default_notebook", lambda: broken)
    reports = tmp_path / "reports"
    (reports / WEEK).mkdir(parents=True)
    (reports / WEEK / "index.html").write_text("last good report")
    (reports / WEEK / "metrics.json").write_text('{"week": "2026-W45", "good": true}')
    before = snapshot(reports)

    code = main(["digest", "--week", WEEK, "--db", str(small_db), "--out", str(reports)])
    captured = capsys.readouterr()
    assert code == 1
    # stderr is not a terminal here: no per-cell progress lines, only the failure
    line = one_error_line(captured.err, captured.out)
    failed = re.fullmatch(
        r"failed: the digest notebook failed in cell (\d+): RuntimeError: the last cell"
        r" exploded \(executed notebook kept at (.+)\)",
        line,
    )
    assert failed is not None, line
    # papermill counts the cells of the executed notebook, which has one more than the
    # source (its injected parameters): the appended cell is the last, index len(nb.cells).
    assert int(failed[1]) == len(nb.cells)
    assert captured.out == ""
    assert snapshot(reports) == before
    kept = Path(failed[2])
    try:
        executed = nbformat.read(kept, as_version=4)
        assert executed.cells[-1].outputs[0].ename == "RuntimeError"
    finally:
        shutil.rmtree(kept.parent)


def test_publishing_replaces_the_old_report_or_keeps_it(tmp_path: Path) -> None:
    """``_publish`` swaps a finished report in for last week's run of the same week, and when
    the swap fails (here the built folder is gone), puts the old one back untouched."""
    reports = tmp_path / "reports"
    final = reports / WEEK
    final.mkdir(parents=True)
    (final / "index.html").write_text("old report")
    built = reports / ".building"
    built.mkdir()
    (built / "index.html").write_text("new report")
    report_module._publish(built, final)
    assert sorted(p.name for p in reports.iterdir()) == [WEEK]
    assert (final / "index.html").read_text() == "new report"

    with pytest.raises(FileNotFoundError):
        report_module._publish(reports / ".vanished", final)
    assert sorted(p.name for p in reports.iterdir()) == [WEEK]
    assert (final / "index.html").read_text() == "new report"


class _Text(HTMLParser):
    """The text a reader sees (no script or style) and the text of each ``<strong>``."""

    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.strong: list[str] = []
        self._skip = 0
        self._bold = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        self._skip += tag in ("script", "style")
        if tag == "strong":
            self._bold += 1
            self.strong.append("")

    def handle_endtag(self, tag: str) -> None:
        self._skip -= tag in ("script", "style") and self._skip > 0
        self._bold -= tag == "strong" and self._bold > 0

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.text.append(data)
            if self._bold:
                self.strong[-1] += data


@pytest.mark.slow
def test_bold_money_in_index_html_is_bold_not_maths(run: Run) -> None:
    """A paragraph with two dollar amounts is not read as maths: every ``**$x**`` of the
    post is a ``<strong>$x</strong>`` in index.html and no ``**`` is left as text."""
    folder = run.reports / WEEK
    post = (folder / "digest.md").read_text("utf-8")
    paragraphs = [p for p in post.split("\n\n") if "**$" in p and p.count("$") >= 2]
    assert paragraphs, "the post has no paragraph with two dollar amounts, one of them bold"
    bold = set(re.findall(r"\*\*(\$[\d,.]+)\*\*", post))
    page = _Text()
    page.feed((folder / "index.html").read_text("utf-8"))
    assert "**" not in "".join(page.text)
    assert bold <= set(page.strong), bold - set(page.strong)
