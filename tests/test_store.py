from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import pytest

from fleetlab.clock import FakeClock
from fleetlab.errors import IllegalTransition, LeaseLost, NotFoundError, SchemaError, UserError
from fleetlab.store import TRANSITIONS, Lease, Store, TurnWrite, open_store
from fleetlab.store.sqlite.schema import MIGRATIONS as _MIGRATIONS
from fleetlab.store.sqlite.schema import SCHEMA_VERSION
from fleetlab.telemetry import Event, LogSink

pytestmark = pytest.mark.both_backends


def snapshot(path: Path) -> bytes:
    return path.read_bytes()


@pytest.mark.sqlite_only
def test_new_db_is_wal_and_current(store: Store, db_path: Path) -> None:
    assert store.query("PRAGMA journal_mode")[0][0] == "wal"
    assert store.schema_version == SCHEMA_VERSION
    assert db_path.exists()


def test_status_change_and_event_share_a_transaction(store: Store) -> None:
    task = store.create_task("rename a.txt to b.txt", priority=70)
    claimed = store.claim("w1")
    assert claimed is not None
    assert claimed.id == task.id
    assert claimed.status == "running"
    assert claimed.lease_owner == "w1"
    done = store.transition(
        task.id, "completed", lease=claimed.lease, result={"summary": "renamed"}
    )
    assert done.status == "completed"
    assert done.finished_at is not None
    assert done.result == {"summary": "renamed"}
    kinds = [e.kind for e in store.events(task_id=task.id)]
    assert kinds == ["task.spawned", "task.started", "task.completed"]
    assert all(e.trace_id == task.trace_id for e in store.events(task_id=task.id))


def test_illegal_transition_raises_and_writes_nothing(store: Store) -> None:
    task = store.create_task("x")
    before = store.query("SELECT COUNT(*) FROM events")[0][0]
    with pytest.raises(IllegalTransition, match="queued to completed"):
        store.transition(task.id, "completed")
    store.claim("w")
    store.transition(task.id, "failed", error="boom")
    with pytest.raises(IllegalTransition, match="already finished"):
        store.transition(task.id, "running")
    assert store.get_task(task.id).status == "failed"
    assert store.query("SELECT COUNT(*) FROM events")[0][0] == before + 2


#: The lifecycle, written out by hand (the oracle for ``TRANSITIONS``): (from, to) -> event.
LEGAL = {
    ("queued", "running"): "task.started",
    ("queued", "cancelled"): "task.cancelled",
    ("running", "completed"): "task.completed",
    ("running", "failed"): "task.failed",
    ("running", "preempted"): "task.preempted",
    ("running", "waiting_children"): "task.waiting",
    ("running", "cancelled"): "task.cancelled",
    ("preempted", "queued"): "task.requeued",
    ("preempted", "running"): "task.resumed",
    ("preempted", "cancelled"): "task.cancelled",
    ("waiting_children", "queued"): "task.requeued",
    ("waiting_children", "running"): "task.resumed",
    ("waiting_children", "cancelled"): "task.cancelled",
}
STATUS_NAMES = ("queued", "running", "preempted", "waiting_children", "completed", "failed",
                "cancelled")  # fmt: skip
#: How to bring a new (queued) task to each status through legal moves.
ROUTE = {
    "queued": [],
    "running": ["running"],
    "preempted": ["running", "preempted"],
    "waiting_children": ["running", "waiting_children"],
    "completed": ["running", "completed"],
    "failed": ["running", "failed"],
    "cancelled": ["cancelled"],
}


@pytest.mark.parametrize("src", STATUS_NAMES)
def test_the_store_allows_exactly_the_lifecycle(store: Store, src: str) -> None:
    """From each status, the store makes every legal move (writing its event) and refuses
    every other one with ``IllegalTransition``, writing nothing: terminal states have no way
    out, and no status can be skipped."""
    for dst in STATUS_NAMES:
        task = store.create_task(f"{src} -> {dst}")
        for step in ROUTE[src]:
            store.transition(task.id, step)  # type: ignore[arg-type]
        assert store.get_task(task.id).status == src
        events = len(store.events(task_id=task.id))
        expected = LEGAL.get((src, dst))
        if expected is None:
            with pytest.raises(IllegalTransition, match=f"from {src} to {dst}"):
                store.transition(task.id, dst)  # type: ignore[arg-type]
            assert store.get_task(task.id).status == src
            assert len(store.events(task_id=task.id)) == events
        else:
            assert store.transition(task.id, dst).status == dst  # type: ignore[arg-type]
            after = store.events(task_id=task.id)
            assert [e.kind for e in after[events:]] == [expected]
            assert after[-1].attrs["from"] == src
    assert set(TRANSITIONS) == set(LEGAL)  # the constant documents what the store does


