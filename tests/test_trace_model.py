"""The trace model of one goal, built by the real orchestrator on SimModel and a FakeClock:
a reclaim, a preemption, a repair round and a failed verifier (tests/helpers/trace_scenario).

Expected values come from the scenario as the test set it up, from the raw events and
checkpoints, and from the suite's verifier run again: never from the model under test.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from fleetlab.clock import FakeClock
from fleetlab.store import Store
from fleetlab.trace import GoalTrace, duration, load_goal_trace, load_trace, money
from tests.helpers.trace_scenario import (
    FAKE_KEY,
    HOSTILE,
    TAMPERED,
    TAMPERED_TEXT,
    TASK,
    Scenario,
    run_scenario,
)

pytestmark = pytest.mark.both_backends


@pytest.fixture
async def scenario(store: Store, clock: FakeClock, tmp_path: Path) -> Scenario:
    return await run_scenario(store, clock, tmp_path / "workspaces")


@pytest.fixture
def trace(scenario: Scenario) -> GoalTrace:
    return load_goal_trace(scenario.store, scenario.goal.id, workspaces=scenario.workspaces)


def _redacted(text: str) -> str:
    return text.replace(FAKE_KEY, "[REDACTED]")


def test_every_agent_is_in_the_tree_and_has_a_lane(scenario: Scenario, trace: GoalTrace) -> None:
    tasks = scenario.store.tasks(trace_id=scenario.goal.trace_id)
    assert {a.id for a in trace.agents} == {t.id for t in tasks}
    assert [lane.task_id for lane in trace.timeline.lanes] == [a.id for a in trace.agents]
    roles = sorted(a.task.role for a in trace.agents)
    # one planner; the plan's two sub-tasks, run twice (the repair round); two validators
    assert roles.count("planner") == 1
    assert roles.count("executor") == 2 * len(TASK.solution or ())
    assert roles.count("validator") == 2  # the scripted fail, then the fooled one
    for a in trace.agents:  # depth first: a parent comes before its children
        if a.task.parent_id is not None:
            parent_at = [b.id for b in trace.agents].index(a.task.parent_id)
            assert parent_at < [b.id for b in trace.agents].index(a.id)
        assert a.node.brief == (a.task.spec.get("instructions") or a.task.title)
    # any id of the goal finds the same trace; the tree-only reader still works
    some = next(a.id for a in trace.agents if a.task.role == "validator")
    assert load_goal_trace(scenario.store, some, workspaces=scenario.workspaces).trace_id == (
        trace.trace_id
    )
    assert {n.task.id for n in load_trace(scenario.store, some).walk()} == {t.id for t in tasks}


def test_the_reclaim_is_on_the_goal_lane(scenario: Scenario, trace: GoalTrace) -> None:
    [raw] = scenario.store.events(task_id=scenario.goal.id, kind="task.reclaimed")
    lane = trace.timeline.lane(scenario.goal.id)
    [mark] = [m for m in lane.marks if m.mark == "reclaimed"]
    assert mark.at == raw.ts
    assert scenario.dead_worker in mark.label
    lost = next(s for s in lane.segments if s.end == raw.ts)
    assert (lost.state, lost.worker, lost.epoch) == ("running", scenario.dead_worker, 1)
    assert (lost.note or "").startswith("lease lost")
    after = lane.segments[lane.segments.index(lost) + 1]
    assert (after.state, after.start, after.epoch) == ("running", raw.ts, 2)
    assert after.worker == raw.attrs["worker"] != scenario.dead_worker


def test_the_preemption_and_resume_are_on_the_executor_lane(
    scenario: Scenario, trace: GoalTrace
) -> None:
    preempted = [
        e for e in scenario.store.events(trace_id=trace.trace_id) if e.kind == "task.preempted"
    ]
    assert len(preempted) == 1  # the scenario preempted one executor, once
    raw = preempted[0]
    [resumed] = scenario.store.events(task_id=raw.task_id, kind="task.resumed")
    [urgent] = scenario.urgent_ids
    urgent_start = scenario.store.events(task_id=urgent, kind="task.started")[0].ts
    assert raw.ts <= urgent_start <= resumed.ts  # the urgent goal ran in between
    lane = trace.timeline.lane(raw.task_id)
    [seg] = [s for s in lane.segments if s.state == "preempted"]
    assert (seg.start, seg.end) == (raw.ts, resumed.ts)
    assert (lane.count("preempted"), lane.count("resumed")) == (1, 1)
    # it yielded after the call during which the urgent goal arrived (its 2nd), and resumed
    # from its checkpoint: the conversation's turns run on without a repeat
    calls = scenario.store.events(task_id=raw.task_id, kind="model.call")
    assert sum(c.ts <= raw.ts for c in calls) == scenario.preempt_during_call
    conv = trace.agent(raw.task_id).conversation
    turns = [m.turn for m in conv.messages if m.role == "assistant"]
    assert turns == list(range(1, len(calls) + 1))
    assert conv.error is None  # completed: the preemption's reason is no failure
    assert seg.note == raw.attrs["error"]


def test_waits_name_the_sub_agents_of_each_round(scenario: Scenario, trace: GoalTrace) -> None:
    store = scenario.store
    # in written order, each wait follows the spawns of its round (times may be equal)
    expected: list[list[str]] = []
    spawned: list[str] = []
    for e in store.events(trace_id=trace.trace_id):
        if e.kind == "task.spawned" and e.attrs.get("parent_id") == scenario.goal.id:
            spawned.append(e.task_id)
        elif e.kind == "task.waiting" and e.task_id == scenario.goal.id:
            expected.append(spawned)
            spawned = []
    lane = trace.timeline.lane(scenario.goal.id)
    assert [s.waiting_on for s in lane.segments if s.state == "waiting"] == expected
    roles = [[trace.agent(k).task.role for k in group] for group in expected]
    assert roles == [["planner"], ["executor"] * 2, ["validator"], ["executor"] * 2, ["validator"]]


def test_repair_round_validator_verdicts_and_the_failed_verifier(
    scenario: Scenario, trace: GoalTrace
) -> None:
    assert trace.repairs == 1
    validators = [a for a in trace.agents if a.task.role == "validator"]
    first, second = (v.conversation.verdict for v in validators)
    assert first is not None
    assert second is not None
    assert (first.passed, first.reason) == (False, _redacted(HOSTILE))
    assert second.passed
    # the verifier, run again on the workspace, says what the trace says
    verdict = TASK.verify(scenario.folder, trusted=True)
    assert not verdict.passed
    assert trace.verifier is not None
    assert (trace.verifier.passed, trace.verifier.reason) == (False, _redacted(verdict.reason))
    assert trace.goal.status == "failed"
    plan = trace.agent(scenario.goal.id).conversation.plan
    assert [p["title"] for p in plan or []] == [s.title for s in TASK.solution or ()]


def test_usage_per_call_and_per_agent(scenario: Scenario, trace: GoalTrace) -> None:
    store = scenario.store
    raw_calls = store.events(trace_id=trace.trace_id, kind="model.call")
    assert len(trace.calls) == len(raw_calls)
    for a in trace.agents:
        mine = [e for e in raw_calls if e.task_id == a.id]
        assert a.usage.calls == len(mine)
        assert a.usage.cost_usd == pytest.approx(sum(e.attrs["cost_usd"] for e in mine))
        assert a.usage.cost_usd == pytest.approx(a.task.cost_usd)
        assert a.usage.input_tokens == a.task.tokens_in
        assert a.usage.output_tokens == a.task.tokens_out
        assert a.usage.latency_s == pytest.approx(sum(e.attrs["latency_s"] for e in mine))
        assert a.usage.tree_cost_usd == pytest.approx(a.task.tree_cost_usd)
    root = trace.agent(scenario.goal.id).usage
    assert root.tree_calls == len(raw_calls)
    # the scripted first validator reply: 120 in, 40 out, 2 s
    first_validator = next(a for a in trace.agents if a.task.role == "validator")
    [call] = first_validator.conversation.calls
    assert (call.input_tokens, call.output_tokens, call.latency_s) == (120, 40, 2.0)
    assert first_validator.conversation.messages[-1].call == call


def test_conversations_come_whole_from_the_checkpoints(
    scenario: Scenario, trace: GoalTrace
) -> None:
    store = scenario.store
    for a in trace.agents:
        raw = [m for cp in store.checkpoints(a.id) for m in cp.state["messages"]]
        assert [m.to_dict()["content"] for m in a.conversation.messages] == [
            json.loads(_redacted(json.dumps(m["content"]))) for m in raw
        ]
        tools = [(e.attrs["turn"], e.attrs["tool"]) for e in store.events(task_id=a.id)
                 if e.kind == "tool.call"]  # fmt: skip
        assert [(t.turn, t.name) for t in a.conversation.tool_calls] == tools
        assert all(t.result is not None for t in a.conversation.tool_calls)
        if raw:
            role = "executor" if a.task.role == "orchestrator" else a.task.role
            assert a.conversation.system is not None
            assert f"Role: {role}" in a.conversation.system
            assert a.conversation.system_reconstructed
    writes = [t for a in trace.agents for t in a.conversation.tool_calls if t.name == "write_file"]
    assert writes
    assert all(isinstance(t.arguments.get("content"), str) for t in writes)


def test_workspace_changes_before_vs_after(scenario: Scenario, trace: GoalTrace) -> None:
    before = set(TASK.files)
    after = {p.relative_to(scenario.folder).as_posix()
             for p in scenario.folder.rglob("*") if p.is_file()}  # fmt: skip
    w = trace.workspace
    assert w.known
    assert {f.path for f in w.files if f.status == "added"} == after - before
    assert {f.path for f in w.files if f.status == "removed"} == before - after
    changed = {p for p in before & after
               if (scenario.folder / p).read_text(encoding="utf-8") != TASK.files[p]}  # fmt: skip
    assert {f.path for f in w.files if f.status == "changed"} == changed
    assert w.unchanged == len(before & after) - len(changed)
    [tampered] = [f for f in w.files if f.path == TAMPERED]
    assert tampered.diff is not None
    expected_plus = ["+" + ln for ln in _redacted(TAMPERED_TEXT).splitlines()]
    assert [ln for ln in tampered.diff.splitlines() if ln.startswith("+") and ln[:3] != "+++"] == (
        expected_plus
    )


def test_the_timeline_runs_on_the_fleet_clock(scenario: Scenario, trace: GoalTrace) -> None:
    events = scenario.store.events(trace_id=trace.trace_id)
    assert trace.timeline.start == scenario.goal.created_at == events[0].ts
    assert trace.timeline.end == max(e.ts for e in events)
    call_ends = {(e.task_id, e.ts) for e in events if e.kind == "model.call"}
    marks = [m for lane in trace.timeline.lanes for m in lane.marks if m.mark == "model_call"]
    assert {(m.task_id, m.end) for m in marks} == call_ends
    assert all(m.end is not None and m.at <= m.end for m in marks)


def test_no_secret_anywhere_and_the_json_is_whole(trace: GoalTrace) -> None:
    text = json.dumps(trace.to_dict())
    assert FAKE_KEY not in text
    assert "sk-ant-" not in text
    assert "<script>alert('x')</script>" in text  # kept as data: surfaces escape it
    data = json.loads(text)
    assert len(data["agents"]) == len(trace.agents)
    assert data["verifier"]["passed"] is False


def test_human_numbers() -> None:
    assert money(0.46888874999999985) == "$0.4689"
    assert money(12.345) == "$12.35"
    assert duration(3 * 3600 + 29 * 60 + 10) == "3 h 29 m"
    assert duration(245) == "4 m 05 s"
    assert duration(12.34) == "12.3 s"
    assert duration(0.085) == "85 ms"
    assert duration(2 * 86400 + 3 * 3600) == "2 d 3 h"
    assert duration(None) == "-"


def test_a_goal_in_flight_ends_its_timeline_now(store: Store, clock: FakeClock) -> None:
    from fleetlab.orchestrator import Goal, submit_goals

    [goal] = submit_goals(store, [Goal(title="still waiting", policy="never")])
    clock.advance(90)
    trace = load_goal_trace(store, goal.id, workspaces=Path("/nonexistent"))
    assert trace.timeline.end == datetime(2026, 11, 23, 9, 1, 30, tzinfo=UTC)
    [seg] = trace.timeline.lane(goal.id).segments
    assert (seg.state, seg.end) == ("queued", None)
    assert not trace.workspace.known
    assert any("not there" in n for n in trace.workspace.notes)
