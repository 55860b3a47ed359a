"""Every notebook under ``notebooks/`` is committed without outputs and runs top to bottom
(papermill, a real kernel, the simulated model, a db in a temp folder), with no network: the
kernel cannot connect anywhere but loopback (a ``sitecustomize`` on its ``PYTHONPATH`` makes
``socket.connect`` and name lookups of any other host raise, and records the attempt), and the
executed notebook's HTML (nbconvert) is opened in headless Chromium with every request that is
not a ``file:`` or ``data:`` URL aborted and recorded. Every chart the notebook shows must be
drawn there (vega-embed's ``<svg>`` or ``<canvas>``, with a size), nothing may try to leave the
machine, and the page is saved as ``reports/screenshots/notebook_<name>.png``.

A notebook is collected by being there: a new notebook is executed without being listed. One
with a ``parameters`` cell gets the parameters ``PARAMETERS`` builds for its name (each builder
makes whatever small inputs it needs in the test's temp folder).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nbformat
import papermill
import polars as pl
import pytest

from fleetlab.clock import FakeClock
from fleetlab.store import open_store
from tests.helpers.browser import CHROMIUM_ARGS

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
SCREENSHOTS = ROOT / "reports" / "screenshots"
ALL = sorted(p for p in NOTEBOOKS.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def _digest_parameters(tmp_path: Path) -> dict[str, Any]:
    from tests.helpers.populate import populate

    db = tmp_path / "digest.db"
    populate(str(db), roots=12)  # a small fleet spread over the week of 2026-11-16
    return {
        "db": str(db),
        "week": "2026-W47",
        "tz": "UTC",
        "now": "2026-11-23T07:00:00Z",  # the report's clock: fixed, so the run is repeatable
        "out_dir": str(tmp_path / "reports"),
    }


def _ab_parameters(tmp_path: Path) -> dict[str, Any]:
    # the notebook's own quick-look defaults, with results kept out of the repository
    return {"out_root": str(tmp_path / "experiments")}


PARAMETERS: dict[str, Callable[[Path], dict[str, Any]]] = {
    "ab_decomposition": _ab_parameters,
    "weekly_digest": _digest_parameters,
}


def _seed_console(db: Path) -> None:
    """Two queued goals for the fleet console to show."""
    with open_store(db, clock=FakeClock(datetime(2026, 11, 23, 9, 0, tzinfo=UTC))) as store:
        store.create_task("first goal", role="orchestrator")
        store.create_task("second goal", role="orchestrator")


def _ids(paths: list[Path]) -> list[str]:
    return [str(p.relative_to(NOTEBOOKS)) for p in paths]


def _has_parameters_cell(nb: nbformat.NotebookNode) -> bool:
    return any("parameters" in cell.metadata.get("tags", []) for cell in nb.cells)


def test_there_are_notebooks() -> None:
    assert any(p.name == "fleet_console.ipynb" for p in ALL)


@pytest.mark.parametrize("path", ALL, ids=_ids(ALL))
def test_notebook_is_committed_without_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    dirty = [
        n
        for n, cell in enumerate(nb.cells)
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)
    ]
    assert dirty == [], (
        f"{path.name}: cells {dirty} carry outputs; clear them before committing "
        "(JupyterLab: Edit > Clear Outputs of All Cells, then save)"
    )
    assert "widgets" not in nb.metadata, f"{path.name}: saved widget state; clear it and save"


#: Loaded by the kernel (``PYTHONPATH``): no connection and no name lookup beyond loopback.
_NO_NETWORK = r"""
import os
import socket

_LOG = os.environ["FLEETLAB_TEST_NETWORK_LOG"]
with open(_LOG + ".loaded", "a", encoding="utf-8") as f:
    f.write(f"{os.getpid()}\n")


def _local(host):
    host = str(host).lower()
    return host in ("localhost", "", "::1", "0.0.0.0") or host.startswith(("127.", "::ffff:127."))


def _refuse(what):
    with open(_LOG, "a", encoding="utf-8") as f:
        f.write(what + "\n")
    raise OSError(101, "the network is blocked in this kernel (a test): " + what)


_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex
_sendto = socket.socket.sendto
_getaddrinfo = socket.getaddrinfo


def _check(sock, address, verb):
    if sock.family in (socket.AF_INET, socket.AF_INET6) and not _local(address[0]):
        _refuse(f"{verb} {address!r}")


def connect(self, address):
    _check(self, address, "connect")
    return _connect(self, address)


def connect_ex(self, address):
    _check(self, address, "connect")
    return _connect_ex(self, address)


def sendto(self, data, *args):
    _check(self, args[-1], "sendto")
    return _sendto(self, data, *args)


def getaddrinfo(host, *args, **kwargs):
    if host is not None and not _local(host.decode() if isinstance(host, bytes) else host):
        _refuse(f"getaddrinfo {host!r}")
    return _getaddrinfo(host, *args, **kwargs)


