from __future__ import annotations

from pathlib import Path

import pytest

from fleetlab.agents import AgentLimits, run_agent
from fleetlab.clock import FakeClock
from fleetlab.errors import LeaseLost, ModelError
from fleetlab.models import ModelRequest, ModelResponse, TextBlock, ToolUseBlock, Usage
from fleetlab.store import Store, Task
from fleetlab.testing import ScriptedModel
from fleetlab.tools import Workspace


def tool_turn(n: int, name: str = "write_file", args: object = None) -> ModelResponse:
    args = {"path": f"f{n}.txt", "content": str(n)} if args is None else args
    return ModelResponse(
        content=(TextBlock(f"turn {n}"), ToolUseBlock(f"toolu_{n}", name, args)),
        stop_reason="tool_use",
        usage=Usage(1000, 50),
        model="scripted",
    )


def final(text: str = "all done") -> ModelResponse:
    return ModelResponse((TextBlock(text),), "end_turn", Usage(1200, 20), "scripted")


@pytest.fixture
def running(store: Store) -> Task:
    task = store.create_task("write three files")
    return store.transition(task.id, "running", worker="w1", lease_s=600)


async def test_turns_are_committed_and_resume_skips_them(
    store: Store, running: Task, tmp_path: Path
) -> None:
    workspace = Workspace(tmp_path / "ws")
    model = ScriptedModel([tool_turn(1), tool_turn(2), tool_turn(3), final()])
    turns = 0

    def yield_after_two() -> bool:
        return turns >= 2

    async def count() -> None:
        nonlocal turns
        turns += 1

    out = await run_agent(
        store,
        model,
        running,
        workspace,
        system="s",
        instructions="go",
        lease=running.lease,
        should_yield=yield_after_two,
        on_turn=count,
    )
    assert (out.status, out.turns, len(model.requests)) == ("yielded", 2, 2)
    assert store.latest_checkpoint(running.id).turn == 2  # type: ignore[union-attr]
    # Resume (as after a preemption or a crash): the two paid turns are not asked again.
    out = await run_agent(
        store, model, running, workspace, system="s", instructions="go", lease=running.lease
    )
    assert out.status == "finished"
    assert out.text == "all done"
    assert len(model.requests) == 4
    assert len(model.requests[2].messages) == 5  # the resumed request carries the history
    calls = store.events(task_id=running.id, kind="model.call")
    assert [e.attrs["turn"] for e in calls] == [1, 2, 3, 4]
    assert sorted(p.name for p in workspace.root.iterdir()) == ["f1.txt", "f2.txt", "f3.txt"]
    task = store.get_task(running.id)
    assert task.tokens_in == 3 * 1000 + 1200
    assert task.cost_usd == pytest.approx(sum(e.attrs["cost_usd"] for e in calls))
    assert len(store.events(task_id=running.id, kind="tool.call")) == 3


async def test_bad_tool_calls_go_back_to_the_model(
    store: Store, running: Task, tmp_path: Path
) -> None:
    def respond(request: ModelRequest) -> ModelResponse:
        if len(request.messages) == 1:
            return tool_turn(1, "read_file", {"path": "../../etc/passwd"})
        if len(request.messages) == 3:
            return tool_turn(2, "write_file", "not an object")
        return final()

    model = ScriptedModel(respond)
    out = await run_agent(
        store, model, running, Workspace(tmp_path / "ws"), system="s", instructions="go"
    )
    assert out.status == "finished"
    results = [m for m in model.requests[-1].messages if m.role == "user"][1:]
    blocks = [block for m in results for block in m.content]
    assert [b.is_error for b in blocks] == [True, True]  # type: ignore[union-attr]
    # what the model was told, turn by turn: the path escape refused, the bad arguments named
    sent = [b.content for b in blocks]  # type: ignore[union-attr]
    assert sent[0] == "path '../../etc/passwd' leads outside the workspace; stay inside it"
    assert sent[1].startswith("write_file: arguments must be a JSON object, got string")
    errors = [e.attrs["error"] for e in store.events(kind="tool.call")]
    assert errors == sent  # the event log records the same refusals
    assert not list((tmp_path / "ws").iterdir())  # nothing was written


async def test_stall_is_detected(store: Store, running: Task, tmp_path: Path) -> None:
    same = tool_turn(1, "list_dir", {"path": "."})
    model = ScriptedModel(lambda request: same)
    out = await run_agent(
        store,
        model,
        running,
        Workspace(tmp_path / "ws"),
        system="s",
        instructions="go",
        limits=AgentLimits(stall_turns=3),
    )
    assert out.status == "failed"
    assert "stalled" in (out.error or "")
    assert out.turns == 3


async def test_turn_limit(store: Store, running: Task, tmp_path: Path) -> None:
    model = ScriptedModel(lambda request: tool_turn(len(request.messages)))
    out = await run_agent(
        store,
        model,
        running,
        Workspace(tmp_path / "ws"),
        system="s",
        instructions="go",
        limits=AgentLimits(max_turns=5),
    )
    assert (out.status, out.turns) == ("failed", 5)
    assert "turn limit" in (out.error or "")


async def test_model_error_ends_the_agent_without_a_turn(
    store: Store, running: Task, tmp_path: Path
) -> None:
    def boom(request: ModelRequest) -> ModelResponse:
        raise ModelError("overloaded after 4 retries")

    out = await run_agent(
        store,
        ScriptedModel(boom),
        running,
        Workspace(tmp_path / "ws"),
        system="s",
        instructions="go",
    )
    assert out.status == "failed"
    assert "overloaded" in (out.error or "")
    assert store.events(kind="model.call") == []


async def test_budget_stops_before_the_next_call(
    store: Store, running: Task, tmp_path: Path
) -> None:
    model = ScriptedModel([tool_turn(1), tool_turn(2), final()])
    out = await run_agent(
        store,
        model,
        running,
        Workspace(tmp_path / "ws"),
        system="s",
        instructions="go",
        over_budget=lambda: "budget exceeded" if model.requests else None,
    )
    assert (out.status, out.error, len(model.requests)) == ("failed", "budget exceeded", 1)


async def test_lost_lease_does_not_commit_the_turn_but_records_its_cost(
    store: Store, running: Task, tmp_path: Path, clock: FakeClock
) -> None:
    clock.advance(3600)  # the lease expired; another worker takes the task
    store.claim("w2", lease_s=600)
    with pytest.raises(LeaseLost, match="epoch 1"):
        await run_agent(
            store,
            ScriptedModel([tool_turn(1)]),
            running,
            Workspace(tmp_path / "ws"),
            system="s",
            instructions="go",
            lease=running.lease,
        )
    assert store.latest_checkpoint(running.id) is None
    assert store.events(kind="model.call") == []
    assert store.get_task(running.id).cost_usd == 0
    # The call was paid for: it is on record, with the price of its tokens.
    [discarded] = store.events(kind="model.discarded")
    # 1,000 input and 50 output tokens at Sonnet's $3 / $15 per million (the simulated price).
    assert discarded.attrs["cost_usd"] == pytest.approx(1000 * 3e-6 + 50 * 15e-6)
    assert (discarded.task_id, discarded.attrs["turn"], discarded.attrs["epoch"]) == (
        running.id, 1, 1,
    )  # fmt: skip
