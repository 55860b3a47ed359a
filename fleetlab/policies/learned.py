"""``learned``: the persisted bandit in ``fleetlab.learning`` picks the strategy per bucket."""

from __future__ import annotations

from fleetlab.policies.base import STRATEGIES, Context, Decision, Outcome, Policy
from fleetlab.policies.fixed import no_argument

__all__ = ["LearnedPolicy"]


class LearnedPolicy(Policy):
    """Thompson sampling over {direct, decompose, as_needed} per estimated-complexity bucket.

    The score is asked for only while it is worth its price (``Learner.needs_score``: a
    posterior sample of the value of knowing the bucket against the scoring call's cost);
    an unscored goal plays the arm best over all buckets and teaches nothing. A scored
    try-then-split goal teaches two arms: ``as_needed``, and ``direct`` (its first attempt).
    """

    name = "learned"
    learns = True

    def needs_score(self, context: Context) -> bool:
        if context.learner is None:
            raise RuntimeError("the learned policy needs the fleet's learner in its context")
        return context.learner.needs_score()

    def decide(self, context: Context) -> Decision:
        learner = context.learner
        if learner is None:
            raise RuntimeError("the learned policy needs the fleet's learner in its context")
        bucket = context.bucket
        if bucket is None:
            arm = learner.unscored_arm()
            return Decision(
                arm,
                f"learned: not scored (knowing the bucket is not worth the "
                f"${learner.config.score_cost_usd:g} call); {arm} is best over all buckets",
                arm=arm,
            )
        arm, draws = learner.choose(bucket)
        if "min_evidence" in draws:
            reason = (
                f"learned: exploring ({arm} has fewer than {draws['min_evidence']} rewards "
                f"in {bucket})"
            )
        else:
            reason = "learned: " + ", ".join(f"{k}={v}" for k, v in draws.items())
        return Decision(arm, reason, bucket=bucket, arm=arm)

    def learn(self, outcome: Outcome) -> None:
        d = outcome.decision
        bucket = d.get("bucket")
        # decisions made before arms were strategies have no "arm": their choice is the arm
        arm = d.get("arm") or ("decompose" if d.get("choice") == "decompose" else "direct")
        if not bucket or arm not in STRATEGIES or outcome.learner is None:
            return
        if arm == "as_needed":
            # Try-then-split starts with a direct attempt: the goal is a direct trial too.
            # Unsplit, the direct attempt's outcome is the goal's; split, the direct attempt
            # failed, at about the root's own cost (the attempt, plus the score and the plan).
            # Recorded first, so the goal's own arm is its last update.
            split = outcome.split
            own = outcome.own_cost_usd
            outcome.learner.update(
                task_id=outcome.task_id,
                trace_id=outcome.trace_id,
                bucket=bucket,
                arm="direct",
                success=outcome.success and not split,
                cost_usd=outcome.cost_usd if not split or own is None else own,
                tokens=outcome.tokens if not split else 0,
            )
        outcome.learner.update(
            task_id=outcome.task_id,
            trace_id=outcome.trace_id,
            bucket=bucket,
            arm=arm,
            success=outcome.success,
            cost_usd=outcome.cost_usd,
            tokens=outcome.tokens,
        )


def learned(arg: str | None) -> Policy:
    no_argument("learned", arg)
    return LearnedPolicy()
