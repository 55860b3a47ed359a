"""The weekly report's learner: its posterior per kind of goal and strategy as of the week's
end (every strategy, as_needed included) and the warm starts it began from, in metrics.json,
the report's table and the post; every number the post writes passes the fact-check.

The evidence goes in through the learner's public API (``warm_start``, ``Learner.update``)
at chosen instants. Counts, and the chances of best where the evidence is decisive, are
worked out here by hand; the posterior's means are the live learner's
(``posterior_frame``) at the instant the week ended, read before any later evidence, which
the report must reproduce from dated rows alone."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import polars as pl
import pytest

from fleetlab.clock import UTC, FakeClock, parse_week
from fleetlab.digest import compute_metrics, fact_check, template_draft
from fleetlab.digest.sections import section
from fleetlab.learning import Learner, posterior_frame, warm_start
from fleetlab.objective import Objective
from fleetlab.orchestrator import submit_goal
from fleetlab.store import Store

pytestmark = pytest.mark.both_backends

ARMS = ("direct", "decompose", "as_needed")
POLICY = {"direct": "never", "decompose": "always", "as_needed": "as_needed"}
WEEK = parse_week("2026-W47", "UTC")  # Monday 16 to Sunday 22 November 2026
START = datetime(2026, 11, 16, tzinfo=UTC)


def _experiment(bucket: str, best: str, *, cost_best: float, n: int = 20) -> pl.DataFrame:
    """A made-up experiment's trials in one bucket: the ``best`` strategy always passes at
    ``cost_best``, the others always fail at $0.05; ``n`` trials a strategy."""
    return pl.DataFrame(
        [
            {"kind": "agents", "policy": POLICY[arm], "task": f"t:{bucket}", "seed": i,
             "score_bucket": bucket, "choice": None, "passed": arm == best,
             "cost_usd": cost_best if arm == best else 0.05, "prompt": "default",
             "complexity": 3}
            for arm in ARMS
            for i in range(n)
        ]
    )  # fmt: skip


#: What the live learner believed, by (bucket, arm): after the week's medium updates, and at
#: the week's end (filled by the ``metrics`` fixture).
SEEN: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}


def _beliefs(store: Store) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["bucket"], r["arm"]): r for r in posterior_frame(store).to_dicts()}


@pytest.fixture
def metrics(store: Store, clock: FakeClock) -> dict[str, Any]:
    objective = Objective(success_value_usd=1.0)  # reward = success - cost in dollars
    learner = Learner(store)  # the fleet's default objective: the same
    # the week before: a first warm start, decisive for complex goals (splitting passes at
    # $0.10: reward 0.9; the others fail at $0.05: reward -0.05)
    clock.set(START - timedelta(days=3))
    # (its trials from the simulated model, which the report says; the second's do not say)
    first = _experiment("complex", "decompose", cost_best=0.10).with_columns(simulated=True)
    warm_start(store, first, objective=objective, source="experiment:first_ab")
    # during the week: two medium goals split as needed pass at $0.02 (reward 0.98) ...
    clock.set(START + timedelta(days=1, hours=9))
    submit_goal(store, "a goal this week")  # the week is not empty
    for i in range(2):
        learner.update(task_id=f"m{i}", trace_id=f"tm{i}", bucket="medium", arm="as_needed",
                       success=True, cost_usd=0.02, tokens=0)  # fmt: skip
    SEEN["updates"] = _beliefs(store)
    # ... then a second warm start, decisive for simple goals (direct passes at $0.01)
    clock.set(START + timedelta(days=2, hours=10))
    warm_start(store, _experiment("simple", "direct", cost_best=0.01), objective=objective,
               source="experiment:second_ab")  # fmt: skip
    SEEN["end"] = _beliefs(store)
    # after the week: neither counts in its report
    clock.set(START + timedelta(days=8))
    learner.update(task_id="late", trace_id="tlate", bucket="complex", arm="direct",
                   success=True, cost_usd=0.0, tokens=0)  # fmt: skip
    warm_start(store, _experiment("medium", "decompose", cost_best=0.0), objective=objective,
               source="experiment:late_ab")  # fmt: skip
    m = compute_metrics(store, WEEK, now=START + timedelta(days=9))
    return dict(json.loads(json.dumps(m)))  # exactly what metrics.json holds


def _mean(key: tuple[str, str], when: str = "end", digits: int = 3) -> float:
    """The live learner's posterior mean reward, as metrics.json keeps it."""
    return round(float(SEEN[when][key]["mean_reward"]), digits)


