"""``kind = "agents"``: every trial is a whole goal through the real orchestrator.

Trials: ``fleetlab.experiments._trial`` (a fresh fleet and workspace per trial). Runner:
``_run._schedule`` (worker processes for the simulator, a learning variant's trials in order).
Columns: every result column; agents, depth and transcripts mean something. Comparisons:
success, cost, agents, paired per (task, trial); learning curves of the variants that learn.
Charts: frontier, success by bucket, the learner's choices, paired differences, agents by
complexity. Estimate: a pilot on the simulator, priced at the model's list price.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

from fleetlab.errors import FleetlabError
from fleetlab.experiments.kinds.base import ExperimentKind, KindRun, RunContext, UsageEstimate

if TYPE_CHECKING:
    from fleetlab.experiments._compare import Comparison
    from fleetlab.experiments._definition import Experiment, Trial
    from fleetlab.models.prices import Price

__all__ = ["AgentsKind"]


class AgentsKind(ExperimentKind):
    """Whole agent trials through the orchestrator."""

    name = "agents"
    runs_agents = True
    checks_threshold = True

    async def run(self, context: RunContext) -> KindRun:
        from fleetlab.experiments._run import _model_factory, _schedule
        from fleetlab.sandbox import sandbox_mode

        exp = context.experiment
        if context.todo:  # refuse before the first trial, not once per trial
            sandbox_mode(trusted=exp.simulated)
        model_for, shared = _model_factory(exp)
        outcome = await _schedule(
            exp,
            context.folder,
            context.todo,
            db=context.results,
            model_for=model_for,
            progress=context.progress,
            done=context.done,
            should_start=context.should_start,
            attempts=context.infra_attempts,
            fleet_db=context.fleet_db,
            workers=context.workers,
            close_fds=context.close_fds,
        )
        return KindRun(
            ran=len(outcome.rows),
            errored=outcome.errored,
            reruns=outcome.reruns,
            first_error=outcome.first_error,
            stopped=outcome.stopped,
            shared=shared,
            lost_workers=tuple(outcome.lost_workers),
        )

    async def estimate(
        self, experiment: Experiment, todo: list[Trial], price: Price, discount: float
    ) -> UsageEstimate:
        from fleetlab.experiments._estimate import PILOT_MODEL, _pilot_rows, _usage

        per_variant: dict[str, float] = {v.name: 0.0 for v in experiment.variants}
        if not todo:
            return UsageEstimate(0, 0, 0, 0, per_variant, "nothing left to run")
        rows = await _pilot_rows(experiment)
        if not rows:  # every pilot trial failed for infrastructure reasons
            raise FleetlabError(
                "the cost pilot finished no trial on the simulated model, so nothing can be "
                "estimated: run the experiment with --limit 1 to see why its trials fail"
            )
        calls = tokens_in = tokens_out = cost = 0.0
        cells: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
        by_variant: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in rows:
            cells[(row["variant"], row["complexity"])].append(row)
            by_variant[row["variant"]].append(row)
        for trial in todo:
            sample = cells.get((trial.variant.name, trial.task.complexity)) or by_variant.get(
                trial.variant.name, rows
            )
            n = len(sample)
            calls += sum(r["model_calls"] for r in sample) / n
            tokens_in += sum(r["tokens_in"] for r in sample) / n
            tokens_out += sum(r["tokens_out"] for r in sample) / n
            c = sum(price.cost_usd(_usage(r)) for r in sample) / n * discount
            cost += c
            per_variant[trial.variant.name] += c
        method = (
            f"pilot of {len(rows)} trials on {PILOT_MODEL} ({len(rows) // len(experiment.variants)}"
            " tasks x every variant), token counts priced at list price"
        )
        return UsageEstimate(calls, tokens_in, tokens_out, cost, per_variant, method)

    def chart_groups(self, comparison: Comparison, frame: Any) -> dict[str, list[Any]]:
        from fleetlab.charts.experiments import (
            agents_vs_complexity_chart,
            learned_choices_chart,
            paired_differences_chart,
            success_by_bucket_chart,
            success_vs_cost_chart,
        )

        sim = comparison.simulated
        order = [v.variant for v in comparison.variants]
        return {
            "frontier": [success_vs_cost_chart(comparison.summary_frame(), simulated=sim)],
            "buckets": [success_by_bucket_chart(comparison.bucket_frame(), simulated=sim)],
            "learning": (
                [learned_choices_chart(frame, simulated=sim)] if comparison.learners else []
            ),
            "more": [
                paired_differences_chart(comparison.paired_frame(), simulated=sim),
                agents_vs_complexity_chart(frame, order=order, simulated=sim),
            ],
        }
