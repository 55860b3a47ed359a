"""No planted key shows in what fleetlab prints or publishes: the CLI's stderr (errors, a bug's
traceback, ``ab run --batch`` failing on an API that echoes the key), the A/B runner's results,
parquet, HTML report and progress, and the digest's metrics.json, index.html, digest.md and
notebook.

Two keys are planted: one with the ``sk-ant-`` shape, configured nowhere, and one that looks
like nothing (``test-secret-value-123``), known only as ``ANTHROPIC_API_KEY`` or registered by
code (``register_secret``). Each test also checks that the text around the key did reach the
output, masked: a test that never saw the key would prove nothing.
"""

from __future__ import annotations

import contextlib
import io
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fleetlab import telemetry
from fleetlab.cli import _ab, main
from fleetlab.digest import write_report_files
from fleetlab.errors import ModelRequestError
from fleetlab.experiments import (
    ResultsDB,
    export_parquet,
    load,
    load_experiment,
    output_dir,
    run,
    write_report,
)
from fleetlab.models.registry import get_model, register_backend, unregister_backend
from fleetlab.models.types import ModelRequest, ModelResponse
from fleetlab.testing import FakeMessagesAPI, Fault
from tests.helpers.simulated_week import WEEK, copy_week

PATTERN_KEY = "sk-ant-api03-" + "PLANTEDpattern0123456789_-" * 4
PLAIN_KEY = "test-secret-value-123"
KEYS = (PATTERN_KEY, PLAIN_KEY)


@pytest.fixture(autouse=True)
def no_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(telemetry, "_registered", ())


def assert_clean(*texts: str) -> None:
    for text in texts:
        for key in KEYS:
            assert key not in text


def _cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


# -- the CLI --------------------------------------------------------------------------------

SCORING = """
name = "calib"
kind = "scoring"
model = "sim:instant"
suites = ["core"]
trials = 1
seed = 5

[tasks]
include = ["core:rename-readme", "core:customer-totals"]

[[variants]]
prompt = "default"

[[variants]]
prompt = "eager"
"""


@pytest.mark.parametrize("key", KEYS)
def test_ab_run_batch_never_prints_the_key_an_api_error_echoes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: str
) -> None:
    path = tmp_path / "calib.toml"
    path.write_text(SCORING, "utf-8")
    echo = Fault(401, message=f"invalid x-api-key: {key}")  # an API (or proxy) echoing it
    with FakeMessagesAPI(faults=[echo]) as fake:
        monkeypatch.setenv("ANTHROPIC_API_KEY", key)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.base_url)
        argv = ["ab", "run", str(path), "--model", "anthropic:claude-haiku-4-5", "--batch"]
        code, out, err = _cli([*argv, "--poll", "0", "--quiet", "--out", str(tmp_path)])
    assert fake.request_count == 1
    assert code == 2
    assert_clean(out, err)
    assert err.splitlines() == [
        "error: could not create the message batch: the API key was rejected (HTTP 401 "
        "authentication_error: invalid x-api-key: [REDACTED]) (request req_fake_000001); "
        "check ANTHROPIC_API_KEY"
    ]


def test_cli_errors_never_show_a_registered_key(tmp_path: Path) -> None:
    telemetry.register_secret(PLAIN_KEY)  # as AnthropicModel(api_key=...) does
    code, out, err = _cli(["ab", "run", str(tmp_path / f"{PLAIN_KEY}.toml")])
    assert code == 2
    assert_clean(out, err)
    assert "error: no experiment file '" in err
    assert "[REDACTED].toml" in err


def test_a_bugs_traceback_never_shows_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", PLAIN_KEY)

    def crash(args: Any, console: Any) -> int:
        raise RuntimeError(f"unexpected: {PATTERN_KEY} and {PLAIN_KEY}")

    monkeypatch.setattr(_ab, "cmd_run", crash)
    code, out, err = _cli(["ab", "run", "x.toml"])
    assert code == 1
    assert_clean(out, err)
    assert "Traceback" in err
    assert "RuntimeError: unexpected: [REDACTED] and [REDACTED]" in err
    assert err.rstrip().endswith("internal error: this is a bug in fleetlab")


