from __future__ import annotations

import dataclasses
import json
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from fleetlab.clock import FakeClock
from fleetlab.errors import ConfigError, UserError
from fleetlab.models import ModelRequest, ModelResponse, TextBlock, ToolUseBlock, Usage
from fleetlab.models.sim import PROFILES, SimModel
from fleetlab.orchestrator import (
    Fleet,
    FleetConfig,
    Goal,
    add_schedule,
    fire_due,
    load_goals,
    submit_goals,
)
from fleetlab.store import TERMINAL, Store
from fleetlab.suites import builtin_suites
from tests.helpers.pids import dead_worker
from tests.helpers.scheduler import scheduler_ticks

pytestmark = pytest.mark.both_backends

CORE = builtin_suites()["core"].tasks
SIMPLE = next(t for t in CORE if t.complexity == 1)
LONG = max(CORE, key=lambda t: t.steps)


def sim(clock: FakeClock | None = None, seed: int = 0, latency: float = 0.0) -> SimModel:
    params = dataclasses.replace(PROFILES["instant"], latency_median_s=latency)
    return SimModel(params, seed=seed, clock=clock, profile="instant")


def config(**kw: object) -> FleetConfig:
    return FleetConfig(poll_s=0.01, **kw)  # type: ignore[arg-type]


class Hooked:
    """A model that awaits ``before(request)`` ahead of each call it forwards to ``inner``:
    a test acts at an exact turn of an exact task (the request names it: ``Task: ...``)."""

    def __init__(self, inner: SimModel, before: Callable[[ModelRequest], Awaitable[None]]) -> None:
        self.inner, self.before = inner, before

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def simulated(self) -> bool:
        return True

    async def generate(self, request: ModelRequest) -> ModelResponse:
        await self.before(request)
        return await self.inner.generate(request)


def _task_line(request: ModelRequest) -> str:
    """The ``Task: ...`` line of an agent's system prompt (which goal and parts it works on)."""
    return next((ln for ln in request.system.splitlines() if ln.startswith("Task: ")), "")


async def test_never_runs_one_agent(store: Store) -> None:
    [root] = submit_goals(store, [Goal(task=SIMPLE.key, policy="never")])
    await Fleet(store, sim(), config()).run(until_idle=True)
    done = store.get_task(root.id)
    assert (done.status, done.tree_agents) == ("completed", 0)
    [decided] = store.events(kind="decomposition.decided")
    assert decided.attrs["choice"] == "direct"
    assert decided.attrs["policy"] == "never"


async def test_always_spawns_planner_executors_validator(store: Store) -> None:
    [root] = submit_goals(store, [Goal(task=SIMPLE.key, policy="always")])
    await Fleet(store, sim(), config()).run(until_idle=True)
    done = store.get_task(root.id)
    assert done.status == "completed"
    roles = Counter(t.role for t in store.tasks(trace_id=root.trace_id) if t.parent_id)
    assert roles["planner"] == 1
    assert roles["validator"] >= 1
    assert roles["executor"] >= 1
    assert done.tree_agents == sum(roles.values())
    # Roll-ups are exact: the root's tree totals are its own plus every child's.
    tasks = store.tasks(trace_id=root.trace_id)
    assert done.tree_cost_usd == pytest.approx(sum(t.cost_usd for t in tasks))
    assert done.tree_tokens_in == sum(t.tokens_in for t in tasks)
    kinds = [e.kind for e in store.events(task_id=root.id)]
    assert kinds.count("task.waiting") >= 3  # planning, executing, validating
    assert kinds[-1] == "task.completed"


async def test_threshold_scores_before_deciding(store: Store) -> None:
    roots = submit_goals(
        store,
        [Goal(task=SIMPLE.key, policy="threshold:4"), Goal(task=LONG.key, policy="threshold:4")],
    )
    await Fleet(store, sim(), config()).run(until_idle=True)
    decided = {e.task_id: e.attrs for e in store.events(kind="decomposition.decided")}
    scorer_calls = [e for e in store.events(kind="model.call") if e.role == "scorer"]
    assert len(scorer_calls) == 2
    simple, long = (decided[r.id] for r in roots)
    assert simple["score"] < 4
    assert simple["choice"] == "direct"
    assert long["score"] >= 4
    assert long["choice"] == "decompose"
    assert "threshold 4" in long["reason"]
    assert store.get_task(roots[0].id).tree_agents == 0


