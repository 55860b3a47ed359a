from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from fleetlab.cli import main
from fleetlab.orchestrator import Fleet
from fleetlab.store import Task, open_store
from fleetlab.suites import builtin_suites


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_suites_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "suites", "--json")
    [core] = json.loads(out)
    assert code == 0
    assert len(core["tasks"]) >= 40
    assert {t["complexity"] for t in core["tasks"]} == {1, 2, 3, 4, 5}


def test_run_task_prints_verdict_tokens_cost_trace(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    db = str(tmp_path / "f.db")
    code, out, _ = run(
        capsys, "--db", db, "run-task", "core:rename-readme", "--model", "sim:instant", "--json"
    )
    result = json.loads(out)
    assert code == 0
    assert result["passed"] is True
    assert result["simulated"] is True
    assert result["tokens_in"] > 0
    assert result["cost_usd"] > 0
    with open_store(db) as store:
        assert store.find_task(result["trace_id"]).status == "completed"
    code, out, _ = run(
        capsys, "--db", db, "run-task", "core:rename-readme", "--model", "sim:instant"
    )
    assert "PASS" in out
    assert "(simulated)" in out
    assert "trace" in out
    tokens = re.search(r"tokens (\S+) in / (\S+) out", out)
    assert tokens, out
    shown = int(tokens[1].replace(",", ""))
    assert shown >= 1000  # so the thousands separator shows
    assert tokens[1] == f"{shown:,}"


def test_submit_file_fleet_run_trace_cancel(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    db = str(tmp_path / "f.db")
    goals = tmp_path / "goals.toml"
    long_task = max(builtin_suites()["core"].tasks, key=lambda t: t.steps).key
    goals.write_text(
        f'[[goals]]\ntask = "{long_task}"\npolicy = "always"\npriority = 70\n\n'
        '[[goals]]\ntitle = "Draft release notes"\npolicy = "never"\n'
    )
    code, out, _ = run(capsys, "--db", db, "submit", "--file", str(goals), "--json")
    ids = json.loads(out)
    assert code == 0
    assert len(ids) == 2
    code, out, _ = run(
        capsys, "--db", db, "fleet", "run", "--until-idle", "--quiet", "--model", "sim:instant"
    )
    assert code == 0
    assert "fleet stopped" in out
    code, out, _ = run(capsys, "--db", db, "trace", ids[0]["trace_id"], "--json")
    tree = json.loads(out)
    assert {c["role"] for c in tree["children"]} >= {"planner", "executor", "validator"}
    code, out, _ = run(capsys, "--db", db, "status", "--json")
    assert json.loads(out)["in_flight"] == 0
    code, out, _ = run(capsys, "--db", db, "submit", "later")
    task_id = out.split()[1]
    code, out, _ = run(capsys, "--db", db, "cancel", task_id)
    assert "cancelled 1 task" in out
    with open_store(db) as store:
        assert store.get_task(task_id).status == "cancelled"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run-task", "core:nope"], "no task 'nope'"),
        (["run-task", "rename"], "malformed"),
        (["run-task", "core:rename-readme", "--model", "gpt:4"], "gpt:4"),
        (["fleet", "run", "--policy", "sometimes"], "unknown policy"),
        (["fleet", "run", "--concurrency", "0"], "1 or more"),
        (["submit", "--file", "/nonexistent/goals.toml"], "cannot read goals file"),
        (["fleet", "simulate", "--week", "2026-W60"], "does not exist"),
        (["schedule", "add", "digest", "--weekday", "someday"], "weekday"),
    ],
)
def test_user_mistakes(tmp_path: Path, capsys, argv: list[str], message: str) -> None:  # type: ignore[no-untyped-def]
    code, out, err = run(capsys, "--db", str(tmp_path / "f.db"), *argv)
    assert code == 2
    assert message in err
    assert "Traceback" not in out + err


