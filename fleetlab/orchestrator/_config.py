"""The orchestrator's settings and the spec a task carries through its phases."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleetlab.agents import AgentLimits
from fleetlab.errors import UserError
from fleetlab.learning import DEFAULT_OBJECTIVE, LearnerConfig
from fleetlab.objective import Objective
from fleetlab.policies import parse

__all__ = ["FleetConfig", "task_ref"]


@dataclass(frozen=True, slots=True)
class FleetConfig:
    """How a fleet runs.

    Attributes:
        concurrency: agents running at once (slots).
        policy: default decomposition policy (a goal's ``policy`` overrides it): any name in
            ``fleetlab.policies.names()``, e.g. ``threshold:4``.
        prompt_variant: default complexity-scoring prompt (``experiments/prompts/<name>.toml``).
        max_depth: decomposition levels allowed below a root goal.
        max_fanout: sub-tasks one plan may spawn (extra ones are merged into the last).
        repair_rounds: times a decomposed goal re-runs failed sub-tasks before giving up.
        max_preemptions: times in a row a task may be preempted; then it runs to its end.
        lease_s: lease length (clock seconds); a crashed worker's task is reclaimable after it.
        aging_s: waiting this long adds one priority point (no starvation); None disables.
        poll_s: scheduler tick when idle (clock seconds).
        pushed_poll_s: the idle tick where the store pushes new work (PostgreSQL's
            LISTEN/NOTIFY wakes the fleet at once): only expired leases and due schedules wait
            for it.
        agent: per-agent limits (turns, tokens, stall detection).
        objective: what a goal's outcome is worth, declared once in user terms (``a success is
            worth $X``: ``Objective(success_value_usd=X)``); the ``learned`` policy's reward,
            and what an A/B report ranks variants by. Default: a success is worth $1.
        learner: the ``learned`` policy's prior and skip-scoring rule.
        workspaces: folder for task workspaces (default: ``workspaces/`` beside the db).
    """

    concurrency: int = 4
    policy: str = "threshold:4"
    prompt_variant: str = "default"
    max_depth: int = 1
    max_fanout: int = 4
    repair_rounds: int = 1
    max_preemptions: int = 2
    lease_s: float = 300.0
    aging_s: float | None = 3600.0
    poll_s: float = 0.2
    pushed_poll_s: float = 2.0
    agent: AgentLimits = field(default_factory=AgentLimits)
    objective: Objective = DEFAULT_OBJECTIVE
    learner: LearnerConfig = field(default_factory=LearnerConfig)
    workspaces: Path | None = None

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise UserError(f"concurrency must be at least 1, got {self.concurrency}")
        if self.max_fanout < 1 or self.max_depth < 0:
            raise UserError("max_fanout must be >= 1 and max_depth >= 0")
        parse(self.policy)

    def replace(self, **changes: Any) -> FleetConfig:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)


def task_ref(spec: dict[str, Any]) -> str:
    """The ``Task:`` line of a prompt: ``core:csv-summary #17 parts 2,3`` or ``goal #4``."""
    ref = f"{spec.get('suite_task') or 'goal'} #{int(spec.get('instance', 0))}"
    parts = spec.get("parts") or []
    return ref + (f" parts {','.join(str(p) for p in parts)}" if parts else "")