def test_priority_then_age(store: Store, clock: FakeClock) -> None:
    low = store.create_task("low", priority=10)
    clock.advance(1)
    high_old = store.create_task("high old", priority=90)
    clock.advance(1)
    store.create_task("high new", priority=90)
    assert store.claim("w").id == high_old.id  # type: ignore[union-attr]
    clock.advance(1)
    second = store.claim("w")
    assert second is not None
    assert second.title == "high new"
    assert store.claim("w").id == low.id  # type: ignore[union-attr]
    assert store.claim("w") is None


def test_aging_prevents_starvation(store: Store, clock: FakeClock) -> None:
    old = store.create_task("old low", priority=10)
    clock.advance(hours=2)
    store.create_task("new high", priority=60)
    # With one priority point per minute of waiting, two hours of waiting beats +50.
    assert store.claim("w", aging_s=60).id == old.id  # type: ignore[union-attr]


def test_lease_heartbeat_and_reclaim(store: Store, clock: FakeClock) -> None:
    task = store.create_task("long job")
    first = store.claim("w1", lease_s=30)
    assert first is not None
    assert first.lease == Lease(task.id, "w1", 1)
    clock.advance(20)
    store.heartbeat(first.lease, lease_s=30)
    clock.advance(20)
    assert store.claim("w2", lease_s=30) is None  # lease still valid thanks to the heartbeat
    clock.advance(15)
    reclaimed = store.claim("w2", lease_s=30)
    assert reclaimed is not None
    assert reclaimed.id == task.id
    assert reclaimed.lease == Lease(task.id, "w2", 2)
    assert reclaimed.attempts == 2
    event = store.events(task_id=task.id)[-1]
    assert event.kind == "task.reclaimed"
    assert (event.attrs["previous_epoch"], event.attrs["epoch"]) == (1, 2)
    with pytest.raises(LeaseLost):
        store.heartbeat(first.lease)
    with pytest.raises(LeaseLost):
        store.transition(task.id, "completed", lease=first.lease)
    assert store.transition(task.id, "completed", lease=reclaimed.lease).status == "completed"


def test_a_lease_is_reclaimable_only_after_its_expiry_instant(
    store: Store, clock: FakeClock
) -> None:
    """A lease of 30 s taken at t holds through t + 30 s inclusive: at exactly that instant
    no other worker can claim the task; one microsecond later it can."""
    task = store.create_task("long job")
    taken_at = clock.now()
    first = store.claim("w1", lease_s=30)
    assert first is not None
    expiry = taken_at + timedelta(seconds=30)
    assert first.lease_expires_at == expiry
    clock.set(expiry)
    assert store.claim("w2", lease_s=30) is None
    assert store.get_task(task.id).lease_owner == "w1"
    clock.advance(microseconds=1)
    reclaimed = store.claim("w2", lease_s=30)
    assert reclaimed is not None
    assert reclaimed.lease == Lease(task.id, "w2", 2)


def test_usage_rolls_up_to_every_ancestor(store: Store) -> None:
    root = store.create_task("root")
    child = store.create_task("child", parent_id=root.id)
    grandchild = store.create_task("grandchild", parent_id=child.id)
    store.add_usage(root.id, 100, 10, 0.01)
    store.add_usage(child.id, 200, 20, 0.02)
    store.add_usage(grandchild.id, 400, 40, 0.04)
    r, c, g = (store.get_task(t.id) for t in (root, child, grandchild))
    assert (r.tokens_in, r.tree_tokens_in) == (100, 700)
    assert (c.tokens_in, c.tree_tokens_in) == (200, 600)
    assert (g.tokens_in, g.tree_tokens_in) == (400, 400)
    assert r.tree_cost_usd == pytest.approx(0.07)
    assert r.tree_agents == 2
    assert c.tree_agents == 1
    assert {g.trace_id, c.trace_id} == {r.trace_id}
    assert g.depth == 2
    assert g.root_id == root.id
    spawned = store.events(task_id=grandchild.id)[0]
    assert spawned.parent_span_id == c.span_id


