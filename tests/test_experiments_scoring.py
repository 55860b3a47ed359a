"""Scoring-calibration experiments: the scoring step alone, its labels, and --batch through
the Message Batches API of the loopback fake (submit, poll, resume, half price)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import polars as pl
import pytest

from fleetlab.cli import main
from fleetlab.errors import UserError
from fleetlab.experiments import (
    BATCH_DISCOUNT,
    ResultsDB,
    compare,
    load,
    output_dir,
    run,
    run_async,
    scoring_request,
)
from fleetlab.models.prices import price_for
from fleetlab.models.registry import get_model
from fleetlab.models.types import ModelRequest, ModelResponse, Usage
from fleetlab.orchestrator import Fleet, FleetConfig, Goal, submit_goals
from fleetlab.store import Store
from fleetlab.suites import get_task
from fleetlab.testing import FakeMessagesAPI

SCORING = """
name = "calib"
kind = "scoring"
model = "sim:instant"
suites = ["core"]
trials = 2
seed = 5
baseline = "default"

[tasks]
per_complexity = 2

[defaults]
threshold = 4

[[variants]]
prompt = "default"

[[variants]]
prompt = "strict"

[[variants]]
prompt = "eager"
"""

CLAUDE = "anthropic:claude-haiku-4-5"


@pytest.fixture
def path(tmp_path: Path) -> Path:
    p = tmp_path / "calib.toml"
    p.write_text(SCORING, encoding="utf-8")
    return p


def test_scoring_rows_compare_the_decision_with_the_label(tmp_path: Path, path: Path) -> None:
    summary = run(path, root=tmp_path, progress=None)
    assert summary.ran == 3 * 10 * 2
    frame = load("calib", root=tmp_path)
    assert set(frame["variant"]) == {"default", "strict", "eager"}
    assert (frame["agents"] == 0).all()
    assert (frame["model_calls"] == 1).all()
    for row in frame.iter_rows(named=True):
        assert row["label"] == ("decompose" if row["complexity"] >= 4 else "direct")
        assert row["choice"] == ("decompose" if row["score"] >= 4 else "direct")
        assert row["passed"] == (row["choice"] == row["label"])
    # the eager prompt overestimates (its declared simulation bias): more false alarms
    table = compare("calib", root=tmp_path)
    confusion = {c.variant: c for c in table.confusion}
    assert confusion["eager"].false_positive > confusion["strict"].false_positive
    for c in table.confusion:
        n = frame.filter(pl.col("variant") == c.variant).height
        assert c.true_positive + c.false_positive + c.false_negative + c.true_negative == n
        assert c.accuracy == pytest.approx(
            frame.filter(pl.col("variant") == c.variant)["passed"].mean()
        )


async def test_the_request_is_the_one_the_orchestrator_sends(tmp_path: Path) -> None:
    seen: list[ModelRequest] = []
    sim = get_model("sim:instant", seed=7)

    class Recording:
        name = sim.name
        simulated = True

        async def generate(self, request: ModelRequest) -> ModelResponse:
            seen.append(request)
            response: ModelResponse = await sim.generate(request)
            return response

    with Store(tmp_path / "f.db") as store:
        [root] = submit_goals(
            store,
            [Goal(task="core:sales-by-region", policy="threshold:4", prompt="strict", instance=7)],
        )
        config = FleetConfig(workspaces=tmp_path / "ws", policy="threshold:4")
        await Fleet(store, Recording(), config, trace_id=root.trace_id).run(until_idle=True)
        scorer = store.events(kind="model.call")[0]
    assert scorer.role == "scorer"
    expected = scoring_request("strict", get_task("core:sales-by-region"), 7, sim.name)
    assert seen[0] == expected


def test_batch_needs_a_real_model_and_a_scoring_experiment(tmp_path: Path, path: Path) -> None:
    with pytest.raises(UserError, match="--batch sends requests to the Message Batches API"):
        run(path, root=tmp_path, batch=True, progress=None)
    agents = tmp_path / "agents.toml"
    text = SCORING.replace('kind = "scoring"', 'kind = "agents"').replace(
        'baseline = "default"', ""
    )
    agents.write_text(text, encoding="utf-8")
    with pytest.raises(UserError, match="applies to kind = 'scoring'"):
        run(agents, model=CLAUDE, root=tmp_path, batch=True, progress=None)


def _fake(batch_polls: int) -> FakeMessagesAPI:
    return FakeMessagesAPI(get_model("sim:instant", seed=5), batch_polls=batch_polls)


def test_batch_submits_once_polls_and_pays_half(
    tmp_path: Path, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _fake(batch_polls=3) as fake:
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.base_url)
        summary = run(path, model=CLAUDE, root=tmp_path, batch=True, poll_s=0, progress=None)
        assert summary.ran == 60
        assert summary.remaining == 0
        [batch] = fake.batches.values()
        # three retrieves until it ended, and one more inside the SDK's results()
        assert batch == {"requests": 60, "polls": 4, "status": "ended"}
        paths = [e.path for e in fake.exchanges]
        assert paths.count("/v1/messages/batches") == 1
        assert not any(p == "/v1/messages" for p in paths)  # no request went one by one
        again = run(path, model=CLAUDE, root=tmp_path, batch=True, poll_s=0, progress=None)
        assert (again.ran, again.skipped) == (0, 60)
        assert len(fake.batches) == 1
    frame = load(f"calib@{CLAUDE}", root=tmp_path)
    assert frame.height == 60
    assert frame["batch_id"].n_unique() == 1
    assert summary.batch_id == frame["batch_id"][0]
    assert not frame["simulated"].any()
    price = price_for(CLAUDE)
    for row in frame.iter_rows(named=True):
        usage = Usage(
            input_tokens=row["tokens_in"] - row["cache_read_tokens"] - row["cache_write_tokens"],
            output_tokens=row["tokens_out"],
            cache_read_input_tokens=row["cache_read_tokens"],
            cache_creation_input_tokens=row["cache_write_tokens"],
        )
        assert row["cost_usd"] == pytest.approx(price.cost_usd(usage) * BATCH_DISCOUNT)
    # the same scores as the simulated model answering directly (same seed, same requests)
    direct = run(path, root=tmp_path, progress=None)
    assert direct.ran == 60


async def test_a_restarted_batch_run_polls_the_batch_it_already_submitted(
    tmp_path: Path, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _fake(batch_polls=10**6) as fake:
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.base_url)
        first = asyncio.create_task(
            run_async(path, model=CLAUDE, root=tmp_path, batch=True, poll_s=0.005, progress=None)
        )
        folder = output_dir(f"calib@{CLAUDE}", tmp_path)
        for _ in range(2000):
            await asyncio.sleep(0.005)
            if fake.batches and (folder / "results.db").exists():
                with ResultsDB(folder) as db:
                    if db.open_batch() is not None:
                        break
        first.cancel()  # the process dies while the batch is processing
        with pytest.raises(asyncio.CancelledError):
            await first
        [batch_id] = fake.batches
        with ResultsDB(folder) as db:
            assert db.count() == 0
            record = db.open_batch()
            assert record is not None
            assert record.id == batch_id
        fake.batch_polls = 1  # the batch finishes while nobody watches
        summary = await run_async(
            path, model=CLAUDE, root=tmp_path, batch=True, poll_s=0, progress=None
        )
        assert summary.batch_id == batch_id
        assert summary.ran == 60
        assert list(fake.batches) == [batch_id]  # nothing submitted twice
    with ResultsDB(folder) as db:
        assert db.open_batch() is None
        assert db.batches()[0]["status"] == "collected"


def test_the_cli_runs_a_batch_and_reports_it(
    tmp_path: Path, path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with _fake(batch_polls=1) as fake:
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.base_url)
        out = str(tmp_path)
        code = main(
            ["ab", "run", str(path), "--model", CLAUDE, "--batch", "--dry-run", "--out", out]
        )
        printed = capsys.readouterr().out
        assert code == 0
        assert "Message Batches, half price" in printed
        assert fake.request_count == 0  # a dry run sends nothing
        code = main(
            [
                "ab",
                "run",
                str(path),
                "--model",
                CLAUDE,
                "--batch",
                "--poll",
                "0",
                "--quiet",
                "--out",
                out,
            ]
        )
        printed = capsys.readouterr().out
    assert code == 0
    assert "ran 60 trials" in printed
    assert "message batch: msgbatch_fake_" in printed
    code = main(["ab", "report", f"calib@{CLAUDE}", "--out", out, "--no-html"])
    printed = capsys.readouterr().out
    assert code == 0
    assert "Decisions vs labels" in printed
    assert "SIMULATED" not in printed
