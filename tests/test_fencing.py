"""Exactly-once turns whatever the timing: fenced leases, refused stale writes, paid calls
recorded, and integrity checks that catch a task run twice.

The oracle for "nothing billed twice, nothing lost" is the models' own call counters: every
call a model answered is either one committed ``model.call`` or one ``model.discarded``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from fleetlab.agents import run_agent
from fleetlab.clock import FakeClock, to_us, week_of
from fleetlab.digest import compute_metrics
from fleetlab.errors import LeaseLost
from fleetlab.models import ModelRequest, ModelResponse, ToolUseBlock, Usage
from fleetlab.models.sim import PROFILES, SimModel
from fleetlab.orchestrator import Fleet, FleetConfig, Goal, submit_goals
from fleetlab.simulate import simulate
from fleetlab.store import Lease, Store, TaskStatus, open_store
from fleetlab.testing import ScriptedModel
from fleetlab.tools import Workspace

pytestmark = pytest.mark.both_backends

SIMPLE = "core:rename-readme"


class CountingModel:
    """A simulated model whose calls take ``sleep_s`` (real seconds, the loop keeps running)
    and whose first call can freeze the event loop until ``freeze_until`` is set (a stuck
    process that wakes up once another fleet has taken its tasks over)."""

    def __init__(
        self,
        *,
        sleep_s: float = 0.0,
        freeze_until: threading.Event | None = None,
        seed: int = 0,
    ) -> None:
        params = dataclasses.replace(PROFILES["instant"], latency_median_s=0.0)
        self.inner = SimModel(params, seed=seed, profile="instant")
        self.sleep_s, self.freeze_until = sleep_s, freeze_until
        self.calls = 0
        self.blocking = threading.Event()

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def simulated(self) -> bool:
        return True

    async def generate(self, request: ModelRequest) -> ModelResponse:
        self.calls += 1
        if self.freeze_until is not None and self.calls == 1:
            self.blocking.set()
            # freezes the loop, as a stuck process does; the bound only keeps a broken run from
            # hanging (the test then fails on what it finds)
            self.freeze_until.wait(60)
        if self.sleep_s:
            # Part of the scenario: a call that takes real time (the loop keeps running), so
            # a lease shorter than the call must be kept alive by the fleet's heartbeat.
            await asyncio.sleep(self.sleep_s)
        return await self.inner.generate(request)


def _ledger(store: Store) -> dict[str, Any]:
    """What the database says was called, committed and claimed."""
    calls = store.events(kind="model.call")
    turns = Counter((e.task_id, e.attrs.get("turn")) for e in calls if "turn" in e.attrs)
    claims: dict[str, list[int]] = {}
    for e in store.events():
        if e.kind in ("task.started", "task.resumed", "task.reclaimed") and "epoch" in e.attrs:
            claims.setdefault(e.task_id, []).append(e.attrs["epoch"])
    return {
        "committed": len(calls),
        "discarded": store.events(kind="model.discarded"),
        "twice": [k for k, n in turns.items() if n > 1],
        "claims": claims,
        "reclaims": store.events(kind="task.reclaimed"),
    }


async def test_calls_longer_than_the_lease_keep_it(db_url: str) -> None:
    """Real clock, 3 s lease, every call 0.6 s longer: the fleet's heartbeat keeps each
    lease, so a second fleet polling the same db never takes a task over and each task is
    claimed once. (The heartbeat renews every third of a lease: only a renewal stalled for
    2 s could lose one.) A tighter lease measures the machine's load, not the fencing: with
    0.6 s, a busy host's disk once held SQLite's renewals long enough to lose all three, and
    on PostgreSQL every read and renewal is a round trip queued behind the other fleet's."""
    lease_s = 3.0
    with open_store(db_url) as store:
        goals = submit_goals(store, [Goal(task=SIMPLE, policy="never") for _ in range(3)])
        a_model = CountingModel(sleep_s=lease_s + 0.6)
        b_model = CountingModel()
        config = FleetConfig(concurrency=3, poll_s=0.01, lease_s=lease_s)
        a = Fleet(store, a_model, config)
        with open_store(db_url) as other:
            a_run = asyncio.create_task(a.run(until_idle=True))
            # B starts once A holds every goal: from then on only a lost lease could hand
            # one to B (before that, B taking a queued goal first would be no fault).
            deadline = asyncio.get_running_loop().time() + 30
            while not all(store.get_task(g.id).status == "running" for g in goals):
                assert asyncio.get_running_loop().time() < deadline, "A never held every goal"
                await asyncio.sleep(0.01)  # a poll interval: until A has claimed them all
            b = Fleet(other, b_model, config.replace(concurrency=1))
            b_run = asyncio.create_task(b.run())
            await a_run
            b.stop()
            await b_run
        ledger = _ledger(store)
        assert [store.get_task(g.id).status for g in goals] == ["completed"] * 3
        assert b_model.calls == 0
        assert ledger["reclaims"] == []
        assert all(epochs == [1] for epochs in ledger["claims"].values())
        assert ledger["twice"] == []
        assert ledger["discarded"] == []
        assert a_model.calls == ledger["committed"]