def test_checkpoints_keep_the_latest_turn(store: Store) -> None:
    task = store.create_task("t")
    assert store.latest_checkpoint(task.id) is None
    store.save_checkpoint(task.id, 1, {"messages": [1]})
    store.save_checkpoint(task.id, 2, {"messages": [1, 2]})
    cp = store.latest_checkpoint(task.id)
    assert cp is not None
    assert (cp.turn, cp.state) == (2, {"messages": [1, 2]})


def test_failed_transaction_writes_nothing(store: Store) -> None:
    task = store.create_task("t")
    with pytest.raises(RuntimeError), store.tx():
        store.transition(task.id, "running")
        store.save_checkpoint(task.id, 1, {"x": 1})
        raise RuntimeError("crash mid-turn")
    assert store.get_task(task.id).status == "queued"
    assert store.latest_checkpoint(task.id) is None
    assert [e.kind for e in store.events(task_id=task.id)] == ["task.spawned"]


class Collect:
    def __init__(self) -> None:
        self.seen: list[str] = []

    def emit(self, events: list) -> None:  # type: ignore[type-arg]
        self.seen += [e.kind for e in events]


def test_sinks_see_only_committed_events(db_path: Path, clock: FakeClock) -> None:
    sink = Collect()
    with open_store(db_path, clock=clock, sinks=[sink]) as store:
        task = store.create_task("t")
        with pytest.raises(RuntimeError), store.tx():
            store.transition(task.id, "running")
            raise RuntimeError
        assert sink.seen == ["task.spawned"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"title": ""}, "empty"),
        ({"title": "   \n"}, "empty"),
        ({"title": "x" * 20_001}, "limit"),
        ({"title": "ok", "priority": 101}, "out of range"),
        ({"title": "ok", "priority": -1}, "out of range"),
        ({"title": "ok", "priority": True}, "out of range"),
        ({"title": "ok", "budget_usd": -1.0}, "non-negative"),
        ({"title": "ok", "parent_id": "nope"}, "no task"),
    ],
)
def test_bad_task_input_leaves_store_unchanged(
    store: Store,
    db_path: Path,
    kwargs: dict,
    message: str,  # type: ignore[type-arg]
) -> None:
    store.create_task("existing")
    before = (
        store.query("SELECT COUNT(*) FROM tasks")[0][0],
        store.query("SELECT COUNT(*) FROM events")[0][0],
    )
    with pytest.raises(UserError, match=message):
        store.create_task(**kwargs)
    after = (
        store.query("SELECT COUNT(*) FROM tasks")[0][0],
        store.query("SELECT COUNT(*) FROM events")[0][0],
    )
    assert after == before


def test_find_task_by_id_prefix_and_trace(store: Store) -> None:
    root = store.create_task("root")
    child = store.create_task("child", parent_id=root.id)
    assert store.find_task(child.id).id == child.id
    assert store.find_task(child.id[:8]).id == child.id
    assert store.find_task(root.trace_id).id == root.id
    assert store.find_task(root.trace_id[:10]).id == root.id
    with pytest.raises(NotFoundError, match="no task or trace"):
        store.find_task("ffffffffffff")


def test_tasks_can_be_filtered_to_goals(store: Store) -> None:
    root = store.create_task("root")
    store.create_task("child", parent_id=root.id)
    other = store.create_task("other root")
    assert {t.id for t in store.tasks(roots=True)} == {root.id, other.id}
    assert [t.id for t in store.tasks(status="queued", roots=True, trace_id=root.trace_id)] == [
        root.id
    ]


def test_naive_time_never_reaches_the_store(db_path: Path) -> None:
    class NaiveClock:
        def now(self) -> datetime:
            return datetime(2026, 11, 23, 6, 0)

        async def sleep(self, seconds: float) -> None: ...

    with open_store(db_path, clock=NaiveClock()) as store:
        with pytest.raises(ValueError, match="naive"):
            store.create_task("t")
        assert store.query("SELECT COUNT(*) FROM tasks")[0][0] == 0


# --- opening files -------------------------------------------------------------------------


