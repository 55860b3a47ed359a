"""The A/B runner and infrastructure failures: a trial whose outcome the infrastructure decided
(a transient model error, a crash in the fleet or the harness) is re-run, never scored against
its variant; one that keeps failing is left out of the statistics and counted in the report.

The oracle for "scored from the second attempt" is an undisturbed run of the same experiment:
simulated trials depend only on (variant, task, seed), so a re-run trial must record exactly
the row the undisturbed run recorded for it.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from fleetlab.cli import main
from fleetlab.errors import AuthenticationError, ModelError, ModelRequestError
from fleetlab.experiments import _run as runner
from fleetlab.experiments import (
    compare,
    infra_summary,
    load,
    output_dir,
    run,
)
from fleetlab.models.registry import get_model, register_backend, unregister_backend
from fleetlab.models.types import ModelRequest, ModelResponse
from fleetlab.testing import FakeMessagesAPI, Fault

AGENTS = """
name = "infra"
model = "flaky:instant"
suites = ["core"]
trials = 2
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

SCORING = """
name = "calib"
kind = "scoring"
model = "flaky:instant"
suites = ["core"]
trials = 2
seed = 5
concurrency = 1

[tasks]
include = ["core:rename-readme", "core:customer-totals", "core:sales-by-region"]

[defaults]
threshold = 4

[[variants]]
prompt = "default"

[[variants]]
prompt = "eager"
"""

# what a trial's result may differ in between runs: when and where it ran, its random ids,
# and its latencies (sim:instant's are the time its calls really took)
_INCIDENTAL = ["seq", "wall_s", "sim_time_s", "trial_dir", "finished_us", "trace_id"]


class Flaky:
    """The simulated model, failing the calls ``Flaky.fail`` picks (all trials together)."""

    fail: Callable[[int, str], BaseException | None] = staticmethod(lambda n, text: None)
    calls = 0
    lock = threading.Lock()  # simulated trials run in worker threads

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name  # priced like the simulated model it wraps
        self.simulated = True

    async def generate(self, request: ModelRequest) -> ModelResponse:
        text = "\n".join([request.system, *(m.text() for m in request.messages)])
        with self.lock:
            type(self).calls += 1
            error = type(self).fail(type(self).calls, text)
        if error is not None:
            raise error
        response: ModelResponse = await self.inner.generate(request)
        return response


@pytest.fixture
def flaky() -> Iterator[type[Flaky]]:
    Flaky.calls = 0
    Flaky.fail = staticmethod(lambda n, text: None)
    register_backend("flaky", lambda rest, **options: Flaky(get_model(f"sim:{rest}", **options)))
    yield Flaky
    unregister_backend("flaky")


def _experiment(tmp_path: Path, text: str = AGENTS) -> Path:
    path = tmp_path / "exp.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _rows(name: str, root: Path) -> dict[tuple[str, str, int], dict[str, Any]]:
    frame = load(name, root=root).drop(_INCIDENTAL)
    return {(r["variant"], r["task"], r["trial"]): r for r in frame.iter_rows(named=True)}


def _attempts(name: str, root: Path) -> list[tuple[str, str, int, int, str]]:
    db = output_dir(name, root) / "results.db"
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT variant, task, trial, retried, error FROM infra_attempts ORDER BY seq"
        ).fetchall()


def _first_call(error: BaseException) -> Callable[[int, str], BaseException | None]:
    return lambda n, text: error if n == 1 else None


@pytest.mark.parametrize(
    ("error", "recorded"),
    [
        (ModelError("anthropic:x: the API call failed after 4 retries (HTTP 529)"), "model error"),
        (RuntimeError("a bug in a tool"), "crashed inside the fleet (internal error"),
    ],
    ids=["transient model error", "crash inside the fleet"],
)
def test_an_infra_failure_on_the_first_attempt_is_rerun_and_scored_from_the_second(
    tmp_path: Path, flaky: type[Flaky], error: BaseException, recorded: str
) -> None:
    path = _experiment(tmp_path)
    clean = run(path, root=tmp_path / "clean", progress=None)
    assert (clean.ran, clean.reruns, clean.errored) == (8, 0, 0)

    flaky.calls = 0
    flaky.fail = staticmethod(_first_call(error))
    summary = run(path, root=tmp_path / "out", progress=None)
    assert (summary.ran, summary.reruns, summary.errored, summary.remaining) == (8, 1, 0, 0)
    [(variant, task, trial, retried, message)] = _attempts("infra", tmp_path / "out")
    assert (variant, task, trial, retried) == ("never", "core:rename-readme", 0, 1)
    assert recorded in message
    # every trial was scored once, and the re-run one exactly as if nothing had happened
    assert _rows("infra", tmp_path / "out") == _rows("infra", tmp_path / "clean")
    assert "1 attempts failed for infrastructure reasons and were run again" in "\n".join(
        summary.describe()
    )