def _run_in_thread(
    db_url: str,
    model: CountingModel,
    start: threading.Event,
    goals: list[str],
    taken: threading.Event,
) -> tuple[threading.Thread, list[BaseException]]:
    """Fleet B, in its own thread and loop: starts once fleet A is frozen, sets ``taken`` once
    it has claimed every goal (a new epoch on each), runs until every goal is finished."""
    errors: list[BaseException] = []

    async def main() -> None:
        with open_store(db_url) as store:
            # B's own lease is long: only A's (0.3 s) must run out, never B's on a busy host
            fleet = Fleet(store, model, FleetConfig(concurrency=2, poll_s=0.01, lease_s=3.0))
            runner = asyncio.create_task(fleet.run())
            while not all(store.get_task(g).lease_epoch >= 2 for g in goals):
                await asyncio.sleep(0.01)  # a poll interval: until B holds every goal
            taken.set()
            while not all(store.get_task(g).terminal for g in goals):
                await asyncio.sleep(0.02)  # a poll interval: B stops once the db says done
            fleet.stop()
            await runner

    def target() -> None:
        start.wait()  # fleet A's loop is frozen from here on
        try:
            asyncio.run(main())
        except BaseException as exc:  # reported by the test
            errors.append(exc)
        finally:
            taken.set()  # never leave fleet A frozen

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, errors


async def test_a_frozen_fleet_loses_its_tasks_and_commits_nothing_late(db_url: str) -> None:
    """Fleet A claims two goals, then its loop freezes (lease 0.3 s) until fleet B, in
    another thread, has taken both over under new epochs. When A wakes, every write it
    attempts under its old epochs is refused; the calls it had made are recorded as
    discarded; B finishes both goals; no turn is committed twice."""
    with open_store(db_url) as store:
        goals = submit_goals(store, [Goal(task=SIMPLE, policy="never") for _ in range(2)])
        taken = threading.Event()
        a_model, b_model = CountingModel(freeze_until=taken), CountingModel(seed=1)
        b_thread, b_errors = _run_in_thread(
            db_url, b_model, a_model.blocking, [g.id for g in goals], taken
        )
        a = Fleet(store, a_model, FleetConfig(concurrency=2, poll_s=0.01, lease_s=0.3))
        report = await a.run(until_idle=True)
        a_model.blocking.set()  # had A never frozen, B starts now (and the checks below fail)
        await asyncio.to_thread(b_thread.join)  # B returns once both goals are finished
        assert b_errors == []

        ledger = _ledger(store)
        assert [store.get_task(g.id).status for g in goals] == ["completed"] * 2
        # B took both over: each goal was claimed twice, epochs 1 (A) then 2 (B).
        assert {e.attrs["previous_owner"] for e in ledger["reclaims"]} == {a.worker}
        assert sorted(ledger["claims"].values()) == [[1, 2], [1, 2]]
        # A completed nothing; a coroutine of A that reached a write was refused (one that
        # woke after B had finished found the goal done and wrote nothing either).
        assert report.completed == 0
        assert report.leases_lost >= 1
        # Nothing A did after losing the leases was committed, and what it paid is on record.
        a_writes = [e for e in store.events() if e.attrs.get("worker") == a.worker]
        assert {e.kind for e in a_writes} == {"task.started"}
        assert ledger["discarded"]
        assert all(e.attrs["epoch"] == 1 for e in ledger["discarded"])
        assert ledger["twice"] == []
        assert a_model.calls + b_model.calls == ledger["committed"] + len(ledger["discarded"])
        assert a_model.calls == len(ledger["discarded"])
        paid = sum(e.attrs["cost_usd"] for e in ledger["discarded"])
        assert paid > 0
        committed_cost = sum(store.get_task(g.id).cost_usd for g in goals)
        week = week_of(store.clock.now(), "UTC")
        cost = compute_metrics(store, week)["cost"]
        assert cost["discarded"]["calls"] == len(ledger["discarded"])
        assert cost["total"]["cost_usd"] == pytest.approx(committed_cost + paid, abs=1e-3)


