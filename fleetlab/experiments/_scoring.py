"""Scoring-calibration trials: only the complexity-scoring step, no agents.

Each trial sends one task to the model with a prompt variant, exactly as the orchestrator's
scoring step does (``scoring_request`` builds the same request; a test holds the two
together), and compares the decision the score implies (decompose when the score is at least
the variant's threshold) with the label (decompose when the task's true complexity is at
least that threshold).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from fleetlab.decompose import parse_score, score_bucket
from fleetlab.experiments._batch import BATCH_DISCOUNT, BatchAPI
from fleetlab.experiments._definition import Experiment, Trial
from fleetlab.experiments._progress import ProgressSink
from fleetlab.experiments._results import ResultsDB
from fleetlab.models.base import Model
from fleetlab.models.metered import ModelCall, metered
from fleetlab.models.types import Message, ModelRequest, ModelResponse
from fleetlab.orchestrator import task_ref
from fleetlab.prompts import load_variant
from fleetlab.suites import SuiteTask, complexity_bucket

__all__ = ["scoring_request", "scoring_row"]


def scoring_request(prompt: str, task: SuiteTask, instance: int, model: str) -> ModelRequest:
    """The request the orchestrator's scoring step sends for ``task`` (as goal ``#instance``).

    Args:
        prompt: the scoring-prompt variant's name.
        task: the suite task.
        instance: the goal's instance number (the trial's seed in experiments).
        model: the model spec (``anthropic:claude-sonnet-4-6``) or id.
    """
    variant = load_variant(prompt)
    text = variant.render(
        task.instructions, task_ref({"suite_task": task.key, "instance": instance})
    )
    return ModelRequest(
        model=model.split(":", 1)[-1],
        system="",
        messages=(Message.user(text),),
        max_tokens=200,
    )


def scoring_row(
    experiment: Experiment,
    trial: Trial,
    response: ModelResponse | ModelCall,
    *,
    wall_s: float = 0.0,
    batch_id: str | None = None,
) -> dict[str, Any]:
    """The result row of one scoring trial, from the call's record (or from a bare response,
    a Message Batch's: accounted here at the experiment model's price, half of it in a
    batch). Tokens, cost and ``simulated`` are the record's; ``sim_time_s`` is the latency
    the backend reported (simulated time for a simulated model, none measured here)."""
    call = (
        response
        if isinstance(response, ModelCall)
        else ModelCall.of(
            experiment.model,
            experiment.simulated,
            response,
            discount=BATCH_DISCOUNT if batch_id else 1.0,
        )
    )
    response = call.response
    parsed = parse_score(response.text())
    score = parsed or 3  # what the orchestrator does with an unreadable score
    threshold = trial.variant.threshold
    predicted = "decompose" if score >= threshold else "direct"
    label = "decompose" if trial.task.complexity >= threshold else "direct"
    u = call.usage
    return {
        "experiment": experiment.name,
        "kind": "scoring",
        "variant": trial.variant.name,
        "policy": f"threshold:{threshold}",
        "prompt": trial.variant.prompt,
        "task": trial.task.key,
        "suite": trial.task.suite,
        "trial": trial.index,
        "seed": trial.seed,
        "complexity": trial.task.complexity,
        "bucket": complexity_bucket(trial.task.complexity),
        "passed": predicted == label,
        "status": "completed",
        "failure": None if parsed else "unreadable score (counted as 3)",
        "tokens_in": u.all_input_tokens,
        "tokens_out": u.output_tokens,
        "tokens": u.total_tokens,
        "cache_read_tokens": u.cache_read_input_tokens,
        "cache_write_tokens": u.cache_creation_input_tokens,
        "cost_usd": call.cost_usd,
        "wall_s": wall_s,
        "sim_time_s": response.latency_s,
        "agents": 0,
        "depth": 0,
        "model_calls": 1,
        "score": score,
        "score_bucket": score_bucket(score),
        "choice": predicted,
        "decomposed": False,
        "label": label,
        "threshold": threshold,
        "model": experiment.model,
        "simulated": call.simulated,
        "batch_id": batch_id,
    }


async def run_scoring(
    experiment: Experiment,
    db: ResultsDB,
    todo: list[Trial],
    model_for: Callable[[int], Model],
    progress: ProgressSink,
    done: int,
    should_start: Callable[[bool], str | None],
    attempts: int = 3,
) -> tuple[int, str | None, int, str | None, int]:
    """Score ``todo`` one request per trial, up to ``concurrency`` at once.

    A call that fails for good with a transient ``ModelError`` (an outage, malformed answers)
    is logged as an infrastructure attempt and made again, up to ``attempts`` calls; a refused
    request is logged once. Neither is ever scored.

    Returns ``(ran, stop reason, errored, first error, re-runs)``.

    Raises:
        AuthenticationError: the API rejected the key.
    """
    from fleetlab.errors import AuthenticationError, ModelError, ModelRequestError

    gate = asyncio.Semaphore(experiment.concurrency)
    state = {"ran": 0, "done": done, "errored": 0, "reruns": 0}
    first_error: list[str] = []
    stop: list[str] = []

    async def one(trial: Trial) -> None:
        async with gate:
            for attempt in range(1, attempts + 1):
                reason = should_start(attempt > 1)
                if reason:
                    stop.append(reason)
                    return
                model = metered(model_for(trial.seed))
                request = scoring_request(trial.variant.prompt, trial.task, trial.seed, model.name)
                started = time.perf_counter()
                try:
                    call = await model.call(request)
                    break
                except AuthenticationError:
                    raise
                except ModelError as exc:
                    again = attempt < attempts and not isinstance(exc, ModelRequestError)
                    db.record_infra_attempt(trial.key, retried=again, cost_usd=0.0, error=str(exc))
                    if not again:
                        state["errored"] += 1
                        first_error.append(str(exc))
                        return
                    state["reruns"] += 1
            db.insert(scoring_row(experiment, trial, call, wall_s=time.perf_counter() - started))
            state["ran"] += 1
            state["done"] += 1
            progress.update(state["done"], f"{trial.variant.name} {trial.task.key}")

    jobs = [asyncio.ensure_future(one(t)) for t in todo]
    try:
        await asyncio.gather(*jobs)
    finally:  # a rejected key stops every call still waiting, before the results db closes
        for job in jobs:
            job.cancel()
        await asyncio.gather(*jobs, return_exceptions=True)
    return (
        state["ran"],
        (stop[0] if stop else None),
        state["errored"],
        (first_error[0] if first_error else None),
        state["reruns"],
    )


async def run_scoring_batch(
    experiment: Experiment,
    db: ResultsDB,
    todo: list[Trial],
    api: BatchAPI,
    progress: ProgressSink,
    done: int,
    *,
    poll_s: float,
) -> tuple[int, int, str | None, str | None]:
    """Submit ``todo`` as one Message Batch (or resume the batch already submitted), wait for
    it, and store the results. Returns ``(ran, errored, first error, batch id)``; no batch
    when nothing is left to score."""
    by_key = {t.key: t for t in todo}
    record = db.open_batch()
    requests: dict[str, list[Any]]
    if record is None and not todo:
        return 0, 0, None, None
    if record is None:
        requests = {f"t{n}": [*t.key, t.seed] for n, t in enumerate(todo)}
        batch_id = await api.submit(
            [
                (cid, scoring_request(t.variant.prompt, t.task, t.seed, experiment.model))
                for cid, t in zip(requests, todo, strict=True)
            ]
        )
        db.save_batch(batch_id, requests)  # before anything else: a restart polls this batch
    else:
        batch_id, requests = record.id, record.requests
    while True:
        status, counts = await api.status(batch_id)
        progress.update(
            done, f"batch {batch_id} {status} ({counts.get('processing', 0)} processing)"
        )
        if status == "ended":
            break
        await asyncio.sleep(poll_s)
    results = await api.results(batch_id)
    rows, errors = [], []
    for cid, (variant, task, index, _seed) in requests.items():
        trial = by_key.get((variant, task, int(index)))
        answer = results.get(cid, "missing from the results")
        if trial is None:
            continue  # already recorded, or no longer part of the experiment
        if isinstance(answer, str):  # errored, expired, canceled: the batch's doing
            errors.append(f"{variant} {task} trial {index}: {answer}")
            db.record_infra_attempt(trial.key, retried=False, cost_usd=0.0, error=errors[-1])
            continue
        rows.append(scoring_row(experiment, trial, answer, batch_id=batch_id))
    db.collect_batch(batch_id, rows)
    progress.update(done + len(rows), f"batch {batch_id} collected")
    return len(rows), len(errors), (errors[0] if errors else None), batch_id