async def test_fanout_and_depth_limits(store: Store) -> None:
    assert len(LONG.solution or ()) > 2
    [root] = submit_goals(store, [Goal(task=LONG.key, policy="always")])
    await Fleet(store, sim(), config(max_fanout=2, max_depth=1)).run(until_idle=True)
    executors = [t for t in store.tasks(trace_id=root.trace_id) if t.role == "executor"]
    assert len(executors) % 2 == 0
    assert 2 <= len(executors) <= 4  # one round, plus at most one repair round
    assert max(t.depth for t in store.tasks(trace_id=root.trace_id)) == 1
    assert all(len(t.spec["parts"]) >= 1 for t in executors)
    assert sorted(p for t in executors[:2] for p in t.spec["parts"]) == list(
        range(1, len(LONG.solution or ()) + 1)
    )


def _failing_executors(request: ModelRequest) -> ModelResponse:
    """Planners split every task in two, validators fail the work, and every executor's
    answer is cut off (``max_tokens``): a paid call of 100 + 10 tokens and a failed attempt."""
    role = request.system.split(" of a fleet", 1)[0].split(" in a fleet", 1)[0]
    if role.endswith("planner"):
        plan = {
            "subtasks": [{"title": f"half {i}", "instructions": f"do half {i}"} for i in (1, 2)]
        }
        text = json.dumps(plan)
    elif role.endswith("validator"):
        text = json.dumps({"verdict": "fail", "reason": "the halves failed"})
    else:
        return ModelResponse((TextBlock("half an ans"),), "max_tokens", Usage(100, 10), "scripted")
    return ModelResponse((TextBlock(text),), "end_turn", Usage(100, 10), "scripted")


@pytest.mark.parametrize("max_depth", [2, 3])
async def test_as_needed_splits_down_to_max_depth_and_no_further(
    store: Store, max_depth: int
) -> None:
    """ADaPT recursion stops at ``max_depth``: every failed executor above it is split again,
    the one at ``max_depth`` (which has two parts and would split) fails instead; and each
    task's tree usage is the sum of its whole subtree's own usage, however deep."""
    from fleetlab.testing import ScriptedModel

    [root] = submit_goals(store, [Goal(title="two halves", policy="as_needed")])
    # max_fanout=1 merges each two-part plan into one sub-task holding both parts, so every
    # executor has two parts and only the depth limit can stop the splitting.
    cfg = config(max_depth=max_depth, max_fanout=1, repair_rounds=0)
    await Fleet(store, ScriptedModel(_failing_executors), cfg).run(until_idle=True)
    tasks = {t.id: t for t in store.tasks(trace_id=root.trace_id)}
    assert max(t.depth for t in tasks.values()) == max_depth
    executors = sorted((t for t in tasks.values() if t.role == "executor"), key=lambda t: t.depth)
    assert [t.depth for t in executors] == list(range(1, max_depth + 1))
    assert all(t.spec["parts"] == [1, 2] and t.status == "failed" for t in executors)
    deepest = executors[-1]
    assert store.tasks(parent_id=deepest.id) == []
    assert (deepest.error or "").startswith("output cut at max_tokens")
    for task in [tasks[root.id], *executors]:
        decisions = [
            e.attrs["reason"] for e in store.events(task_id=task.id, kind="decomposition.decided")
        ]
        split = task.depth < max_depth
        assert decisions[0] == "as_needed: try directly first"
        assert len(decisions) == (2 if split else 1), (task.depth, decisions)
        if split:
            assert decisions[1].startswith("as_needed: direct attempt failed")
    # per level below the root: a planner, an executor, a validator; one call each, plus the
    # root's own direct attempt: 1 + 3 * max_depth calls of 100 in / 10 out.
    calls = 1 + 3 * max_depth
    assert len(store.events(kind="model.call")) == calls
    done = tasks[root.id]
    assert (done.tree_agents, done.tree_tokens_in, done.tree_tokens_out) == (
        3 * max_depth, 100 * calls, 10 * calls,
    )  # fmt: skip
    children: dict[str | None, list[str]] = {}
    for t in tasks.values():
        children.setdefault(t.parent_id, []).append(t.id)

    def subtree_tokens(task_id: str) -> int:
        return tasks[task_id].tokens_in + sum(subtree_tokens(k) for k in children.get(task_id, []))

    for t in tasks.values():
        assert t.tree_tokens_in == subtree_tokens(t.id), t.title