async def test_simulated_calls_three_leases_long_commit_each_turn_once(
    fresh_db: Callable[[], str], tmp_path: Path
) -> None:
    """``fleet simulate`` (ScaledClock): 6 h leases, calls of 18 h simulated, heartbeats far
    apart in simulated time: the fleet never takes its own running tasks back, so every turn
    is committed once (the demo db had 137 pairs committed twice before leases were fenced).

    Eight simulated weeks last about 2.4 s here: long enough that a busy machine still
    commits turns, and that a fleet claiming its own tasks back does so dozens of times (one
    simulated week showed it in one run of three)."""
    path = fresh_db()
    start = datetime(2026, 11, 23, tzinfo=UTC)
    result = await simulate(
        lambda clock: open_store(path, clock=clock),
        start,
        days=56,
        tasks_per_day=2,
        concurrency=2,
        policy="never",
        call_latency_s=3 * 6 * 3600.0,
        scale=2_000_000.0,
    )
    assert result.submitted > 0
    with open_store(path) as store:
        ledger = _ledger(store)
        assert ledger["committed"] > 0
        assert (ledger["twice"], ledger["reclaims"], ledger["discarded"]) == ([], [], [])
        assert all(epochs == sorted(set(epochs)) for epochs in ledger["claims"].values())


def test_stale_epoch_writes_are_refused_everywhere(store: Store, clock: FakeClock) -> None:
    task = store.create_task("job")
    first = store.claim("w1", lease_s=10)
    assert first is not None
    assert first.lease is not None
    clock.advance(11)
    second = store.claim("w1", lease_s=10)  # the same worker, a new claim: a new epoch
    assert second is not None
    assert second.lease == Lease(task.id, "w1", 2)
    stale = first.lease
    for write in (
        lambda: store.heartbeat(stale, lease_s=10),
        lambda: store.check_lease(stale),
        lambda: store.add_usage(task.id, 1, 1, 0.1, lease=stale),
        lambda: store.transition(task.id, "completed", lease=stale),
        lambda: store.transition(task.id, "preempted", lease=stale),
    ):
        with pytest.raises(LeaseLost, match="epoch 1"):
            write()
    assert store.get_task(task.id).cost_usd == 0
    assert store.renew_leases([stale, second.lease], lease_s=10) == [stale]
    # The heartbeat extends, never shortens: a renewal for 1 s leaves the 10 s lease alone.
    until = store.get_task(task.id).lease_expires_at
    store.heartbeat(second.lease, lease_s=1)
    assert store.get_task(task.id).lease_expires_at == until
    assert store.claim("w2", exclude=[task.id]) is None


def test_a_worker_never_claims_what_it_still_runs(store: Store, clock: FakeClock) -> None:
    task = store.create_task("job")
    store.claim("w1", lease_s=10)
    clock.advance(60)
    assert store.claim("w1", lease_s=10, exclude=[task.id]) is None
    reclaimed = store.claim("w2", lease_s=10)
    assert reclaimed is not None
    assert reclaimed.lease_epoch == 2