def test_a_crash_of_the_harness_is_rerun_too(
    tmp_path: Path, flaky: type[Flaky], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _experiment(tmp_path)
    run(path, root=tmp_path / "clean", progress=None)
    real = runner.run_trial
    crashes = iter([RuntimeError("disk hiccup while copying the template")])

    async def crashing(*args: Any) -> dict[str, Any]:
        crash = next(crashes, None)
        if crash is not None:
            raise crash
        return await real(*args)

    monkeypatch.setattr(runner, "run_trial", crashing)
    summary = run(path, root=tmp_path / "out", progress=None)
    assert (summary.ran, summary.reruns, summary.errored) == (8, 1, 0)
    [attempt] = _attempts("infra", tmp_path / "out")
    assert attempt[3] == 1
    assert "harness error: RuntimeError('disk hiccup while copying the template')" in attempt[4]
    assert _rows("infra", tmp_path / "out") == _rows("infra", tmp_path / "clean")


def test_persistent_infra_failures_are_left_out_of_the_statistics(
    tmp_path: Path, flaky: type[Flaky], capsys: pytest.CaptureFixture[str]
) -> None:
    path = _experiment(tmp_path)
    run(path, root=tmp_path / "clean", progress=None)
    outage = ModelError("anthropic:x: could not reach https://api.anthropic.com after 4 retries")
    flaky.fail = staticmethod(lambda n, text: outage if "core:customer-totals" in text else None)
    summary = run(path, root=tmp_path / "out", progress=None)
    # 4 trials of customer-totals: 3 attempts each, 2 of them re-runs; none scored
    assert (summary.ran, summary.reruns, summary.errored, summary.remaining) == (4, 8, 4, 4)
    assert summary.first_error is not None
    assert "could not reach" in summary.first_error
    attempts = _attempts("infra", tmp_path / "out")
    assert len(attempts) == 12
    assert {a[1] for a in attempts} == {"core:customer-totals"}
    assert sorted(a[3] for a in attempts) == [0] * 4 + [1] * 8

    scored = load("infra", root=tmp_path / "out")
    assert set(scored["task"]) == {"core:rename-readme"}
    # the success rates are those of the undisturbed run without the failed trials
    clean = load("infra", root=tmp_path / "clean").filter(pl.col("task") == "core:rename-readme")
    comparison = compare("infra", root=tmp_path / "out")
    assert len(comparison.variants) == 2
    for variant in comparison.variants:
        mine = clean.filter(pl.col("variant") == variant.variant)
        assert variant.trials == mine.height == 2
        assert variant.successes == mine["passed"].sum()
        assert variant.success.estimate == pytest.approx(mine["passed"].mean())
    assert infra_summary("infra", root=tmp_path / "out").excluded == 4

    html = tmp_path / "report.html"
    assert main(["ab", "report", "infra", "--out", str(tmp_path / "out"), "--html", str(html)]) == 0
    printed = capsys.readouterr().out
    for shown in (printed, html.read_text("utf-8")):
        assert "4 trials left out of the statistics" in shown
        assert "8 attempts re-run" in shown

    # once the outage is over, the next run runs exactly the trials without a result
    flaky.fail = staticmethod(lambda n, text: None)
    again = run(path, root=tmp_path / "out", progress=None)
    assert (again.ran, again.skipped, again.errored) == (4, 4, 0)
    assert _rows("infra", tmp_path / "out") == _rows("infra", tmp_path / "clean")
    assert infra_summary("infra", root=tmp_path / "out").excluded == 0


def test_a_refused_request_is_not_rerun_and_not_scored(tmp_path: Path, flaky: type[Flaky]) -> None:
    path = _experiment(tmp_path)
    refused = ModelRequestError("anthropic:x: the API refused the request (HTTP 400): too long")
    flaky.fail = staticmethod(_first_call(refused))
    summary = run(path, root=tmp_path / "out", progress=None)
    assert (summary.ran, summary.reruns, summary.errored) == (7, 0, 1)
    [attempt] = _attempts("infra", tmp_path / "out")
    assert attempt[3] == 0
    assert "the API refused a request" in attempt[4]
    assert load("infra", root=tmp_path / "out").height == 7


def test_a_rejected_key_stops_the_run_with_one_line(
    tmp_path: Path, flaky: type[Flaky], capsys: pytest.CaptureFixture[str]
) -> None:
    path = _experiment(tmp_path)
    rejected = AuthenticationError("anthropic:x: the API key was rejected (HTTP 401)")
    flaky.fail = staticmethod(lambda n, text: rejected)
    with pytest.raises(AuthenticationError):
        run(path, root=tmp_path / "api", progress=None)
    assert flaky.calls == 1  # no other trial started after it
    code = main(["ab", "run", str(path), "--out", str(tmp_path / "cli"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip().splitlines() == ["error: anthropic:x: the API key was rejected (HTTP 401)"]
    # refused before anything was recorded: the folders the run made are gone again
    assert not (tmp_path / "api").exists()
    assert not (tmp_path / "cli").exists()


def test_a_key_rejected_after_trials_were_recorded_keeps_them(
    tmp_path: Path, flaky: type[Flaky]
) -> None:
    path = _experiment(tmp_path)
    run(path, root=tmp_path / "whole", progress=None)
    calls = Flaky.calls  # the calls of all 8 trials, one at a time (concurrency = 1)
    Flaky.calls = 0
    rejected = AuthenticationError("anthropic:x: the API key was rejected (HTTP 401)")
    # past half of the calls: the first trials are recorded, the rest never run
    flaky.fail = staticmethod(lambda n, text: rejected if n > calls // 2 else None)
    with pytest.raises(AuthenticationError):
        run(path, root=tmp_path / "cut", progress=None)
    kept = _rows("infra", tmp_path / "cut")
    assert 0 < len(kept) < 8
    whole = _rows("infra", tmp_path / "whole")
    assert all(kept[key] == whole[key] for key in kept)

    # the attempts the infrastructure decided are work too: the first trial's are kept
    Flaky.calls = 0
    outage = ModelError("anthropic:x: could not reach https://api.anthropic.com after 4 retries")
    flaky.fail = staticmethod(lambda n, text: outage if n <= 2 else rejected)
    with pytest.raises(AuthenticationError):
        run(path, root=tmp_path / "down", progress=None, infra_attempts=2)
    assert [a[:2] for a in _attempts("infra", tmp_path / "down")] == [
        ("never", "core:rename-readme")
    ] * 2


def test_scoring_trials_are_rerun_on_a_transient_model_error(
    tmp_path: Path, flaky: type[Flaky], monkeypatch: pytest.MonkeyPatch
) -> None:
    prices = tmp_path / "prices.toml"  # scoring rows are priced by the experiment's model
    prices.write_text('[models."flaky:instant"]\ninput = 3.0\noutput = 15.0\n', "utf-8")
    monkeypatch.setenv("FLEETLAB_PRICES", str(prices))
    path = _experiment(tmp_path, SCORING)
    run(path, root=tmp_path / "clean", progress=None)
    flaky.calls = 0
    flaky.fail = staticmethod(_first_call(ModelError("anthropic:x: overloaded")))
    summary = run(path, root=tmp_path / "out", progress=None)
    assert (summary.ran, summary.reruns, summary.errored) == (12, 1, 0)
    assert len(_attempts("calib", tmp_path / "out")) == 1
    assert _rows("calib", tmp_path / "out") == _rows("calib", tmp_path / "clean")


def test_a_malformed_answer_through_the_real_sdk_is_rerun_not_scored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = SCORING.replace('model = "flaky:instant"', 'model = "anthropic:claude-haiku-4-5"')
    text = text.replace("concurrency = 1\n", "concurrency = 1\nmodel_options = {max_retries = 0}\n")
    path = _experiment(tmp_path, text)
    with FakeMessagesAPI(faults=[Fault.malformed_200("no_content")]) as fake:
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-api03-" + "x" * 40)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.base_url)
        summary = run(path, root=tmp_path, progress=None)
    assert (summary.ran, summary.reruns, summary.errored) == (12, 1, 0)
    assert fake.request_count == 13
    [attempt] = _attempts("calib", tmp_path)
    assert attempt[3] == 1
    assert (
        "the API answered 200 with a malformed message: the message has no 'content'"
        in (attempt[4])
    )
    frame = load("calib", root=tmp_path)
    assert frame.height == 12
    assert frame.select(pl.struct("variant", "task", "trial").n_unique()).item() == 12
