"""The policy interface: decide how to run a task from a context, learn from its outcome.

A policy picks a *strategy* for a task:

* ``direct``: one agent does the whole task;
* ``decompose``: a planner splits it, executors run the parts, a validator checks them;
* ``as_needed``: ADaPT (Prasad et al., 2024): try directly, and only if that fails, split
  (sub-tasks inherit ``as_needed``, so a failing part splits again while depth allows).

The orchestrator asks ``needs_score(context)`` first and pays for the complexity-scoring
model call only when the answer is yes; then ``decide(context)`` with the score (or None);
and when a root goal ends, ``learn(outcome)``. A policy holds no state of its own between
goals: what a learning policy knows lives in the store (``context.learner``), so it
survives restarts and is shared by every worker of the fleet.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

if TYPE_CHECKING:
    from fleetlab.learning import Learner

__all__ = ["STRATEGIES", "Context", "Decision", "Outcome", "Policy", "Strategy", "score_bucket"]

Strategy = Literal["direct", "decompose", "as_needed"]
#: The ways a task can be run, which are also the learner's arms.
STRATEGIES: tuple[Strategy, ...] = ("direct", "decompose", "as_needed")


def score_bucket(score: int) -> str:
    """``simple`` (1-2), ``medium`` (3) or ``complex`` (4-5)."""
    return "simple" if score <= 2 else "medium" if score == 3 else "complex"


@dataclass(frozen=True, slots=True)
class Context:
    """What a policy may look at when it decides.

    Attributes:
        task_id: the task being decided.
        instructions: its instructions.
        spec: its spec (read-only by convention: suite task, parts, prompt variant, ...).
        subtask: whether it is a sub-task of a decomposed task.
        can_split: whether decomposing it is allowed (depth and parts left).
        max_depth: decomposition levels allowed below a root goal.
        score: the estimated complexity (1-5) when the policy asked for it, else None.
        learner: the fleet's learner (state in the store), for policies that learn.
    """

    task_id: str
    instructions: str = ""
    spec: dict[str, Any] = field(default_factory=dict)
    subtask: bool = False
    can_split: bool = True
    max_depth: int = 1
    score: int | None = None
    learner: Learner | None = None
    kind: Literal["policy_context"] = field(default="policy_context", repr=False)

    @property
    def bucket(self) -> str | None:
        """The estimated-complexity bucket, when the task was scored."""
        return None if self.score is None else score_bucket(self.score)


@dataclass(frozen=True, slots=True)
class Decision:
    """A policy's answer: the strategy, why, and (for a learning policy) what it learns about.

    Attributes:
        strategy: ``direct``, ``decompose`` or ``as_needed``.
        reason: one line for the ``decomposition.decided`` event and the trace.
        bucket: the context the outcome is credited to (None: nothing to learn).
        arm: the arm the outcome is credited to (None: nothing to learn).
        extra: more attributes for the decision event (e.g. Thompson draws).
    """

    strategy: Strategy
    reason: str
    bucket: str | None = None
    arm: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    kind: Literal["policy_decision"] = field(default="policy_decision", repr=False)

    @property
    def choice(self) -> Literal["direct", "decompose"]:
        """What runs first: ``decompose`` plans at once; ``direct`` and ``as_needed`` try
        one agent first."""
        return "decompose" if self.strategy == "decompose" else "direct"


@dataclass(frozen=True, slots=True)
class Outcome:
    """A finished root goal, as its policy learns from it.

    Attributes:
        task_id: the root goal.
        trace_id: its trace (the learner's event joins it).
        decision: the decision as stored in the goal's spec (``bucket`` and ``arm`` included).
        success: whether it completed.
        cost_usd: its whole tree's cost.
        tokens: its whole tree's tokens.
        learner: the fleet's learner.
        split: whether a try-then-split goal's direct attempt failed and it split.
        own_cost_usd: the root task's own cost (its tree's cost without sub-tasks): for
            a goal that split, about what its failed direct attempt cost.
    """

    task_id: str
    trace_id: str
    decision: dict[str, Any]
    success: bool
    cost_usd: float
    tokens: int
    learner: Learner | None = None
    split: bool = False
    own_cost_usd: float | None = None
    kind: Literal["policy_outcome"] = field(default="policy_outcome", repr=False)


class Policy(ABC):
    """A decomposition policy. Subclass it, then ``register_policy(name, factory)``.

    Class attributes:
        name: the registered name (``str(policy)`` adds its argument, e.g. ``threshold:4``).
        learns: whether ``learn`` does anything (the experiment runner keeps such a
            variant's trials in order and carries its learner state from one to the next).
        handles_subtasks: whether the policy also decides for sub-tasks; when False a
            sub-task of a decomposed task runs directly.
    """

    name: ClassVar[str] = ""
    learns: ClassVar[bool] = False
    handles_subtasks: ClassVar[bool] = False

    def needs_score(self, context: Context) -> bool:
        """Whether ``decide`` depends on the complexity score: when False the orchestrator
        skips the scoring model call and ``context.score`` is None."""
        return False

    @abstractmethod
    def decide(self, context: Context) -> Decision:
        """The strategy for the task in ``context``."""

    def learn(self, outcome: Outcome) -> None:  # noqa: B027  # optional hook: most policies learn nothing
        """Learn from a finished root goal this policy decided (default: nothing)."""

    def arm_of(self, choice: str | None) -> Strategy | None:
        """The strategy a finished goal under this policy played, given what its decision
        chose (``direct`` or ``decompose``): the evidence a warm start credits to that arm.
        None (the default) for a policy whose trials are not evidence of a fixed strategy
        (a learning policy chose its arms from the rewards themselves)."""
        return None

    @property
    def threshold(self) -> int:
        """The score threshold of ``threshold:K``; 4 for every other policy, as before
        policies were plug-ins (experiment results record it in their ``threshold`` column)."""
        return 4

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"<policy {self}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Policy) and type(other) is type(self) and str(other) == str(self)

    def __hash__(self) -> int:
        return hash((type(self), str(self)))
