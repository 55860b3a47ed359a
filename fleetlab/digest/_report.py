"""``run_digest``: execute the digest notebook with papermill and publish ``reports/<week>/``.

The folder holds the executed notebook, ``index.html`` (no code, charts interactive and
drawn offline), ``digest.md`` (the draft post with its charts as PNG beside it),
``metrics.json`` and ``traces/`` (the offline trace page of each goal the report names, each
id linked to its page). It is built in a temporary folder beside its destination and renamed into
place only when complete, so a failed run leaves no half-written report.

Every text file of the report passes through ``fleetlab.telemetry.redact`` where it is
written, and once more before it is published: the notebook's kernel is another process,
which knows the configured key but not keys registered in this one.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, cast

from fleetlab import errors, resources
from fleetlab.digest._factcheck import FactCheck, fact_check
from fleetlab.digest._params import DigestParams, validate_params
from fleetlab.digest._traces import TRACES_DIR, TracePages
from fleetlab.digest.sections import SECTIONS
from fleetlab.errors import FleetlabError, UserError
from fleetlab.telemetry import redact, redact_value

__all__ = [
    "CHART_CAPTIONS",
    "DigestResult",
    "default_notebook",
    "export_html",
    "run_digest",
    "write_report_files",
]

NOTEBOOK_NAME = "weekly_digest.ipynb"
KERNEL = "python3"
#: Chart file stem → its caption in digest.md (each section's ``captions``).
CHART_CAPTIONS = {name: text for s in SECTIONS for name, text in s.captions.items()}
#: Called before each notebook cell runs: (cell number from 1, cells in all, what it does).
Progress = Callable[[int, int, str], None]


@dataclass(frozen=True, slots=True)
class DigestResult:
    """A published report."""

    folder: Path
    fact_check: FactCheck
    kind: Literal["digest_result"] = field(default="digest_result", repr=False)

    @property
    def index_html(self) -> Path:
        return self.folder / "index.html"

    @property
    def digest_md(self) -> Path:
        return self.folder / "digest.md"

    @property
    def metrics_json(self) -> Path:
        return self.folder / "metrics.json"

    @property
    def notebook(self) -> Path:
        return self.folder / NOTEBOOK_NAME

    @property
    def trace_pages(self) -> list[Path]:
        """The trace pages of the goals the report names (``traces/<trace id>.html``)."""
        folder = self.folder / TRACES_DIR
        return sorted(folder.glob("*.html")) if folder.is_dir() else []


def write_report_files(
    out_dir: str | Path | None,
    metrics: dict[str, Any],
    draft: str,
    charts: Mapping[str, Any] | None = None,
    *,
    traces: TracePages | None = None,
) -> list[Path]:
    """Write ``metrics.json``, each chart as ``<name>.png`` and ``digest.md`` (the draft with
    the charts appended) into ``out_dir``. Nothing is written when ``out_dir`` is empty.
    With ``traces`` (``write_trace_pages``), the draft's ids link to their trace pages.

    Charts are anything with altair's ``save(path, format="png")`` (rendered by vl-convert).
    """
    if not out_dir:
        return []
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    written = [folder / "metrics.json"]
    text = json.dumps(redact_value(metrics), indent=1, ensure_ascii=False) + "\n"
    written[0].write_text(text, "utf-8")
    figures = []
    for name, chart in (charts or {}).items():
        path = folder / f"{name}.png"
        chart.save(str(path), format="png", scale_factor=2)
        written.append(path)
        figures.append(f"![{CHART_CAPTIONS.get(name, name)}]({path.name})")
    post = (draft if traces is None else traces.link(draft, code=True)).rstrip() + "\n"
    if figures:
        post += "\n## Charts\n\n" + "\n\n".join(figures) + "\n"
    (folder / "digest.md").write_text(redact(post), "utf-8")
    written.append(folder / "digest.md")
    return written


def default_notebook() -> Path:
    """``notebooks/weekly_digest.ipynb``: the one in ./notebooks (a user's edited copy), else
    the installed package's copy, else the checkout's (``fleetlab.resources``)."""
    return resources.find("notebooks", NOTEBOOK_NAME)


_EXTERNAL_SCRIPT = re.compile(r'<script[^>]*\bsrc="https?://[^"]*"[^>]*>\s*</script>\s*')
_EXTERNAL_MODULE = re.compile(
    r'<script type="module">(?:(?!</script>).)*?https://(?:(?!</script>).)*</script>\s*', re.DOTALL
)


def export_html(notebook: Path, target: Path) -> Path:
    """Export the executed notebook as HTML with no code cells or prompts.

    Scripts the template would fetch from a CDN (require.js, MathJax, mermaid) are left
    out, so the page loads offline; the charts carry their own JavaScript.
    """
    import nbformat
    from nbconvert import HTMLExporter

    exporter = cast(Any, HTMLExporter)(
        template_name="lab",
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
    )
    node = cast(Any, nbformat).read(notebook, as_version=4)
    node.cells = [
        c
        for c in node.cells
        if not {"parameters", "injected-parameters"} & set(c.metadata.get("tags", []))
    ]
    html, _ = exporter.from_notebook_node(node, resources={"metadata": {"name": "Weekly digest"}})
    html = _EXTERNAL_MODULE.sub("", _EXTERNAL_SCRIPT.sub("", html))
    target.write_text(redact(html), "utf-8")
    return target


def _user_error_names() -> set[str]:
    names = set()
    for value in vars(errors).values():
        if isinstance(value, type) and issubclass(value, UserError):
            names.add(value.__name__)
    return names


def _kernel_manager(env: Mapping[str, str]) -> type[Any]:
    """A kernel manager class whose kernels start with ``env`` added to this process's
    environment (nbclient builds its kernel manager from a class)."""
    from jupyter_client.manager import AsyncKernelManager

    class _WithEnv(AsyncKernelManager):
        async def start_kernel(self, **kw: Any) -> None:  # type: ignore[override]
            kw["env"] = {**kw.get("env", os.environ), **env}
            await super().start_kernel(**kw)

    return _WithEnv


def _progress_engine(progress: Progress) -> str:
    """A papermill engine that calls ``progress`` before each code cell runs; its name."""
    from papermill.engines import NBClientEngine, papermill_engines

    class _WithProgress(NBClientEngine):  # type: ignore[misc]
        @classmethod
        def execute_managed_notebook(cls, nb_man: Any, kernel_name: str, **kw: Any) -> Any:
            code = [c for c in nb_man.nb.cells if c.cell_type == "code"]
            started = nb_man.cell_start

            def cell_start(cell: Any, cell_index: int | None = None, **more: Any) -> Any:
                if cell.cell_type == "code":
                    number = next((i for i, c in enumerate(code, 1) if c is cell), 0)
                    progress(number, len(code), _describe(cell))
                return started(cell, cell_index, **more)

            nb_man.cell_start = cell_start
            return super().execute_managed_notebook(nb_man, kernel_name, **kw)

    name = "fleetlab-progress"
    papermill_engines.register(name, _WithProgress)
    return name


def _describe(cell: Any) -> str:
    """What a digest cell does, in a few words: its first comment, else its first line."""
    tags = cell.metadata.get("tags", [])
    if "injected-parameters" in tags or "parameters" in tags:
        return "parameters given" if "injected-parameters" in tags else "parameters (defaults)"
    lines = [line.strip() for line in cell.source.splitlines() if line.strip()]
    for line in lines:
        if line.startswith("#"):
            return str(line.lstrip("# "))[:60]
    return str(lines[0] if lines else "")[:60]


def _run_notebook(
    params: DigestParams, notebook: Path, folder: Path, progress: Progress | None = None
) -> None:
    import papermill
    from papermill.exceptions import PapermillExecutionError

    output = folder / NOTEBOOK_NAME
    # The notebook (saved in the report) shows where the data is, never a password: a URL
    # that has one reaches the kernel whole through $FLEETLAB_DB, which the masked ``db``
    # parameter stands for (see ``validate_params``).
    engine: dict[str, Any] = {}
    if params.location != params.db:
        engine["kernel_manager_class"] = _kernel_manager({"FLEETLAB_DB": params.db})
    if progress is not None:
        engine["engine_name"] = _progress_engine(progress)
    try:
        papermill.execute_notebook(
            str(notebook),
            str(output),
            parameters={
                "week": params.week,
                "tz": params.tz,
                "db": params.location,
                "model": params.model,
                "out_dir": str(folder.resolve()),
                "now": params.now.isoformat() if params.now else "",
            },
            kernel_name=KERNEL,
            # ipykernel warns on stderr that its loopback TCP is unencrypted; say less
            extra_arguments=["--Application.log_level=ERROR"],
            progress_bar=False,
            log_output=False,
            cwd=str(folder.resolve()),
            **engine,
        )
    except PapermillExecutionError as exc:  # a cell raised
        message = str(exc.evalue).strip().splitlines()[0] if exc.evalue else exc.ename
        if exc.ename in _user_error_names():
            raise UserError(message) from None
        kept = Path(tempfile.mkdtemp(prefix="fleetlab-digest-")) / NOTEBOOK_NAME
        if output.exists():
            kept.write_text(redact(output.read_text("utf-8")), "utf-8")
        raise FleetlabError(
            f"the digest notebook failed in cell {exc.cell_index}: {exc.ename}: {message}"
            f" (executed notebook kept at {kept})"
        ) from None
    except (RuntimeError, OSError, TimeoutError) as exc:  # the kernel did not start or died
        raise FleetlabError(
            f"cannot run the digest notebook on kernel {KERNEL!r}: {exc} (is the kernel"
            " installed? `make kernel` installs it)"
        ) from None


_TEXT_FILES = ("*.json", "*.md", "*.html", "*.ipynb", f"{TRACES_DIR}/*.html")


def _redact_files(folder: Path) -> None:
    """Redact every text file of a report (their JSON escapes no character a key has)."""
    for pattern in _TEXT_FILES:
        for path in folder.glob(pattern):
            text = path.read_text("utf-8")
            cleaned = redact(text)
            if cleaned is not text:
                path.write_text(cleaned, "utf-8")


def _publish(built: Path, final: Path) -> None:
    """Move a complete report into place, replacing an older one of the same week."""
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.old-{secrets.token_hex(3)}")
        final.rename(old)
    try:
        built.rename(final)
    except OSError:
        if old is not None:
            old.rename(final)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def run_digest(
    week: str | None = None,
    tz: str = "UTC",
    db: str | Path | None = None,
    model: str = "sim:default",
    out_dir: str | Path = "reports",
    strict: bool = False,
    *,
    now: str | datetime | None = None,
    notebook: str | Path | None = None,
    progress: Progress | None = None,
) -> DigestResult:
    """Run the digest for one week and publish ``<out_dir>/<week>/``.

    Args:
        week: ISO week (default: the last complete week in ``tz``).
        tz: IANA zone of the week's local days.
        db: the fleet database, a file path or a ``postgresql://`` URL (default:
            ``$FLEETLAB_DB`` or ``./fleet.db``). A URL's password is written nowhere.
        model: the digest agent's model (``sim:*`` writes the template draft offline).
        out_dir: the reports folder; the report goes into a sub-folder named after the week.
        strict: raise when the fact-check finds a number in the draft that matches nothing
            (the report is still published, so it can be read).
        now: the current instant (default: the system clock).
        notebook: the notebook to execute (default: ``notebooks/weekly_digest.ipynb``, found
            by ``fleetlab.resources``: ./notebooks, else the installed package's copy).
        progress: called before each code cell runs, with its number, the number of code
            cells and what it does (``fleetlab digest`` shows it).

    Raises:
        UserError: a bad parameter (nothing is written).
        FleetlabError: the notebook failed (nothing is published), or with ``strict`` the
            draft has unmatched numbers.
    """
    params = validate_params(week=week, tz=tz, db=db, model=model, now=now)
    source = Path(notebook) if notebook else default_notebook()
    root = Path(out_dir)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create reports folder {str(root)!r}: {exc.strerror}") from None
    final = root / params.week
    building = root / f".{params.week}.building-{secrets.token_hex(4)}"
    building.mkdir()
    try:
        _run_notebook(params, source, building, progress)
        export_html(building / NOTEBOOK_NAME, building / "index.html")
        missing = [n for n in ("metrics.json", "digest.md") if not (building / n).is_file()]
        if missing:
            raise FleetlabError(f"the digest notebook did not write {', '.join(missing)}")
        _redact_files(building)
        metrics = json.loads((building / "metrics.json").read_text("utf-8"))
        check = fact_check((building / "digest.md").read_text("utf-8"), metrics)
        _publish(building, final)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    result = DigestResult(final, check)
    if strict and not check.strict_ok:
        raise FleetlabError(f"{check.summary()} (report: {result.index_html})")
    return result
