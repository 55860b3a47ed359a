"""The budget check an agent makes before each model call reads nothing when its previous
turn's commit recorded the goal's row, and reads again whenever that record may be stale."""

from __future__ import annotations

import pytest

from fleetlab.models.types import Usage
from fleetlab.orchestrator import Fleet, FleetConfig, Goal, submit_goals
from fleetlab.store import Store, TurnWrite
from fleetlab.store.read.fleet import goal_budget
from fleetlab.testing import ScriptedModel

pytestmark = pytest.mark.both_backends


def _row(store: Store, goal_id: str) -> tuple[object, ...]:
    g = goal_budget(store, goal_id)
    return (g.status, g.budget_usd, g.budget_tokens, g.spent_usd, g.spent_tokens)


async def _turn(store: Store, task_id: str, turn: int, lease: object) -> None:
    await store.write_turn(
        TurnWrite(task_id=task_id, turn=turn, state={"messages": []}, events=[],
                  tokens_in=100, tokens_out=10, cost_usd=0.25, lease=lease)  # type: ignore[arg-type]
    )  # fmt: skip


async def test_a_turn_commit_records_its_goals_row_as_committed(store: Store) -> None:
    root = store.create_task("goal", budget_usd=1.0, budget_tokens=10_000)
    claimed = store.claim("w1")
    assert claimed is not None
    assert claimed.id == root.id
    child = store.create_task("child", parent_id=root.id)
    assert store.committed_budget(root.id) is None  # nothing recorded yet: read it
    await _turn(store, root.id, 1, claimed.lease)
    assert store.committed_budget(root.id) == _row(store, root.id)
    assert store.committed_budget(root.id) == ("running", 1.0, 10_000, 0.25, 110)
    # a sub-task's turn records its goal (the root), with the tree's spending rolled up
    mine = store.claim("w1")
    assert mine is not None
    assert mine.id == child.id
    await _turn(store, child.id, 1, mine.lease)
    assert store.committed_budget(root.id) == ("running", 1.0, 10_000, 0.5, 220)
    assert store.committed_budget(child.id) is None


async def test_any_later_commit_of_the_store_makes_the_record_stale(store: Store) -> None:
    """A cancel (or any write) committed through the same store after the turn: the record
    no longer answers, so the check reads the row again and sees the cancel."""
    root = store.create_task("goal")
    claimed = store.claim("w1")
    assert claimed is not None
    await _turn(store, root.id, 1, claimed.lease)
    assert store.committed_budget(root.id) is not None
    store.transition(root.id, "cancelled", error="stop")
    assert store.committed_budget(root.id) is None
    assert _row(store, root.id)[0] == "cancelled"


async def test_a_refused_turn_records_nothing(store: Store) -> None:
    root = store.create_task("goal")
    claimed = store.claim("w1")
    assert claimed is not None
    assert claimed.lease is not None
    store.expire_leases(["w1"])
    assert store.claim("w2") is not None  # epoch 2: w1's lease is stale
    from fleetlab.errors import LeaseLost

    with pytest.raises(LeaseLost):
        await _turn(store, root.id, 1, claimed.lease)
    assert store.committed_budget(root.id) is None


async def test_the_budget_stops_the_agent_at_the_same_call_with_recorded_rows(
    store: Store,
) -> None:
    """Each call costs 1,050 tokens; a 3,150-token budget is reached after the third call,
    so the fourth is never made (the checks after the first three read the recorded rows)."""
    from fleetlab.models.types import ModelRequest, ModelResponse, TextBlock, ToolUseBlock

    def respond(request: ModelRequest) -> ModelResponse:
        n = len(request.messages)
        return ModelResponse(
            (TextBlock(f"step {n}"), ToolUseBlock(f"toolu_{n}", "write_file",
                                                  {"path": f"f{n}.txt", "content": "x"})),
            "tool_use", Usage(1000, 50), "scripted",
        )  # fmt: skip

    model = ScriptedModel(respond)
    [goal] = submit_goals(store, [Goal(title="write files", policy="never", budget_tokens=3150)])
    config = FleetConfig(concurrency=2, poll_s=0.01, lease_s=3600)
    report = await Fleet(store, model, config).run(until_idle=True)
    done = store.get_task(goal.id)
    assert len(model.requests) == 3
    assert (done.status, done.error) == ("cancelled", "budget exceeded: 3150 of 3150 tokens spent")
    assert report.cancelled == 1
    assert store.events(kind="model.discarded") == []