socket.socket.connect = connect
socket.socket.connect_ex = connect_ex
socket.socket.sendto = sendto
socket.getaddrinfo = getaddrinfo
"""


def _block_kernel_network(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The kernel papermill starts loads ``_NO_NETWORK``; returns the file of its refusals."""
    site = tmp_path / "no_network"
    site.mkdir()
    (site / "sitecustomize.py").write_text(_NO_NETWORK, "utf-8")
    log = tmp_path / "network_attempts.log"
    monkeypatch.setenv("FLEETLAB_TEST_NETWORK_LOG", str(log))
    inherited = os.environ.get("PYTHONPATH")
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(site), *([inherited] if inherited else [])])
    )
    return log


def _chart_outputs(code: list[nbformat.NotebookNode]) -> int:
    """How many charts the executed notebook shows: outputs that are altair charts, by the
    text altair (``alt.Chart(...)``, ``alt.LayerChart(...)``, ...) or the offline renderer
    (``<altair chart>``) gives them, or a vega-lite mimetype."""
    n = 0
    for cell in code:
        for o in cell.get("outputs", []):
            data = o.get("data", {})
            plain = data.get("text/plain", "")
            plain = "".join(plain) if isinstance(plain, list) else plain
            vega = any(k.startswith("application/vnd.vegalite") for k in data)
            n += vega or plain == "<altair chart>" or bool(re.match(r"alt\.\w*Chart\(", plain))
    return n


#: Counts the drawn charts and the chart errors on the page.
_CHARTS_JS = """() => {
  const drawn = [...document.querySelectorAll('.vega-embed')].filter((el) => {
    const g = el.querySelector('svg.marks, canvas.marks, svg, canvas');
    if (!g) return false;
    const r = g.getBoundingClientRect();
    return r.width > 0 && r.height > 0;
  }).length;
  const text = document.body.innerText;
  const errors = [/Error loading script/g, /chart error/g, /chart library is not loaded/g]
    .flatMap((re) => text.match(re) || []);
  return {drawn: drawn, errors: errors};
}"""


def _open_offline(
    chromium: Path, html_file: Path, shot: Path, charts: int
) -> tuple[dict[str, Any], list[str]]:
    """Open the page with every non-file, non-data request aborted; wait until ``charts``
    charts are drawn (or 30 s); save a full-page screenshot. Returns what the page showed
    (``_CHARTS_JS``) and every request that tried to leave the machine."""
    from playwright.sync_api import Route, sync_playwright
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    attempts: list[str] = []

    def route(r: Route) -> None:
        url = r.request.url
        if url.startswith(("file:", "data:")):
            r.continue_()
        else:
            attempts.append(url)
            r.abort()

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 900})
            context.route("**/*", route)
            page = context.new_page()
            page.on("websocket", lambda ws: attempts.append(ws.url))
            page.goto(html_file.as_uri())
            with contextlib.suppress(PlaywrightTimeout):  # the assertions say what is missing
                page.wait_for_function(f"() => ({_CHARTS_JS})().drawn >= {charts}", timeout=30_000)
            shown: dict[str, Any] = page.evaluate(_CHARTS_JS)
            shot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    return shown, attempts


