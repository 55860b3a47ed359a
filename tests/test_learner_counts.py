"""The learner's goals and choices, counted as goals: a goal split as needed (try-then-split)
writes two learner updates (``direct`` for its first try, then ``as_needed``), and is still
one goal whose choice is ``as_needed``. The weekly report, its integrity check, the console
and ``fleetlab learn`` all count it so; warm starts are part of the learner's state at any
instant after them; a 50% chance is not "best"; a kind of goal without evidence has no
preferred strategy.

Every expected count is worked out by hand or read back from the database with ``sqlite3``;
the goals go in through the learned policy's own ``learn`` (as the orchestrator calls it)."""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from fleetlab.cli import main
from fleetlab.clock import UTC, FakeClock, parse_week
from fleetlab.digest import compute_metrics, fact_check, template_draft
from fleetlab.digest.sections import section
from fleetlab.digest.sections.learner import learner_daily_chart
from fleetlab.learning import Learner, warm_start
from fleetlab.objective import Objective
from fleetlab.orchestrator import submit_goal
from fleetlab.policies.base import Outcome
from fleetlab.policies.learned import LearnedPolicy
from fleetlab.store import Store, open_store
from fleetlab.widgets.console import FleetConsole

WEEK = parse_week("2026-W48", "UTC")  # Monday 23 to Sunday 29 November 2026
START = datetime(2026, 11, 23, tzinfo=UTC)
ARMS = ("direct", "decompose", "as_needed")
POLICY = {"direct": "never", "decompose": "always", "as_needed": "as_needed"}

#: The week's goals: (day, task id, bucket, strategy, success, split). Worked out by hand:
#: 6 goals, 9 updates (three split as needed: two rows each); simple: 2 as_needed, 1 direct;
#: medium: 1 as_needed, 1 decompose; complex: none; choices on Monday 2 (simple), Wednesday 2
#: (simple, medium), Saturday 2 (medium, simple).
GOALS = [
    (0, "g1", "simple", "as_needed", True, False),
    (0, "g2", "simple", "direct", True, False),
    (2, "g3", "simple", "as_needed", True, True),
    (2, "g4", "medium", "as_needed", False, True),
    (5, "g5", "medium", "decompose", True, False),
    (5, "g6", "simple", "direct", False, False),
]


def _learn(store: Store, clock: FakeClock, goals: list[tuple[Any, ...]]) -> None:
    learner = Learner(store)
    for day, task, bucket, arm, success, split in goals:
        clock.set(START + timedelta(days=day, hours=10))
        LearnedPolicy().learn(
            Outcome(task_id=task, trace_id=f"t-{task}", decision={"bucket": bucket, "arm": arm},
                    success=success, cost_usd=0.05, tokens=100, learner=learner, split=split,
                    own_cost_usd=0.02)
        )  # fmt: skip


@pytest.fixture
def week_db(tmp_path: Path, clock: FakeClock) -> Path:
    path = tmp_path / "fleet.db"
    with open_store(path, clock=clock) as store:
        clock.set(START + timedelta(hours=1))
        submit_goal(store, "a goal this week")  # the week is not empty
        _learn(store, clock, GOALS)
    return path


def _metrics(path: Path, clock: FakeClock) -> dict[str, Any]:
    with open_store(path, clock=clock) as store:
        m = compute_metrics(store, WEEK, now=START + timedelta(days=9))
    return dict(json.loads(json.dumps(m)))


