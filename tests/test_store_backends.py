"""What each backend adds under the one interface: concurrent workers on one database, work
wake-ups, migrations that two workers start at once, and the errors of a server database.

Tests marked ``both_backends`` run on SQLite and on a throwaway PostgreSQL cluster.
"""

from __future__ import annotations

import asyncio
import threading
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from fleetlab.errors import SchemaError, UserError
from fleetlab.models.sim import SimModel
from fleetlab.orchestrator import Fleet, FleetConfig, Goal, submit_goals
from fleetlab.store import Store, open_store
from fleetlab.store.postgres.cluster import PASSWORD_ROLE, TempCluster
from fleetlab.store.postgres.schema import SCHEMA_VERSION as PG_SCHEMA_VERSION


@pytest.mark.both_backends
def test_two_workers_claiming_at_once_share_the_work_without_overlap(store: Store) -> None:
    """Two stores on one database (two worker processes' connections) claim from 40 queued
    tasks in parallel until none is left: every task is claimed exactly once, at epoch 1."""
    ids = {store.create_task(f"goal {i}", priority=i % 7).id for i in range(40)}
    other = store.reopen()
    claimed: dict[str, list[tuple[str, int]]] = {"a": [], "b": []}
    start = threading.Barrier(2)

    def work(name: str, s: Store) -> None:
        start.wait()
        while batch := s.claim_many(name, 3):
            claimed[name] += [(t.id, t.lease_epoch) for t in batch]

    threads = [
        threading.Thread(target=work, args=("a", store)),
        threading.Thread(target=work, args=("b", other)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    other.close()
    got = [task for name in claimed for task, _ in claimed[name]]
    assert sorted(got) == sorted(ids)  # each exactly once, none lost
    assert {epoch for name in claimed for _, epoch in claimed[name]} == {1}
    assert {t.lease_owner for t in store.tasks()} <= {"a", "b"}


def test_sqlite_cannot_push_work_so_fleets_poll() -> None:
    with open_store(":memory:") as s:
        assert s.listen_for_work(lambda: None) is None


@pytest.fixture
def pg_url(pg_cluster: TempCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.chdir(tmp_path)  # a fleet on a server keeps its workspaces where it runs
    return pg_cluster.create_database()


@pytest.fixture(scope="module")
def password_role(pg_cluster: TempCluster) -> None:
    """``PASSWORD_ROLE`` logs in only with the password "right-horse"."""
    pg_cluster.add_password_role("right-horse")


def _waits_for(flag: threading.Event, seconds: float) -> bool:
    return flag.wait(seconds)


def test_committed_work_wakes_a_listening_worker_and_a_rollback_does_not(pg_url: str) -> None:
    """A worker listening on one connection is woken by a task another worker commits; a
    spawn whose transaction rolls back wakes nobody (NOTIFY is delivered on commit)."""
    with open_store(pg_url) as listener, open_store(pg_url) as producer:
        woken = threading.Event()
        stop = listener.listen_for_work(woken.set)
        assert stop is not None
        try:
            time.sleep(0.2)
            with pytest.raises(RuntimeError), producer.tx():
                producer.create_task("never committed", priority=5)
                raise RuntimeError("abort")
            assert not _waits_for(woken, 1.5)
            producer.create_task("committed", priority=5)
            assert _waits_for(woken, 10)
        finally:
            stop()
        assert [t.title for t in producer.tasks()] == ["committed"]


def test_workers_starting_together_migrate_once(pg_url: str) -> None:
    """Six workers open one empty database at the same instant: the schema is created once
    (the advisory lock), nobody fails, and each sees the current version."""
    start = threading.Barrier(6)
    results: list[object] = []

    def open_one() -> None:
        start.wait()
        try:
            with open_store(pg_url) as s:
                results.append(s.schema_version)
        except Exception as exc:  # collected: the assertion below shows it
            results.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert results == [PG_SCHEMA_VERSION] * 6
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute("SELECT key, value FROM meta").fetchall()
    assert rows == [("schema_version", str(PG_SCHEMA_VERSION))]


def test_a_newer_schema_is_refused_and_left_as_it_was(pg_url: str) -> None:
    open_store(pg_url).close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(SchemaError) as refused:
        open_store(pg_url)
    assert "v99" in str(refused.value)
    assert "upgrade fleetlab" in str(refused.value)
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT value FROM meta").fetchall() == [("99",)]
        assert conn.execute("SELECT COUNT(*) FROM tasks").fetchone() == (0,)


def test_a_database_of_something_else_is_refused_untouched(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER)")
    with pytest.raises(SchemaError, match="not a fleetlab database"):
        open_store(pg_url)
    with psycopg.connect(pg_url) as conn:
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchall()
    assert tables == [("invoices",)]


def _with_user(url: str, user: str, password: str) -> str:
    parts = urllib.parse.urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{user}:{urllib.parse.quote(password, safe='')}@{host}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda url: _with_user(url, PASSWORD_ROLE, "wrong-battery"), id="password"),
        pytest.param(
            lambda url: "postgresql://u:wrong-battery@127.0.0.1:1/fleet", id="unreachable"
        ),
        pytest.param(
            lambda url: url.rsplit("/", 1)[0] + "/no_such_db?password=wrong-battery",
            id="no-database",
        ),
    ],
)
def test_connection_failures_are_one_line_without_the_password(
    password_role: None, pg_url: str, make: Callable[[str], str]
) -> None:
    with pytest.raises(UserError) as failed:
        open_store(make(pg_url))
    text = str(failed.value)
    assert "\n" not in text
    assert "wrong-battery" not in text
    assert "cannot use PostgreSQL at" in text
    # The right password opens it.
    with open_store(_with_user(pg_url, PASSWORD_ROLE, "right-horse")) as s:
        assert "right-horse" not in s.location
        assert s.schema_version == PG_SCHEMA_VERSION


