"""The fleet's scheduler: which tasks it claims, when it is idle, whom it preempts.

Mutation testing of ``fleetlab/orchestrator/_fleet.py`` found these behaviours unpinned:
a fleet scoped to one goal (``trace_id``, as in a notebook running one goal while other
goals sit queued in the same database) must claim, wait for and preempt for its own trace
only; claims must use the configured lease and aging; a full fleet must not ask for claims.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from datetime import timedelta
from typing import Any

import pytest

from fleetlab.clock import FakeClock
from fleetlab.models import ModelRequest
from fleetlab.orchestrator import Fleet, Goal, submit_goals
from fleetlab.store import Lease, Store
from tests.helpers.pids import dead_worker
from tests.test_orchestrator import LONG, SIMPLE, Hooked, _task_line, config, scheduler_ticks, sim

pytestmark = pytest.mark.both_backends


def test_idle_counts_only_the_fleets_own_trace(store: Store) -> None:
    """``_idle`` counts the queued, preempted and waiting tasks of the fleet's own trace when
    it has one, of every trace when it has none."""
    mine, other = submit_goals(
        store, [Goal(title="mine", policy="never"), Goal(title="other", policy="never")]
    )
    scoped = Fleet(store, sim(), config(), trace_id=mine.trace_id)
    unscoped = Fleet(store, sim(), config())
    assert mine.trace_id != other.trace_id
    # both queued: neither fleet is idle
    assert (scoped._idle(), unscoped._idle()) == (False, False)
    store.transition(mine.id, "cancelled")
    # only the other goal waits: the scoped fleet is done, the unscoped one is not
    assert (scoped._idle(), unscoped._idle()) == (True, False)
    # a preempted task, then a parent waiting for its children, still counts as work left
    store.claim("w", lease_s=60)
    store.transition(other.id, "preempted")
    assert (scoped._idle(), unscoped._idle()) == (True, False)
    store.claim("w", lease_s=60)
    store.transition(other.id, "waiting_children")
    assert (scoped._idle(), unscoped._idle()) == (True, False)
    store.transition(other.id, "cancelled")
    assert (scoped._idle(), unscoped._idle()) == (True, True)


@pytest.mark.timeout(60)  # a fleet that waits for another trace's goal never returns
async def test_a_trace_scoped_fleet_runs_only_its_goal(store: Store) -> None:
    """A fleet given a goal's ``trace_id`` claims only that goal's tasks, although another
    goal, older and more urgent, is queued in the same database; it returns once its own
    goal is done, leaving the other untouched."""
    [other] = submit_goals(store, [Goal(task=SIMPLE.key, policy="never", priority=90)])
    [mine] = submit_goals(store, [Goal(task=SIMPLE.key, policy="never", priority=10)])
    fleet = Fleet(store, sim(), config(concurrency=2), trace_id=mine.trace_id)
    report = await fleet.run(until_idle=True)
    assert store.get_task(mine.id).status == "completed"
    assert store.get_task(other.id).status == "queued"
    # queued, never claimed
    assert [e.kind for e in store.events(task_id=other.id)] == ["task.spawned"]
    assert report.claimed == 1  # one task claimed (policy never: no sub-agents)


async def test_report_counts_each_claim_once(store: Store) -> None:
    """``report.claimed`` is the number of claims: three direct goals, three claims."""
    submit_goals(store, [Goal(task=SIMPLE.key, policy="never", instance=i) for i in range(3)])
    report = await Fleet(store, sim(), config(concurrency=2)).run(until_idle=True)
    assert len(store.events(kind="task.started")) == 3
    assert report.claimed == 3


async def test_claims_follow_the_aged_priority(store: Store, clock: FakeClock) -> None:
    """With ``aging_s`` the claim order is ``priority + waited / aging_s``: a priority-10
    goal that has waited 100 s more than a priority-50 one is claimed first."""
    [old] = submit_goals(store, [Goal(task=SIMPLE.key, policy="never", priority=10)])
    clock.advance(100)
    [new] = submit_goals(store, [Goal(task=SIMPLE.key, policy="never", priority=50)])
    # aging_s=1: at any later instant t (s after the new goal), old: 10 + (t + 100) / 1,
    # new: 50 + t / 1; old leads by 100 - 40 = 60 points. Without aging new (50) > old (10).
    # max_preemptions=0: no preemption, so the claim order is the run order.
    cfg = config(concurrency=1, aging_s=1.0, max_preemptions=0)
    await Fleet(store, sim(clock), cfg).run(until_idle=True)
    started = [e.task_id for e in store.events(kind="task.started")]
    assert started == [old.id, new.id]


@pytest.mark.parametrize("lease_s", [30.0, 300.0])
async def test_claims_use_the_configured_lease(store: Store, lease_s: float) -> None:
    """A claimed task's lease runs ``config.lease_s`` from the instant of its claim (not the
    store's own 60 s default)."""
    [root] = submit_goals(store, [Goal(task=SIMPLE.key, policy="never")])
    seen: list[timedelta] = []

    async def before(request: ModelRequest) -> None:
        if not seen:
            [task] = fleet.running  # the task as its claim returned it
            [started] = store.events(task_id=root.id, kind="task.started")
            assert task.lease_expires_at is not None
            seen.append(task.lease_expires_at - started.ts)

    fleet = Fleet(store, Hooked(sim(), before), config(lease_s=lease_s))
    await fleet.run(until_idle=True)
    assert seen == [timedelta(seconds=lease_s)]
    assert store.get_task(root.id).status == "completed"