def test_goals_are_counted_by_task_and_choices_are_the_strategy_chosen(
    week_db: Path, clock: FakeClock
) -> None:
    with sqlite3.connect(week_db) as db:
        rows, goals = db.execute(
            "SELECT COUNT(*), COUNT(DISTINCT task_id) FROM learner_updates"
        ).fetchone()
        split_first = db.execute(
            "SELECT COUNT(*) FROM learner_updates u WHERE arm = 'direct' AND EXISTS (SELECT 1"
            " FROM learner_updates v WHERE v.task_id = u.task_id AND v.arm = 'as_needed')"
        ).fetchone()[0]
    assert (rows, goals, split_first) == (9, 6, 3)  # the learned policy wrote them so
    m = _metrics(week_db, clock)
    learner = m["decomposition"]["learner"]
    assert (learner["goals"], learner["updates"]) == (goals, rows)
    buckets = {b["bucket"]: b for b in learner["buckets"]}
    assert {k: (b["goals"], b["direct"], b["decompose"], b["as_needed"], b["updates"])
            for k, b in buckets.items()} == {
        "simple": (4, 2, 0, 2, 6), "medium": (2, 0, 1, 1, 3)
    }  # fmt: skip
    assert buckets["simple"]["successes"] == 3  # g1, g2, g3 (g3's first try failed)
    assert learner["choices_daily"] == [
        {"date": "2026-11-23", "bucket": "simple", "arm": "as_needed", "goals": 1},
        {"date": "2026-11-23", "bucket": "simple", "arm": "direct", "goals": 1},
        {"date": "2026-11-25", "bucket": "medium", "arm": "as_needed", "goals": 1},
        {"date": "2026-11-25", "bucket": "simple", "arm": "as_needed", "goals": 1},
        {"date": "2026-11-28", "bucket": "medium", "arm": "decompose", "goals": 1},
        {"date": "2026-11-28", "bucket": "simple", "arm": "direct", "goals": 1},
    ]
    post = learner["posterior"]
    assert (post["goals"], post["updates"], post["evidence"]) == (6, 9, 9)
    text = section("learner").draft(m)
    assert text.startswith(
        "The learned policy learned from 6 goals (9 updates: a goal split as needed also"
        " rewards running directly, for its first try)"
    ), text
    assert fact_check(template_draft(m), m).ok
    view = section("learner").view(m).text
    assert "| Simple | 4 | 2 | 0 | 2 | 6 |" in view, view
    # the integrity check counts the goals with learner events, one per task
    check = {c["name"]: c for c in m["integrity"]["checks"]}["learner_goals"]
    assert (check["ok"], check["checked"], check["goals"], check["updates"]) == (True, 6, 6, 9)


def test_the_integrity_check_catches_an_update_without_its_goals_event(
    week_db: Path, clock: FakeClock
) -> None:
    """g1 (split as needed: two updates) loses one of its two learner.updated events; g2 gets
    a second update of running directly (an order no goal writes)."""
    with sqlite3.connect(week_db) as db:
        db.execute(
            "DELETE FROM events WHERE seq = (SELECT MAX(seq) FROM events"
            " WHERE kind = 'learner.updated' AND task_id = 'g1')"
        )
        db.execute(
            "INSERT INTO learner_updates (ts_us, task_id, bucket, arm, reward, success, cost_usd)"
            " SELECT ts_us + 1, task_id, bucket, arm, reward, success, cost_usd FROM"
            " learner_updates WHERE task_id = 'g2'"
        )
    check = {c["name"]: c for c in _metrics(week_db, clock)["integrity"]["checks"]}
    learner = check["learner_goals"]
    assert (learner["ok"], learner["offending"]) == (False, ["g1", "g2"])
    assert [d["problem"] for d in learner["details"]] == [
        "2 learner updates (direct, as_needed), 1 events",
        "updates in an order no goal writes: direct, direct",
    ]


def test_the_console_counts_its_own_goals_by_task(tmp_path: Path, clock: FakeClock) -> None:
    with open_store(tmp_path / "fleet.db", clock=clock) as store:
        _learn(store, clock, GOALS)
        console = FleetConsole(store, refresh_s=0.01, models=["sim:instant"])
        try:
            console.refresh_button.click()
            assert "Not warm-started: it learned from 6 goals of its own." in console.learner.value
        finally:
            console.close()


