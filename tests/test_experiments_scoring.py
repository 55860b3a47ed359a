"""Scoring-calibration experiments: the scoring step alone, its labels, and --batch through
the Message Batches API of the loopback fake (submit, poll, resume, half price)."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
from pathlib import Path
from typing import Any, ClassVar

import anthropic
import polars as pl
import pytest

from fleetlab.cli import main
from fleetlab.errors import UserError
from fleetlab.experiments import (
    ResultsDB,
    compare,
    estimate,
    infra_summary,
    load,
    output_dir,
    resolve_experiment,
    run,
    run_async,
    scoring_request,
)
from fleetlab.experiments._batch import BatchAPI, BatchStatus
from fleetlab.experiments._scoring import scoring_row
from fleetlab.models.registry import get_model
from fleetlab.models.types import ModelRequest, ModelResponse, TextBlock, Usage
from fleetlab.orchestrator import Fleet, FleetConfig, Goal, submit_goals
from fleetlab.store import open_store
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

    with open_store(tmp_path / "f.db") as store:
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


async def _per_seed(request: ModelRequest) -> ModelResponse:
    """The simulated model as the direct path builds it: one per trial, seeded with the trial's
    seed, which the prompt's last ``Task: <key> #<seed>`` line carries."""
    [*_, instance] = re.findall(r"^Task: \S+ #(\d+)$", request.messages[0].text(), re.M)
    response: ModelResponse = await get_model("sim:instant", seed=int(instance)).generate(request)
    return response


def _fake(batch_polls: int) -> FakeMessagesAPI:
    return FakeMessagesAPI(_per_seed, batch_polls=batch_polls)


# claude-haiku-4-5 list prices in USD per million tokens (platform.claude.com pricing page):
# input 1.00, output 5.00, 5-minute cache write 1.25, cache read 0.10. Written here as
# literals: the expected costs below must not come from the price table under test.
HAIKU_PER_MTOK = {"input": 1.00, "output": 5.00, "cache_write": 1.25, "cache_read": 0.10}


def test_a_batch_row_costs_half_the_list_price_by_hand(tmp_path: Path, path: Path) -> None:
    """One scoring answer of known usage costs exactly half the list price through a batch."""
    exp = resolve_experiment(path, CLAUDE)
    trial = exp.plan()[0]
    response = ModelResponse(
        content=(TextBlock('{"score": 4, "reason": "several files"}'),),
        stop_reason="end_turn",
        usage=Usage(
            input_tokens=12_000,
            output_tokens=3_000,
            cache_read_input_tokens=40_000,
            cache_creation_input_tokens=8_000,
        ),
        model="claude-haiku-4-5",
    )
    # list price: 12,000 x $1.00 + 3,000 x $5.00 + 8,000 x $1.25 + 40,000 x $0.10 per MTok
    #           = $0.012 + $0.015 + $0.010 + $0.004 = $0.041
    direct = scoring_row(exp, trial, response)
    assert direct["cost_usd"] == pytest.approx(0.041, rel=1e-12)
    # through the Message Batches API: half of that, $0.0205
    batched = scoring_row(exp, trial, response, batch_id="msgbatch_1")
    assert batched["cost_usd"] == pytest.approx(0.0205, rel=1e-12)
    assert batched["batch_id"] == "msgbatch_1"
    assert (batched["score"], batched["tokens_in"], batched["tokens_out"]) == (4, 60_000, 3_000)


def test_batch_submits_once_polls_and_pays_half(
    tmp_path: Path, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A --batch run submits one batch, polls it to the end, stores every answer at half the
    list price, and scores each trial exactly as the direct path does."""
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
    p = HAIKU_PER_MTOK
    for row in frame.iter_rows(named=True):
        fresh = row["tokens_in"] - row["cache_read_tokens"] - row["cache_write_tokens"]
        list_price = (
            fresh * p["input"]
            + row["tokens_out"] * p["output"]
            + row["cache_write_tokens"] * p["cache_write"]
            + row["cache_read_tokens"] * p["cache_read"]
        ) / 1_000_000
        assert row["cost_usd"] == pytest.approx(list_price * 0.5, rel=1e-9)  # batch: half
    # the same scores as the simulated model answering directly (same seeds, same requests),
    # trial by trial: the batch's answers, returned out of order, land on their own trials
    direct = run(path, root=tmp_path, progress=None)
    assert direct.ran == 60
    columns = ["score", "choice", "label", "passed", "failure", "tokens_in", "tokens_out"]
    key = ["variant", "task", "trial"]
    batched = frame.select(*key, "seed", *columns).sort(key)
    simulated = load("calib", root=tmp_path).select(*key, "seed", *columns).sort(key)
    assert batched.height == simulated.height == 60
    assert batched.to_dicts() == simulated.to_dicts()
    assert batched["score"].n_unique() > 1  # the comparison is not between constant columns


def test_the_batch_estimate_is_half_the_direct_one_and_what_the_batch_costs(
    tmp_path: Path, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--dry-run --batch prices the same pilot tokens at half the list price, and those tokens
    (cache writes included) are what the batch run then records."""
    direct = estimate(path, model=CLAUDE, root=tmp_path)
    batched = estimate(path, model=CLAUDE, root=tmp_path, batch=True)
    assert (direct.batch, batched.batch) == (False, True)
    assert (batched.tokens_in, batched.tokens_out) == (direct.tokens_in, direct.tokens_out)
    assert batched.cost_usd == pytest.approx(0.5 * direct.cost_usd, rel=1e-12)
    with _fake(batch_polls=1) as fake:
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.base_url)
        run(path, model=CLAUDE, root=tmp_path, batch=True, poll_s=0, progress=None)
    frame = load(f"calib@{CLAUDE}", root=tmp_path)
    assert batched.tokens_in == frame["tokens_in"].sum()
    assert batched.tokens_out == frame["tokens_out"].sum()
    p = HAIKU_PER_MTOK
    list_price = (
        (frame["tokens_in"] - frame["cache_read_tokens"] - frame["cache_write_tokens"]).sum()
        * p["input"]
        + frame["tokens_out"].sum() * p["output"]
        + frame["cache_write_tokens"].sum() * p["cache_write"]
        + frame["cache_read_tokens"].sum() * p["cache_read"]
    ) / 1_000_000
    assert direct.cost_usd == pytest.approx(list_price, rel=1e-9)
    assert batched.cost_usd == pytest.approx(list_price * 0.5, rel=1e-9)
    assert frame["cost_usd"].sum() == pytest.approx(list_price * 0.5, rel=1e-9)