async def test_a_root_at_the_depth_limit_runs_directly(store: Store) -> None:
    """With ``max_depth=0`` even the ``always`` policy cannot split a goal: it runs directly,
    and the decision says the depth limit overruled the policy."""
    [root] = submit_goals(store, [Goal(task=SIMPLE.key, policy="always")])
    await Fleet(store, sim(), config(max_depth=0)).run(until_idle=True)
    [decided] = store.events(task_id=root.id, kind="decomposition.decided")
    assert decided.attrs["choice"] == "direct"
    assert decided.attrs["reason"] == "policy always; depth limit 0 reached"
    assert store.get_task(root.id).tree_agents == 0
    assert [t.id for t in store.tasks()] == [root.id]


async def test_as_needed_splits_only_after_a_failure(store: Store) -> None:
    goals = [Goal(task=LONG.key, policy="as_needed", instance=i) for i in range(4)]
    roots = submit_goals(store, [*goals, Goal(task=SIMPLE.key, policy="as_needed")])
    await Fleet(store, sim(seed=1), config()).run(until_idle=True)
    for root in roots:
        done = store.get_task(root.id)
        decisions = [e.attrs for e in store.events(task_id=root.id, kind="decomposition.decided")]
        assert decisions[0]["choice"] == "direct"
        if done.tree_agents:
            assert decisions[-1]["choice"] == "decompose"
            assert "direct attempt failed" in decisions[-1]["reason"]
    assert store.get_task(roots[-1].id).tree_agents == 0  # the simple task just worked
    assert any(store.get_task(r.id).tree_agents for r in roots[:-1])  # some long ones split


async def test_preemption_and_resume(store: Store, clock: FakeClock) -> None:
    """A higher-priority goal arriving while a low one runs at concurrency 1 takes the slot
    at the low one's next turn boundary; the low one resumes from its checkpoint later."""
    [low] = submit_goals(store, [Goal(task=LONG.key, policy="never", priority=10)])
    arrived: list[str] = []
    low_calls = 0

    async def before(request: ModelRequest) -> None:
        nonlocal low_calls
        if LONG.key not in _task_line(request) or arrived:
            return
        low_calls += 1
        if low_calls == 3:  # during the low goal's third call, the urgent one arrives
            [high] = submit_goals(store, [Goal(task=SIMPLE.key, policy="never", priority=90)])
            arrived.append(high.id)
            await next_tick()

    # No aging: the fleet's background sleepers move a FakeClock forward quickly, and aging
    # would (rightly) lift the long-waiting low-priority task; here only priority should count.
    fleet = Fleet(
        store, Hooked(sim(clock, latency=1.0), before), config(concurrency=1, aging_s=None)
    )
    next_tick = scheduler_ticks(fleet)
    await fleet.run(until_idle=True)
    [high_id] = arrived
    low_done, high_done = store.get_task(low.id), store.get_task(high_id)
    assert high_done.status == "completed"
    assert low_done.status in TERMINAL
    assert high_done.finished_at < low_done.finished_at  # type: ignore[operator]
    kinds = [e.kind for e in store.events(task_id=low.id)]
    assert kinds.count("task.preempted") == 1
    assert kinds.index("task.resumed") > kinds.index("task.preempted")
    # it yielded at the end of the turn during which the urgent goal arrived: turn 3
    before_yield = kinds[: kinds.index("task.preempted")]
    assert before_yield.count("model.call") == 3
    high_start = store.events(task_id=high_id, kind="task.started")[0].ts
    assert store.events(task_id=low.id, kind="task.preempted")[0].ts <= high_start
    turns = [e.attrs["turn"] for e in store.events(task_id=low.id, kind="model.call")]
    assert turns == list(range(1, len(turns) + 1))  # resumed from its checkpoint, no repeats