async def test_an_idle_fleet_on_postgresql_starts_new_work_at_once(pg_url: str) -> None:
    """An idle fleet whose tick is a minute starts a goal another worker commits within
    seconds: the commit's NOTIFY wakes it, it does not wait for its tick."""
    with open_store(pg_url) as store, open_store(pg_url) as other:
        config = FleetConfig(concurrency=1, poll_s=60.0, pushed_poll_s=60.0)
        fleet = Fleet(store, SimModel.from_spec("instant", seed=1), config)
        runner = asyncio.create_task(fleet.run())
        await asyncio.sleep(1.0)  # the fleet found nothing and waits on its 60 s tick
        [goal] = submit_goals(other, [Goal(task="core:rename-readme")])
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 15
        while other.get_task(goal.id).status == "queued":
            assert loop.time() < deadline, "the fleet waited for its tick"
            await asyncio.sleep(0.05)
        fleet.stop()
        await runner


def test_two_schemas_of_one_database_are_two_fleets(pg_url: str) -> None:
    """``?schema=NAME``: each store's tables live in its own schema (created on open), so
    neither sees the other's tasks nor wakes the other's fleet; discard() drops it."""
    a = open_store(pg_url + "?schema=fleet_a")
    b = open_store(pg_url + "?schema=fleet_b")
    try:
        a.create_task("in a")
        b.create_task("in b")
        b.create_task("also in b")
        assert [t.title for t in a.tasks()] == ["in a"]
        assert sorted(t.title for t in b.tasks()) == ["also in b", "in b"]
        assert "schema=fleet_a" in a.location
        with a.reopen() as again:  # its url keeps the schema
            assert [t.title for t in again.tasks()] == ["in a"]
        woke = threading.Event()
        stop = a.listen_for_work(woke.set)
        assert stop is not None
        try:
            b.create_task("wakes only b's fleets")
            assert not _waits_for(woke, 1.0)
            a.create_task("wakes a's")
            assert _waits_for(woke, 10.0)
        finally:
            stop()
    finally:
        a.close()
        b.discard()
    with psycopg.connect(pg_url) as conn:
        schemas = {
            r[0] for r in conn.execute("SELECT schema_name FROM information_schema.schemata")
        }
        public = conn.execute(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()
    assert "fleet_a" in schemas
    assert "fleet_b" not in schemas
    assert public == (0,)  # nothing went to the default schema
    with open_store(pg_url + "?schema=fleet_a", fresh=True) as fresh:
        assert fresh.tasks() == []  # fresh: whatever was there is dropped first


def test_discarding_a_store_without_a_schema_of_its_own_keeps_its_data(pg_url: str) -> None:
    with open_store(pg_url) as s:
        s.create_task("stays")
        s.discard()
    with open_store(pg_url) as s:
        assert [t.title for t in s.tasks()] == ["stays"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("?schema=Fleet", "bad schema='Fleet'"),
        ("?schema=1fleet", "bad schema='1fleet'"),
        ("?schema=pg_fleet", "bad schema='pg_fleet'"),
        ("?schema=a;drop", "bad schema='a;drop'"),
        ("?schema=" + "a" * 64, "bad schema="),
        ("?schema=a&schema=b", "names schema= 2 times"),
    ],
)
def test_a_bad_schema_name_is_one_line(pg_url: str, query: str, expected: str) -> None:
    with pytest.raises(UserError) as failed:
        open_store(pg_url + query)
    assert expected in str(failed.value)
    assert "\n" not in str(failed.value)


@pytest.mark.both_backends
def test_percent_signs_and_placeholders_mean_the_same_on_both_engines(store: Store) -> None:
    """The portable SQL's ``?`` and a literal ``%`` (modulo, LIKE patterns), with and
    without parameters."""
    store.create_task("100% done", priority=7)
    assert store.query("SELECT 17 % 5")[0][0] == 2
    assert store.query("SELECT ? % 5", (17,))[0][0] == 2
    assert [r[0] for r in store.query("SELECT title FROM tasks WHERE title LIKE ?", ("1%",))] == [
        "100% done"
    ]
    assert store.query("SELECT priority % ? FROM tasks WHERE title LIKE '100%'", (4,))[0][0] == 3