class _EndsBadly(FakeMessagesAPI):
    """The fake, except that three requests of the batch end errored, expired and canceled."""

    OUTCOMES: ClassVar[dict[str, dict[str, Any]]] = {
        "t0": {
            "type": "errored",
            "error": {"type": "error", "error": {"type": "overloaded_error", "message": "Busy"}},
        },
        "t1": {"type": "expired"},
        "t2": {"type": "canceled"},
    }
    ends_badly = True

    def _run_batch(self, batch: dict[str, Any]) -> None:
        super()._run_batch(batch)
        for item in batch["results"] if self.ends_badly else ():
            item["result"] = self.OUTCOMES.get(item["custom_id"], item["result"])


def test_errored_expired_and_canceled_batch_results_are_recorded_as_such_not_scored(
    tmp_path: Path, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch request that ended errored, expired or canceled gets no result row: it is
    logged as an infrastructure attempt with what happened, counted as errored, and the next
    --batch run submits exactly those trials again."""
    with _EndsBadly(_per_seed, batch_polls=1) as fake:
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.base_url)
        summary = run(path, model=CLAUDE, root=tmp_path, batch=True, poll_s=0, progress=None)
        assert (summary.ran, summary.errored, summary.remaining) == (57, 3, 3)
        folder = output_dir(f"calib@{CLAUDE}", tmp_path)
        with sqlite3.connect(folder / "results.db") as conn:
            [(requests,)] = conn.execute("SELECT requests FROM batches").fetchall()
            attempts = conn.execute(
                "SELECT variant, task, trial, retried, cost_usd, error FROM infra_attempts"
            ).fetchall()
        by_id = {cid: (v, t, int(n)) for cid, (v, t, n, _seed) in json.loads(requests).items()}
        bad = {by_id[cid] for cid in _EndsBadly.OUTCOMES}
        frame = load(f"calib@{CLAUDE}", root=tmp_path)
        scored = set(zip(frame["variant"], frame["task"], frame["trial"], strict=True))
        assert len(scored) == 57
        assert not scored & bad  # none of the three was scored
        logged = {(v, t, n): (retried, cost, error) for v, t, n, retried, cost, error in attempts}
        assert set(logged) == bad
        for cid, outcome in (("t0", "errored: Busy"), ("t1", "expired"), ("t2", "canceled")):
            v, t, n = by_id[cid]
            assert logged[(v, t, n)] == (0, 0.0, f"{v} {t} trial {n}: {outcome}")
        assert summary.first_error is not None
        assert summary.first_error.endswith(("errored: Busy", "expired", "canceled"))
        info = infra_summary(f"calib@{CLAUDE}", root=tmp_path)
        assert (info.excluded, info.reruns, info.cost_usd) == (3, 0, 0.0)

        fake.ends_badly = False  # the next batch ends well
        again = run(path, model=CLAUDE, root=tmp_path, batch=True, poll_s=0, progress=None)
        assert (again.ran, again.skipped, again.errored, again.remaining) == (3, 57, 0, 0)
        assert sorted(b["requests"] for b in fake.batches.values()) == [3, 60]
    frame = load(f"calib@{CLAUDE}", root=tmp_path)
    assert frame.height == 60
    assert bad <= set(zip(frame["variant"], frame["task"], frame["trial"], strict=True))


class _Polled(BatchAPI):
    """The batches client, with an event set once a poll has been answered: the runner polls
    only once it has saved the batch id in the results database."""

    def __init__(self, client: anthropic.AsyncAnthropic) -> None:
        super().__init__(client)
        self.polled = asyncio.Event()

    async def status(self, batch_id: str) -> BatchStatus:
        answer = await super().status(batch_id)
        self.polled.set()
        return answer


async def test_a_restarted_batch_run_polls_the_batch_it_already_submitted(
    tmp_path: Path, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run that dies while its batch is processing leaves the batch id behind; the next
    run collects that batch instead of submitting another."""
    with _fake(batch_polls=10**6) as fake:
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.base_url)
        client = anthropic.AsyncAnthropic(api_key="sk-test", base_url=fake.base_url)
        api = _Polled(client)
        # an hour between polls: after its first poll the run waits, and is killed there
        first = asyncio.create_task(
            run_async(
                path,
                model=CLAUDE,
                root=tmp_path,
                batch=True,
                poll_s=3600,
                progress=None,
                batch_api=api,
            )
        )
        await api.polled.wait()
        first.cancel()  # the process dies while the batch is processing
        with pytest.raises(asyncio.CancelledError):
            await first
        await client.close()
        folder = output_dir(f"calib@{CLAUDE}", tmp_path)
        [batch_id] = fake.batches
        assert fake.batches[batch_id]["status"] == "in_progress"
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