def _week_metrics(path: Path, when: datetime) -> dict[str, dict[str, Any]]:
    with open_store(path) as store:
        m = compute_metrics(store, week_of(when, "UTC"), now=when + timedelta(days=8))
    return {c["name"]: c for c in m["integrity"]["checks"]}


async def _small_fleet_db(path: Path, clock: FakeClock) -> list[str]:
    with open_store(path, clock=clock) as store:
        goals = submit_goals(store, [Goal(task=SIMPLE, policy="never") for _ in range(3)])
        await Fleet(store, CountingModel(), FleetConfig(poll_s=0.01)).run(until_idle=True)
        return [g.id for g in goals]


async def test_integrity_catches_a_turn_committed_twice(
    fresh_db: Callable[[], str], tmp_path: Path
) -> None:
    clock = FakeClock(datetime(2026, 11, 24, 9, tzinfo=UTC))
    path = fresh_db()
    goals = await _small_fleet_db(path, clock)
    clean = _week_metrics(path, clock.now())
    assert all(clean[n]["ok"] for n in ("turns_once", "epochs", "discarded_calls", "database"))
    assert clean["turns_once"]["checked"] > 0
    with open_store(path) as store:  # double one committed turn of the second goal, as the bug did
        call = next(
            e for e in store.events(task_id=goals[1], kind="model.call") if "turn" in e.attrs
        )
        store.append(dataclasses.replace(call, id="f" * 20))
    checks = _week_metrics(path, clock.now())
    assert not checks["turns_once"]["ok"]
    assert checks["turns_once"]["offending"] == [goals[1]]
    assert (
        f"turn {call.attrs['turn']} committed 2 times"
        in checks["turns_once"]["details"][0]["problem"]
    )


async def test_integrity_catches_two_epochs_running_at_once(
    fresh_db: Callable[[], str], tmp_path: Path
) -> None:
    clock = FakeClock(datetime(2026, 11, 24, 9, tzinfo=UTC))
    path = fresh_db()
    goals = await _small_fleet_db(path, clock)
    with open_store(path, clock=clock) as store:
        # A write under epoch 1 committed after a claim under epoch 2 (what an unfenced
        # store lets through): appended directly, as a buggy writer would.
        victim = store.get_task(goals[2])
        [started] = store.events(task_id=victim.id, kind="task.started")
        call = next(e for e in store.events(task_id=victim.id, kind="model.call"))
        store.append(
            dataclasses.replace(
                started, kind="task.reclaimed", id="e" * 20, attrs={**started.attrs, "epoch": 2}
            )
        )
        store.append(dataclasses.replace(call, id="d" * 20, attrs={**call.attrs, "turn": 99}))
    checks = _week_metrics(path, clock.now())
    assert not checks["epochs"]["ok"]
    assert checks["epochs"]["offending"] == [goals[2]]
    assert "under epoch 1 after epoch 2" in checks["epochs"]["details"][0]["problem"]


@pytest.mark.parametrize("parked", ["preempted", "waiting_children"])
async def test_stale_coroutine_cannot_finish_a_task_parked_by_the_newer_claim(
    store: Store, clock: FakeClock, parked: TaskStatus
) -> None:
    goal = store.create_task("free-text goal", spec={"instructions": "do it", "policy": "never"})
    a = Fleet(store, SimModel(), FleetConfig(lease_s=10))
    [mine] = store.claim_many(a.worker, 1, lease_s=10)
    a._leases[goal.id] = Lease(goal.id, a.worker, mine.lease_epoch)  # as _fill_slots does

    clock.advance(11)  # A's loop froze past its lease
    theirs = store.claim("fleet-B", lease_s=10)  # B reclaims: epoch 2
    assert theirs is not None
    assert theirs.lease is not None
    if parked == "waiting_children":
        store.create_task("plan: goal", parent_id=goal.id, role="planner")
    store.transition(goal.id, parked, lease=theirs.lease)  # B parks it

    # A wakes up and ends the goal it lost (a scoring ModelError, a verdict, a crash...).
    with pytest.raises(LeaseLost):
        await a._finish(mine, "failed", error="stale verdict")
    after = store.get_task(goal.id)
    assert after.status == parked, f"the stale coroutine ended B's task: {after.status}"