async def test_preemption_is_bounded(store: Store, clock: FakeClock) -> None:
    """With ``max_preemptions=1`` a task is preempted once; urgent goals arriving later wait
    for it to finish (the scheduler saw each of them waiting and let the task run on)."""
    [low] = submit_goals(store, [Goal(task=LONG.key, policy="never", priority=10)])
    waves: list[int] = []
    low_calls = 0

    async def before(request: ModelRequest) -> None:
        nonlocal low_calls
        if LONG.key not in _task_line(request):
            return
        low_calls += 1
        if low_calls in (2, 5, 8):  # an urgent goal arrives during these calls of the low one
            wave = len(waves)
            submit_goals(store, [Goal(task=SIMPLE.key, policy="never", priority=90, instance=wave)])
            waves.append(low_calls)
            await next_tick()

    fleet = Fleet(
        store,
        Hooked(sim(clock, latency=1.0), before),
        config(concurrency=1, max_preemptions=1, aging_s=None),
    )
    next_tick = scheduler_ticks(fleet)
    await fleet.run(until_idle=True)
    assert waves == [2, 5, 8]  # all three urgent goals arrived while the low one ran
    assert len(store.events(task_id=low.id, kind="task.preempted")) == 1
    assert [t.status for t in store.tasks()].count("completed") >= 3  # the urgent ones ran


@pytest.mark.parametrize(("lift", "preemptions"), [(0, 0), (1, 1)])
async def test_only_strictly_higher_priority_preempts(
    store: Store, clock: FakeClock, lift: int, preemptions: int
) -> None:
    """At concurrency 1, a goal arriving with the running goal's own priority waits for it to
    finish; one a single point higher takes the slot at the running goal's next turn."""
    [first] = submit_goals(store, [Goal(task=LONG.key, policy="never", priority=50)])
    arrived: list[str] = []

    async def before(request: ModelRequest) -> None:
        if arrived or LONG.key not in _task_line(request):
            return
        goal = Goal(task=SIMPLE.key, policy="never", priority=50 + lift)
        arrived.append(submit_goals(store, [goal])[0].id)
        await next_tick()  # the scheduler has now compared the two priorities

    fleet = Fleet(store, Hooked(sim(clock), before), config(concurrency=1, aging_s=None))
    next_tick = scheduler_ticks(fleet)
    report = await fleet.run(until_idle=True)
    [second] = arrived
    assert len(store.events(task_id=first.id, kind="task.preempted")) == preemptions
    assert report.preempted == preemptions
    assert {store.get_task(t).status for t in (first.id, second)} <= {"completed", "failed"}
    order = [e.task_id for e in store.events() if e.kind in ("task.completed", "task.failed")]
    # equal priority: the first goal keeps its slot to the end; higher: the newcomer ends first
    assert order == ([first.id, second] if preemptions == 0 else [second, first.id])


async def test_equal_priorities_never_preempt_each_other(store: Store, clock: FakeClock) -> None:
    """Three goals of one priority at concurrency 1 run one after another, each claimed once,
    with no preemption, although the scheduler checks before every single model call."""
    goals = submit_goals(
        store, [Goal(task=SIMPLE.key, policy="never", priority=50, instance=i) for i in range(3)]
    )

    async def before(request: ModelRequest) -> None:
        await next_tick()  # two equal goals wait while this call runs: no reason to yield

    fleet = Fleet(store, Hooked(sim(clock), before), config(concurrency=1, aging_s=None))
    next_tick = scheduler_ticks(fleet)
    report = await fleet.run(until_idle=True)
    assert report.preempted == 0
    assert store.events(kind="task.preempted") == []
    assert store.events(kind="task.resumed") == []
    ids = [g.id for g in goals]
    lifecycle = [
        (e.kind, e.task_id)
        for e in store.events()
        if e.kind in ("task.started", "task.completed", "task.failed")
    ]
    # oldest first, each run to its end before the next starts
    assert [k for k, _ in lifecycle][::2] == ["task.started"] * 3
    assert [t for _, t in lifecycle] == [ids[0], ids[0], ids[1], ids[1], ids[2], ids[2]]


