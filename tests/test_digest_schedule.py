"""The fleet writes its own digest: a weekly schedule (Monday 07:00 Europe/London) whose goal
the orchestrator hands to ``fleetlab.digest.run_digest_goal`` instead of an agent."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from fleetlab.cli import _digest as cli_digest
from fleetlab.cli import main
from fleetlab.clock import Clock, FakeClock
from fleetlab.digest import DigestResult, FactCheck, schedule_digest
from fleetlab.digest import _report as report_module
from fleetlab.errors import UserError
from fleetlab.models.sim import PROFILES, SimModel
from fleetlab.orchestrator import Fleet, FleetConfig, Goal, list_schedules, submit_goals
from fleetlab.store import Store, open_store
from tests.helpers.digest_world import utc
from tests.helpers.refusals import one_error_line


class StillClock(FakeClock):
    """Time moves only when the test says so (the fleet's sleeps just yield)."""

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(0)


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []

    def fake_run_digest(
        week: str, tz: str, db: Path, model: str, out_dir: str, *, now: datetime
    ) -> DigestResult:
        seen.append({"week": week, "tz": tz, "db": db, "model": model, "out": out_dir, "now": now})
        if len(seen) == 2:
            raise UserError("db is busy")
        return DigestResult(Path(out_dir) / week, FactCheck(checked=12, unmatched=()))

    monkeypatch.setattr(report_module, "run_digest", fake_run_digest)
    return seen


async def _run_fleet(store: Store) -> None:
    model = SimModel(PROFILES["instant"], profile="instant")
    await Fleet(store, model, FleetConfig(poll_s=0.01)).run(until_idle=True)


async def test_the_weekly_digest_runs_as_a_scheduled_goal(
    tmp_path: Path, calls: list[dict[str, Any]]
) -> None:
    clock = StillClock(utc("2026-10-25T12:00Z"))  # Sunday, the last day of W43 in London
    with open_store(tmp_path / "fleet.db", clock=clock) as store:
        schedule = schedule_digest(
            store, zone="Europe/London", out_dir=tmp_path / "reports", model="sim:default"
        )
        assert schedule.next_at == utc("2026-10-26T07:00Z")  # Monday 07:00 GMT
        assert schedule.goal.action == {
            "action": "digest",
            "tz": "Europe/London",
            "out": str((tmp_path / "reports").resolve()),
            "model": "sim:default",
        }

        clock.set(utc("2026-10-26T07:00:30Z"))
        await _run_fleet(store)

        (goal,) = store.tasks()
        assert goal.title == "weekly digest (Europe/London)"
        assert goal.spec["action"]["action"] == "digest"
        assert goal.status == "completed", goal.error
        assert goal.result["fact_check"] == {"ok": True, "checked": 12, "unmatched": []}
        (call,) = calls
        assert call["now"] == utc("2026-10-26T07:00:30Z")  # the fleet's clock
        assert call["week"] == "2026-W43"  # the last week complete then, in London
        assert goal.result["week"] == "2026-W43"
        assert call["tz"] == "Europe/London"
        assert call["db"] == str(store.path)
        assert call["model"] == "sim:default"
        assert goal.tree_agents == 0  # no agent ran
        assert not store.events(kind="model.call")
        (after,) = list_schedules(store)
        assert after.next_at == utc("2026-11-02T07:00Z")

        # the next Monday the digest fails (the fake says the db is busy): the goal says why
        clock.set(utc("2026-11-02T07:01Z"))
        await _run_fleet(store)
        latest = store.tasks()[0]
        assert latest.status == "failed"
        assert latest.error == "digest: db is busy"


async def test_an_unknown_action_fails_the_goal(
    tmp_path: Path, calls: list[dict[str, Any]]
) -> None:
    with open_store(tmp_path / "fleet.db", clock=StillClock(utc("2026-10-26T08:00Z"))) as store:
        (task,) = submit_goals(store, [Goal(title="mystery", action={"action": "teleport"})])
        await _run_fleet(store)
        done = store.get_task(task.id)
        assert done.status == "failed"
        assert "unknown goal action" in (done.error or "")
        assert calls == []


def test_bad_schedules_are_refused(tmp_path: Path) -> None:
    with open_store(tmp_path / "fleet.db") as store:
        with pytest.raises(UserError, match="unknown time zone"):
            schedule_digest(store, zone="Mars/Olympus")
        with pytest.raises(UserError, match="weekday"):
            schedule_digest(store, weekday="someday")
        with pytest.raises(UserError, match="model"):
            schedule_digest(store, model="gpt:4")
        with pytest.raises(UserError, match="action"):
            submit_goals(store, [Goal(title="x", action={"tz": "UTC"})])
        assert list_schedules(store) == []


@pytest.fixture
def cli_clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """``fleetlab digest --schedule`` on a fixed clock: Sunday 25 October 2026 12:00Z, the
    last day of W43 (the store it opens is handed this clock instead of the machine's)."""
    clock = FakeClock(utc("2026-10-25T12:00Z"))
    real = cli_digest.open_store

    def with_clock(args: Any, clock_: Clock | None = None, **kw: Any) -> Store:
        return real(args, clock_ or clock, **kw)

    monkeypatch.setattr(cli_digest, "open_store", with_clock)
    return clock


def test_cli_digest_schedule_stores_the_weekly_goal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], cli_clock: FakeClock
) -> None:
    """``fleetlab digest --schedule mon@07:00 --tz Europe/London`` stores one weekly schedule
    whose goal is the digest action, and says when it first runs: the next Monday 07:00 in
    London after Sunday 25 October 12:00Z is 26 October 07:00 GMT (BST ended that morning),
    07:00Z."""
    db, reports = tmp_path / "fleet.db", tmp_path / "reports"
    argv = ["--db", str(db), "digest", "--schedule", "mon@07:00", "--tz", "Europe/London"]
    assert main([*argv, "--out", str(reports)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    with open_store(db) as store:
        (schedule,) = list_schedules(store)
        assert store.tasks() == []  # nothing runs now: the fleet carries it out
    assert schedule.next_at == utc("2026-10-26T07:00Z")
    assert (schedule.weekday, schedule.at_time, schedule.zone) == (0, "07:00", "Europe/London")
    assert schedule.goal.title == "weekly digest (Europe/London)"
    assert schedule.goal.action == {
        "action": "digest",
        "tz": "Europe/London",
        "out": str(reports.resolve()),
        "model": "sim:default",
    }
    assert out.strip() == (
        f"schedule {schedule.id}: the weekly digest (Europe/London) runs every mon at 07:00,"
        " next at 2026-10-26T07:00:00+00:00; `fleetlab fleet run` carries it out"
        f" (`fleetlab schedule remove {schedule.id}` stops it)"
    )
    # the same again: the schedule is kept once, and the line says so
    assert main([*argv, "--out", str(reports)]) == 0
    assert f"schedule {schedule.id} (already scheduled, nothing added):" in capsys.readouterr().out
    with open_store(db) as store:
        assert [s.id for s in list_schedules(store)] == [schedule.id]
    # removed by a prefix of its id: the fleet will not run it again
    assert main(["--db", str(db), "schedule", "remove", schedule.id[:6]]) == 0
    assert capsys.readouterr().out.startswith(f"schedule {schedule.id} removed: weekly digest")
    with open_store(db) as store:
        assert list_schedules(store) == []
    assert main(["--db", str(db), "schedule", "remove", schedule.id]) == 2
    assert one_error_line(capsys.readouterr().err).startswith(
        f"error: no schedule '{schedule.id}': `fleetlab schedule list` shows"
    )


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--schedule", "monday"], "--schedule 'monday' is malformed: use WEEKDAY@HH:MM"),
        (["--schedule", "mon@07:00", "--week", "2026-W43"], "drop --week"),
        (["--schedule", "someday@07:00"], "weekday 'someday' is unknown"),
        (["--schedule", "mon@25:00"], "time '25:00' is malformed"),
    ],
)
def test_cli_digest_schedule_mistakes_are_one_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    cli_clock: FakeClock,
    extra: list[str],
    message: str,
) -> None:
    """A malformed ``--schedule`` (or one with ``--week``) is one error line, exit 2, and
    stores no schedule."""
    db = tmp_path / "fleet.db"
    assert main(["--db", str(db), "digest", *extra]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "Traceback" not in err
    (line,) = [line for line in err.splitlines() if line.strip()]
    assert line.startswith("error: ")
    assert message in line
    if db.exists():
        with open_store(db) as store:
            assert list_schedules(store) == []