def test_schedule_add_and_list(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    db = str(tmp_path / "f.db")
    code, out, _ = run(
        capsys,
        "--db",
        db,
        "schedule",
        "add",
        "weekly digest",
        "--weekday",
        "mon",
        "--at",
        "07:00",
        "--tz",
        "Europe/London",
    )
    assert code == 0
    assert "next at" in out
    code, out, _ = run(capsys, "--db", db, "schedule", "list", "--json")
    [schedule] = json.loads(out)
    assert (schedule["goal"], schedule["at"], schedule["zone"]) == (
        "weekly digest",
        "07:00",
        "Europe/London",
    )
    local = datetime.fromisoformat(schedule["next_at"]).astimezone(ZoneInfo("Europe/London"))
    assert (local.weekday(), local.hour, local.minute) == (0, 7, 0)  # Monday 07:00 in London
    add = ["--db", db, "schedule", "add", "weekly digest", "--weekday", "mon", "--tz"]
    for at, zone in (("07:00", "Europe/London"), ("08:00", "Europe/London"), ("07:00", "UTC")):
        assert run(capsys, *add, zone, "--at", at)[0] == 0
    code, out, _ = run(capsys, "--db", db, "schedule", "list", "--json")
    kept = sorted((s["at"], s["zone"]) for s in json.loads(out))
    # the same goal at the same time is kept once; at another time or zone it is another
    assert kept == [("07:00", "Europe/London"), ("07:00", "UTC"), ("08:00", "Europe/London")]


def test_fleet_simulate_one_day(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    db = str(tmp_path / "f.db")
    code, out, _ = run(
        capsys,
        "--db",
        db,
        "fleet",
        "simulate",
        "--days",
        "1",
        "--tasks-per-day",
        "12",
        "--week",
        "2026-W47",
        "--quiet",
    )
    assert code == 0
    assert "simulated 1 day(s)" in out
    with open_store(db) as store:
        roots = store.query("SELECT COUNT(*) FROM tasks WHERE parent_id IS NULL")[0][0]
        first = store.query("SELECT MIN(created_us) FROM tasks")[0][0]
        calls = store.events(kind="model.call")
    assert roots > 0
    assert first >= 1_794_787_200_000_000  # Monday 2026-11-16 00:00 UTC, the week's start
    assert calls
    assert all(e.attrs["simulated"] for e in calls)


def test_run_suite_prints_success_by_complexity(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "run-suite", "core", "--model", "sim:instant", "--json", "--quiet")
    data = json.loads(out)
    assert code == 0
    assert data["simulated"] is True
    rows = {r["complexity"]: r for r in data["by_complexity"]}
    assert sum(r["tasks"] for r in rows.values()) == len(builtin_suites()["core"].tasks)
    assert rows[1]["success"] >= 0.9
    assert rows[1]["success"] > rows[5]["success"]  # one context loses track on long tasks
    assert rows[5]["mean_cost_usd"] > rows[1]["mean_cost_usd"]


def test_fleet_run_exits_1_with_one_summary_line_after_internal_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    db = str(tmp_path / "f.db")
    for title in ("first goal", "second goal"):
        assert main(["--db", db, "submit", title]) == 0

    async def broken(self: Fleet, task: Task) -> None:
        raise RuntimeError("a bug in the agent loop")

    monkeypatch.setattr(Fleet, "_drive", broken)
    capsys.readouterr()
    code, out, err = run(
        capsys, "--db", db, "fleet", "run", "--until-idle", "--quiet", "--model", "sim:instant"
    )
    with open_store(db) as store:
        crashed = store.query(
            "SELECT COUNT(*) FROM tasks WHERE status = 'failed' AND error LIKE 'internal error:%'"
        )[0][0]
    assert crashed == 2  # the oracle: what the fleet recorded
    assert code == 1
    assert "fleet stopped" in out
    summary = [line for line in err.splitlines() if line.startswith("failed:")]
    assert summary == [
        "failed: 2 task(s) failed with an internal error (a fleetlab bug): `fleetlab tasks"
        " --status failed` lists them, `fleetlab trace ID` shows each"
    ]
    assert err.rstrip().splitlines()[-1] == summary[0]


def test_fleet_run_without_internal_errors_exits_0(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    db = str(tmp_path / "f.db")
    assert main(["--db", db, "submit", "--task", "core:rename-readme"]) == 0
    code, out, err = run(
        capsys, "--db", db, "fleet", "run", "--until-idle", "--quiet", "--model", "sim:instant"
    )
    assert code == 0
    assert "fleet stopped: 1 completed" in out
    assert "failed:" not in err


def test_piped_fleet_commands_print_only_their_summary_lines(tmp_path: Path) -> None:
    """Through a pipe (`| cat`, a log file) no progress display leaves blank lines behind."""
    exe = Path(sys.executable).with_name("fleetlab")
    db = str(tmp_path / "fleet.db")
    runs = [
        [str(exe), "--db", db, "fleet", "simulate", "--days", "1", "--tasks-per-day", "3"],
        [str(exe), "--db", db, "submit", "rename a file"],
        [str(exe), "--db", db, "fleet", "run", "--until-idle", "--model", "sim:instant"],
    ]
    for argv in runs:
        done = subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path, check=True)
        lines = done.stdout.splitlines()
        assert lines, argv
        assert all(line.strip() for line in lines), (argv, done.stdout)


def test_a_split_goal_says_how_many_sub_agents_did_it(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """A decomposed goal's result names every sub-agent below it (counted from the rows), in
    correct English."""
    db = str(tmp_path / "f.db")
    goals = tmp_path / "goals.toml"
    keys = [t.key for t in builtin_suites()["core"].tasks][:3]
    goals.write_text("".join(f'[[goals]]\ntask = "{k}"\npolicy = "always"\n\n' for k in keys))
    assert run(capsys, "--db", db, "submit", "--file", str(goals))[0] == 0
    code, _, _ = run(
        capsys, "--db", db, "fleet", "run", "--until-idle", "--quiet", "--model", "sim:instant"
    )
    assert code == 0
    with open_store(db) as store:
        rows = store.query("SELECT id, parent_id, status, result FROM tasks", ())
    below: dict[str, list[str]] = {}
    for task_id, parent, _, _ in rows:
        below.setdefault(parent, []).append(task_id)

    def descendants(task_id: str) -> int:
        return sum(1 + descendants(k) for k in below.get(task_id, []))

    summaries = {
        task_id: json.loads(result)["summary"]
        for task_id, parent, status, result in rows
        if parent is None and status == "completed" and result
    }
    assert summaries
    for task_id, summary in summaries.items():
        n = descendants(task_id)
        assert n > 1
        assert summary.startswith(f"done by {n} sub-agents"), (summary, n)