def _export_html(executed: Path, target: Path) -> None:
    """The executed notebook as nbconvert's lab HTML, without the template's own CDN scripts
    (require.js, MathJax, the widget manager): what is left to load is what the notebook's
    outputs need."""
    from nbconvert import HTMLExporter

    nb = nbformat.read(executed, as_version=4)
    # saved widget state makes the page load the widget manager from unpkg: live controls do
    # not run in a static page anyway (the output checks above cover what they did)
    nb.metadata.pop("widgets", None)
    exporter = HTMLExporter(template_name="lab", mathjax_url="", require_js_url="")
    body, _ = exporter.from_notebook_node(nb)
    target.write_text(body, "utf-8")


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.timeout(400)
@pytest.mark.parametrize("path", ALL, ids=_ids(ALL))
def test_notebook_runs_top_to_bottom_offline(
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chromium: Path
) -> None:
    # the kernel inherits this environment: whatever a notebook opens by default is temporary
    monkeypatch.setenv("FLEETLAB_DB", str(tmp_path / "fleet.db"))
    monkeypatch.setenv("FLEETLAB_EXPERIMENTS", str(tmp_path / "experiments"))
    network_log = _block_kernel_network(tmp_path, monkeypatch)
    if path.stem == "fleet_console":
        _seed_console(tmp_path / "fleet.db")
    nb = nbformat.read(path, as_version=4)
    builder = PARAMETERS.get(path.stem)
    parameters = builder(tmp_path) if builder is not None and _has_parameters_cell(nb) else {}
    out = tmp_path / f"{path.stem}.out.ipynb"
    papermill.execute_notebook(
        str(path),
        str(out),
        parameters=parameters,
        kernel_name="python3",
        cwd=str(path.parent),  # like JupyterLab: a notebook runs in its own folder
        progress_bar=False,
        execution_timeout=120,
    )
    executed = nbformat.read(out, as_version=4)
    code = [cell for cell in executed.cells if cell.cell_type == "code"]
    # papermill stops at a failing cell: every code cell ran, once, in order.
    assert [cell.execution_count for cell in code] == list(range(1, len(code) + 1))
    check = OUTPUT_CHECKS.get(path.stem)
    if check is not None:
        check(code, tmp_path)
    # the kernel ran with the network blocked, and nothing tried to use it
    assert (tmp_path / "network_attempts.log.loaded").is_file(), "the kernel did not block"
    attempts = network_log.read_text("utf-8") if network_log.exists() else ""
    assert attempts == "", f"the kernel tried the network:\n{attempts}"
    # the same notebook as HTML in a browser with no network: every chart drawn
    page = tmp_path / f"{path.stem}.html"
    _export_html(out, page)
    charts = _chart_outputs(code)
    shown, requests = _open_offline(
        chromium, page, SCREENSHOTS / f"notebook_{path.stem}.png", charts
    )
    assert requests == [], f"requests that tried to leave the machine: {requests}"
    assert shown["errors"] == [], shown
    assert shown["drawn"] == charts, f"{shown['drawn']} of {charts} charts drawn"
    if path.stem in CHARTED:
        assert charts >= CHARTED[path.stem]


def _text(cell: nbformat.NotebookNode) -> str:
    """What a cell showed: its printed text and the text or Markdown of its results."""
    parts = []
    for o in cell.get("outputs", []):
        data = o.get("data", {})
        parts += [o.get("text", ""), data.get("text/markdown", "") or data.get("text/plain", "")]
    return "\n".join(p for p in parts if p)


def _shown(code: list[nbformat.NotebookNode], source: str) -> str:
    """The output of the one code cell whose source contains ``source``."""
    (cell,) = [c for c in code if source in c.source]
    return _text(cell)