async def test_budget_cancels_the_whole_tree(store: Store) -> None:
    [root] = submit_goals(store, [Goal(task=LONG.key, policy="always", budget_usd=0.05)])
    await Fleet(store, sim(), config()).run(until_idle=True)
    tasks = store.tasks(trace_id=root.trace_id)
    assert {t.status for t in tasks} <= {"cancelled", "completed", "failed"}
    done = store.get_task(root.id)
    assert done.status == "cancelled"
    assert "budget exceeded" in (done.error or "")
    assert store.events(kind="budget.exceeded")
    assert done.tree_cost_usd == pytest.approx(sum(t.cost_usd for t in tasks))


def _endless(usage: Usage) -> Callable[[ModelRequest], ModelResponse]:
    """A scripted agent that never finishes: every call writes a file and uses ``usage``."""

    def respond(request: ModelRequest) -> ModelResponse:
        n = len(request.messages)
        return ModelResponse(
            (TextBlock(f"step {n}"), ToolUseBlock(f"toolu_{n}", "write_file",
                                                  {"path": f"f{n}.txt", "content": "x"})),
            "tool_use", usage, "scripted",
        )  # fmt: skip

    return respond


@pytest.mark.parametrize(
    ("usage", "budget", "spent"),
    [
        # 1,000 in + 50 out a call: 1,050 after one call, 2,100 after two = the budget exactly,
        # so the budget (reached, not only exceeded) stops the agent before a third call.
        (Usage(1000, 50), 2100, 2100),
        # 10 in + 1,000 out a call: 1,010, then 2,020 >= 2,000. Counting input alone (10 a
        # call) would never reach the budget before the 40-turn limit.
        (Usage(10, 1000), 2000, 2020),
    ],
)
async def test_token_budget_counts_input_and_output_tokens(
    store: Store, usage: Usage, budget: int, spent: int
) -> None:
    """A goal's ``budget_tokens`` caps its tree's input plus output tokens: once the spent
    tokens reach it, the agent makes no further call and the goal is cancelled, with the
    reason naming what was spent."""
    from fleetlab.testing import ScriptedModel

    model = ScriptedModel(_endless(usage))
    [root] = submit_goals(
        store, [Goal(title="write files forever", policy="never", budget_tokens=budget)]
    )
    report = await Fleet(store, model, config()).run(until_idle=True)
    done = store.get_task(root.id)
    assert len(model.requests) == 2
    assert len(store.events(kind="model.call")) == 2
    assert done.tokens_in + done.tokens_out == spent
    assert done.status == "cancelled"
    assert done.error == f"budget exceeded: {spent} of {budget} tokens spent"
    [exceeded] = store.events(kind="budget.exceeded")
    assert exceeded.attrs["reason"] == done.error
    assert report.cancelled == 1


def _planner_then_endless_executor(request: ModelRequest) -> ModelResponse:
    """The planner plans one sub-task in one call of 200 in + 20 out; the executor never
    finishes, each of its calls writing a file for 1,000 in + 100 out (a validator, which a
    working budget never lets run, passes the work)."""
    if request.system.startswith("You are the planner "):
        plan = {"subtasks": [{"title": "the work", "instructions": "write files forever"}]}
        return ModelResponse((TextBlock(json.dumps(plan)),), "end_turn", Usage(200, 20), "s")
    if request.system.startswith("You are the validator "):  # reached only past the budget
        verdict = {"verdict": "pass", "reason": "unchecked"}
        return ModelResponse((TextBlock(json.dumps(verdict)),), "end_turn", Usage(1, 1), "s")
    return _endless(Usage(1000, 100))(request)


