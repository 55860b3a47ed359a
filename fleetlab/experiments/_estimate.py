"""What an experiment will cost, before any money is spent.

Agent trials: a small pilot runs the experiment's variants on the simulated model (with the
experiment's ``model_options`` when its model is the simulator) over a few of its tasks (up
to two per true-complexity level, one trial each), giving per variant and
complexity the expected model calls and token usage (input, cache reads and writes, output).
Each trial still to run is priced at the target model's list price with those token counts.
The simulated model counts tokens from the real conversation length, so the estimate is of
the right order; real models think and write more or less than it does, so treat it as an
estimate, not a quote.

Scoring trials: every request still to send is built and answered by the simulated model
(one call each, no agents), and priced the same way (half price with ``--batch``).
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from fleetlab.experiments._batch import BATCH_DISCOUNT
from fleetlab.experiments._definition import Experiment, TaskFilter, Trial
from fleetlab.models.prices import price_for
from fleetlab.models.types import Usage

__all__ = ["Estimate", "estimate_trials"]

PILOT_MODEL = "sim:instant"


@dataclass(frozen=True, slots=True)
class Estimate:
    """An experiment's expected cost.

    Attributes:
        trials_total: trials in the plan.
        trials_done: trials already recorded.
        trials_todo: trials a run would start.
        model_calls: expected model calls of the trials to run.
        tokens_in: expected input tokens (cache reads and writes included).
        tokens_out: expected output tokens.
        cost_usd: expected cost of the trials to run at the model's list price.
        spent_usd: what the recorded trials cost.
        budget_usd: the experiment's cap (None: no cap).
        simulated_model: the experiment's model is simulated (no money is spent).
        batch: priced at the Message Batches discount.
        method: how the estimate was made.
        per_variant: expected cost of each variant's trials to run.
    """

    experiment: str
    model: str
    trials_total: int
    trials_done: int
    trials_todo: int
    model_calls: float
    tokens_in: float
    tokens_out: float
    cost_usd: float
    spent_usd: float
    budget_usd: float | None
    simulated_model: bool
    batch: bool
    method: str
    per_variant: dict[str, float] = field(default_factory=dict)
    kind: Literal["estimate"] = field(default="estimate", repr=False)

    @property
    def total_usd(self) -> float:
        """Spent so far plus the expected cost of the rest."""
        return self.spent_usd + self.cost_usd

    @property
    def over_budget(self) -> bool:
        """Whether finishing the experiment is expected to pass its cap (real models only)."""
        return (
            not self.simulated_model
            and self.budget_usd is not None
            and self.total_usd > self.budget_usd
        )

    def describe(self) -> list[str]:
        """The estimate as lines of text."""
        cap = "none" if self.budget_usd is None else f"${self.budget_usd:,.2f}"
        lines = [
            f"experiment {self.experiment} on {self.model}"
            + (" (simulated: no money is spent)" if self.simulated_model else ""),
            f"trials: {self.trials_total} planned, {self.trials_done} done, "
            f"{self.trials_todo} to run",
            f"expected: {self.model_calls:,.0f} model calls, {self.tokens_in:,.0f} input and "
            f"{self.tokens_out:,.0f} output tokens",
            f"expected cost: ${self.cost_usd:,.4f}"
            + (" (Message Batches, half price)" if self.batch else "")
            + f"; spent so far ${self.spent_usd:,.4f}; budget cap {cap}",
            f"method: {self.method}",
        ]
        if self.per_variant:
            lines.append(
                "by variant: " + ", ".join(f"{k} ${v:,.4f}" for k, v in self.per_variant.items())
            )
        if self.over_budget:
            lines.append(
                f"OVER BUDGET: ${self.total_usd:,.4f} expected in total, "
                f"cap ${self.budget_usd:,.2f}"
            )
        return lines


def _pilot_tasks(experiment: Experiment) -> tuple[str, ...]:
    levels: dict[int, list[str]] = defaultdict(list)
    for task in experiment.selected_tasks():
        levels[task.complexity].append(task.key)
    chosen: list[str] = []
    for keys in levels.values():
        chosen.extend(dict.fromkeys([keys[0], keys[-1]]))  # two apart, one if only one
    return tuple(chosen)


async def _pilot_rows(experiment: Experiment) -> list[dict[str, Any]]:
    from fleetlab.experiments._run import run_agent_trials  # the runner imports this module

    simulator = experiment.model.startswith("sim:")  # its options are the simulator's
    pilot = dataclasses.replace(
        experiment,
        name="pilot",
        model=PILOT_MODEL,
        model_options=experiment.model_options if simulator else {},
        seeds=experiment.seeds[:1],
        tasks=TaskFilter(include=_pilot_tasks(experiment)),
        keep_trials="none",
        budget_usd=None,
    )
    with tempfile.TemporaryDirectory(prefix="fleetlab-pilot-") as tmp:
        return await run_agent_trials(pilot, Path(tmp), pilot.plan())


def _usage(row: dict[str, Any]) -> Usage:
    cache_read = int(row["cache_read_tokens"] or 0)
    cache_write = int(row["cache_write_tokens"] or 0)
    return Usage(
        input_tokens=int(row["tokens_in"]) - cache_read - cache_write,
        output_tokens=int(row["tokens_out"]),
        cache_read_input_tokens=cache_read,
        cache_creation_input_tokens=cache_write,
    )


async def estimate_trials(
    experiment: Experiment, todo: list[Trial], *, done: int, spent_usd: float, batch: bool
) -> Estimate:
    """Estimate the cost of running ``todo`` (see the module docstring)."""
    price = price_for(experiment.model)
    discount = BATCH_DISCOUNT if batch else 1.0
    from fleetlab.experiments.kinds import get_kind

    usage = await get_kind(experiment.kind).estimate(experiment, todo, price, discount)
    calls, tokens_in, tokens_out, cost = (
        usage.calls,
        usage.tokens_in,
        usage.tokens_out,
        usage.cost_usd,
    )
    per_variant, method = usage.per_variant, usage.method
    return Estimate(
        experiment=experiment.name,
        model=experiment.model,
        trials_total=done + len(todo),
        trials_done=done,
        trials_todo=len(todo),
        model_calls=calls,
        tokens_in=tokens_in,
        tokens_out=tokens_out,
        cost_usd=cost,
        spent_usd=spent_usd,
        budget_usd=experiment.budget_usd,
        simulated_model=experiment.simulated,
        batch=batch,
        method=method,
        per_variant=per_variant,
    )
