"""The telemetry integrity checks catch a telemetry gap and illegal lifecycles, naming ids."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fleetlab.clock import parse_week
from fleetlab.digest import _integrity as integrity_module
from fleetlab.digest import compute_metrics
from fleetlab.store import Store, open_store
from fleetlab.store.copy import copy_fleet
from fleetlab.telemetry import Event
from tests.helpers.digest_world import build_world, utc

pytestmark = pytest.mark.both_backends

NOW = utc("2026-10-26T07:00Z")


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    path = tmp_path_factory.mktemp("pristine") / "fleet.db"
    return path, build_world(path)


@pytest.fixture
def world(
    pristine: tuple[Path, dict[str, str]], fresh_db: Callable[[], str], tmp_path: Path
) -> tuple[str, dict[str, str]]:
    """A copy of the hand-built week to tamper with: the file, or the whole fleet copied
    into a new PostgreSQL database."""
    copy = fresh_db()
    if copy.startswith("postgresql://"):
        with open_store(pristine[0]) as src, open_store(copy) as dst:
            copy_fleet(src, dst)
    else:
        shutil.copy(pristine[0], copy)
    return copy, pristine[1]


def _checks(path: str, change: Callable[[Store], None]) -> dict[str, dict[str, Any]]:
    with open_store(path) as store:
        change(store)
        m = compute_metrics(store, parse_week("2026-W43", "Europe/London"), now=NOW)
    assert m["integrity"]["ok"] is False
    return {c["name"]: c for c in m["integrity"]["checks"]}


def _delete_events(store: Store, kind: str, *task_ids: str) -> None:
    with store.tx() as conn:
        conn.execute(
            f"DELETE FROM events WHERE kind = ? AND task_id IN ({','.join('?' * len(task_ids))})",
            (kind, *task_ids),
        )


def _append(store: Store, task_id: str, kind: str, when: str, **attrs: Any) -> None:
    task = store.get_task(task_id)
    store.append(
        Event(
            kind=kind,
            ts=utc(when),
            trace_id=task.trace_id,
            task_id=task.id,
            span_id=task.span_id,
            role=task.role,
            attrs=attrs,
        )
    )


def test_a_completion_eaten_by_telemetry_is_named(world: tuple[str, dict[str, str]]) -> None:
    path, ids = world
    checks = _checks(path, lambda s: _delete_events(s, "task.completed", ids["A"]))
    counts = checks["row_event_counts"]
    assert not counts["ok"]
    assert counts["offending"] == [ids["A"]]
    assert counts["counts"]["completed"] == {"rows": 6, "events": 5}
    assert counts["details"] == [
        {"task_id": ids["A"], "problem": "row completed but no task.completed event"}
    ]
    lifecycle = checks["lifecycle"]
    assert lifecycle["offending"] == [ids["A"]]
    assert "row status is completed" in lifecycle["details"][0]["problem"]
    assert checks["daily_completions"]["ok"]  # Monday still has L's completion event


def test_a_day_with_completions_but_no_events_is_named(world: tuple[str, dict[str, str]]) -> None:
    path, ids = world
    checks = _checks(path, lambda s: _delete_events(s, "task.completed", ids["X"], ids["D"]))
    daily = checks["daily_completions"]
    assert daily["offending"] == ["2026-10-22"]
    assert daily["details"][0]["task_ids"] == sorted([ids["X"], ids["D"]])
    assert {d["date"]: (d["rows"], d["events"]) for d in daily["per_day"]}["2026-10-22"] == (2, 0)
    assert set(checks["row_event_counts"]["offending"]) == {ids["X"], ids["D"]}


def test_an_illegal_transition_is_named(world: tuple[str, dict[str, str]]) -> None:
    path, ids = world
    # G was only ever queued: a completion straight from queued is not in TRANSITIONS
    checks = _checks(
        path,
        lambda s: _append(s, ids["G"], "task.completed", "2026-10-25T01:00Z", **{"from": "queued"}),
    )
    lifecycle = checks["lifecycle"]
    assert lifecycle["offending"] == [ids["G"]]
    assert lifecycle["details"][0]["problem"].startswith(
        "task.completed (from queued) cannot follow task.spawned"
    )
    assert ids["G"] in checks["row_event_counts"]["offending"]


def test_events_written_out_of_order_are_named(world: tuple[str, dict[str, str]]) -> None:
    path, ids = world

    def shuffle(store: Store) -> None:
        # H was preempted at 10:30; a resume written after it but stamped 10:20
        _append(store, ids["H"], "task.resumed", "2026-10-25T10:20Z", **{"from": "preempted"})
        # A "started" again, stamped before it was even spawned
        _append(store, ids["A"], "task.started", "2026-10-19T07:00Z", **{"from": "queued"})

    lifecycle = _checks(path, shuffle)["lifecycle"]
    assert sorted(lifecycle["offending"]) == sorted([ids["H"], ids["A"]])
    problems = {d["task_id"]: d["problem"] for d in lifecycle["details"]}
    assert "timestamped before task.preempted" in problems[ids["H"]]
    assert "timestamped before task.completed" in problems[ids["A"]]


def test_future_and_out_of_lifetime_events_are_named(world: tuple[str, dict[str, str]]) -> None:
    path, ids = world

    def stray(store: Store) -> None:
        _append(store, ids["I"], "model.call", "2026-11-01T00:00Z", cost_usd=0.0)
        _append(store, ids["A"], "model.call", "2026-10-19T10:00Z", cost_usd=0.0)

    checks = _checks(path, stray)
    future = checks["future_timestamps"]
    assert future["offending"] == [ids["I"]]
    assert future["future_events"] == 1
    lifetime = checks["event_in_lifetime"]
    assert lifetime["offending"] == [ids["A"]]
    assert lifetime["details"][0]["problem"] == "after the task finished (2026-10-19T09:00:00Z)"
    assert future["checked_label"] == "found after now, of every event and task row"


def test_a_future_count_that_stopped_at_its_cap_says_or_more(
    world: tuple[str, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, ids = world
    monkeypatch.setattr(integrity_module, "FUTURE_COUNT_CAP", 2)

    def three(store: Store) -> None:
        for hour in (1, 2, 3):
            _append(store, ids["I"], "model.call", f"2026-11-01T0{hour}:00Z", cost_usd=0.0)

    future = _checks(path, three)["future_timestamps"]
    assert future["future_events"] == 2  # counting stopped at the cap
    assert future["checked_label"] == (
        "or more found after now (each count stops at 2), of every event and task row"
    )


def test_turns_committed_twice_are_found_across_days_models_and_any_turn_number(
    world: tuple[str, dict[str, str]],
) -> None:
    """The week's calls are summed by task, day, model and role, and a task's turns checked
    as bits: a turn repeated on another day (in the other half of the week), under another
    model, twice on one day (turn 30: its carry lands on turn 31's bit), and turns beyond the
    bits (62 and up, negative) are all found, and turns seen once are not. Claims and writes
    naming epochs are held to the order of epochs in each task's commit order, and a task
    whose only event naming an epoch is a claim is counted as checked."""
    path, ids = world
    with open_store(path) as store:
        clean = compute_metrics(store, parse_week("2026-W43", "Europe/London"), now=NOW)
    before = {c["name"]: c for c in clean["integrity"]["checks"]}

    def plant(store: Store) -> None:
        def call(name: str, when: str, turn: int, **attrs: Any) -> None:
            _append(store, ids[name], "model.call", when, turn=turn, cost_usd=0.0, **attrs)

        call("A", "2026-10-19T08:40Z", 40)  # Monday, and again on Saturday
        call("A", "2026-10-24T08:40Z", 40)
        call("B", "2026-10-20T11:00Z", 30)  # twice on one day, next to turn 31
        call("B", "2026-10-20T11:01Z", 30)
        call("B", "2026-10-20T11:02Z", 31)
        call("D", "2026-10-22T09:30Z", 62)  # beyond the bits, twice
        call("D", "2026-10-22T09:31Z", 62)
        call("D", "2026-10-22T09:32Z", 61)
        call("D", "2026-10-22T09:33Z", -3)
        call("E", "2026-10-22T12:30Z", 5, model="m-a")  # under two models
        call("E", "2026-10-22T12:31Z", 5, model="m-b")
        call("F", "2026-10-23T10:30Z", 1)  # once each, on two days: fine
        call("F", "2026-10-24T10:30Z", 2)
        # epochs: G claimed twice under epoch 2; H writes under epoch 2 after epoch 3 began
        _append(store, ids["G"], "task.started", "2026-10-24T21:00Z", epoch=2, worker="w")
        call("G", "2026-10-24T21:01Z", 7, epoch=2)
        _append(store, ids["G"], "task.reclaimed", "2026-10-24T21:02Z", epoch=2, worker="w")
        _append(store, ids["H"], "task.resumed", "2026-10-25T11:00Z", epoch=3, worker="w")
        call("H", "2026-10-25T11:01Z", 8, epoch=2)
        _append(store, ids["K"], "task.started", "2026-10-25T12:30Z", epoch=1, worker="w")

    checks = _checks(path, plant)
    turns = checks["turns_once"]
    assert turns["checked"] == before["turns_once"]["checked"] + 15
    twice = sorted([(ids["A"], 40), (ids["B"], 30), (ids["D"], 62), (ids["E"], 5)])
    assert turns["offending"] == [task for task, _ in twice]
    assert turns["details"] == [
        {"task_id": task, "problem": f"turn {turn} committed 2 times"} for task, turn in twice
    ]
    epochs = checks["epochs"]
    assert epochs["checked"] == before["epochs"]["checked"] + 3  # G, H and K
    assert epochs["offending"] == sorted([ids["G"], ids["H"]])
    assert sorted(d["problem"] for d in epochs["details"]) == [
        "claim with epoch 2 after epoch 2",
        "model.call under epoch 2 after epoch 3 began",
    ]