@pytest.mark.parametrize(
    ("budget", "reason"),
    [
        # Tokens: planner 200 + 20 = 220; executor 1,000 + 100 = 1,100 a call. Before the
        # executor's calls the tree has spent 220, then 1,320 (< 2,420), then 2,420 = the
        # budget: the third check stops the executor.
        ({"budget_tokens": 2420}, "budget exceeded: 2420 of 2420 tokens spent"),
        # Dollars, scripted models priced like Sonnet ($3 in / $15 out a million tokens):
        # planner (200*3 + 20*15) / 1e6 = $0.0009; executor (1000*3 + 100*15) / 1e6 = $0.0045
        # a call. Spent: 0.0009, then 0.0054 (< 0.009), then 0.0099 >= 0.009: it stops.
        ({"budget_usd": 0.009}, "budget exceeded: $0.0099 of $0.0090 spent"),
    ],
)
async def test_budget_counts_the_tokens_and_dollars_of_the_whole_tree(
    store: Store, budget: dict[str, float], reason: str
) -> None:
    """A goal's budget caps what its whole tree spends, not the root's own usage: a root
    that decomposes makes no model call itself, yet its sub-agents' spending reaches the
    budget, stops the executor before its next call and cancels the tree."""
    from fleetlab.testing import ScriptedModel

    model = ScriptedModel(_planner_then_endless_executor)
    [root] = submit_goals(store, [Goal(title="write files forever", policy="always", **budget)])
    report = await Fleet(store, model, config()).run(until_idle=True)
    done = store.get_task(root.id)
    # one planner call, then two executor calls; the third executor call never happens
    assert len(model.requests) == 3
    assert len(store.events(kind="model.call")) == 3
    assert (done.tokens_in, done.tokens_out, done.cost_usd) == (0, 0, 0.0)  # the root's own
    assert (done.tree_tokens_in, done.tree_tokens_out) == (200 + 2 * 1000, 20 + 2 * 100)
    assert done.tree_cost_usd == pytest.approx(0.0009 + 2 * 0.0045)
    assert (done.status, done.error) == ("cancelled", reason)
    statuses = {t.role: t.status for t in store.tasks(trace_id=root.trace_id) if t.parent_id}
    assert statuses == {"planner": "completed", "executor": "cancelled"}
    [exceeded] = store.events(kind="budget.exceeded")
    assert exceeded.attrs["reason"] == reason
    assert report.cancelled == 2  # the root and its executor


async def test_dead_worker_tasks_are_reclaimed_at_once(store: Store) -> None:
    [root] = submit_goals(store, [Goal(task=SIMPLE.key, policy="never")])
    store.claim(dead_worker(), lease_s=10_000)
    await Fleet(store, sim(), config()).run(until_idle=True)
    assert store.get_task(root.id).status == "completed"
    assert [e.kind for e in store.events(task_id=root.id)].count("task.reclaimed") == 1


async def test_free_form_goal_runs_simulated(store: Store) -> None:
    [root] = submit_goals(store, [Goal(title="Write a checklist for onboarding", policy="never")])
    await Fleet(store, sim(), config()).run(until_idle=True)
    done = store.get_task(root.id)
    assert done.status == "completed"
    assert "simulated" in done.result["summary"]


# --- bad goals --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("goal", "message"),
    [
        (Goal(title=""), "empty"),
        (Goal(title="x" * 30_000), "limit"),
        (Goal(title="ok", policy="sometimes"), "unknown policy"),
        (Goal(title="ok", prompt="nope"), "unknown prompt variant"),
        (Goal(task="core:no-such-task"), "no task"),
        (Goal(title="ok", priority=500), "out of range"),
    ],
)
def test_bad_goals_queue_nothing(store: Store, goal: Goal, message: str) -> None:
    submit_goals(store, [Goal(title="already queued")])
    with pytest.raises(UserError, match=message):
        submit_goals(store, [Goal(title="fine"), goal])
    assert [t.title for t in store.tasks()] == ["already queued"]


