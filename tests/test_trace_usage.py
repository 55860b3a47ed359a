"""A goal's cost with its sub-agents is the same number however its sub-agents' calls happen
to interleave: sub-agents run at once, so the order their calls reach the log is the
scheduler's, and an experiment's fixed variants must give the same rows byte for byte."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime
from fractions import Fraction

from fleetlab.trace._calls import Call, usage_by_agent

T0 = datetime(2026, 11, 23, tzinfo=UTC)


def _call(task_id: str, cost: float) -> Call:
    return Call(
        task_id=task_id,
        role="worker",
        turn=1,
        model="sim:instant",
        ended_at=T0,
        latency_s=0.0,
        input_tokens=1,
        output_tokens=1,
        cache_read_input_tokens=0,
        cache_creation_input_tokens=0,
        cost_usd=cost,
        stop_reason="end_turn",
        epoch=None,
        simulated=True,
    )


def test_a_trees_cost_does_not_depend_on_the_order_of_its_sub_agents_calls() -> None:
    rng = random.Random(5)
    # costs whose float sums depend on the order they are added in (0.1 + 0.2 + 0.3 ...)
    costs = {
        agent: [round(rng.uniform(0.0001, 0.3), 7) for _ in range(6)]
        for agent in ("root", "a", "b", "c")
    }
    calls = [_call(agent, cost) for agent, mine in costs.items() for cost in mine]
    # the oracle: the exact sum of every call's cost, rounded once to a float
    exact = float(sum(Fraction(cost) for mine in costs.values() for cost in mine))
    seen = set()
    for kids in itertools.permutations(["a", "b", "c"]):
        children = {"root": list(kids), "a": [], "b": [], "c": []}
        for _ in range(5):
            rng.shuffle(calls)
            usage = usage_by_agent(calls, children)
            seen.add(usage["root"].tree_cost_usd)
    assert seen == {exact}
    # a plain left-to-right sum does depend on the order: the test can tell
    orders = {sum(rng.sample([c.cost_usd for c in calls], len(calls))) for _ in range(50)}
    assert len(orders) > 1
