"""The JSON-line logs of the long-running commands, and ``fleetlab logs`` (issue 16).

Expected values come from the SQLite file read with ``sqlite3`` or from the lines the test
wrote itself.
"""

from __future__ import annotations

import json
import logging
import os
import select
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from fleetlab import telemetry
from fleetlab.cli import main
from fleetlab.telemetry import Event, LogSink, configure_logging

REPO = Path(__file__).parents[1]
SECRET = "zz-log-s3cret-4711-value"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("FLEETLAB_DB", "ANTHROPIC_API_KEY")}
    env.update({"PYTHONPATH": str(REPO), **extra})
    return env


def _cli(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fleetlab.cli", *argv],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def logging_to(tmp_path: Path) -> Iterator[tuple[Path, logging.Handler]]:
    path = tmp_path / "fleet.db.log"
    handler = configure_logging(path, max_bytes=3000, backups=2)
    try:
        yield path, handler
    finally:
        logging.getLogger("fleetlab").removeHandler(handler)
        handler.close()


def test_log_lines_are_redacted(logging_to: tuple[Path, logging.Handler]) -> None:
    path, _ = logging_to
    telemetry.register_secret(SECRET)
    logging.getLogger("fleetlab.orchestrator").warning("task abc: the model said %s", SECRET)
    LogSink().emit(
        [
            Event(
                kind="task.failed",
                ts=datetime(2026, 5, 4, 10, tzinfo=UTC),
                trace_id="t" * 32,
                task_id="a" * 12,
                attrs={"error": f"verifier printed {SECRET}"},
            )
        ]
    )
    text = path.read_text("utf-8")
    assert SECRET not in text
    first, second = (json.loads(line) for line in text.splitlines())
    assert first["message"] == "task abc: the model said [REDACTED]"
    assert (second["trace_id"], second["task_id"]) == ("t" * 32, "a" * 12)
    assert second["error"] == "verifier printed [REDACTED]"
    assert second["at"] == "2026-05-04T10:00:00+00:00"  # the event's own time


def test_logs_rotate_and_read_back_in_order(
    logging_to: tuple[Path, logging.Handler], capsys: pytest.CaptureFixture[str]
) -> None:
    path, handler = logging_to
    log = logging.getLogger("fleetlab.test")
    written = [f"line {i:03d} " + "x" * 80 for i in range(120)]
    for message in written:
        log.info(message)
    handler.flush()
    files = sorted(p.name for p in path.parent.iterdir() if p.name.startswith(path.name))
    assert files == ["fleet.db.log", "fleet.db.log.1", "fleet.db.log.2"]  # 2 backups kept
    assert all(p.stat().st_size <= 3000 for p in path.parent.glob("fleet.db.log*"))
    assert main(["logs", "--log", str(path), "--json"]) == 0
    kept = [json.loads(line)["message"] for line in capsys.readouterr().out.splitlines()]
    assert 0 < len(kept) < len(written)
    assert kept == written[-len(kept) :]  # the newest lines, oldest first, none lost between


@pytest.mark.slow
def test_a_log_line_joins_its_trace(tmp_path: Path) -> None:
    """run-task logs beside its db; a log line's trace_id is a trace `fleetlab trace` finds,
    and `logs --trace` gives every event of that goal."""
    db = tmp_path / "fleet.db"
    proc = _cli(
        "run-task", "core:rename-readme", "--model", "sim:fast", "--db", str(db), cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # piped: no progress line
    log = tmp_path / "fleet.db.log"
    records = [json.loads(line) for line in log.read_text("utf-8").splitlines()]
    with sqlite3.connect(db) as conn:
        [(trace_id, n_events)] = conn.execute(
            "SELECT trace_id, COUNT(*) FROM events GROUP BY trace_id"
        ).fetchall()
        task_ids = {r[0] for r in conn.execute("SELECT id FROM tasks")}
    joined = [r for r in records if r.get("trace_id") == trace_id]
    assert len(joined) == n_events
    assert {r["task_id"] for r in joined} <= task_ids
    assert records[-1]["message"] == "fleetlab run-task finished"
    assert records[-1]["db"] == str(db)
    shown = _cli("trace", joined[0]["trace_id"], "--db", str(db), "--json", cwd=tmp_path)
    assert json.loads(shown.stdout)["trace_id"] == trace_id
    # `fleetlab logs` finds the same log from the db, and --trace keeps that goal's lines
    listed = _cli("logs", "--db", str(db), "--trace", trace_id[:8], "--json", cwd=tmp_path)
    assert [json.loads(line) for line in listed.stdout.splitlines()] == joined
    pretty = _cli("logs", "--db", str(db), "--trace", trace_id, cwd=tmp_path).stdout.splitlines()
    assert len(pretty) == n_events
    assert all(f"trace {trace_id}" in ln for ln in pretty)


def test_a_refused_command_writes_no_log(tmp_path: Path) -> None:
    proc = _cli("fleet", "simulate", "--week", "2026-W99", "--db", "fleet.db", cwd=tmp_path)
    assert proc.returncode == 2
    assert list(tmp_path.iterdir()) == []


def test_no_log_yet_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["logs", "--db", str(tmp_path / "fleet.db")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: no log at {tmp_path / 'fleet.db.log'} of {tmp_path}")
    assert list(tmp_path.iterdir()) == []


def test_follow_prints_lines_as_they_are_appended(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    log.write_text(json.dumps({"message": "before", "level": "info"}) + "\n", "utf-8")
    proc = subprocess.Popen(
        [sys.executable, "-m", "fleetlab.cli", "logs", "--log", str(log), "--follow", "--json"],
        env=_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert json.loads(proc.stdout.readline())["message"] == "before"
        with log.open("a", encoding="utf-8") as f:
            f.write(json.dumps({"message": "after", "trace_id": "abc"}) + "\n")
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        assert ready, "the appended line was not printed"
        assert json.loads(proc.stdout.readline()) == {"message": "after", "trace_id": "abc"}
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def test_a_filter_that_matches_nothing_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--trace`` with an id no line has is one line naming the log, not silence; a task id
    given to ``--trace`` (``fleetlab trace`` takes both) is pointed to ``--task``."""
    log = tmp_path / "fleet.db.log"
    record = {
        "ts": "2026-11-23T00:00:00+00:00",
        "level": "info",
        "message": "task.spawned",
        "trace_id": "5ec9c4a19281d5b682c870fd44923539",
        "task_id": "8b0e39bc0159",
    }
    log.write_text(json.dumps(record) + "\n", encoding="utf-8")
    db = str(tmp_path / "fleet.db")
    assert main(["logs", "--db", db, "--trace", "deadbeef"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"error: no line of trace 'deadbeef' in {log}")
    assert len(err.splitlines()) == 1
    assert main(["logs", "--db", db, "--trace", "8b0e39bc0159"]) == 2
    err = capsys.readouterr().err
    assert "'8b0e39bc0159' is a task id: use --task 8b0e39bc0159" in err
    assert main(["logs", "--db", db, "--task", "8b0e"]) == 0  # a match is printed as before
    assert "task 8b0e39bc0159" in capsys.readouterr().out


async def test_a_fleet_log_line_about_a_task_carries_its_ids(
    logging_to: tuple[Path, logging.Handler], tmp_path: Path
) -> None:
    """A task that crashes is logged by the fleet ("task ... crashed"): the line carries the
    task's trace_id and task_id, so `logs --trace` finds it with the goal's other lines."""
    from fleetlab.orchestrator import Fleet, FleetConfig, Goal, submit_goals
    from fleetlab.store import open_store
    from fleetlab.testing import ScriptedModel

    def respond(request: object) -> object:
        raise RuntimeError("a bug in a model adapter")

    path, handler = logging_to
    with open_store(tmp_path / "fleet.db") as store:
        [goal] = submit_goals(store, [Goal(title="crash", policy="never")])
        config = FleetConfig(concurrency=1, poll_s=0.01, workspaces=tmp_path / "ws")
        await Fleet(store, ScriptedModel(respond), config).run(until_idle=True)  # type: ignore[arg-type]
        assert store.get_task(goal.id).status == "failed"
    handler.flush()
    records = [json.loads(line) for line in path.read_text("utf-8").splitlines()]
    [crash] = [r for r in records if r["message"] == f"task {goal.id} crashed"]
    assert (crash["trace_id"], crash["task_id"]) == (goal.trace_id, goal.id)