def test_older_schema_is_migrated(db_path: Path, clock: FakeClock) -> None:
    conn = sqlite3.connect(db_path)
    for statement in filter(str.strip, _MIGRATIONS[0].split(";")):
        conn.execute(statement)
    conn.execute("PRAGMA user_version=1")
    conn.execute(
        "INSERT INTO tasks (id, root_id, trace_id, span_id, title, priority, status, created_us,"
        " updated_us) VALUES ('aaaaaaaaaaaa', 'aaaaaaaaaaaa', 't', 's', 'old task', 5, 'queued',"
        " 1, 1)"
    )
    conn.commit()
    conn.close()
    with open_store(db_path, clock=clock) as store:
        assert store.schema_version == SCHEMA_VERSION
        assert store.get_task("aaaaaaaaaaaa").title == "old task"
        indexes = {r[0] for r in store.query("SELECT name FROM sqlite_master WHERE type='index'")}
        assert "tasks_claim" in indexes


def test_newer_schema_is_refused_untouched(db_path: Path) -> None:
    conn = sqlite3.connect(db_path)
    conn.execute("CREATE TABLE future (x)")
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    before = snapshot(db_path)
    with pytest.raises(SchemaError, match="newer than this fleetlab"):
        open_store(db_path)
    assert snapshot(db_path) == before
    assert not db_path.with_name("fleet.db-wal").exists()


@pytest.mark.parametrize(
    "content", [b"this is not a database at all" * 10, b"SQLite format 3\x00" + b"\xff" * 200]
)
def test_corrupt_file_is_refused_untouched(db_path: Path, content: bytes) -> None:
    db_path.write_bytes(content)
    with pytest.raises(SchemaError, match="not a fleetlab database"):
        open_store(db_path)
    assert db_path.read_bytes() == content


def test_foreign_sqlite_file_is_refused(db_path: Path) -> None:
    conn = sqlite3.connect(db_path)
    conn.execute("CREATE TABLE customers (x)")
    conn.commit()
    conn.close()
    with pytest.raises(SchemaError, match="not a fleetlab database"):
        open_store(db_path)


def test_directory_and_missing_folder_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="is a directory"):
        open_store(tmp_path)
    with pytest.raises(UserError, match="does not exist"):
        open_store(tmp_path / "missing" / "fleet.db")


def test_unwritable_location_is_refused() -> None:
    # /proc refuses file creation even to root.
    with pytest.raises(UserError, match="cannot"):
        open_store("/proc/fleet.db")


def _running(store: Store, title: str, worker: str = "w1", parent_id: str | None = None) -> str:
    task = store.create_task(title, parent_id=parent_id)
    store.transition(task.id, "running", worker=worker)
    return task.id


def _turn(store: Store, task_id: str, turn: int, worker: str = "w1", n: int = 10) -> TurnWrite:
    task = store.get_task(task_id)
    epoch = task.lease_epoch
    event = Event(
        kind="model.call",
        ts=store.clock.now(),
        trace_id=task.trace_id,
        task_id=task_id,
        attrs={"turn": turn},
    )
    return TurnWrite(
        task_id=task_id,
        turn=turn,
        state={"messages": [f"turn {turn}"]},
        events=[event],
        tokens_in=n,
        tokens_out=1,
        cost_usd=n / 1000,
        lease=Lease(task_id, worker, epoch),
    )


async def test_turns_in_one_group_commit_are_written_in_bulk_and_fail_alone(
    store: Store,
) -> None:
    root = _running(store, "root")
    kids = [_running(store, f"kid {i}", parent_id=root) for i in range(3)]
    lost = _running(store, "reclaimed by another worker", worker="w2")

    def cancel_kid_2() -> None:
        store.transition(kids[2], "cancelled", error="by a user")

    # Queued together: they share one transaction, in queue order. kid 2 is cancelled by an
    # operation queued before its turn, so its turn is refused; so is the turn of a task
    # leased to another worker. The rest commit, with usage rolled up to the root.
    outcomes = await asyncio.gather(
        store.write_turn(_turn(store, kids[0], 1, n=100)),
        store.write_turn(_turn(store, lost, 1)),
        store.write(cancel_kid_2),
        store.write_turn(_turn(store, kids[1], 1, n=200)),
        store.write_turn(_turn(store, kids[2], 1, n=400)),
        store.write_turn(_turn(store, root, 1, n=800)),
        return_exceptions=True,
    )
    assert [type(o).__name__ for o in outcomes] == [
        "NoneType", "LeaseLost", "NoneType", "NoneType", "LeaseLost", "NoneType",
    ]  # fmt: skip
    tasks = {t: store.get_task(t) for t in [root, *kids, lost]}
    assert tasks[root].tokens_in == 800
    assert tasks[root].tree_tokens_in == 800 + 100 + 200
    assert tasks[root].tree_cost_usd == pytest.approx(1.1)
    assert [tasks[k].tokens_in for k in kids] == [100, 200, 0]
    assert tasks[lost].tokens_in == 0
    for task_id, written in ((kids[0], True), (kids[2], False), (lost, False), (root, True)):
        assert bool(store.checkpoints(task_id)) is written
        calls = store.events(task_id=task_id, kind="model.call")
        assert len(calls) == (1 if written else 0)
    # The turn recorded a sign of life, and left the lease's expiry alone.
    assert tasks[kids[0]].heartbeat_at == store.clock.now()


