"""What an experiment kind is: one unit with its trials, runner, columns, comparisons, charts
and estimate, so a new kind is one module plus one registration (``register_kind``), and the
rest of ``fleetlab.experiments`` asks the kind instead of testing its name."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from fleetlab.experiments._batch import BatchAPI
    from fleetlab.experiments._compare import Comparison, Confusion
    from fleetlab.experiments._definition import Experiment, Trial, Variant
    from fleetlab.experiments._progress import ProgressSink
    from fleetlab.experiments._results import ResultsDB
    from fleetlab.models.base import Model
    from fleetlab.models.prices import Price

__all__ = ["ExperimentKind", "KindRun", "RunContext", "UsageEstimate"]


@dataclass(slots=True)
class RunContext:
    """What a kind's runner gets from ``run_async``: the trials still to run, where results
    go, and the run's options."""

    experiment: Experiment
    folder: Path
    results: ResultsDB
    todo: list[Trial]
    progress: ProgressSink
    done: int
    should_start: Callable[[bool], str | None]
    infra_attempts: int
    limit: int | None
    batch: bool
    batch_api: BatchAPI | None
    poll_s: float
    fleet_db: str | None
    workers: int
    close_fds: tuple[int, ...]


@dataclass(slots=True)
class KindRun:
    """What a kind's runner did (``RunSummary`` adds the totals)."""

    ran: int = 0
    errored: int = 0
    reruns: int = 0
    first_error: str | None = None
    stopped: str | None = None
    batch_id: str | None = None
    shared: Model | None = None  # a shared model client for run_async to close
    lost_workers: tuple[str, ...] = ()  # why each worker process that died did


@dataclass(slots=True)
class UsageEstimate:
    """A kind's estimate of what ``todo`` will use (``Estimate`` adds the totals)."""

    calls: float
    tokens_in: float
    tokens_out: float
    cost_usd: float
    per_variant: dict[str, float]
    method: str


class ExperimentKind:
    """One kind of experiment. Subclasses set the class attributes and implement ``run``,
    ``estimate``; the rest has defaults that suit a kind without agents.

    Attributes:
        name: what ``kind = "..."`` says in an experiment file.
        noun: what a passing trial's rate is called ("success", "accuracy").
        word: the column word for it ("success", "correct").
        runs_agents: trials are agent runs: they count agents, keep transcripts (the report's
            pairs and failed trials), learn in order, and can run their fleets on a server.
        batchable: trials are single requests the Message Batches API can take (``--batch``).
        checks_threshold: a variant's ``threshold`` must agree with its ``threshold:K``
            policy (for a kind that reads ``threshold`` on its own, it need not).
    """

    name: ClassVar[str]
    noun: ClassVar[str] = "success"
    word: ClassVar[str] = "success"
    runs_agents: ClassVar[bool] = False
    batchable: ClassVar[bool] = False
    checks_threshold: ClassVar[bool] = False

    def default_variant_name(self, policy: str, prompt: str, threshold: int) -> str:
        """A variant's name when the file gives none."""
        return policy if prompt == "default" else f"{policy}@{prompt}"

    def check_variant(self, variant: Variant) -> None:
        """Refuse a variant this kind cannot run (``UserError``); default: any."""

    async def run(self, context: RunContext) -> KindRun:
        """Run ``context.todo``, committing each result as it ends."""
        raise NotImplementedError

    async def estimate(
        self, experiment: Experiment, todo: list[Trial], price: Price, discount: float
    ) -> UsageEstimate:
        """Estimate calls, tokens and cost of ``todo`` without spending anything."""
        raise NotImplementedError

    def confusion(
        self, by_variant: dict[str, list[dict[str, Any]]], order: Sequence[str]
    ) -> tuple[Confusion, ...]:
        """Decision-vs-label counts per variant, for a kind whose trials have labels."""
        return ()

    def chart_groups(self, comparison: Comparison, frame: Any) -> dict[str, list[Any]]:
        """The report's charts by where they go: frontier, buckets, learning, more."""
        raise NotImplementedError