async def test_a_full_fleet_asks_for_no_claims(store: Store, clock: FakeClock) -> None:
    """While every slot is busy the fleet asks the store for no claim at all (a claim is a
    write transaction: it would take the database's write lock every tick for nothing)."""
    submit_goals(store, [Goal(task=SIMPLE.key, policy="never", instance=i) for i in range(2)])
    asked: list[int] = []

    async def before(request: ModelRequest) -> None:
        await next_tick()  # the scheduler ran a whole round while this slot was busy

    fleet = Fleet(store, Hooked(sim(clock), before), config(concurrency=1, aging_s=None))
    claim_many = store.claim_many

    def counting(worker: str, n: int, **kw: object) -> object:
        asked.append(n)
        return claim_many(worker, n, **kw)  # type: ignore[arg-type]

    store.claim_many = counting  # type: ignore[method-assign, assignment]
    next_tick = scheduler_ticks(fleet)
    await fleet.run(until_idle=True)
    assert len(store.events(kind="task.completed")) == 2
    assert asked  # it did claim, with one free slot each time
    assert set(asked) == {1}


async def test_the_preempted_task_is_the_newest_of_the_lowest_priority(
    store: Store, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Three slots busy with X (priority 10), Y (10, newer) and Z (20, newest) when a
    priority-90 goal arrives: the one task asked to yield is Y, lowest priority first, then
    newest first (it has the least work to lose), and the log names it."""
    submitted = []
    for i, priority in enumerate((10, 10, 20)):
        clock.advance(1)  # one second apart: X is older than Y, Y older than Z
        submitted += submit_goals(
            store, [Goal(task=LONG.key, policy="never", priority=priority, instance=i)]
        )
    x, y, z = submitted
    arrived: list[str] = []
    decided = asyncio.Event()

    async def before(request: ModelRequest) -> None:
        if LONG.key not in _task_line(request) or decided.is_set():
            return
        if not arrived:  # the first call of X, Y or Z: the urgent goal arrives
            urgent = Goal(task=SIMPLE.key, policy="never", priority=90)
            arrived.append(submit_goals(store, [urgent])[0].id)
            await next_tick()  # the scheduler has compared the queue with the three slots
            decided.set()
        await decided.wait()  # no slot frees before the decision: all three run until then

    # claim order: Z (20), then X and Y (10, oldest first); a victim by claim order would
    # be Z, by oldest-first X. After Y yields, Y (10) waits: no running task is below it.
    fleet = Fleet(store, Hooked(sim(clock), before), config(concurrency=3, aging_s=None))
    next_tick = scheduler_ticks(fleet)
    with caplog.at_level(logging.INFO, logger="fleetlab.orchestrator"):
        report = await fleet.run(until_idle=True)
    # The decision taken while all three ran is Y. (Later ticks, before Y reaches its turn
    # boundary, may ask another task to yield too: see the report on over-preemption.)
    logged = [r.getMessage() for r in caplog.records if r.getMessage().startswith("preempting")]
    assert logged[0] == f"preempting {y.id} (priority 10) for priority 90"
    assert y.id in {e.task_id for e in store.events(kind="task.preempted")}
    assert 1 <= report.preempted <= len(logged)
    assert {store.get_task(t.id).status for t in (x, y, z)} <= {"completed", "failed"}
    assert store.get_task(arrived[0]).status == "completed"


async def test_a_trace_scoped_fleet_preempts_only_for_its_own_trace(
    store: Store, clock: FakeClock
) -> None:
    """A fleet scoped to one goal does not preempt its task for a more urgent goal of another
    trace (which it would never claim): the other goal's priority 90 is not its concern."""
    [other] = submit_goals(store, [Goal(task=SIMPLE.key, policy="never", priority=90)])
    [mine] = submit_goals(store, [Goal(task=LONG.key, policy="never", priority=10)])
    ticks = 0

    async def before(request: ModelRequest) -> None:
        nonlocal ticks
        if ticks < 3:  # the scheduler sees the other trace's goal waiting, three times
            ticks += 1
            await next_tick()

    fleet = Fleet(
        store,
        Hooked(sim(clock), before),
        config(concurrency=1, aging_s=None),
        trace_id=mine.trace_id,
    )
    next_tick = scheduler_ticks(fleet)
    report = await fleet.run(until_idle=True)
    assert ticks == 3
    assert store.events(kind="task.preempted") == []
    assert report.preempted == 0
    assert store.get_task(mine.id).status in ("completed", "failed")
    assert store.get_task(other.id).status == "queued"


async def test_a_dead_workers_task_is_reclaimed_at_start_and_logged(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """At start the fleet makes the tasks of this host's dead workers reclaimable at once
    (their 10,000 s lease is not waited out), claims them under the next epoch, and logs which
    workers it found dead."""
    [root] = submit_goals(store, [Goal(task=SIMPLE.key, policy="never")])
    dead = dead_worker()
    store.claim(dead, lease_s=10_000)
    with caplog.at_level(logging.INFO, logger="fleetlab.orchestrator"):
        report = await Fleet(store, sim(), config()).run(until_idle=True)
    assert store.get_task(root.id).status == "completed"
    [reclaimed] = store.events(task_id=root.id, kind="task.reclaimed")
    assert (reclaimed.attrs["previous_owner"], reclaimed.attrs["epoch"]) == (dead, 2)
    assert report.claimed == 1
    messages = [r.getMessage() for r in caplog.records]
    assert f"reclaiming tasks of dead workers ['{dead}']" in messages


async def test_a_fresh_claim_counts_as_a_held_lease(store: Store) -> None:
    """Before any renewal, the claim itself tells the fleet how long its lease runs: with
    300 s left (more than the 100 s margin, a third of the lease) the agent's turns run their
    tools without re-reading the lease from the database."""
    [root] = submit_goals(store, [Goal(task=LONG.key, policy="never")])
    checks = 0
    check_lease = store.check_lease

    def counting(lease: Lease) -> None:
        nonlocal checks
        checks += 1
        check_lease(lease)

    store.check_lease = counting  # type: ignore[method-assign]
    seen: list[int] = []

    async def before(request: ModelRequest) -> None:
        seen.append(checks)

    async def no_renewals() -> None:  # the claim is the fleet's only record of its lease
        await asyncio.Event().wait()

    # The FakeClock stands still while the task runs (no heartbeat sleeps, latency 0), so
    # every turn is 0 s after the claim: 0 < 300 - 100 and the lease counts as held.
    fleet = Fleet(store, Hooked(sim(), before), config(concurrency=1))
    fleet._heartbeats = no_renewals  # type: ignore[method-assign]
    await fleet.run(until_idle=True)
    assert store.get_task(root.id).status in ("completed", "failed")
    assert len(seen) >= 3
    # no lease read between one model call and the next
    assert [b - a for a, b in itertools.pairwise(seen)] == [0] * (len(seen) - 1)


def test_a_claim_gives_a_parked_tasks_slot_to_whatever_it_spawned(store: Store) -> None:
    """``claim_many(worker, n, parked=ids)``: each of ``ids`` that the claim's own transaction
    finds waiting for its sub-tasks adds a slot to ``n``; one still running (its park not yet
    committed, or never to be: it was cancelled, or its lease went to another worker) adds
    none."""
    titles = ("parked", "running", "cancelled", "other's", "q1", "q2", "q3")
    goals = submit_goals(store, [Goal(title=t, policy="never") for t in titles])
    parked, running, cancelled, others, *queued = goals
    assert [store.claim("w").id for _ in range(3)] == [parked.id, running.id, cancelled.id]  # type: ignore[union-attr]
    assert store.claim("x").id == others.id  # type: ignore[union-attr]
    store.transition(parked.id, "waiting_children")
    store.transition(cancelled.id, "cancelled")
    mine = [parked.id, running.id, cancelled.id, others.id]
    # no slot of its own, and one parked: one claim, the first queued
    claimed = store.claim_many("w", 0, parked=mine, exclude=mine)
    assert [t.id for t in claimed] == [queued[0].id]
    # one slot of its own, and nothing parked: one claim
    claimed = store.claim_many("w", 1, parked=[running.id, cancelled.id, others.id])
    assert [t.id for t in claimed] == [queued[1].id]
    assert store.get_task(queued[2].id).status == "queued"


async def test_a_task_cancelled_mid_call_keeps_its_slot_until_its_agent_stops(
    store: Store, clock: FakeClock
) -> None:
    """Two slots. A goal is cancelled while its agent's model call is in flight: the agent
    runs until that call returns, so the fleet must not start a third agent meanwhile,
    whatever the database says of the cancelled task."""
    [long] = submit_goals(store, [Goal(task=LONG.key, policy="never", priority=90)])
    submit_goals(
        store, [Goal(task=SIMPLE.key, policy="never", priority=10, instance=i) for i in range(4)]
    )
    in_flight = most = 0
    held, release = asyncio.Event(), asyncio.Event()

    async def before(request: ModelRequest) -> None:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        try:
            if LONG.key in _task_line(request) and not release.is_set():
                held.set()
                await release.wait()  # the long goal's call is in flight until released
            else:
                await asyncio.sleep(0.002)  # calls take real time, so they overlap
        finally:
            in_flight -= 1

    fleet = Fleet(store, Hooked(sim(clock), before), config(concurrency=2, max_preemptions=0))
    run = asyncio.create_task(fleet.run(until_idle=True))
    await held.wait()
    store.transition(long.id, "cancelled", error="cancelled by the user")
    for _ in range(50):  # the other slot works through the queue meanwhile
        await asyncio.sleep(0.005)
    release.set()
    await run
    assert store.get_task(long.id).status == "cancelled"
    assert len(store.events(kind="task.completed")) + len(store.events(kind="task.failed")) == 4
    assert most == 2


async def test_sub_agents_start_together_when_a_tick_lands_in_the_spawning_commit(
    store: Store, clock: FakeClock
) -> None:
    """A goal split four ways, on four slots: its sub-agents share a workspace, so when each
    starts decides what the others find there. A scheduler tick whose claim lands in the
    very commit that spawns them (the parent still counted as running) must claim all four,
    so the sub-agents interleave as without the tick: the same tool calls, in the same
    order, and the same tokens."""
    cfg = config(concurrency=4, max_fanout=4, max_depth=1)
    split = "core:logging-migration"  # four parts: two search the files others rewrite

    async def run_goal(tick_at_spawn: bool) -> tuple[list[tuple[str, str, str]], int]:
        [goal] = submit_goals(store, [Goal(task=split, policy="always", instance=1)])
        fleet = Fleet(store, sim(clock, seed=1), cfg, trace_id=goal.trace_id)
        ticks: list[asyncio.Future[None]] = []
        if tick_at_spawn:
            write = store.write

            async def write_and_tick(op: Any) -> Any:
                if "_wait" in getattr(op, "__qualname__", ""):  # a parent parks for children
                    # runs before the commit is taken: its claim joins the spawn's commit
                    ticks.append(asyncio.ensure_future(fleet._fill_slots()))
                return await write(op)

            store.write = write_and_tick  # type: ignore[method-assign]
        try:
            await fleet.run(until_idle=True)
        finally:
            store.__dict__.pop("write", None)
        # planner, executors and validator were each spawned with a tick beside them
        assert not tick_at_spawn or (
            len(ticks) >= 3 and all(t.done() and t.exception() is None for t in ticks)
        )
        titles = {t.id: t.title for t in store.tasks(trace_id=goal.trace_id)}
        calls = [
            (titles[e.task_id], e.attrs["tool"], str(e.attrs.get("path", "")))
            for e in store.events(trace_id=goal.trace_id, kind="tool.call")
        ]
        done = store.get_task(goal.id)
        return calls, done.tree_tokens_in

    plain = await run_goal(tick_at_spawn=False)
    ticked = await run_goal(tick_at_spawn=True)
    assert len({title for title, _, _ in plain[0]}) >= 5  # four executors and the validator
    assert ticked == plain
