"""``fleetlab db copy`` and ``fleetlab workers``.

Oracles are independent of the commands: row counts read straight from the SQLite file
(``sqlite3``) and from PostgreSQL (``psycopg``), and workers written with known hosts and
heartbeats through the store (a FakeClock sets how old each beat is).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from fleetlab.cli import _db, main
from fleetlab.clock import FakeClock, SystemClock, parse_week
from fleetlab.errors import StoreError
from fleetlab.simulate import simulate
from fleetlab.store import open_store
from fleetlab.store.postgres.cluster import PASSWORD_ROLE, TempCluster

TABLES = (
    "tasks", "events", "checkpoints", "learner_arms", "learner_updates", "learner_seeds",
    "schedules", "workers",
)  # fmt: skip


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def sqlite_fleet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A simulated day of a fleet (decomposition, the learner, a worker) in SQLite."""
    path = tmp_path_factory.mktemp("cli-db") / "fleet.db"
    start = parse_week("2026-W47").start
    asyncio.run(
        simulate(
            lambda clock: open_store(path, clock=clock), start, days=1, tasks_per_day=8, seed=2
        )
    )
    return path


def _sqlite_counts(path: Path) -> dict[str, int]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in TABLES}


def _sqlite_by_status(path: Path) -> dict[str, int]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return dict(conn.execute("SELECT status, COUNT(*) FROM tasks GROUP BY status"))


def _pg_counts(db: str) -> dict[str, int]:
    with psycopg.connect(db) as conn:
        return {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in TABLES}  # type: ignore[index]


def _verified_lines(out: str) -> dict[str, int]:
    """``tasks   1,234 rows  verified`` lines -> {table: rows}."""
    found = re.findall(r"^(\w+)\s+([\d,]+) rows\s+verified$", out, re.MULTILINE)
    return {name: int(n.replace(",", "")) for name, n in found}


# --- db copy --------------------------------------------------------------------------


