from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from fleetlab.cli import _tasks, main
from fleetlab.clock import Clock, FakeClock, to_us
from fleetlab.errors import FleetlabError
from fleetlab.store import Store, open_store


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def populated(tmp_path: Path) -> Path:
    path = tmp_path / "fleet.db"
    subprocess.run(
        [sys.executable, "-m", "tests.helpers.populate", str(path)],
        check=True,
        cwd=Path(__file__).parents[1],
    )
    return path


def test_submit_prints_ids(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "f.db")
    code, out, _ = run(
        capsys,
        "--db",
        db,
        "submit",
        "rename a file",
        "--priority",
        "80",
        "--budget-usd",
        "0.5",
        "--json",
    )
    assert code == 0
    [ids] = json.loads(out)
    with open_store(db) as store:
        task = store.get_task(ids["task_id"])
    assert task.trace_id == ids["trace_id"]
    assert (task.priority, task.budget_usd, task.status) == (80, 0.5, "queued")


def test_db_from_environment(tmp_path: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("FLEETLAB_DB", str(tmp_path / "env.db"))
    assert run(capsys, "submit", "x")[0] == 0
    assert (tmp_path / "env.db").exists()


def test_status_json_matches_sql(
    populated: Path, capsys: pytest.CaptureFixture[str], cli_clock: FakeClock
) -> None:
    code, out, _ = run(capsys, "--db", str(populated), "status", "--json", "--stale-after", "1e9")
    assert code == 0
    data = json.loads(out)
    with open_store(populated) as store:
        sql = {
            r[0]: r[1] for r in store.query("SELECT status, COUNT(*) FROM tasks GROUP BY status")
        }
        total = store.query("SELECT COUNT(*) FROM tasks")[0][0]
    assert data["spawned"] == total
    for key in ("completed", "failed", "cancelled", "queued", "preempted", "running"):
        assert data[key] == sql.get(key, 0), key
    assert data["waiting_children"] == sql.get("waiting_children", 0)
    assert data["in_flight"] == total - data["completed"] - data["failed"] - data["cancelled"]
    assert data["stale"] == 0
    assert data["success_rate_finished"] == pytest.approx(
        data["completed"] / (data["completed"] + data["failed"])
    )


@pytest.fixture
def cli_clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """A fixed clock for the task commands: ``open_store`` (where they get their store, and
    with it the time) is handed this FakeClock instead of the machine's clock."""
    clock = FakeClock(datetime(2026, 11, 23, 9, 0, tzinfo=UTC))
    real = _tasks.open_store

    def with_clock(args: Any, clock_: Clock | None = None, **kw: Any) -> Store:
        return real(args, clock_ or clock, **kw)

    monkeypatch.setattr(_tasks, "open_store", with_clock)
    return clock


def test_stale_running_tasks_are_split_out(
    populated: Path, capsys: pytest.CaptureFixture[str], cli_clock: FakeClock
) -> None:
    """A running task whose heartbeat is older than ``--stale-after`` at the clock's now is
    stale, the others running. The populated fleet's running tasks beat from 2026-11-16 19:45Z
    to 2026-11-19 23:42Z."""
    with open_store(populated) as store:
        beats = [r[0] for r in store.query("SELECT heartbeat_us FROM tasks WHERE status='running'")]
    # Monday 23 November 09:00Z: every beat is days older than the default 300 s.
    _, out, _ = run(capsys, "--db", str(populated), "status", "--json")
    data = json.loads(out)
    assert len(beats) > 0
    assert (data["running"], data["stale"]) == (0, len(beats))
    # 20 November 12:00Z with --stale-after 2 days: the cutoff is 18 November 12:00Z.
    cli_clock.set(datetime(2026, 11, 20, 12, 0, tzinfo=UTC))
    cutoff = to_us(datetime(2026, 11, 18, 12, 0, tzinfo=UTC))
    stale = sum(beat < cutoff for beat in beats)
    assert 0 < stale < len(beats)  # the cutoff splits them
    _, out, _ = run(capsys, "--db", str(populated), "status", "--json", "--stale-after", "172800")
    data = json.loads(out)
    assert (data["running"], data["stale"]) == (len(beats) - stale, stale)


def test_status_says_the_instant_its_counts_are_of(
    populated: Path, capsys: pytest.CaptureFixture[str], cli_clock: FakeClock
) -> None:
    """Where tasks stand changes with time (a heartbeat goes stale): the counts say when."""
    cli_clock.set(datetime(2026, 11, 20, 12, 34, 56, tzinfo=UTC))
    _, out, _ = run(capsys, "--db", str(populated), "status", "--json")
    assert json.loads(out)["as_of"] == "2026-11-20T12:34:56Z"
    _, out, _ = run(capsys, "--db", str(populated), "status", "--week", "2026-W47")
    assert "fleet status, 2026-W47 (UTC), as of 2026-11-20 12:34 UTC" in out


def test_status_for_a_week_in_a_zone(populated: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    _, out, _ = run(
        capsys,
        "--db",
        str(populated),
        "status",
        "--week",
        "2026-W47",
        "--tz",
        "America/Los_Angeles",
        "--json",
    )
    data = json.loads(out)
    with open_store(populated) as store:
        # W47 in Los Angeles: Mon 16 Nov 08:00 UTC to Mon 23 Nov 08:00 UTC
        lo, hi = 1_794_816_000_000_000, 1_795_420_800_000_000
        n = store.query(
            "SELECT COUNT(*) FROM tasks WHERE created_us >= ? AND created_us < ?", (lo, hi)
        )
    assert data["spawned"] == n[0][0]
    assert data["window"] == "2026-W47 (America/Los_Angeles)"
    assert data["spawned"] == (
        data["completed"] + data["failed"] + data["cancelled"] + data["in_flight"]
    )


def test_tasks_and_trace(populated: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    _, out, _ = run(capsys, "--db", str(populated), "tasks", "--json", "--limit", "500")
    rows = json.loads(out)
    assert rows == sorted(rows, key=lambda r: r["created_at"], reverse=True)
    parent = next(r for r in rows if r["agents"] > 1)
    code, out, _ = run(capsys, "--db", str(populated), "trace", parent["trace_id"], "--json")
    assert code == 0
    tree = json.loads(out)
    assert tree["task_id"] == parent["id"]

    def agents(node: dict[str, Any]) -> int:  # the goal's own agent and every one below it
        return 1 + sum(agents(c) for c in node["children"])

    assert agents(tree) == parent["agents"]
    single = next(r for r in rows if r["parent_id"] is None and r["agents"] == 1)
    _, out, _ = run(capsys, "--db", str(populated), "trace", single["id"], "--json")
    assert json.loads(out)["children"] == []  # a goal done by one agent shows 1, not 0
    assert tree["events"][0]["kind"] == "task.spawned"
    child_cost = sum(c["cost_usd"] for c in tree["children"])
    assert tree["tree_cost_usd"] == pytest.approx(tree["cost_usd"] + child_cost)
    code, out, _ = run(capsys, "--db", str(populated), "trace", parent["id"][:6])
    assert code == 0
    assert "task.spawned" in out
    assert parent["id"] in out
    _, out, _ = run(capsys, "--db", str(populated), "tasks", "--status", "failed", "--json")
    assert {r["status"] for r in json.loads(out)} == {"failed"}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["status", "--week", "2026-W54"], "does not exist"),
        (["status", "--week", "48"], "malformed week"),
        (["status", "--week", "2026-W48", "--tz", "Mars/Base"], "unknown time zone"),
        (["submit", ""], "goal text is empty"),
        (["submit", "x", "--priority", "500"], "out of range"),
        (["submit", "x", "--priority", "high"], "not an integer"),
        (["trace", "deadbeef0000"], "no task or trace"),
        (["tasks", "--status", "exploded"], "unknown status"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_user_mistakes_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    db = tmp_path / "fleet.db"
    assert main(["--db", str(db), "submit", "existing goal"]) == 0
    before = db.read_bytes()
    capsys.readouterr()
    code, out, err = run(capsys, "--db", str(db), *argv)
    assert code == 2
    assert message in err
    assert "Traceback" not in err + out
    assert len(err.strip().splitlines()) <= 2  # one message (rich may wrap a long line once)
    assert db.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fleet.db"]


@pytest.mark.parametrize("kind", ["directory", "newer", "garbage"])
def test_unusable_db_is_one_line_via_the_real_command(tmp_path: Path, kind: str) -> None:
    db = tmp_path / "fleet.db"
    if kind == "directory":
        db.mkdir()
    elif kind == "garbage":
        db.write_bytes(b"not sqlite" * 50)
    else:
        import sqlite3

        conn = sqlite3.connect(db)
        conn.execute("PRAGMA user_version=99")
        conn.execute("CREATE TABLE x (y)")
        conn.commit()
        conn.close()
    before = db.read_bytes() if db.is_file() else None
    proc = subprocess.run(
        [sys.executable, "-m", "fleetlab.cli", "--db", str(db), "status"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error:")
    if before is not None:
        assert db.read_bytes() == before


def test_running_tasks_of_a_dead_worker_of_this_host_are_stale_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A fleet that died (a full disk, SIGKILL) leaves its tasks ``running`` with fresh
    heartbeats; ``status`` must not count them as running, since nothing runs them."""
    exited = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead = int(exited.stdout)
    with pytest.raises(ProcessLookupError):  # the oracle: that process is gone
        os.kill(dead, 0)
    host = socket.gethostname()
    db = tmp_path / "fleet.db"
    with open_store(db) as store:
        for worker in (f"{host}:{dead}:aaaaaa", f"{host}:{os.getpid()}:bbbbbb", f"far:{dead}:c"):
            store.create_task(f"goal of {worker}")
            claimed = store.claim(worker, lease_s=3600)
            assert claimed is not None
            assert claimed.lease_owner == worker
    code, out, _ = run(capsys, "--db", str(db), "status", "--json")
    data = json.loads(out)
    assert code == 0
    # alive here, and of another host (its heartbeat is fresh), are running; the dead one not
    assert (data["running"], data["stale"], data["in_flight"]) == (2, 1, 3)


def test_a_run_failure_is_one_line_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ``FleetlabError`` out of a command (here the digest's notebook failing) is one
    ``failed:`` line on stderr, exit 1, nothing on stdout and no traceback."""

    def failing_digest(**_: Any) -> None:
        raise FleetlabError("the digest notebook failed in cell 5: ValueError: boom")

    monkeypatch.setattr("fleetlab.digest.run_digest", failing_digest)
    code, out, err = run(capsys, "--db", str(tmp_path / "fleet.db"), "digest", "--week", "2026-W45")
    assert code == 1
    assert out == ""
    assert "Traceback" not in err
    assert err.strip().splitlines() == [
        "failed: the digest notebook failed in cell 5: ValueError: boom"
    ]


def test_ctrl_c_in_a_command_exits_130_without_a_traceback(
    populated: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C while a command runs (a ``KeyboardInterrupt`` out of its work) prints one line,
    ``interrupted``, and exits 130 (128 + SIGINT), leaving the db as it was."""
    before = populated.read_bytes()

    def interrupted(*_: Any, **__: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(_tasks, "fleet_status", interrupted)
    code, out, err = run(capsys, "--db", str(populated), "status")
    assert (code, out) == (130, "")
    assert err.strip().splitlines() == ["interrupted"]
    assert populated.read_bytes() == before


#: A ``fleetlab status`` whose count stops, once it has said so on stdout, until a signal comes.
_WAITS_FOR_SIGINT = """
import signal, sys, threading
import fleetlab.cli._tasks as tasks
from fleetlab.cli import main

signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal, even if ignored

def wait_here(*args, **kwargs):
    sys.__stdout__.write("counting\\n")
    sys.__stdout__.flush()
    threading.Event().wait()  # interrupted by SIGINT (the main thread gets it)

tasks.fleet_status = wait_here
sys.exit(main(sys.argv[1:]))
"""


def test_sigint_to_a_running_command_exits_130(populated: Path) -> None:
    """A real SIGINT, sent once the command is observed inside its work (it says so), ends
    it with exit 130 and the one line ``interrupted``, no traceback."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _WAITS_FOR_SIGINT, "--db", str(populated), "status"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parents[1],
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "counting\n"  # blocks until it is inside the command
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)  # a hang guard only
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert out == ""
    assert err.strip().splitlines() == ["interrupted"]


@pytest.mark.parametrize("argv", [["tasks", "--json", "--limit", "500"], ["status"]])
def test_a_reader_that_closed_stdout_ends_the_command_quietly(
    populated: Path, argv: list[str]
) -> None:
    """``fleetlab ... | head -c1``: when stdout's reader has gone (here the pipe's read end is
    closed before the command starts, so its first write fails), the command exits 0 with
    nothing on stderr: no traceback, no "Exception ignored" at exit."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "fleetlab.cli", "--db", str(populated), *argv],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
            cwd=Path(__file__).parents[1],
        )
    finally:
        os.close(write_end)
    assert (proc.returncode, proc.stderr) == (0, "")