async def test_a_stale_turn_does_not_change_the_workspace(
    store: Store, clock: FakeClock, tmp_path: Path
) -> None:
    """A model call outlives the lease; another fleet now runs the task in the same workspace.
    The stale turn is refused, but its tool calls already ran: they rewrote the new owner's
    files before the fence was checked."""
    store.create_task("goal")
    [mine] = store.claim_many("fleet-A", 1, lease_s=10)
    ws = Workspace(tmp_path / "ws")
    (ws.root / "answer.txt").write_text("fleet B's work\n")

    def respond(request: ModelRequest) -> ModelResponse:
        # the call takes longer than the lease; B reclaims meanwhile
        clock.advance(11)
        assert store.claim("fleet-B", lease_s=10) is not None
        return ModelResponse(
            (ToolUseBlock("t1", "write_file", {"path": "answer.txt", "content": "stale\n"}),),
            "tool_use",
            Usage(input_tokens=1, output_tokens=1),
            "scripted",
        )

    with pytest.raises(LeaseLost):
        await run_agent(
            store, ScriptedModel(respond), mine, ws, system="", instructions="go",
            lease=mine.lease,
        )  # fmt: skip
    assert (ws.root / "answer.txt").read_text() == "fleet B's work\n"


async def test_integrity_catches_a_turn_committed_again_in_a_later_week(
    fresh_db: Callable[[], str], tmp_path: Path
) -> None:
    clock = FakeClock(datetime(2026, 11, 24, 9, tzinfo=UTC))
    path = fresh_db()
    goals = await _small_fleet_db(path, clock)
    next_week = clock.now() + timedelta(days=7)
    with open_store(path) as store:  # the same turn committed again a week later
        calls = store.events(task_id=goals[0], kind="model.call")
        call = next(e for e in calls if "turn" in e.attrs)
        store.append(dataclasses.replace(call, id="c" * 20, ts=next_week))
    checks = _week_metrics(path, next_week)
    assert checks["turns_once"]["offending"] == [goals[0]]
    assert _week_metrics(path, clock.now())["turns_once"]["ok"]  # the first week saw it once


async def test_the_fleet_skips_the_pre_tool_check_only_while_its_lease_is_far_from_expiry(
    store: Store, clock: FakeClock
) -> None:
    """The check before a turn's tools costs a read; the fleet skips it while its own record
    says the lease has more than a third of its length left (nobody can have claimed it),
    and makes it once a call has eaten into the lease."""
    fleet = Fleet(store, CountingModel(), FleetConfig(lease_s=300))
    task = store.create_task("job")
    [claimed] = store.claim_many(fleet.worker, 1, lease_s=300)
    assert claimed.lease_expires_at is not None
    fleet._held_until[task.id] = to_us(claimed.lease_expires_at)  # as _fill_slots records it
    assert fleet._lease_held(task.id)
    clock.advance(199)  # 101 s left: more than a third of 300 s
    assert fleet._lease_held(task.id)
    clock.advance(2)  # 99 s left
    assert not fleet._lease_held(task.id)
    assert not fleet._lease_held("another task")  # no record: always check


async def test_a_stale_spawn_leaves_no_children(store: Store, clock: FakeClock) -> None:
    """Spawning sub-agents and parking the parent are one fenced commit: under a stale lease
    neither happens (the children created before the refusal are rolled back with it)."""
    goal = store.create_task("goal", spec={"instructions": "do it"})
    a = Fleet(store, CountingModel(), FleetConfig(lease_s=10))
    [mine] = store.claim_many(a.worker, 1, lease_s=10)
    a._leases[goal.id] = Lease(goal.id, a.worker, mine.lease_epoch)  # as _fill_slots does
    clock.advance(11)
    assert store.claim("fleet-B", lease_s=10) is not None  # epoch 2
    with pytest.raises(LeaseLost):
        await a._plan(mine)
    assert store.tasks(parent_id=goal.id) == []
    assert store.get_task(goal.id).status == "running"
