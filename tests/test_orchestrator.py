from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from fleetlab.clock import FakeClock
from fleetlab.errors import ConfigError, UserError
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

CORE = builtin_suites()["core"].tasks
SIMPLE = next(t for t in CORE if t.complexity == 1)
LONG = max(CORE, key=lambda t: t.steps)


def sim(clock: FakeClock | None = None, seed: int = 0, latency: float = 0.0) -> SimModel:
    params = dataclasses.replace(PROFILES["instant"], latency_median_s=latency)
    return SimModel(params, seed=seed, clock=clock, profile="instant")


def config(**kw: object) -> FleetConfig:
    return FleetConfig(poll_s=0.01, **kw)  # type: ignore[arg-type]


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
    [low] = submit_goals(store, [Goal(task=LONG.key, policy="never", priority=10)])
    # No aging: the fleet's background sleepers move a FakeClock forward quickly, and aging
    # would (rightly) lift the long-waiting low-priority task; here only priority should count.
    fleet = Fleet(store, sim(clock, latency=1.0), config(concurrency=1, aging_s=None))
    runner = asyncio.create_task(fleet.run(until_idle=True))
    while len(store.events(task_id=low.id, kind="model.call")) < 3:
        await asyncio.sleep(0.005)
    [high] = submit_goals(store, [Goal(task=SIMPLE.key, policy="never", priority=90)])
    await runner
    low_done, high_done = store.get_task(low.id), store.get_task(high.id)
    assert high_done.status == "completed"
    assert low_done.status in TERMINAL
    assert high_done.finished_at < low_done.finished_at  # type: ignore[operator]
    kinds = [e.kind for e in store.events(task_id=low.id)]
    assert "task.preempted" in kinds
    assert kinds.index("task.resumed") > kinds.index("task.preempted")
    assert kinds.index("task.resumed") > 0
    high_start = store.events(task_id=high.id, kind="task.started")[0].ts
    assert store.events(task_id=low.id, kind="task.preempted")[0].ts <= high_start
    turns = [e.attrs["turn"] for e in store.events(task_id=low.id, kind="model.call")]
    assert turns == list(range(1, len(turns) + 1))  # resumed from its checkpoint, no repeats


async def test_preemption_is_bounded(store: Store, clock: FakeClock) -> None:
    [low] = submit_goals(store, [Goal(task=LONG.key, policy="never", priority=10)])
    fleet = Fleet(
        store, sim(clock, latency=1.0), config(concurrency=1, max_preemptions=1, aging_s=None)
    )
    runner = asyncio.create_task(fleet.run(until_idle=True))
    for wave in range(3):
        while len(store.events(task_id=low.id, kind="model.call")) < 2 + 3 * wave:
            await asyncio.sleep(0.005)
        submit_goals(store, [Goal(task=SIMPLE.key, policy="never", priority=90, instance=wave)])
    await runner
    assert len(store.events(task_id=low.id, kind="task.preempted")) == 1


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


async def test_dead_worker_tasks_are_reclaimed_at_once(store: Store) -> None:
    [root] = submit_goals(store, [Goal(task=SIMPLE.key, policy="never")])
    import socket

    store.claim(f"{socket.gethostname()}:999999:dead", lease_s=10_000)  # pid 999999: gone
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