def test_everything_printed_while_the_cli_runs_is_redacted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Modules print through consoles and loggers of their own: stdout and stderr are
    redacted for the whole command, not only its error line."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", PLAIN_KEY)

    def chatty(args: Any, console: Any) -> int:
        from rich.console import Console

        console.print(f"stdout {PATTERN_KEY}")
        Console(stderr=True).print(f"stderr {PLAIN_KEY}")
        print("print", PLAIN_KEY)
        return 0

    monkeypatch.setattr(_ab, "cmd_run", chatty)
    code, out, err = _cli(["ab", "run", "x.toml"])
    assert code == 0
    assert_clean(out, err)
    assert out.splitlines() == ["stdout [REDACTED]", "print [REDACTED]"]
    assert err.splitlines() == ["stderr [REDACTED]"]


# -- the A/B runner -------------------------------------------------------------------------

AGENTS = """
name = "leaky"
model = "leaky:instant"
suites = ["core"]
trials = 1
seed = 3
concurrency = 1

[tasks]
include = ["core:rename-readme", "core:customer-totals"]

[[variants]]
name = "never"
policy = "never"

[[variants]]
name = "always"
policy = "always"
"""


class Leaky:
    """The simulated model, whose first call is refused with a message quoting both keys."""

    calls = 0

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name
        self.simulated = True

    async def generate(self, request: ModelRequest) -> ModelResponse:
        type(self).calls += 1
        if type(self).calls == 1:
            raise ModelRequestError(f"refused: keys {PATTERN_KEY} {PLAIN_KEY}")
        response: ModelResponse = await self.inner.generate(request)
        return response


@pytest.fixture
def leaky() -> Iterator[None]:
    Leaky.calls = 0
    register_backend("leaky", lambda rest, **options: Leaky(get_model(f"sim:{rest}", **options)))
    yield
    unregister_backend("leaky")


class Recording:
    """A progress sink that keeps everything it is shown."""

    def __init__(self) -> None:
        self.shown: list[str] = []

    def start(self, total: int, done: int, label: str) -> None:
        self.shown.append(label)

    def update(self, done: int, detail: str) -> None:
        self.shown.append(detail)

    def close(self) -> None:
        pass


@pytest.mark.usefixtures("leaky")
def test_the_ab_runner_outputs_never_show_a_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    telemetry.register_secret(PLAIN_KEY)
    path = tmp_path / "leaky.toml"
    path.write_text(AGENTS, "utf-8")
    progress = Recording()
    summary = run(load_experiment(path), root=tmp_path, progress=progress)
    assert summary.errored == 1
    assert summary.first_error == "the API refused a request: refused: keys [REDACTED] [REDACTED]"
    assert_clean(*summary.describe(), *progress.shown)

    # a row that quotes a key is stored redacted...
    folder = output_dir("leaky", tmp_path)
    row = load("leaky", root=tmp_path).row(0, named=True)
    row.pop("seq")
    row.update(trial=7, failure=f"verifier: expected 'ok', got {PATTERN_KEY!r}")
    with ResultsDB(folder) as db:
        db.insert(row)
    raw_db = (folder / "results.db").read_bytes().decode("latin-1")
    assert_clean(raw_db)
    assert "verifier: expected 'ok', got '[REDACTED]'" in raw_db
    assert "refused: keys [REDACTED] [REDACTED]" in raw_db  # the infrastructure attempt
    # ... and one in a database written before redaction existed is redacted when read
    with sqlite3.connect(folder / "results.db") as conn:
        conn.execute("UPDATE trials SET failure = ? WHERE trial = 7", (f"stderr: {PLAIN_KEY}",))
    frame = load("leaky", root=tmp_path)
    assert "stderr: [REDACTED]" in frame["failure"].to_list()
    parquet = export_parquet("leaky", root=tmp_path).read_bytes().decode("latin-1")
    html = write_report("leaky", root=tmp_path).read_text("utf-8")
    code, out, err = _cli(["ab", "report", "leaky", "--out", str(tmp_path), "--no-html"])
    assert code == 0
    assert "1 trials left out of the statistics" in out
    assert "[REDACTED]" in parquet
    assert_clean(parquet, html, out, err)


