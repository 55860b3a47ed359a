"""``compute_metrics`` on databases with known events, held metric by metric to values worked
out by hand (see ``tests/helpers/digest_world.py`` for the timeline)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from fleetlab.clock import FakeClock, parse_week
from fleetlab.digest import compute_metrics, weekly_trend
from fleetlab.store import open_store
from tests.conftest import BACKENDS
from tests.helpers.digest_world import World, build_world, build_zones, utc

NOW = utc("2026-10-26T07:00Z")  # Monday 07:00 GMT: when the scheduled digest runs


@pytest.fixture(scope="module", params=BACKENDS)
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, dict[str, str]]:
    """The hand-built week, on each backend: every figure below must hold on both."""
    if request.param == "postgresql":
        where = request.getfixturevalue("pg_cluster").create_database()
    else:
        where = str(tmp_path_factory.mktemp("world") / "fleet.db")
    return where, build_world(where)


@pytest.fixture(scope="module")
def metrics(world: tuple[str, dict[str, str]]) -> dict[str, Any]:
    with open_store(world[0]) as store:
        m = compute_metrics(store, parse_week("2026-W43", "Europe/London"), now=NOW)
    return json.loads(json.dumps(m))  # exactly what metrics.json holds


def test_window_is_the_dst_week_in_london(metrics: dict[str, Any]) -> None:
    assert metrics["week"] == "2026-W43"
    assert (metrics["iso_year"], metrics["iso_week"]) == (2026, 43)
    assert metrics["start"] == "2026-10-18T23:00:00Z"  # Monday 00:00 BST
    assert metrics["end"] == "2026-10-26T00:00:00Z"  # Monday 00:00 GMT
    assert metrics["hours"] == 169
    assert metrics["as_of"] == metrics["end"]
    assert metrics["complete"] is True
    assert metrics["days"][0] == "2026-10-19"
    assert metrics["days"][-1] == "2026-10-25"


def test_counts_are_the_cohort_as_of_the_weeks_end(metrics: dict[str, Any]) -> None:
    # Spawned in W43: A J B C D X E F W Y G H K I. K completed on Monday 05:00 GMT, after the
    # week, so it counts as running (it made a model call two minutes before the end).
    assert metrics["counts"] == {
        "spawned": 14,
        "roots_spawned": 11,
        "completed": 5,  # A B C D X
        "failed": 1,  # E
        "cancelled": 1,  # J
        "in_flight": 7,
        "running": 2,  # I, K
        "queued": 2,  # G, Y
        "preempted": 1,  # H
        "waiting_children": 1,  # W
        "stale": 1,  # F: running, silent since Friday
    }
    assert metrics["success_rate"] == {
        "completed_over_finished": round(5 / 6, 6),
        "completed_over_spawned": round(5 / 14, 6),
    }
    assert metrics["simulated"] is True
    assert metrics["models"] == ["anthropic:claude-sonnet-4-6", "sim:default"]


def test_previous_week_and_change(metrics: dict[str, Any]) -> None:
    prev = metrics["previous"]
    assert prev["week"] == "2026-W42"
    assert prev["as_of"] == "2026-10-18T23:00:00Z"
    # P1 completed, P2 failed, L still running at W42's end but silent for 3 hours: stale
    assert prev["counts"] == {
        "spawned": 3,
        "roots_spawned": 3,
        "completed": 1,
        "failed": 1,
        "cancelled": 0,
        "in_flight": 1,
        "running": 0,
        "queued": 0,
        "preempted": 0,
        "waiting_children": 0,
        "stale": 1,
    }
    assert prev["success_rate"] == {
        "completed_over_finished": 0.5,
        "completed_over_spawned": round(1 / 3, 6),
    }
    change = metrics["change"]
    assert change["spawned"] == 11
    assert change["completed"] == 4
    assert change["failed"] == 0
    assert change["cancelled"] == 1
    assert change["in_flight"] == 6
    assert change["stale"] == 0
    assert change["completed_over_finished_pp"] == round(100 * (5 / 6 - 0.5), 2)
    assert change["completed_over_spawned_pp"] == pytest.approx(100 * (5 / 14 - 1 / 3), abs=1e-3)


def test_daily_activity_uses_local_days(metrics: dict[str, Any]) -> None:
    days = {d["date"]: d for d in metrics["daily"]}
    # L completed 01:00Z on the 19th: Monday 02:00 BST, so Monday (and in this week).
    # B completed 00:30Z on the 21st: Wednesday 01:30 BST. G spawned 20:00Z on the 24th:
    # Saturday 21:00 BST. I spawned 22:30Z on the 25th: Sunday 22:30 GMT (after the change).
    expected = {
        "2026-10-19": (2, 2, 0, 1),
        "2026-10-20": (2, 1, 0, 0),
        "2026-10-21": (0, 1, 0, 0),
        "2026-10-22": (3, 2, 1, 0),
        "2026-10-23": (1, 0, 0, 0),
        "2026-10-24": (3, 0, 0, 0),
        "2026-10-25": (3, 0, 0, 0),
    }
    got = {d: (v["spawned"], v["completed"], v["failed"], v["cancelled"]) for d, v in days.items()}
    assert got == expected
    assert metrics["finished_in_week"] == {"completed": 6, "failed": 1, "cancelled": 1}


def test_completion_by_spawn_day(metrics: dict[str, Any]) -> None:
    rates = {
        c["date"]: (c["spawned"], c["completed"], c["completion_rate"]) for c in metrics["cohorts"]
    }
    assert rates == {
        "2026-10-19": (2, 1, 0.5),
        "2026-10-20": (2, 2, 1.0),
        "2026-10-21": (0, 0, None),
        "2026-10-22": (3, 2, round(2 / 3, 6)),
        "2026-10-23": (1, 0, 0.0),
        "2026-10-24": (3, 0, 0.0),
        "2026-10-25": (3, 0, 0.0),
    }


def test_kaplan_meier_censors_what_has_not_completed(metrics: dict[str, Any]) -> None:
    tasks = metrics["time_to_completion"]["tasks"]
    assert (tasks["tasks"], tasks["completed"], tasks["censored"]) == (14, 5, 9)
    # events at 1080 s (X), 1680 (C), 1800 (D), 3600 (A), 52200 (B); at 52200 s seven
    # tasks are still at risk (B, J, E, F, G, W, Y), so S = 10/14 * 6/7.
    curve = [(p["t_h"], p["survival"]) for p in tasks["curve"]]
    assert curve == [
        (0.3, round(13 / 14, 6)),
        (round(1680 / 3600, 4), round(12 / 14, 6)),
        (0.5, round(11 / 14, 6)),
        (1.0, round(10 / 14, 6)),
        (14.5, round(60 / 98, 6)),
    ]
    assert tasks["median_s"] is None  # never below one half: honest while work is in flight
    assert tasks["completed_within"] == {
        "1h": round(4 / 14, 4),
        "6h": round(4 / 14, 4),
        "24h": round(1 - 60 / 98, 4),
        "72h": round(1 - 60 / 98, 4),
    }
    goals = metrics["time_to_completion"]["goals"]
    assert (goals["tasks"], goals["completed"]) == (11, 3)
    assert [p["survival"] for p in goals["curve"]] == [
        round(10 / 11, 6),
        round(9 / 11, 6),
        round(45 / 66, 6),
    ]


def test_in_flight_ages(metrics: dict[str, Any]) -> None:
    got = [(a["bin"], a["status"], a["tasks"]) for a in metrics["in_flight_age"]]
    assert got == [
        ("1-6 h", "running", 1),  # I: 1.5 h
        ("6-24 h", "preempted", 1),  # H: 14 h
        ("6-24 h", "running", 1),  # K: 12 h
        ("24-48 h", "queued", 2),  # G: 28 h, Y: 39 h
        ("24-48 h", "waiting_children", 1),  # W: 39 h
        ("48-72 h", "stale", 1),  # F: 62 h
    ]


def test_what_shipped(metrics: dict[str, Any], world: tuple[str, dict[str, str]]) -> None:
    ids = world[1]
    shipped = metrics["shipped"]
    assert shipped["total"] == 4  # L (spawned last week), A, B, D
    assert shipped["agents"] == 6
    assert shipped["cost_usd"] == pytest.approx(0.35)
    items = {i["task_id"]: i for i in shipped["items"]}
    assert list(items) == [ids["L"], ids["A"], ids["B"], ids["D"]]
    b = items[ids["B"]]
    assert (b["title"], b["summary"], b["agents"]) == ("goal B", "report written", 2)
    assert b["cost_usd"] == pytest.approx(0.20)
    assert b["duration_s"] == 52200.0
    assert b["tokens"] == 2900
    with open_store(world[0]) as store:
        assert b["trace_id"] == store.get_task(ids["B"]).trace_id


def test_failures(metrics: dict[str, Any], world: tuple[str, dict[str, str]]) -> None:
    failures = metrics["failures"]
    assert (failures["total"], failures["goals"], failures["sub_agents"]) == (1, 1, 0)
    (item,) = failures["items"]
    assert item["task_id"] == world[1]["E"]
    assert item["reason"] == "verifier: out.txt: line 1 differs"
    assert item["failed_at"] == "2026-10-22T13:00:00Z"
    assert failures["top_reasons"] == [{"reason": "verifier: <file>", "count": 1}]


def test_decomposition_health(metrics: dict[str, Any], world: tuple[str, dict[str, str]]) -> None:
    ids = world[1]
    d = metrics["decomposition"]
    assert d["goals"] == 6  # roots finished in the week: L A J B D E
    buckets = {b["bucket"]: b for b in d["by_bucket"]}
    assert buckets["simple"] == {
        "bucket": "simple",
        "goals": 3,
        "decomposed": 1,
        "mean_agents": 1.33,
        "max_agents": 2,
        "completed": 3,
        "failed": 0,
        "cancelled": 0,
        "success_rate": 1.0,
    }
    assert buckets["complex"]["goals"] == 2
    assert buckets["complex"]["mean_agents"] == 1.5
    assert buckets["complex"]["success_rate"] == 0.5
    assert buckets["unknown"]["cancelled"] == 1
    assert buckets["unknown"]["success_rate"] is None
    assert "medium" not in buckets
    assert d["agents_by_complexity"] == [
        {"complexity": None, "agents": 1, "goals": 1},
        {"complexity": 1, "agents": 1, "goals": 2},
        {"complexity": 2, "agents": 2, "goals": 1},
        {"complexity": 4, "agents": 1, "goals": 1},
        {"complexity": 5, "agents": 2, "goals": 1},
    ]
    assert d["over_decomposed"]["count"] == 1
    assert d["over_decomposed"]["items"][0]["task_id"] == ids["D"]
    assert d["complex_failed_direct"]["count"] == 1
    assert d["complex_failed_direct"]["items"][0]["task_id"] == ids["E"]


def test_learner_changes_this_week(
    metrics: dict[str, Any], world: tuple[str, dict[str, str]]
) -> None:
    ids = world[1]
    learner = metrics["decomposition"]["learner"]
    assert learner["updates"] == 3
    assert learner["preference_changes"] == 1
    assert learner["changes"] == [
        {
            "at": "2026-10-19T09:00:00Z",
            "bucket": "simple",
            "from": "decompose",
            "to": "direct",
            "task_id": ids["A"],
        },
        {
            "at": "2026-10-21T00:30:00Z",
            "bucket": "complex",
            "from": None,
            "to": "decompose",
            "task_id": ids["B"],
        },
    ]
    buckets = {b["bucket"]: b for b in learner["buckets"]}
    assert buckets["simple"]["updates"] == 2
    assert (buckets["simple"]["direct"], buckets["simple"]["decompose"]) == (1, 1)
    assert buckets["simple"]["preferred_before"] == "decompose"
    assert buckets["simple"]["preferred_after"] == "direct"
    assert learner["choices_daily"] == [
        {"date": "2026-10-19", "bucket": "simple", "arm": "direct", "goals": 1},
        {"date": "2026-10-21", "bucket": "complex", "arm": "decompose", "goals": 1},
        {"date": "2026-10-22", "bucket": "simple", "arm": "decompose", "goals": 1},
    ]


def test_cost_per_day_model_and_role(metrics: dict[str, Any]) -> None:
    cost = metrics["cost"]
    assert cost["total"] == {
        "calls": 5,
        "cost_usd": 0.4,
        "tokens_in": 3910,
        "tokens_out": 755,
        "cache_read_tokens": 500,
    }
    per_day = {d["date"]: d["cost_usd"] for d in cost["per_day"]}
    assert per_day == {
        "2026-10-19": 0.1,
        "2026-10-20": 0.2,
        "2026-10-21": 0.0,
        "2026-10-22": 0.05,
        "2026-10-23": 0.0,
        "2026-10-24": 0.0,
        "2026-10-25": 0.05,
    }
    models = {m["model"]: (m["calls"], m["cost_usd"], m["simulated"]) for m in cost["per_model"]}
    assert models == {
        "sim:default": (4, 0.36, True),
        "anthropic:claude-sonnet-4-6": (1, 0.04, False),
    }
    roles = {r["role"]: r["cost_usd"] for r in cost["per_role"]}
    assert roles == {"planner": 0.2, "orchestrator": 0.14, "executor": 0.06}


def test_integrity_passes_on_a_clean_db(metrics: dict[str, Any]) -> None:
    integrity = metrics["integrity"]
    assert integrity["ok"] is True, [c for c in integrity["checks"] if not c["ok"]]
    names = [c["name"] for c in integrity["checks"]]
    assert names == [
        "lifecycle",
        "row_event_counts",
        "future_timestamps",
        "event_in_lifetime",
        "daily_completions",
        "learner_goals",
        "turns_once",
        "epochs",
        "discarded_calls",
        "database",
    ]
    # the post names each check in words of its own, not by its identifier
    from fleetlab.digest.sections.integrity import SAID

    assert set(names) <= set(SAID)
    counts = integrity["checks"][1]["counts"]
    assert counts == {
        "spawned": {"rows": 14, "events": 14},
        "completed": {"rows": 6, "events": 6},
        "failed": {"rows": 1, "events": 1},
        "cancelled": {"rows": 1, "events": 1},
    }
    anomalies = {a["kind"] for a in metrics["anomalies"]}
    assert anomalies == {"stale", "over_decomposition", "complex_failed_direct"}


def test_a_week_still_running_is_as_of_now(world: tuple[str, dict[str, str]]) -> None:
    with open_store(world[0]) as store:
        m = compute_metrics(
            store, parse_week("2026-W43", "Europe/London"), now=utc("2026-10-23T12:00Z")
        )
    assert m["as_of"] == "2026-10-23T12:00:00Z"
    assert m["complete"] is False
    # Spawned by Friday noon: A J B C D X E F; F started 10:01 with no heartbeat since: stale
    assert m["counts"]["spawned"] == 8
    assert (m["counts"]["completed"], m["counts"]["stale"]) == (5, 1)


@pytest.fixture(scope="module")
def zones_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("zones") / "fleet.db"
    build_zones(path)
    return path


def _completed_by_day(path: Path, week: str, tz: str) -> dict[str, int]:
    with open_store(path) as store:
        m = compute_metrics(store, parse_week(week, tz), now=NOW)
    return {d["date"]: d["completed"] for d in m["daily"] if d["completed"]}


@pytest.mark.parametrize(
    ("week", "tz", "expected"),
    [
        # Tokyo (east): Z1 at Mon 03:00 JST is Monday of W43; Z4 at Mon 26 00:30 JST is W44
        ("2026-W43", "Asia/Tokyo", {"2026-10-19": 1, "2026-10-20": 1}),
        ("2026-W44", "Asia/Tokyo", {"2026-10-26": 2}),
        # Los Angeles (west): Z3 at Tue 02:30 PDT; Z4 and Z2 (Sun 23:30 PDT) on Sunday
        ("2026-W43", "America/Los_Angeles", {"2026-10-20": 1, "2026-10-25": 2}),
        # London: Z2 at Mon 26 06:30 GMT belongs to W44, on its Monday
        ("2026-W43", "Europe/London", {"2026-10-20": 1, "2026-10-25": 1}),
        ("2026-W44", "Europe/London", {"2026-10-26": 1}),
        ("2026-W43", "UTC", {"2026-10-20": 1, "2026-10-25": 1}),
    ],
)
def test_completions_after_local_midnight_land_on_the_local_day(
    zones_db: Path, week: str, tz: str, expected: dict[str, int]
) -> None:
    assert _completed_by_day(zones_db, week, tz) == expected


def test_tokyo_cohort_replays_status_at_the_weeks_end(zones_db: Path) -> None:
    # Tokyo's W43 ends Sun 25 15:00Z; Z4 (spawned 14:00Z) completed only at 15:30Z, and had
    # been silent for an hour at the end: stale then, whatever its row says today.
    with open_store(zones_db) as store:
        m = compute_metrics(store, parse_week("2026-W43", "Asia/Tokyo"), now=NOW)
    c = m["counts"]
    assert (c["spawned"], c["completed"], c["in_flight"], c["stale"]) == (3, 2, 1, 1)
    assert m["integrity"]["ok"]


def test_weekly_trend_counts_events_per_week(world: tuple[str, dict[str, str]]) -> None:
    with open_store(world[0]) as store:
        trend = weekly_trend(
            store, 3, "Europe/London", until=parse_week("2026-W44", "Europe/London")
        )
    assert [w["week"] for w in trend] == ["2026-W42", "2026-W43", "2026-W44"]
    assert [(w["spawned"], w["completed"], w["failed"], w["cancelled"]) for w in trend] == [
        (3, 1, 1, 0),
        (14, 6, 1, 1),
        (0, 1, 0, 0),  # K, Monday 05:00 GMT
    ]
    assert trend[1]["success_rate"] == round(6 / 7, 4)


@pytest.mark.parametrize(
    ("week", "tz", "start", "end"),
    [
        # Spring forward in London: Monday 23 March 00:00 GMT = 00:00Z, Monday 30 March 00:00
        # BST = 29 March 23:00Z (167 hours).
        ("2026-W13", "Europe/London", "2026-03-23T00:00Z", "2026-03-29T23:00Z"),
        # Kathmandu, UTC+05:45: Monday 23 November 00:00 = 22 November 18:15Z.
        ("2026-W48", "Asia/Kathmandu", "2026-11-22T18:15Z", "2026-11-29T18:15Z"),
    ],
)
def test_digest_counts_the_weeks_first_and_last_instants(
    tmp_path: Path, week: str, tz: str, start: str, end: str
) -> None:
    """The digest reads a week as ``[start, end)``: a task spawned or completed at the week's
    first instant or a microsecond before its end counts, one at ``start - 1 us`` belongs to
    the week before and one at ``end`` to the week after (UTC instants written by hand)."""
    first, after = utc(start), utc(end)
    us = timedelta(microseconds=1)

    def at(instant: datetime) -> str:
        return instant.isoformat()

    clock = FakeClock(first - timedelta(hours=3))
    with open_store(tmp_path / "fleet.db", clock=clock) as store:
        w = World(store, clock)
        for name in ("P", "F", "L", "N"):  # spawned and started in the week before
            w.spawn(name, at(first - timedelta(hours=2)))
            w.move(name, at(first - timedelta(hours=1)), "running")
        w.spawn("S0", at(first - us))
        w.move("P", at(first - us), "completed", result={"summary": "just before"})
        w.spawn("S1", at(first))
        w.move("F", at(first), "completed", result={"summary": "first instant"})
        w.spawn("S2", at(after - us))
        w.move("L", at(after - us), "completed", result={"summary": "last instant"})
        w.spawn("S3", at(after))
        w.move("N", at(after), "completed", result={"summary": "next week"})

    window = parse_week(week, tz)
    with open_store(tmp_path / "fleet.db") as store:
        m = compute_metrics(store, window, now=after + timedelta(days=1))
        trend = weekly_trend(store, 3, tz, until=window.next())
    assert (m["start"], m["end"]) == (f"{start[:-1]}:00Z", f"{end[:-1]}:00Z")
    assert m["counts"]["spawned"] == 2  # S1, S2
    assert m["finished_in_week"] == {"completed": 2, "failed": 0, "cancelled": 0}  # F, L
    daily = {d["date"]: (d["spawned"], d["completed"]) for d in m["daily"]}
    # S1 and F on the local Monday, S2 and L on the local Sunday, nothing between.
    monday, sunday = window.monday.isoformat(), (window.monday + timedelta(days=6)).isoformat()
    assert daily[monday] == (1, 1)
    assert daily[sunday] == (1, 1)
    assert sum(s for s, _ in daily.values()) == 2
    # The week before has P, F, L, N and S0 spawned (S0 at start - 1 us), and P completed.
    assert m["previous"]["counts"]["spawned"] == 5
    assert [(t["week"], t["spawned"], t["completed"]) for t in trend] == [
        (window.previous().label, 5, 1),  # P, F, L, N, S0; P
        (window.label, 2, 2),  # S1, S2; F, L
        (window.next().label, 1, 1),  # S3; N
    ]


def test_digest_reads_calls_updates_claims_and_other_events_at_the_weeks_edges(
    tmp_path: Path,
) -> None:
    """Every query that reads the week reads ``[start, end)``: model calls and discarded calls
    (cost, turns and lifetime spans), learner updates, claims (epochs), other events (the
    lifetime check's span table) and the events the lifetime check lists. Each kind is put at
    ``start - 1 us``, ``start``, ``end - 1 us`` and ``end`` (twice at ``end``, so a window
    shifted by a microsecond, ``(start, end]``, changes every count and sum below).

    2026-W43 in Europe/London: start = Monday 19 October 00:00 BST = 2026-10-18T23:00Z, end =
    Monday 26 October 00:00 GMT = 2026-10-26T00:00Z (UTC instants written by hand)."""
    start, end = utc("2026-10-18T23:00Z"), utc("2026-10-26T00:00Z")
    us, hour = timedelta(microseconds=1), timedelta(hours=1)

    def at(instant: datetime) -> str:
        return instant.isoformat()

    edges = [start - us, start, end - us, end, end]  # the last instant twice
    clock = FakeClock(start - 4 * hour)
    with open_store(tmp_path / "fleet.db", clock=clock) as store:
        w = World(store, clock)
        # T runs from before the week to after it: its calls are inside its lifetime.
        w.spawn("T", at(start - 3 * hour))
        w.move("T", at(start - 2 * hour), "running")
        costs = [0.001, 0.01, 0.1, 1.0, 1.0]
        for turn, (when, cost) in enumerate(zip(edges, costs, strict=True), 1):
            w.call("T", at(when), cost=cost, tokens_in=1, tokens_out=0, turn=turn)
            w.call(
                "T",
                at(when),
                cost=2 * cost,
                tokens_in=1,
                tokens_out=0,
                turn=10 + turn,
                kind="model.discarded",
            )
        # learner updates of bucket "simple": the preferred arm flips at every edge
        for when, preferred in zip(
            edges[:4], ["decompose", "direct", "decompose", "direct"], strict=True
        ):
            w.learned("T", at(when), "simple", preferred, preferred)
        # claims (task.started with a worker carries epoch 1): R0..R3 at the edges, two at end
        for i, when in enumerate(edges):
            w.spawn(f"R{i}", at(start - 3 * hour))
            w.move(f"R{i}", at(when), "running", worker=f"w{i}")
        # O lives from start + 1 h to end - 2 h; its other events at the edges fall outside
        w.spawn("O", at(start + hour))
        w.move("O", at(start + hour + timedelta(minutes=1)), "running")
        w.move("O", at(end - 2 * hour), "completed", result={"summary": "o"})
        for when, kind in zip(
            edges,
            ["stall.detected", "stall.detected", "decomposition.decided"] + ["budget.exceeded"] * 2,
            strict=True,
        ):
            w.event("O", at(when), kind)
        ids = dict(w.ids)

    with open_store(tmp_path / "fleet.db") as store:
        m = compute_metrics(store, parse_week("2026-W43", "Europe/London"), now=end + 24 * hour)
    m = json.loads(json.dumps(m))

    # Cost: the calls at start and end - 1 us, committed ($0.01, $0.1) and discarded ($0.02,
    # $0.2): 4 calls, $0.33, 1 input token each; $0.03 on Monday 19th, $0.3 on Sunday 25th.
    cost = m["cost"]
    assert cost["total"] == {
        "calls": 4,
        "cost_usd": 0.33,
        "tokens_in": 4,
        "tokens_out": 0,
        "cache_read_tokens": 0,
    }
    assert {d["date"]: (d["calls"], d["cost_usd"]) for d in cost["per_day"]} == {
        "2026-10-19": (2, 0.03),
        "2026-10-20": (0, 0.0),
        "2026-10-21": (0, 0.0),
        "2026-10-22": (0, 0.0),
        "2026-10-23": (0, 0.0),
        "2026-10-24": (0, 0.0),
        "2026-10-25": (2, 0.3),
    }
    assert cost["discarded"] == {"calls": 2, "cost_usd": 0.22}  # 0.02 + 0.2

    # Learner: before the week "decompose" (the update at start - 1 us); in the week the
    # updates at start (to "direct") and end - 1 us (back to "decompose").
    learner = m["decomposition"]["learner"]
    assert learner["updates"] == 2
    assert learner["preference_changes"] == 2
    assert learner["changes"] == [
        {
            "at": "2026-10-18T23:00:00Z",
            "bucket": "simple",
            "from": "decompose",
            "to": "direct",
            "task_id": ids["T"],
        },
        {
            "at": "2026-10-25T23:59:59Z",  # end - 1 us, shown to the second
            "bucket": "simple",
            "from": "direct",
            "to": "decompose",
            "task_id": ids["T"],
        },
    ]
    # choices are per goal: T is one goal (one task id), and its choice is its update other
    # than direct, the one at end - 1 us (the direct one at start is counted as an update)
    assert learner["goals"] == 1
    assert learner["choices_daily"] == [
        {"date": "2026-10-25", "bucket": "simple", "arm": "decompose", "goals": 1},
    ]

    checks = {c["name"]: c for c in m["integrity"]["checks"]}
    # turns_once: the committed calls of turns 2 (start) and 3 (end - 1 us); turn 1 (before
    # the week) is another turn, so nothing is committed twice.
    assert (checks["turns_once"]["checked"], checks["turns_once"]["ok"]) == (2, True)
    # epochs: tasks with an epoch-carrying event in the week: R1 (start) and R2 (end - 1 us)
    assert (checks["epochs"]["checked"], checks["epochs"]["ok"]) == (2, True)
    discarded = checks["discarded_calls"]
    assert discarded["checked"] == 2
    assert discarded["title"] == (
        "2 calls paid under a lost lease ($0.2200) counted in the cost, none also committed"
    )
    # event_in_lifetime checks the week's lifecycle events (R1 and R2 started; O spawned,
    # started, completed: 5), other events (O's at start and end - 1 us, T's two discarded
    # calls: 4) and model calls (T's at start and end - 1 us: 2): 11. O's events at start
    # (before its spawn) and end - 1 us (after its finish) are outside its lifetime.
    lifetime = checks["event_in_lifetime"]
    assert lifetime["checked"] == 11
    assert lifetime["offending"] == [ids["O"]]
    assert [(d["task_id"], d["kind"], d["problem"]) for d in lifetime["details"]] == [
        (ids["O"], "stall.detected", "before the task was spawned (2026-10-19T00:00:00Z)"),
        (ids["O"], "decomposition.decided", "after the task finished (2026-10-25T22:00:00Z)"),
    ]
