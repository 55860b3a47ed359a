"""``kind = "scoring"``: only the complexity-scoring step, one request per trial, no agents.

Trials and rows: ``fleetlab.experiments._scoring`` (the orchestrator's own scoring request;
the row's ``label`` is the decision the task's true complexity calls for). Runner: requests
up to ``concurrency`` at once, or one Message Batch (``--batch``, half price). Columns: no
agent columns. Comparisons: accuracy against the labels, and a confusion table per prompt.
Charts: frontier, calibration (score by true complexity), confusion, paired differences.
Estimate: each request answered by the simulator for token counts, at list price.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from fleetlab.experiments.kinds.base import ExperimentKind, KindRun, RunContext, UsageEstimate

if TYPE_CHECKING:
    from fleetlab.experiments._compare import Comparison, Confusion
    from fleetlab.experiments._definition import Experiment, Trial
    from fleetlab.models.prices import Price

__all__ = ["ScoringKind"]


class ScoringKind(ExperimentKind):
    """Scoring-prompt calibration: the scoring step alone, against labels."""

    name = "scoring"
    noun = "accuracy"
    word = "correct"
    batchable = True

    def default_variant_name(self, policy: str, prompt: str, threshold: int) -> str:
        return prompt if threshold == 4 else f"{prompt}@{threshold}"

    async def run(self, context: RunContext) -> KindRun:
        from fleetlab.experiments._batch import BatchAPI
        from fleetlab.experiments._run import _model_factory
        from fleetlab.experiments._scoring import run_scoring, run_scoring_batch

        exp, todo, limit = context.experiment, context.todo, context.limit
        if context.batch:
            api = context.batch_api or BatchAPI()
            try:
                chosen = todo if limit is None else todo[:limit]
                ran, errored, first_error, batch_id = await run_scoring_batch(
                    exp,
                    context.results,
                    chosen,
                    api,
                    context.progress,
                    context.done,
                    poll_s=context.poll_s,
                )
            finally:
                if context.batch_api is None:
                    await api.aclose()
            stopped = None if len(chosen) == len(todo) else f"limit of {limit} trials reached"
            return KindRun(
                ran=ran, errored=errored, first_error=first_error, stopped=stopped,
                batch_id=batch_id,
            )  # fmt: skip
        model_for, shared = _model_factory(exp)
        ran, stopped, errored, first_error, reruns = await run_scoring(
            exp,
            context.results,
            todo,
            model_for,
            context.progress,
            context.done,
            context.should_start,
            context.infra_attempts,
        )
        return KindRun(
            ran=ran, errored=errored, reruns=reruns, first_error=first_error, stopped=stopped,
            shared=shared,
        )  # fmt: skip

    async def estimate(
        self, experiment: Experiment, todo: list[Trial], price: Price, discount: float
    ) -> UsageEstimate:
        from fleetlab.experiments._estimate import PILOT_MODEL
        from fleetlab.experiments._scoring import scoring_request
        from fleetlab.models.registry import get_model

        calls = tokens_in = tokens_out = cost = 0.0
        per_variant: dict[str, float] = {v.name: 0.0 for v in experiment.variants}
        for trial in todo:
            model = get_model(PILOT_MODEL, seed=trial.seed)
            request = scoring_request(trial.variant.prompt, trial.task, trial.seed, model.name)
            usage = (await model.generate(request)).usage
            calls += 1
            tokens_in += usage.all_input_tokens  # fresh, cache reads and cache writes
            tokens_out += usage.output_tokens
            c = price.cost_usd(usage) * discount
            cost += c
            per_variant[trial.variant.name] += c
        method = f"each request answered by {PILOT_MODEL} for token counts, priced at list price"
        return UsageEstimate(calls, tokens_in, tokens_out, cost, per_variant, method)

    def confusion(
        self, by_variant: dict[str, list[dict[str, Any]]], order: Sequence[str]
    ) -> tuple[Confusion, ...]:
        from fleetlab.experiments._compare import Confusion

        def count(rows: list[dict[str, Any]], choice: str, label: str) -> int:
            return sum(1 for r in rows if r["choice"] == choice and r["label"] == label)

        return tuple(
            Confusion(
                variant=v,
                true_positive=count(by_variant[v], "decompose", "decompose"),
                false_positive=count(by_variant[v], "decompose", "direct"),
                false_negative=count(by_variant[v], "direct", "decompose"),
                true_negative=count(by_variant[v], "direct", "direct"),
            )
            for v in order
        )

    def chart_groups(self, comparison: Comparison, frame: Any) -> dict[str, list[Any]]:
        from fleetlab.charts.experiments import (
            confusion_chart,
            paired_differences_chart,
            scoring_calibration_chart,
            success_vs_cost_chart,
        )

        sim = comparison.simulated
        order = [v.variant for v in comparison.variants]
        return {
            "frontier": [success_vs_cost_chart(comparison.summary_frame(), simulated=sim)],
            "buckets": [scoring_calibration_chart(frame, order=order, simulated=sim)],
            "learning": [],
            "more": [
                confusion_chart(comparison.confusion_frame(), simulated=sim),
                paired_differences_chart(comparison.paired_frame(), simulated=sim, scoring=True),
            ],
        }