# -- the digest -----------------------------------------------------------------------------


def test_the_digest_files_are_redacted_where_they_are_written(tmp_path: Path) -> None:
    telemetry.register_secret(PLAIN_KEY)
    metrics = {"failures": {"items": [{"reason": f"stderr: {PATTERN_KEY}", PLAIN_KEY: 1}]}}
    draft = f"# Fleet weekly\n\nA check printed {PLAIN_KEY}.\n"
    written = write_report_files(tmp_path, metrics, draft)
    texts = {p.name: p.read_text("utf-8") for p in written}
    assert json.loads(texts["metrics.json"]) == {
        "failures": {"items": [{"reason": "stderr: [REDACTED]", "[REDACTED]": 1}]}
    }
    assert texts["digest.md"] == "# Fleet weekly\n\nA check printed [REDACTED].\n"


@pytest.mark.slow
def test_a_published_digest_never_shows_a_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, simulated_week: Path
) -> None:
    db = copy_week(simulated_week, tmp_path)  # the session's simulated WEEK, ours to change
    # errors as a database written before redaction existed would hold them (every failed
    # task's error holds both keys: how many tasks fail varies with the fleet's concurrency)
    with sqlite3.connect(db) as conn:
        failed = [r[0] for r in conn.execute("SELECT id FROM tasks WHERE status = 'failed'")]
        assert failed
        error = "verifier: printed " + " and ".join(KEYS)
        conn.executemany("UPDATE tasks SET error = ? WHERE id = ?", [(error, t) for t in failed])
    # the notebook's kernel is another process: it knows neither key (PLAIN_KEY is only
    # registered here), so the report is redacted again here before it is published
    telemetry.register_secret(PLAIN_KEY)
    monkeypatch.chdir(tmp_path)
    code, out, err = _cli(["digest", "--week", WEEK, "--db", str(db)])
    assert code == 0, err
    folder = tmp_path / "reports" / WEEK
    published = {
        str(p.relative_to(folder)): p.read_text("utf-8")
        for p in folder.rglob("*")
        if p.is_file() and p.suffix != ".png"
    }
    assert {"metrics.json", "index.html", "digest.md", "weekly_digest.ipynb"} <= set(published)
    assert any(name.startswith("traces/") for name in published)  # the goals' pages, checked too
    assert_clean(out, err, *published.values())
    reasons = [f["reason"] for f in json.loads(published["metrics.json"])["failures"]["items"]]
    redacted = "verifier: printed " + " and ".join(["[REDACTED]"] * len(KEYS))
    assert redacted in reasons
    assert "verifier: printed [REDACTED]" in published["index.html"]  # long reasons are cut


def test_a_key_in_a_goal_is_neither_stored_nor_printed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A goal's text is stored redacted, so no table layout can print the key (rich wraps a
    long cell over lines, where redacting the printed text could no longer match it)."""
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setenv("ANTHROPIC_API_KEY", PLAIN_KEY)
    db = str(tmp_path / "f.db")
    assert main(["--db", db, "submit", f"deploy with {PATTERN_KEY} and {PLAIN_KEY}"]) == 0
    with sqlite3.connect(db) as conn:
        [(stored,)] = conn.execute("SELECT title || spec FROM tasks").fetchall()
    capsys.readouterr()
    assert main(["--db", db, "tasks"]) == 0
    printed = "".join(ch for ch in capsys.readouterr().out if ch.isalnum())
    for key in KEYS:
        assert key not in stored
        assert "".join(ch for ch in key[-18:] if ch.isalnum()) not in printed