async def test_a_bulk_turn_write_rolls_usage_up_to_every_ancestor(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Turns of a four-level tree committed together (one group commit, the bulk path) add
    each turn's usage to its own task and to every ancestor up to the root, not only to the
    parent: each task's tree totals equal its subtree's own usage, summed separately."""
    root = _running(store, "root")
    child = _running(store, "child", parent_id=root)
    sibling = _running(store, "sibling", parent_id=root)
    grandchild = _running(store, "grandchild", parent_id=child)
    great = _running(store, "great-grandchild", parent_id=grandchild)
    tokens = {root: 1, child: 10, sibling: 100, grandchild: 1000, great: 10000}

    def one_by_one(turn: TurnWrite) -> None:
        raise AssertionError(f"turn of {turn.task_id} written alone, not in bulk")

    monkeypatch.setattr(store, "apply_turn", one_by_one)
    for turn in (1, 2):  # two rounds: totals accumulate
        await asyncio.gather(
            *(store.write_turn(_turn(store, t, turn, n=n)) for t, n in tokens.items())
        )
    # by hand, per round: great 10000; grandchild 1000 + 10000; child 10 + 11000;
    # sibling 100; root 1 + 11010 + 100 = 11111. Two rounds double them.
    expected_in = {root: 22222, child: 22020, sibling: 200, grandchild: 22000, great: 20000}
    got = {t: store.get_task(t) for t in tokens}
    assert {t: got[t].tree_tokens_in for t in tokens} == expected_in
    # The same totals from the rows' own usage, summed over each subtree by SQL.
    for task_id in tokens:
        [(subtree_in, subtree_out, subtree_cost)] = store.query(
            "WITH RECURSIVE sub(id) AS (SELECT ? UNION ALL"
            " SELECT t.id FROM tasks t JOIN sub ON t.parent_id = sub.id)"
            " SELECT SUM(tokens_in), SUM(tokens_out), SUM(cost_usd) FROM tasks"
            " WHERE id IN (SELECT id FROM sub)",
            (task_id,),
        )
        task = got[task_id]
        assert (task.tree_tokens_in, task.tree_tokens_out) == (subtree_in, subtree_out)
        assert task.tree_cost_usd == pytest.approx(subtree_cost)
    assert got[root].tree_tokens_out == 2 * 5  # one output token a turn, five tasks, 2 rounds
    assert got[root].tree_cost_usd == pytest.approx(22222 / 1000)  # _turn: n / 1000 USD


async def test_a_turn_run_that_fails_falls_back_to_one_by_one(store: Store) -> None:
    a, b = _running(store, "a"), _running(store, "b")
    good = _turn(store, a, 1)
    bad = dataclasses.replace(_turn(store, b, 1), state={"x": object()})
    outcomes = await asyncio.gather(
        store.write_turn(good), store.write_turn(bad), return_exceptions=True
    )
    assert outcomes[0] is None
    assert isinstance(outcomes[1], TypeError)  # the state is not JSON: that turn alone fails
    assert [c.turn for c in store.checkpoints(a)] == [1]
    assert store.checkpoints(b) == []
    assert store.get_task(b).tokens_in == 0
    assert len(store.events(task_id=b, kind="model.call")) == 0


def test_the_whole_file_check_at_open_is_recorded(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store says whether it ran SQLite's quick_check when it opened the file, so a report
    that shows the check need not read the whole file again."""
    import fleetlab.store

    with open_store(db_path) as new:
        new.create_task("t")
        assert new.quick_checked is False  # created empty: nothing to check
    with open_store(db_path) as small:
        assert small.quick_checked is True
        assert small.quick_check() == []
    monkeypatch.setattr(fleetlab.store.sqlite, "QUICK_CHECK_MAX_BYTES", 0)
    with open_store(db_path) as big:
        assert big.quick_checked is False


# --- leases and roll-ups, instant by instant (the mutation run's survivors) ----------------

#: The ``clock`` fixture's start, 2026-11-23 09:00 UTC, in µs since the epoch, by hand:
#: 20_780 days * 86_400 s + 9 h * 3_600 s = 1_795_424_400 s.
T0_US = 1_795_424_400_000_000
S = 1_000_000  # µs in a second


def _lease_row(store: Store, task_id: str) -> tuple[Any, ...]:
    [row] = store.query(
        "SELECT lease_owner, lease_epoch, lease_expires_us, heartbeat_us FROM tasks WHERE id = ?",
        (task_id,),
    )
    return tuple(row)


def test_claims_and_heartbeats_default_to_a_60_s_lease(store: Store, clock: FakeClock) -> None:
    """Without ``lease_s``, ``claim``, ``claim_many`` and ``heartbeat`` grant 60 s from now."""
    a, b, c = (store.create_task(t) for t in ("a", "b", "c"))
    assert clock.now() == datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    first = store.claim("w1")
    assert first is not None
    assert first.id == a.id
    assert first.lease_expires_at == datetime(2026, 11, 23, 9, 1, tzinfo=UTC)
    assert [t.id for t in store.claim_many("w2", 2)] == [b.id, c.id]
    assert _lease_row(store, a.id) == ("w1", 1, T0_US + 60 * S, T0_US)
    assert _lease_row(store, b.id) == ("w2", 1, T0_US + 60 * S, T0_US)
    assert _lease_row(store, c.id) == ("w2", 1, T0_US + 60 * S, T0_US)
    clock.advance(5)
    assert first.lease is not None
    store.heartbeat(first.lease)  # 5 s + 60 s, beyond the claim's 60 s: extended
    assert _lease_row(store, a.id) == ("w1", 1, T0_US + 65 * S, T0_US + 5 * S)


def test_a_renewal_sets_the_expiry_to_exactly_lease_s_from_now(
    store: Store, clock: FakeClock
) -> None:
    """``renew_leases`` at t0 + 4 s for 30 s: expiry t0 + 34 s to the microsecond, sign of
    life t0 + 4 s; nothing stale is returned."""
    task = store.create_task("job")
    claimed = store.claim("w1", lease_s=10)
    assert claimed is not None
    assert claimed.lease is not None
    clock.advance(4)
    assert store.renew_leases([claimed.lease], lease_s=30) == []
    assert _lease_row(store, task.id) == ("w1", 1, T0_US + 34 * S, T0_US + 4 * S)


def test_a_reclaim_leases_lease_s_from_now_and_records_who_took_over(
    store: Store, clock: FakeClock
) -> None:
    """Reclaiming an expired task at t0 + 11 s for 30 s: owner w2, epoch 2, expiry
    t0 + 41 s, heartbeat and updated_us t0 + 11 s, a second attempt, the first start kept;
    its ``task.reclaimed`` event names both holders and both epochs."""
    task = store.create_task("job")
    assert store.claim("w1", lease_s=10) is not None  # epoch 1, expires t0 + 10 s
    clock.advance(11)
    reclaimed = store.claim("w2", lease_s=30)
    assert reclaimed is not None
    assert reclaimed.lease_expires_at == datetime(2026, 11, 23, 9, 0, 41, tzinfo=UTC)
    [row] = store.query(
        "SELECT status, lease_owner, lease_epoch, lease_expires_us, heartbeat_us, updated_us,"
        " attempts, started_us FROM tasks WHERE id = ?",
        (task.id,),
    )
    assert tuple(row) == (
        "running", "w2", 2, T0_US + 41 * S, T0_US + 11 * S, T0_US + 11 * S, 2, T0_US,
    )  # fmt: skip
    [event] = store.events(task_id=task.id, kind="task.reclaimed")
    assert event.ts == datetime(2026, 11, 23, 9, 0, 11, tzinfo=UTC)
    assert event.attrs == {"previous_owner": "w1", "previous_epoch": 1, "worker": "w2", "epoch": 2}


def test_claims_scoped_to_a_trace_take_only_that_goals_tasks(store: Store) -> None:
    """``trace_id`` restricts ``claim`` and ``claim_many`` to one goal's tree, even when
    another goal's task has a higher priority."""
    goal_a = store.create_task("goal a", priority=10)
    goal_b = store.create_task("goal b", priority=90)
    kid_a = store.create_task("kid a", priority=20, parent_id=goal_a.id)
    first = store.claim("w", trace_id=goal_a.trace_id)
    assert first is not None
    assert first.id == kid_a.id
    assert [t.id for t in store.claim_many("w", 5, trace_id=goal_a.trace_id)] == [goal_a.id]
    assert store.claim("w", trace_id=goal_a.trace_id) is None
    assert store.claim_many("w", 5, trace_id=goal_a.trace_id) == []
    last = store.claim("w")
    assert last is not None
    assert last.id == goal_b.id


@pytest.mark.parametrize(
    ("waited_us", "winner"),
    [(3_000 * S - 1, "new high"), (3_000 * S, "old low")],
)
def test_aging_adds_one_priority_point_per_aging_s_waited(
    store: Store, clock: FakeClock, waited_us: int, winner: str
) -> None:
    """Effective priority = priority + waited / aging_s. With aging_s = 60, a priority-10
    task that waited 3000 s scores 10 + 3000/60 = 60, tying a fresh priority-60 task (the
    older then goes first); 1 µs less scores 59.99999998 and loses."""
    store.create_task("old low", priority=10)
    clock.advance(microseconds=waited_us)
    store.create_task("new high", priority=60)
    claimed = store.claim("w", aging_s=60)
    assert claimed is not None
    assert claimed.title == winner


def test_expiring_dead_workers_leases_makes_their_tasks_claimable_now(
    store: Store, clock: FakeClock
) -> None:
    """``expire_leases`` (the fleet's dead-worker recovery, and its last act on a failing
    disk) sets the lease expiry of exactly the named owners' running tasks to 0 and counts
    them; their tasks are reclaimable at once, with no time passing, under a new epoch; other
    owners' leases are untouched, and no owners is a no-op."""
    a1 = _running(store, "a1", worker="dead-1")
    a2 = _running(store, "a2", worker="dead-1")
    b = _running(store, "b", worker="dead-2")
    alive = _running(store, "alive", worker="alive")
    held = ("running", T0_US + 60 * S)  # _running claims for the default 60 s

    def states() -> dict[str, tuple[Any, ...]]:
        return {
            r["id"]: (r["status"], r["lease_expires_us"])
            for r in store.query("SELECT id, status, lease_expires_us FROM tasks")
        }

    assert store.expire_leases([]) == 0
    assert states() == {a1: held, a2: held, b: held, alive: held}
    assert store.claim("rescuer") is None
    # any iterable of names; a name that holds nothing is harmless
    assert store.expire_leases(n for n in ("dead-1", "dead-2", "never-ran")) == 3
    expired = ("running", 0)
    assert states() == {a1: expired, a2: expired, b: expired, alive: held}
    assert _lease_row(store, a1)[:2] == ("dead-1", 1)  # expired, not yet taken over
    rescued = store.claim_many("rescuer", 10)  # the clock has not moved
    assert [(t.id, t.lease) for t in rescued] == [
        (a1, Lease(a1, "rescuer", 2)),
        (a2, Lease(a2, "rescuer", 2)),
        (b, Lease(b, "rescuer", 2)),
    ]
    assert [e.attrs["previous_owner"] for e in store.events(kind="task.reclaimed")] == [
        "dead-1", "dead-1", "dead-2",
    ]  # fmt: skip
    assert store.expire_leases(["alive"]) == 1
    assert states()[alive] == expired


async def test_a_stale_turn_in_a_bulk_commit_is_refused_alone_in_bulk(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stale turn among a group commit's turns is refused with the exact ``LeaseLost``
    message, inside the bulk write: the batch does not fall back to one turn at a time."""
    a, b = _running(store, "a"), _running(store, "b")
    alone: list[str] = []
    apply_turn = store.apply_turn

    def spy(turn: TurnWrite) -> None:
        alone.append(turn.task_id)
        apply_turn(turn)

    monkeypatch.setattr(store, "apply_turn", spy)
    outcomes = await asyncio.gather(
        store.write_turn(_turn(store, a, 1)),
        store.write_turn(_turn(store, b, 1, worker="w9")),  # b is w1's: w9's lease is stale
        return_exceptions=True,
    )
    assert outcomes[0] is None
    assert isinstance(outcomes[1], LeaseLost)
    assert str(outcomes[1]) == (
        f"task {b} is no longer running under w9's lease (epoch 1):"
        " a newer claim or a status change superseded it"
    )
    assert alone == []
    assert [c.turn for c in store.checkpoints(a)] == [1]
    assert store.checkpoints(b) == []
    assert (store.get_task(a).tokens_in, store.get_task(b).tokens_in) == (10, 0)


async def test_bulk_turns_record_a_sign_of_life_only_under_a_lease(
    store: Store, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a bulk commit 7 s after the claims, a turn under a lease sets its task's heartbeat
    to now (t0 + 7 s); a turn without one leaves it at the claim (t0). Neither touches the
    lease's expiry (t0 + 60 s)."""
    a, b = _running(store, "a"), _running(store, "b")
    clock.advance(7)

    def one_by_one(turn: TurnWrite) -> None:
        raise AssertionError(f"turn of {turn.task_id} written alone, not in bulk")

    monkeypatch.setattr(store, "apply_turn", one_by_one)
    await asyncio.gather(
        store.write_turn(_turn(store, a, 1)),
        store.write_turn(dataclasses.replace(_turn(store, b, 1), lease=None)),
    )
    assert _lease_row(store, a) == ("w1", 1, T0_US + 60 * S, T0_US + 7 * S)
    assert _lease_row(store, b) == ("w1", 1, T0_US + 60 * S, T0_US)
    assert (store.get_task(a).tokens_in, store.get_task(b).tokens_in) == (10, 10)


def test_a_tasks_ancestors_are_read_once_per_store(db_path: Path, clock: FakeClock) -> None:
    """Roll-ups use the ancestors cached when the task was created; a store opened later
    (another process) walks the tree once per task, then reuses it, and still rolls usage up
    to every ancestor. SQLite's statement trace counts the recursive walks."""
    with open_store(db_path, clock=clock) as first:
        root = first.create_task("root")
        child = first.create_task("child", parent_id=root.id)
        grand = first.create_task("grandchild", parent_id=child.id)
        walks: list[str] = []
        first._conn.set_trace_callback(walks.append)
        first.add_usage(grand.id, 1, 0, 0.0)
        first.add_usage(grand.id, 1, 0, 0.0)
        assert [s for s in walks if "recursive" in s.lower()] == []
    with open_store(db_path, clock=clock) as second:
        walks = []
        second._conn.set_trace_callback(walks.append)
        second.add_usage(grand.id, 100, 10, 0.5)
        second.add_usage(grand.id, 100, 10, 0.5)
        assert len([s for s in walks if "recursive" in s.lower()]) == 1
        # 1 + 1 + 100 + 100 = 202 tokens in, 10 + 10 = 20 out, 0.5 + 0.5 = 1.0 USD
        got = [second.get_task(t.id) for t in (root, child, grand)]
        assert [(t.tree_tokens_in, t.tree_tokens_out) for t in got] == [(202, 20)] * 3
        assert [t.tree_cost_usd for t in got] == [1.0] * 3
        assert [t.tokens_in for t in got] == [0, 0, 202]


@pytest.mark.parametrize(
    ("synchronous", "on_the_loop"), [("FULL", False), ("NORMAL", False), ("OFF", True)]
)
async def test_a_commit_leaves_the_event_loop_only_when_it_can_wait_on_the_disk(
    tmp_path: Path, synchronous: Literal["FULL", "NORMAL", "OFF"], on_the_loop: bool
) -> None:
    """A group commit that may wait for the disk runs in a worker thread, so the event loop
    serves other agents meanwhile. With ``synchronous=OFF`` SQLite never waits (a trial's
    throwaway fleet): the commit runs on the loop's own thread, where the hand-off would cost
    more than the commit itself; but not where an event sink, which may be slow, gets the
    commit's events."""
    ran_on: list[int] = []
    with open_store(tmp_path / "fleet.db", synchronous=synchronous) as store:
        await store.write(lambda: ran_on.append(threading.get_ident()))
        store.sinks.append(LogSink())
        await store.write(lambda: ran_on.append(threading.get_ident()))
    loop_thread = threading.get_ident()
    assert [t == loop_thread for t in ran_on] == [on_the_loop, False]
