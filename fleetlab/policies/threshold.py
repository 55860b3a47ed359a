"""``threshold:K``: score the task's complexity (1-5), decompose when the score is >= K."""

from __future__ import annotations

from fleetlab.errors import UserError
from fleetlab.policies.base import Context, Decision, Policy, Strategy

__all__ = ["ThresholdPolicy"]


class ThresholdPolicy(Policy):
    """Decompose when the estimated complexity is at least ``k``."""

    name = "threshold"

    def __init__(self, k: int = 4) -> None:
        self.k = k

    @property
    def threshold(self) -> int:
        return self.k

    def needs_score(self, context: Context) -> bool:
        return True

    def arm_of(self, choice: str | None) -> Strategy | None:
        if choice not in ("direct", "decompose"):
            return None
        return "decompose" if choice == "decompose" else "direct"

    def decide(self, context: Context) -> Decision:
        score = context.score if context.score is not None else 3
        if score >= self.k:
            return Decision("decompose", f"score {score} >= threshold {self.k}")
        return Decision("direct", f"score {score} < threshold {self.k}")

    def __str__(self) -> str:
        return f"threshold:{self.k}"


def threshold(arg: str | None) -> Policy:
    if arg is None or not arg.isdigit() or not 1 <= int(arg) <= 5:
        shown = "threshold" if arg is None else f"threshold:{arg}"
        raise UserError(f"policy {shown!r}: threshold needs a score from 1 to 5, e.g. threshold:4")
    return ThresholdPolicy(int(arg))
