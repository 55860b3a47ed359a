"""A damaged database is refused by every command (issue 12, point 4).

A real fleet db gets one b-tree page of its ``events`` or ``tasks`` table overwritten; the
oracle is SQLite's own ``PRAGMA integrity_check`` on a copy. Every command must then print
one line naming the file and what to do, exit non-zero (2: the person must act) and write
nothing. Before, ``status``, ``tasks`` and ``digest`` exited 0 with numbers that looked
fine, and ``fleet run`` failed each new task with an internal error and exited 0.
"""

from __future__ import annotations

import random
import shutil
import sqlite3
from pathlib import Path

import pytest

import fleetlab.store
from fleetlab.cli import main
from fleetlab.errors import CorruptDatabase, DiskFull
from fleetlab.store import open_store
from fleetlab.store.sqlite import storage_error
from tests.helpers.populate import populate
from tests.helpers.refusals import one_error_line, run_cli, snapshot


def integrity_report(db: Path) -> str:
    """What ``PRAGMA integrity_check`` says about ``db`` (run on a copy, so the file under
    test is never opened by anything but the command)."""
    copy = db.parent.parent / "oracle" / db.name
    copy.parent.mkdir(exist_ok=True)
    shutil.copyfile(db, copy)
    conn = sqlite3.connect(copy)
    try:
        return "\n".join(str(r[0]) for r in conn.execute("PRAGMA integrity_check"))
    except sqlite3.DatabaseError as exc:
        return f"raised: {exc}"
    finally:
        conn.close()
        shutil.rmtree(copy.parent)


def leaf_pages(db: Path, table: str) -> list[int]:
    conn = sqlite3.connect(db)
    try:
        return [
            r[0]
            for r in conn.execute(
                "SELECT pageno FROM dbstat WHERE name = ? AND pagetype = 'leaf' ORDER BY pageno",
                (table,),
            )
        ]
    finally:
        conn.close()