def test_copy_sqlite_to_postgresql_then_status_is_the_same(
    sqlite_fleet: Path, pg_cluster: TempCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    want = _sqlite_counts(sqlite_fleet)
    assert want["tasks"] > 8
    assert want["events"] > 0
    assert want["workers"] == 1
    db = pg_cluster.create_database()

    code, out, err = run(capsys, "db", "copy", str(sqlite_fleet), db)

    assert (code, err) == (0, "")
    assert _verified_lines(out) == want  # one verified line per table, the source's counts
    assert len(out.strip().splitlines()) == len(TABLES) + 1  # and "copied SRC -> DST"
    assert _pg_counts(db) == want

    statuses = []
    for where in (str(sqlite_fleet), db):
        code, out, err = run(capsys, "--db", where, "status", "--json")
        assert (code, err) == (0, "")
        statuses.append(json.loads(out))
    for status in statuses:  # the instant each was read at: a second apart, maybe
        assert status.pop("as_of").endswith("Z")
    assert statuses[0] == statuses[1]
    by_status = _sqlite_by_status(sqlite_fleet)
    on_pg = statuses[1]
    assert on_pg["spawned"] == sum(by_status.values())
    assert on_pg["completed"] == by_status.get("completed", 0)
    assert on_pg["failed"] == by_status.get("failed", 0)


def test_copy_back_to_a_new_sqlite_file(
    sqlite_fleet: Path,
    pg_cluster: TempCluster,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    db = pg_cluster.create_database()
    assert run(capsys, "db", "copy", "--quiet", str(sqlite_fleet), db)[0] == 0
    back = tmp_path / "back.db"
    code, out, err = run(capsys, "db", "copy", db, str(back))
    assert (code, err) == (0, "")
    assert _sqlite_counts(back) == _sqlite_counts(sqlite_fleet) == _verified_lines(out)


def test_copy_into_a_non_empty_database_is_refused(
    sqlite_fleet: Path, pg_cluster: TempCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    db = pg_cluster.create_database()
    with open_store(db) as store:
        store.create_task("already here")
    before = _pg_counts(db)

    code, out, err = run(capsys, "db", "copy", str(sqlite_fleet), db)

    assert code == 2
    assert out == ""
    [line] = err.strip().splitlines()
    assert line.startswith("error: ")
    assert "already holds 1 tasks" in line
    assert _pg_counts(db) == before  # nothing written


def test_copy_from_a_missing_file_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing, dst = tmp_path / "missing.db", tmp_path / "dst.db"
    code, out, err = run(capsys, "db", "copy", str(missing), str(dst))
    assert (code, out) == (2, "")
    assert len(err.strip().splitlines()) == 1
    assert "no fleet database" in err
    assert not missing.exists()
    assert not dst.exists()


def test_copy_into_the_same_file_is_refused(
    sqlite_fleet: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _sqlite_counts(sqlite_fleet)
    code, out, err = run(capsys, "db", "copy", str(sqlite_fleet), str(sqlite_fleet))
    assert (code, out) == (2, "")
    assert len(err.strip().splitlines()) == 1
    assert _sqlite_counts(sqlite_fleet) == before


def test_a_copy_that_fails_leaves_no_new_file(
    sqlite_fleet: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The copy fails after DST was created (a verification failure): the new file and its
    WAL are removed again, and the failure is one line (exit 1)."""
    dst = tmp_path / "new.db"

    def fails(src: Any, into: Any, **_: Any) -> None:
        assert dst.exists()
        raise StoreError("copy did not verify: nothing was kept")

    monkeypatch.setattr(_db, "copy_fleet", fails)
    code, out, err = run(capsys, "db", "copy", str(sqlite_fleet), str(dst))
    assert (code, out) == (1, "")
    assert err.strip().splitlines() == ["failed: copy did not verify: nothing was kept"]
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_copy_never_prints_a_password(
    sqlite_fleet: Path, pg_cluster: TempCluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Short passwords (shorter than what redaction registers), so not one is printed at all:
    every place shows the URL with its password masked."""
    password = "Zq7x"
    src = pg_cluster.password_url(password)
    dst = pg_cluster.password_url(password)
    outputs = []

    code, out, err = run(capsys, "db", "copy", str(sqlite_fleet), src)
    assert code == 0, err
    outputs.append(out + err)
    assert f"{PASSWORD_ROLE}:***@" in out
    code, out, err = run(capsys, "db", "copy", src, dst)  # password in both
    assert code == 0, err
    outputs.append(out + err)
    code, out, err = run(capsys, "db", "copy", src, dst)  # refused: names DST
    assert code == 2
    outputs.append(out + err)
    assert f"{PASSWORD_ROLE}:***@" in err
    wrong = dst.replace(f":{password}@", ":Wr0n@")
    code, out, err = run(capsys, "db", "copy", str(sqlite_fleet), wrong)  # cannot log in
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    outputs.append(out + err)
    code, out, err = run(capsys, "--db", src, "workers", "--all")
    assert code == 0
    outputs.append(out + err)

    for text in outputs:
        assert password not in text
        assert "Wr0n" not in text
    assert _pg_counts(dst) == _sqlite_counts(sqlite_fleet)


# --- workers --------------------------------------------------------------------------


@pytest.mark.both_backends
def test_workers_states_hosts_and_running_tasks(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    now = SystemClock().now()
    with open_store(db_url) as live:  # beats now
        live.register_worker("alpha-host:101:aaaaaa", "alpha-host", 101)
        task = live.create_task("a goal")
        claimed = live.claim_many("alpha-host:101:aaaaaa", 5, lease_s=300)
        assert [t.id for t in claimed] == [task.id]
        live.register_worker("gamma-host:303:cccccc", "gamma-host", 303)
        live.worker_stopped("gamma-host:303:cccccc")
    silent_clock = FakeClock(now - timedelta(hours=1))
    with open_store(db_url, clock=silent_clock) as old:  # last beat an hour ago
        old.register_worker("beta-host:202:bbbbbb", "beta-host", 202)
    with open_store(db_url, clock=FakeClock(now - timedelta(days=3))) as older:
        older.register_worker("delta-host:404:dddddd", "delta-host", 404)

    code, out, err = run(capsys, "--db", db_url, "workers", "--json")
    assert (code, err) == (0, "")
    rows = {r["host"]: r for r in json.loads(out)}
    assert set(rows) == {"alpha-host", "beta-host", "gamma-host"}  # delta: > 24 h ago
    assert {h: r["state"] for h, r in rows.items()} == {
        "alpha-host": "live",
        "beta-host": "silent",
        "gamma-host": "stopped",
    }
    assert {h: (r["pid"], r["running"]) for h, r in rows.items()} == {
        "alpha-host": (101, 1),
        "beta-host": (202, 0),
        "gamma-host": (303, 0),
    }
    assert rows["alpha-host"]["id"] == "alpha-host:101:aaaaaa"
    assert 3600 <= rows["beta-host"]["heartbeat_age_s"] < 3600 + 120

    code, out, err = run(capsys, "workers", "--db", db_url)  # the table
    assert (code, err) == (0, "")
    lines = {host: next(line for line in out.splitlines() if host in line) for host in rows}
    assert re.search(r"\b101\b.*\b\d+ s ago\b.*\b1\b.*\blive\b", lines["alpha-host"])
    assert re.search(r"\b202\b.*\b60 min ago\b.*\b0\b.*\bsilent\b", lines["beta-host"])
    assert re.search(r"\b303\b.*\bstopped\b", lines["gamma-host"])
    assert "delta-host" not in out

    code, out, _ = run(capsys, "--db", db_url, "workers", "--all", "--json")
    assert code == 0
    delta = next(r for r in json.loads(out) if r["host"] == "delta-host")
    assert (delta["state"], delta["pid"]) == ("silent", 404)

    # Against a two-hour lease, the beat of an hour ago is live.
    code, out, _ = run(capsys, "--db", db_url, "workers", "--json", "--lease", "7200")
    assert {r["host"]: r["state"] for r in json.loads(out)}["beta-host"] == "live"


@pytest.mark.both_backends
def test_no_workers_is_one_line_naming_the_location(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with open_store(db_url) as store:
        location = store.location
    code, out, err = run(capsys, "--db", db_url, "workers")
    assert (code, err) == (0, "")
    shown = location if "://" in location else str(Path(location).resolve())
    assert out.strip().splitlines() == [f"no worker has run against {shown} (from --db)"]
    code, out, _ = run(capsys, "--db", db_url, "workers", "--json")
    assert json.loads(out) == []


def test_db_info(sqlite_fleet: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "db", "info", "--db", str(sqlite_fleet), "--json")
    assert (code, err) == (0, "")
    info: dict[str, Any] = json.loads(out)
    assert info["backend"] == "sqlite"
    assert info["tasks"] == _sqlite_counts(sqlite_fleet)["tasks"]
    assert info["by_status"] == _sqlite_by_status(sqlite_fleet)