def test_the_posterior_is_the_learners_as_of_the_weeks_end(metrics: dict[str, Any]) -> None:
    post = metrics["decomposition"]["learner"]["posterior"]
    assert post["as_of"] == "2026-11-23T00:00:00Z"
    assert post["goals"] == 2  # the update after the week is not counted
    assert post["evidence"] == 60 + 2 + 60  # nor the warm start after it
    arms = {(r["bucket"], r["arm"]): r for r in post["posterior_arms"]}
    assert len(arms) == 9  # every bucket and strategy, as_needed included
    expected_n = {
        ("complex", "decompose"): 20, ("complex", "direct"): 20, ("complex", "as_needed"): 20,
        ("medium", "as_needed"): 2, ("medium", "direct"): 0, ("medium", "decompose"): 0,
        ("simple", "direct"): 20, ("simple", "decompose"): 20, ("simple", "as_needed"): 20,
    }  # fmt: skip
    # (not the late update of complex/direct, nor the late warm start of medium goals)
    for key, n in expected_n.items():
        assert arms[key]["n"] == n, key
        assert arms[key]["mean_reward"] == _mean(key), key
        assert arms[key]["preferred"] == SEEN["end"][key]["preferred"], key
    # 20 rewards outweigh any prior worth a reward or two: near each strategy's own average
    assert abs(arms[("complex", "decompose")]["mean_reward"] - 0.9) < 0.1
    assert abs(arms[("simple", "direct")]["mean_reward"] - 0.99) < 0.1
    assert abs(arms[("complex", "direct")]["mean_reward"] + 0.05) < 0.1
    assert arms[("complex", "decompose")]["preferred"]
    assert arms[("simple", "direct")]["preferred"]
    # 20 passes against 20 failures a strategy: about 15 posterior sds apart, so the best
    # strategy wins every one of the Monte Carlo draws
    for key in (("complex", "decompose"), ("simple", "direct")):
        assert arms[key]["p_best"] == 1.0
    assert arms[("complex", "direct")]["p_best"] == 0.0
    # every chance of best is the live learner's (the same seeded Monte Carlo, same totals)
    for key in expected_n:
        assert arms[key]["p_best"] == round(SEEN["end"][key]["p_best"], 3), key
    # sure: each kind of goal whose preferred strategy is more likely than not the best
    medium_sure = arms[("medium", "as_needed")]["p_best"]
    assert post["sure"] == [
        {"bucket": "simple", "arm": "direct", "p_best": 1.0},
        *([{"bucket": "medium", "arm": "as_needed", "p_best": medium_sure}] * (medium_sure > 0.5)),
        {"bucket": "complex", "arm": "decompose", "p_best": 1.0},
    ]


def test_the_warm_starts_before_and_during_the_week(metrics: dict[str, Any]) -> None:
    assert metrics["decomposition"]["learner"]["posterior"]["warm_starts"] == [
        {"source": "experiment:first_ab", "experiment": "first_ab",
         "at": "2026-11-13T00:00:00Z", "in_week": False, "trials": 60, "goals_before": 0,
         "simulated": True},
        {"source": "experiment:second_ab", "experiment": "second_ab",
         "at": "2026-11-18T10:00:00Z", "in_week": True, "trials": 60, "goals_before": 2,
         "simulated": None},
    ]  # fmt: skip


def test_the_weeks_updates_hold_every_strategys_mean(metrics: dict[str, Any]) -> None:
    [medium] = metrics["decomposition"]["learner"]["buckets"]
    assert medium["bucket"] == "medium"
    assert medium["means"] == {a: _mean(("medium", a), "updates", 4) for a in ARMS}


def test_the_post_says_where_it_started_and_how_sure_it_is(metrics: dict[str, Any]) -> None:
    text = section("learner").draft(metrics)
    assert (
        "The learner started from experiment `first_ab` (60 trials of the SIMULATED model)"
        " before this week; it was warm-started again from experiment `second_ab` (60 trials,"
        " not recorded whether simulated) on 2026-11-18."
    ) in text
    assert (
        "At the week's end it put the chance at 100.0% that running directly is best for simple"
        " goals"
    ) in text
    assert "100.0% that splitting is best for complex goals" in text
    # every number in the post is one of metrics.json's
    check = fact_check(template_draft(metrics), metrics)
    assert check.ok, check.unmatched
    assert fact_check(text, metrics).checked >= 4  # 60, 60, 100.0%, 100.0%
    # the posterior's table of estimates is not quotable: only what the post says is sure
    mean = _mean(("complex", "decompose"))
    assert [u.text for u in fact_check(f"a mean reward of {mean}", metrics).unmatched] == [
        str(mean)
    ]


def test_the_report_shows_every_strategy_of_every_kind_of_goal(
    metrics: dict[str, Any],
) -> None:
    view = section("learner").view(metrics).text
    assert "**What it knew at the week's end** (from 122 rewards:" in view
    rows = [line for line in view.splitlines() if line.startswith("| ") and "%" in line]
    assert len(rows) == 9
    mean = _mean(("complex", "decompose"))
    assert f"| Complex | Split | 20 | {mean:+.3f} | 100.0% | \u2605 preferred |" in rows
    untried = _mean(("medium", "direct"))
    assert f"| Medium | Run directly | 0 | {untried:+.3f} |" in "\n".join(rows)
    assert any(r.startswith("| Medium | Split as needed | 2 |") for r in rows)


def test_a_learner_with_no_evidence_adds_nothing_to_the_post(
    store: Store, clock: FakeClock
) -> None:
    clock.set(START + timedelta(days=1))
    submit_goal(store, "a goal this week")
    m = json.loads(json.dumps(compute_metrics(store, WEEK, now=START + timedelta(days=9))))
    post = m["decomposition"]["learner"]["posterior"]
    assert (post["evidence"], post["goals"], post["warm_starts"], post["sure"]) == (0, 0, [], [])
    assert section("learner").draft(m) == (
        "The learned policy made no choice this week (no goal ran under it)."
    )
    assert "What it knew" not in section("learner").view(m).text