def damage(db: Path, table: str, how: str) -> None:
    """Overwrite one leaf page of ``table``: all of it, or its cells (header kept)."""
    pages = leaf_pages(db, table)
    assert len(pages) >= 3, pages  # a page in the middle of the table, not its last
    page = pages[len(pages) // 2]
    size = 4096
    garbage = random.Random(page).randbytes(size)
    start = 0 if how == "page" else 12  # a leaf page's header is 8 bytes, 12 with padding
    data = bytearray(db.read_bytes())
    offset = (page - 1) * size
    data[offset + start : offset + size] = garbage[start:]
    db.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def populated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One populated fleet db (80 goals), built once: each test damages a copy of it."""
    db = tmp_path_factory.mktemp("populated") / "fleet.db"
    populate(str(db), roots=80)
    return db


def healthy_copy(populated: Path, folder: Path) -> Path:
    """``folder/fleet.db``, a fresh copy of the populated db (the only file in ``folder``)."""
    folder.mkdir()
    db = folder / "fleet.db"
    shutil.copyfile(populated, db)
    return db


@pytest.fixture(
    params=[("events", "page"), ("tasks", "page"), ("events", "cells")],
    ids=["events page", "tasks page", "events cells"],
)
def damaged(request: pytest.FixtureRequest, tmp_path: Path, populated: Path) -> tuple[Path, str]:
    """``tmp_path/fleet/fleet.db``, a populated fleet db with one page damaged, and the id
    of one of its tasks (read before the damage)."""
    folder = tmp_path / "fleet"
    db = healthy_copy(populated, folder)
    assert integrity_report(db) == "ok"
    with open_store(db) as store:
        task = store.tasks(limit=1)[0].id
    assert sorted(p.name for p in folder.iterdir()) == ["fleet.db"]  # no WAL left
    table, how = request.param
    damage(db, table, how)
    assert integrity_report(db) != "ok"  # the oracle sees the damage
    return db, task


COMMANDS = {
    "status": ["status"],
    "status --week": ["status", "--week", "2026-W47"],
    "tasks": ["tasks", "--limit", "500"],
    "trace": ["trace", "TASK"],
    "submit": ["submit", "one more goal"],
    "cancel": ["cancel", "TASK"],
    "fleet run": ["fleet", "run", "--until-idle", "--quiet", "--model", "sim:instant"],
    "run-task": ["run-task", "core:rename-readme", "--model", "sim:instant"],
    "schedule list": ["schedule", "list"],
    "digest": ["digest", "--week", "2026-W47", "--out", "reports"],
}


@pytest.mark.parametrize("argv", list(COMMANDS.values()), ids=list(COMMANDS))
def test_every_command_refuses_a_damaged_db(
    damaged: tuple[Path, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
) -> None:
    db, task = damaged
    folder = db.parent
    monkeypatch.chdir(folder)
    before = snapshot(folder)
    code = main(["--db", str(db), *(task if a == "TASK" else a for a in argv)])
    out, err = capsys.readouterr()
    assert code == 2
    line = one_error_line(err, out)
    assert line.startswith(f"error: db '{db}' is damaged")
    assert ".recover" in line
    assert snapshot(folder) == before  # the db byte for byte; no WAL, workspace or report


#: The real process needs one kind of damage: every kind is refused in process above.
@pytest.mark.parametrize("damaged", [("events", "page")], ids=["events page"], indirect=True)
@pytest.mark.parametrize("command", ["status", "fleet run", "digest"])
def test_the_real_command_refuses_a_damaged_db(damaged: tuple[Path, str], command: str) -> None:
    folder = damaged[0].parent
    before = snapshot(folder)
    proc = run_cli(["--db", "fleet.db", *COMMANDS[command]], cwd=folder)
    assert proc.returncode == 2, proc.stderr
    assert "'fleet.db' is damaged" in one_error_line(proc.stderr, proc.stdout)
    assert snapshot(folder) == before


def test_store_refuses_a_damaged_db_and_names_it(damaged: tuple[Path, str]) -> None:
    db, _ = damaged
    before = db.read_bytes()
    with pytest.raises(CorruptDatabase) as caught:
        open_store(db)
    assert caught.value.path == str(db)
    assert "\n" not in str(caught.value)
    assert db.read_bytes() == before
    assert sorted(p.name for p in db.parent.iterdir()) == ["fleet.db"]


@pytest.fixture
def large(monkeypatch: pytest.MonkeyPatch) -> None:
    """As if every db were larger than the whole-file checks' size limits."""
    monkeypatch.setattr(fleetlab.store.sqlite, "QUICK_CHECK_MAX_BYTES", 0)
    monkeypatch.setattr(fleetlab.store.sqlite, "THOROUGH_CHECK_MAX_BYTES", 0)


@pytest.mark.usefixtures("large")
def test_damage_met_after_opening_is_one_line_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], populated: Path
) -> None:
    """Above the size limits only the cheap checks run at open; a command that then reads a
    damaged page still ends with the same one line, not a traceback."""
    folder = tmp_path / "fleet"
    db = healthy_copy(populated, folder)
    damage(db, "tasks", "page")
    assert integrity_report(db) != "ok"
    open_store(db).close()  # the cheap checks pass: the damage is inside a table
    before = snapshot(folder)
    code = main(["--db", str(db), "status"])  # counts every task row: meets the page
    out, err = capsys.readouterr()
    assert code == 2
    assert one_error_line(err, out).startswith(f"error: db '{db}' is damaged")
    assert snapshot(folder) == before


def test_a_healthy_db_opens_with_either_check(tmp_path: Path) -> None:
    db = tmp_path / "fleet.db"
    populate(str(db), roots=10)
    assert integrity_report(db) == "ok"
    for check in ("auto", "thorough"):
        with open_store(db, check=check) as store:  # type: ignore[arg-type]
            assert store.query("SELECT COUNT(*) FROM tasks")[0][0] > 0


def test_storage_errors_are_classified(tmp_path: Path, populated: Path) -> None:
    db = healthy_copy(populated, tmp_path / "fleet")
    damage(db, "events", "page")
    conn = sqlite3.connect(db)
    with pytest.raises(sqlite3.DatabaseError) as malformed:
        conn.execute("SELECT * FROM events").fetchall()
    conn.close()
    assert isinstance(storage_error(malformed.value, db), CorruptDatabase)

    small = sqlite3.connect(tmp_path / "small.db")
    small.execute("CREATE TABLE t (x)")
    small.execute("PRAGMA max_page_count = 3")  # SQLite's own "database or disk is full"
    with pytest.raises(sqlite3.OperationalError) as full:
        small.execute("INSERT INTO t VALUES (zeroblob(100000))")
    small.close()
    failure = storage_error(full.value, "x.db")
    assert isinstance(failure, DiskFull)
    assert str(failure) == "disk full writing 'x.db': free space and run again"

    enospc = storage_error(OSError(28, "No space left on device", "/w/a.txt"), "x.db")
    assert str(enospc) == "disk full writing '/w/a.txt': free space and run again"
    assert storage_error(ValueError("a bug"), "x.db") is None
    assert storage_error(sqlite3.OperationalError("no such table: x"), "x.db") is None
