"""``fleet run`` on a full disk ends with one clear line (issue 12, point 6).

Before: 266 lines of stderr and 13 tracebacks, and tasks left ``running`` under the dead
worker. Now: ``failed: disk full writing <db>: free space and run again``, exit 1, and once
space is freed nothing is stuck: ``status`` shows no task running for the dead worker and the
next ``fleet run`` finishes the work.

The real test fills a small tmpfs (it needs root to mount one; skipped otherwise). An
in-process test that always runs fills the database instead with SQLite's own page limit on
the fleet's connection, which fails writes with the same "database or disk is full".
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import fleetlab.cli._fleet
from fleetlab.cli import main
from fleetlab.clock import to_us
from fleetlab.store import Store, open_store
from tests.helpers.refusals import one_error_line, run_cli

GOALS = "".join(
    f'[[goals]]\ntask = "core:static-site"\npolicy = "always"\ninstance = {i}\n\n'
    for i in range(12)
)


def _mount(target: Path, size: str, *, remount: bool = False) -> None:
    options = f"remount,size={size}" if remount else f"size={size}"
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)],
        check=True,
        capture_output=True,
    )


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MB tmpfs mounted for the test (root only)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    try:
        _mount(disk, "1m")
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot mount a tmpfs here: {exc}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False, capture_output=True)


def running_rows(db: Path) -> list[tuple[Any, ...]]:
    with open_store(db) as store:
        return [
            tuple(r)
            for r in store.query("SELECT id, lease_owner FROM tasks WHERE status = 'running'")
        ]


def test_fleet_run_on_a_full_disk_is_one_line_and_leaves_nothing_running(
    small_disk: Path, tmp_path: Path
) -> None:
    db = small_disk / "fleet.db"
    goals = tmp_path / "goals.toml"
    goals.write_text(GOALS)
    assert run_cli(["--db", str(db), "submit", "--file", str(goals)], cwd=tmp_path).returncode == 0

    proc = run_cli(
        ["--db", str(db), "fleet", "run", "--until-idle", "--quiet", "--model", "sim:instant"],
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 1
    line = one_error_line(proc.stderr, proc.stdout)
    assert line == f"failed: disk full writing '{db}': free space and run again"
    assert os.statvfs(small_disk).f_bavail == 0  # the oracle: the disk really is full

    _mount(small_disk, "64m", remount=True)  # space freed
    status = run_cli(["--db", str(db), "status", "--json"], cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["running"] == 0  # none still counted for the dead worker
    again = run_cli(
        ["--db", str(db), "fleet", "run", "--until-idle", "--quiet", "--model", "sim:instant"],
        cwd=tmp_path,
        timeout=300,
    )
    assert "Traceback" not in again.stderr
    assert running_rows(db) == []
    final = json.loads(run_cli(["--db", str(db), "status", "--json"], cwd=tmp_path).stdout)
    assert final["in_flight"] == 0
    assert final["completed"] > 0
    # The full disk was nobody's fault: no task was failed for it, all of them finished.
    with sqlite3.connect(db) as conn:
        errors = [r[0] for r in conn.execute("SELECT error FROM tasks WHERE status = 'failed'")]
    assert not [e for e in errors if "disk" in (e or "") or "internal error" in (e or "")]


def test_a_full_database_stops_the_fleet_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "fleet.db"
    goals = tmp_path / "goals.toml"
    goals.write_text(GOALS)
    assert main(["--db", str(db), "submit", "--file", str(goals)]) == 0
    real_open = fleetlab.cli._fleet.open_store
    pages: list[int] = []

    def open_nearly_full(*args: Any, **kwargs: Any) -> Store:
        store = real_open(*args, **kwargs)
        conn = store._conn  # the writer: SQLite's page limit applies to one connection
        pages.append(int(conn.execute("PRAGMA page_count").fetchone()[0]))
        conn.execute(f"PRAGMA max_page_count = {pages[0] + 40}")
        return store

    monkeypatch.setattr(fleetlab.cli._fleet, "open_store", open_nearly_full)
    capsys.readouterr()
    code = main(
        ["--db", str(db), "fleet", "run", "--until-idle", "--quiet", "--model", "sim:instant"]
    )
    out, err = capsys.readouterr()
    assert code == 1
    assert one_error_line(err, out) == f"failed: disk full writing '{db}': free space and run again"
    with open_store(db) as store:
        leased = store.query(
            "SELECT COUNT(*) FROM tasks WHERE status = 'running' AND lease_expires_us > ?",
            [to_us(store.clock.now())],
        )[0][0]
    assert leased == 0  # this worker's leases were released: anything running is reclaimable