def _check_digest(code: list[nbformat.NotebookNode], tmp_path: Path) -> None:
    # The oracle: the week's rows counted in SQL. W47 (UTC) starts Monday 16 November 2026
    # 00:00Z, 20_773 days after the epoch (56 years with 14 leap days = 20_454, plus 319 days
    # of 2026) = 1_794_787_200 s, and ends 7 x 86_400 s later, 23 November 00:00Z.
    lo, hi = 1_794_787_200_000_000, 1_795_392_000_000_000
    with open_store(tmp_path / "digest.db") as store:
        spawned, completed, failed = store.query(
            "SELECT COUNT(*), COALESCE(SUM(status = 'completed' AND finished_us < ?), 0),"
            " COALESCE(SUM(status = 'failed' AND finished_us < ?), 0)"
            " FROM tasks WHERE created_us >= ? AND created_us < ?",
            (hi, hi, lo, hi),
        )[0]
    assert spawned > 0
    reports = tmp_path / "reports"
    metrics = json.loads((reports / "metrics.json").read_text("utf-8"))
    assert (metrics["week"], metrics["start"], metrics["end"]) == (
        "2026-W47",
        "2026-11-16T00:00:00Z",
        "2026-11-23T00:00:00Z",
    )
    assert (metrics["counts"]["spawned"], metrics["counts"]["completed"]) == (spawned, completed)
    assert metrics["counts"]["failed"] == failed
    post = (reports / "digest.md").read_text("utf-8")
    assert post.startswith("---\ntitle: ")
    # the post's prose belongs to the digest: here only its numbers, found as whole numbers
    assert re.search(rf"\b{spawned} agents\b", post), post[:2000]
    assert f"**{completed} completed**" in post
    for chart in ("daily", "funnel", "cost"):
        assert (reports / f"{chart}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", chart
    sections = _shown(code, "digest.report_sections(metrics)")
    assert re.search(rf"\b{spawned} agents\b", sections)
    assert "All checks passed." in sections  # the integrity section
    draft = _shown(code, "digest.draft_view(draft, check)")
    assert "\u2713 fact-check: all " in draft  # the notebook's draft checks out


def _check_console(code: list[nbformat.NotebookNode], tmp_path: Path) -> None:
    # The two queued goals _seed_console put in $FLEETLAB_DB, seen by the console.
    status = _shown(code, "console.status()")
    assert "spawned=2, completed=0" in status
    assert "queued=2" in status
    (cell,) = [c for c in code if "console.tasks_frame()" in c.source]
    [table] = [o["data"]["text/html"] for o in cell.outputs if "text/html" in o.get("data", {})]
    assert "fleetlab-table" in table  # the formatted table, not polars' own
    assert "<td class='text'>first goal</td>" in table
    assert "<td class='text'>second goal</td>" in table
    assert _shown(code, "await console.wait()") == ""  # nothing was run: None, not shown


def _check_ab(code: list[nbformat.NotebookNode], tmp_path: Path) -> None:
    # 6 variants x 10 tasks (2 per true-complexity level 1-5) x 1 trial = 60 trials.
    assert "trials: 60 planned, 0 done, 60 to run" in _shown(code, "experiments.estimate(")
    assert "ran 60 trials" in _shown(code, "experiments.run_async(")
    folder = tmp_path / "experiments" / "decomposition_ab"
    results = pl.read_parquet(folder / "results.parquet")
    assert results.height == 60
    assert sorted(results.group_by("variant").len().rows()) == [
        (v, 10)
        for v in sorted(
            ["never", "always", "threshold4", "threshold4_strict", "as_needed", "learned"]
        )
    ]
    # every table of the simulated model's numbers says so, as its charts do
    tables = [
        o["data"]["text/html"]
        for c in code
        if "charts.table(" in c.source
        for o in c.outputs
        if "text/html" in o.get("data", {})
    ]
    assert len(tables) == 3
    for table in tables:
        assert "(simulated)<div class='fleetlab-table-note'>SIMULATED model" in table
    # the learner replayed over the fixed strategies' trials: 5 replays of 1 pass, no warm-up
    assert "5 replays (simulated, exact), passes 1-1" in _shown(code, "replay_learner(")
    assert (folder / "report.html").read_text("utf-8").lstrip().lower().startswith("<!doctype")
    assert str(folder / "report.html") in _shown(code, "experiments.write_report(")


#: Notebooks that must show charts, and at least how many (so the chart check cannot pass
#: vacuously because charts stopped being recognised as charts).
CHARTED = {"ab_decomposition": 4, "weekly_digest": 5}

#: What each notebook must have produced, checked against its outputs and files.
OUTPUT_CHECKS: dict[str, Callable[[list[nbformat.NotebookNode], Path], None]] = {
    "ab_decomposition": _check_ab,
    "fleet_console": _check_console,
    "weekly_digest": _check_digest,
}


def _sources(path: Path, kind: str) -> list[str]:
    return [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == kind]


def test_notebooks_name_the_database_they_use(monkeypatch: pytest.MonkeyPatch) -> None:
    """A notebook runs in ``notebooks/`` but uses ``fleet.db`` at the checkout's root (the
    README's word): its text must not say the db is beside it or in ``./``."""
    from fleetlab.store import url

    monkeypatch.delenv("FLEETLAB_DB", raising=False)
    assert url.default_db(cwd=NOTEBOOKS) == str(ROOT / "fleet.db")  # the oracle: ROOT's own
    for path in ALL:
        text = "\n".join(_sources(path, "markdown") + _sources(path, "code"))
        assert "beside this notebook" not in text, path.name
        assert "./fleet.db" not in text, path.name
    console = "\n".join(_sources(NOTEBOOKS / "fleet_console.ipynb", "markdown"))
    assert "`fleet.db` at the root of the checkout" in console
    (parameters,) = [
        c.source
        for c in nbformat.read(NOTEBOOKS / "weekly_digest.ipynb", as_version=4).cells
        if "parameters" in c.metadata.get("tags", [])
    ]
    assert "fleet.db at the checkout's root" in parameters


def test_the_learned_choices_text_holds_with_or_without_a_learner() -> None:
    """The text above the learned-choices chart claims no outcome (the chart itself, drawn in
    every case, says when no variant learns: ``test_charts_experiments``), and the chart is
    not hidden behind a condition that the fixed text would contradict."""
    cells = nbformat.read(NOTEBOOKS / "ab_decomposition.ipynb", as_version=4).cells
    (i,) = [n for n, c in enumerate(cells) if "learned_choices_chart(" in c.source]
    assert " if " not in cells[i].source
    assert "else" not in cells[i].source
    above = cells[i - 1]
    assert above.cell_type == "markdown"
    assert "nothing to show" not in above.source
    assert "none" not in above.source.lower().split()


def test_the_console_says_where_the_panel_renders() -> None:
    """Exported HTML has no widget manager: the panels are blank there, and the notebooks
    say so rather than promising the panel renders in exported HTML."""
    (cell,) = [
        c for c in _sources(NOTEBOOKS / "fleet_console.ipynb", "code") if "FleetConsole()" in c
    ]
    assert "tables (and any chart) render here and in exported HTML" not in cell
    assert "only in a running kernel" in cell
    ab = "\n".join(_sources(NOTEBOOKS / "ab_decomposition.ipynb", "markdown"))
    assert "A live widget: it shows only in a running kernel" in ab
