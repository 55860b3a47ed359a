"""Decomposition policies as plug-ins: one class behind a small interface, registered by name.

Built in (``fleetlab.policies.names()``): ``never`` (or ``direct``), ``always`` (or
``decompose``), ``threshold:K``, ``as_needed`` and ``learned``. Adding one is a class and a
registration, anywhere (a test file, a notebook)::

    from fleetlab.policies import Context, Decision, Policy, register_policy

    class Coin(Policy):
        name = "coin"
        def decide(self, context: Context) -> Decision:
            return Decision("decompose" if hash(context.task_id) % 2 else "direct", "coin")

    register_policy("coin", lambda arg: Coin())

Then ``--policy coin``, ``Goal(policy="coin")`` and ``policy = "coin"`` in an experiment file
all run it.
"""

from __future__ import annotations

from fleetlab.policies import fixed, learned, threshold
from fleetlab.policies._registry import (
    PolicyFactory,
    choices,
    names,
    parse,
    register_policy,
    unregister_policy,
    usage,
)
from fleetlab.policies.base import (
    STRATEGIES,
    Context,
    Decision,
    Outcome,
    Policy,
    Strategy,
    score_bucket,
)

__all__ = [
    "STRATEGIES",
    "Context",
    "Decision",
    "Outcome",
    "Policy",
    "PolicyFactory",
    "Strategy",
    "choices",
    "names",
    "parse",
    "register_policy",
    "score_bucket",
    "unregister_policy",
    "usage",
]

register_policy("never", fixed.never, aliases=("direct",))
register_policy("always", fixed.always, aliases=("decompose",))
register_policy(
    "threshold",
    threshold.threshold,
    usage="threshold:K (K from 1 to 5)",
    examples=("threshold:3", "threshold:4"),
)
register_policy("as_needed", fixed.as_needed)
register_policy("learned", learned.learned)