def test_goals_file(tmp_path: Path, store: Store) -> None:
    good = tmp_path / "goals.toml"
    good.write_text(
        '[[goals]]\ntitle = "a"\npriority = 70\n\n[[goals]]\ntask = "core:rename-readme"\n'
    )
    assert [g.priority for g in load_goals(good)] == [70, 50]
    bad = tmp_path / "bad.toml"
    bad.write_text('[[goals]]\ntitle = "a"\n\n[[goals]]\ntitle = "b"\npriority = "high"\n')
    with pytest.raises(ConfigError, match=r"bad\.toml: goal 2: field 'priority'"):
        load_goals(bad)
    binary = tmp_path / "latin1.toml"
    binary.write_bytes('[[goals]]\ntitle = "café"\n'.encode("latin-1"))
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_goals(binary)
    unknown = tmp_path / "unknown.toml"
    unknown.write_text('[[goals]]\ntitel = "typo"\n')
    with pytest.raises(ConfigError, match="unknown field 'titel'"):
        load_goals(unknown)
    assert store.tasks() == []


def test_schedule_fires_once_at_local_time(store: Store, clock: FakeClock) -> None:
    clock.set(datetime(2026, 11, 29, 12, 0, tzinfo=UTC))  # a Sunday
    schedule = add_schedule(
        store, Goal(title="weekly digest"), weekday="mon", at_time="07:00", zone="Europe/London"
    )
    assert schedule.next_at == datetime(2026, 11, 30, 7, 0, tzinfo=UTC)  # GMT in winter
    assert fire_due(store) == []
    clock.set(datetime(2026, 11, 30, 7, 0, 1, tzinfo=UTC))
    [fired] = fire_due(store)
    assert fired.title == "weekly digest"
    assert fire_due(store) == []  # moved to next week in the same transaction
    clock.set(datetime(2026, 12, 28, 9, 0, tzinfo=UTC))  # missed three weeks: fires once
    assert len(fire_due(store)) == 1


async def test_a_verifier_that_cannot_start_is_an_infrastructure_failure(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sandbox failing to launch is not the agent's failure: the verdict says so, the
    fleet counts it, and an experiment re-runs such a trial instead of scoring it."""
    from fleetlab.experiments._trial import _infra_failure
    from fleetlab.suites import _checks

    task = next(t for t in CORE if any(c.kind == "python" for c in t.checks))

    def no_sandbox(*args: object, **kwargs: object) -> object:
        raise OSError("bwrap: cannot create the namespace")

    monkeypatch.setattr(_checks, "run_python", no_sandbox)
    # no verdict an earlier test left for the same work (a check of the simulated model's
    # code runs once per distinct workspace in a process)
    monkeypatch.setattr(_checks, "VERDICTS", type(_checks.VERDICTS)())
    [root] = submit_goals(store, [Goal(task=task.key, policy="never")])
    report = await Fleet(store, sim(), config()).run(until_idle=True)
    done = store.get_task(root.id)
    assert done.status == "failed"
    assert "could not run (bwrap: cannot create the namespace)" in (done.error or "")
    assert report.infrastructure_failures == 1
    failure = _infra_failure([], 0, report.infrastructure_failures)
    assert failure is not None
    assert failure.retry


async def test_a_real_model_fleet_refuses_to_start_without_a_sandbox(
    store: Store, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Without bubblewrap a fleet on a real model stops before any task runs, naming the fix;
    the user's explicit opt-in lets it start. The simulated model's fleets always start."""
    from fleetlab.sandbox import SandboxUnavailableError
    from fleetlab.testing import ScriptedModel

    monkeypatch.setenv("FLEETLAB_BWRAP", str(tmp_path / "no-bwrap-here"))
    monkeypatch.delenv("FLEETLAB_UNSAFE_HOST_VERIFIERS", raising=False)
    [root] = submit_goals(store, [Goal(task=SIMPLE.key, policy="never")])
    real = ScriptedModel([], name="scripted:real")
    real.simulated = False
    with pytest.raises(SandboxUnavailableError, match="install bubblewrap"):
        await Fleet(store, real, config()).run(until_idle=True)
    assert store.get_task(root.id).status == "queued"  # nothing ran, nothing written
    await Fleet(store, sim(), config()).run(until_idle=True)
    assert store.get_task(root.id).status == "completed"
    monkeypatch.setenv("FLEETLAB_UNSAFE_HOST_VERIFIERS", "1")
    await Fleet(store, real, config()).run(until_idle=True)  # opted in: starts (no work left)