def test_the_chart_shows_every_day_and_the_kinds_of_goal_in_order() -> None:
    """Rendered (vl-convert's SVG): the column headers read simple, medium, complex from left
    to right and each x axis has the week's 7 days, though goals ran on 3 of them. The rows
    come as metrics.json keeps them, by date then kind: complex first (when Vega-Lite drops
    the facet's sort, the columns follow the data)."""
    import vl_convert as vlc

    days = [f"2026-11-{d}" for d in range(23, 30)]
    rows = [
        {"date": "2026-11-23", "bucket": "complex", "arm": "decompose", "goals": 2},
        {"date": "2026-11-23", "bucket": "medium", "arm": "as_needed", "goals": 1},
        {"date": "2026-11-23", "bucket": "simple", "arm": "direct", "goals": 3},
        {"date": "2026-11-25", "bucket": "simple", "arm": "as_needed", "goals": 1},
        {"date": "2026-11-28", "bucket": "medium", "arm": "direct", "goals": 1},
    ]
    m = {"week": "2026-W48", "zone": "UTC", "days": days, "simulated": True,
         "decomposition": {"learner": {"choices_daily": rows}}}  # fmt: skip
    svg = vlc.vegalite_to_svg(learner_daily_chart(m).to_dict())
    # the column headers in the order they are drawn, left to right
    heads = re.findall(r"aria-label=\"Title text '(simple|medium|complex)'\"", svg)
    assert heads == ["simple", "medium", "complex"], heads
    for day in days:
        assert svg.count(f">{day}<") == 3, day  # on each kind of goal's axis


def _experiment(best: str, n: int = 20) -> pl.DataFrame:
    """A made-up experiment: in every bucket the ``best`` strategy passes at $0.01, the
    others fail at $0.05."""
    return pl.DataFrame(
        [
            {"kind": "agents", "policy": POLICY[arm], "task": f"t:{b}", "seed": i,
             "score_bucket": b, "choice": None, "passed": arm == best,
             "cost_usd": 0.01 if arm == best else 0.05, "prompt": "default", "complexity": 3}
            for b in ("simple", "medium", "complex")
            for arm in ARMS
            for i in range(n)
        ]
    )  # fmt: skip


def test_a_warm_start_before_the_week_is_what_it_preferred_before(
    tmp_path: Path, clock: FakeClock
) -> None:
    path = tmp_path / "fleet.db"
    with open_store(path, clock=clock) as store:
        clock.set(START - timedelta(days=3))  # before the week: as_needed wins everywhere
        warm_start(store, _experiment("as_needed"), objective=Objective(success_value_usd=1.0),
                   source="experiment:before_ab")  # fmt: skip
        clock.set(START + timedelta(hours=1))
        submit_goal(store, "a goal this week")
        _learn(store, clock, GOALS[:2])
    learner = _metrics(path, clock)["decomposition"]["learner"]
    (simple,) = learner["buckets"]
    assert simple["preferred_before"] == "as_needed"  # 20 passes against 40 failures
    assert simple["record_agrees"] is True
    assert learner["posterior"]["evidence"] == 180 + 3
    assert learner["posterior"]["later_warm_starts"] == []


def test_a_warm_start_dated_after_the_week_is_left_out_and_said_so(
    tmp_path: Path, clock: FakeClock
) -> None:
    path = tmp_path / "fleet.db"
    with open_store(path, clock=clock) as store:
        clock.set(START + timedelta(hours=1))
        submit_goal(store, "a goal this week")
        _learn(store, clock, GOALS[:2])
        clock.set(START + timedelta(days=10))
        warm_start(store, _experiment("decompose"), objective=Objective(success_value_usd=1.0),
                   source="experiment:late_ab")  # fmt: skip
    m = _metrics(path, clock)
    post = m["decomposition"]["learner"]["posterior"]
    assert post["evidence"] == 3  # the goals' updates only
    assert post["later_warm_starts"] == [
        {"source": "experiment:late_ab", "experiment": "late_ab", "at": "2026-12-03T00:00:00Z",
         "trials": 180, "simulated": None}
    ]  # fmt: skip
    view = section("learner").view(m).text
    assert "its updates and the warm starts dated before the week's end" in view
    assert "Not included: the warm start from experiment `late_ab` on 2026-12-03" in view
    assert "Not included: the warm start from experiment `late_ab`" in section("learner").draft(m)


def test_a_warm_start_redated_after_its_use_is_flagged(tmp_path: Path, clock: FakeClock) -> None:
    """Seeded before the week, the learner used the warm start for the week's updates; its
    row is then dated after the week (as a warm start recorded at the wall clock's time
    before a simulated past week is): the state at the week's end leaves it out, and the
    report says that the learner's own record disagrees."""
    path = tmp_path / "fleet.db"
    with open_store(path, clock=clock) as store:
        clock.set(START - timedelta(days=1))
        warm_start(store, _experiment("decompose"), objective=Objective(success_value_usd=1.0),
                   source="experiment:redated_ab")  # fmt: skip
        clock.set(START + timedelta(hours=1))
        submit_goal(store, "a goal this week")
        _learn(store, clock, GOALS[:2])
    after = int((START + timedelta(days=10)).timestamp()) * 1_000_000
    with sqlite3.connect(path) as db:
        db.execute("UPDATE learner_seeds SET ts_us = ?", (after,))
    m = _metrics(path, clock)
    (simple,) = m["decomposition"]["learner"]["buckets"]
    assert simple["record_agrees"] is False
    view = section("learner").view(m).text
    assert "**Note:** for simple goals, what the learner recorded" in view
    assert "Not included: the warm start from experiment `redated_ab` on 2026-12-03" in view


def test_a_fifty_fifty_chance_is_not_called_best(
    week_db: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The posterior's chances, pinned: simple goals' preferred strategy at exactly 50%,
    medium goals' at 50.1%."""
    real = Learner.posterior

    def pinned(self: Learner) -> list[dict[str, Any]]:
        rows = real(self)
        for r in rows:
            if r["preferred"]:
                r["p_best"] = {"simple": 0.5, "medium": 0.501}.get(r["bucket"], r["p_best"])
        return rows

    monkeypatch.setattr(Learner, "posterior", pinned)
    post = _metrics(week_db, clock)["decomposition"]["learner"]["posterior"]
    assert [(r["bucket"], r["p_best"]) for r in post["sure"]] == [("medium", 0.501)]


def test_no_evidence_no_preferred_strategy(
    tmp_path: Path, clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "fleet.db"
    with open_store(path, clock=clock) as store:
        _learn(store, clock, GOALS[4:5])  # one medium goal: simple and complex have none
        console = FleetConsole(store, refresh_s=0.01, models=["sim:instant"])
        try:
            frame = console.learner_frame()
            preferred = {r["bucket"] for r in frame.to_dicts() if r["preferred"]}
            assert preferred == {"medium"}, frame
            console.refresh_button.click()
            assert console.learner.value.count("\u2605 preferred") == 1
        finally:
            console.close()
        m = compute_metrics(store, WEEK, now=START + timedelta(days=9))
    arms = m["decomposition"]["learner"]["posterior"]["posterior_arms"]
    assert {r["bucket"] for r in arms if r["preferred"]} == {"medium"}
    assert main(["learn", "--db", str(path)]) == 0
    out = capsys.readouterr().out
    for line in out.splitlines():
        cells = line.split("\t")
        if cells[0] in ("simple", "complex"):
            assert cells[-1] == "no evidence yet", line
    assert sum(line.endswith("\tyes") for line in out.splitlines()) == 1, out


@pytest.mark.parametrize("name", ["", "   "])
def test_an_empty_experiment_name_is_one_line(
    tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "fleet.db"
    assert main(["learn", "--from-experiment", name, "--db", str(path)]) == 2
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err.startswith("error: --from-experiment needs the name of an experiment")
    assert len(out.err.strip().splitlines()) == 1, out.err
    assert not path.exists()  # nothing created
