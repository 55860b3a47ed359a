"""The policy seam: a policy registered from this file runs through the fleet and the
experiment runner with no other change; the learner skips scoring when the score cannot
change its decision, and converges to each bucket's best of three arms."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fleetlab.errors import UserError
from fleetlab.learning import ARMS, Learner, LearnerConfig
from fleetlab.models.sim import SimModel
from fleetlab.orchestrator import Fleet, FleetConfig, Goal, submit_goals
from fleetlab.policies import (
    Context,
    Decision,
    Policy,
    names,
    parse,
    register_policy,
    unregister_policy,
)
from fleetlab.store import open_store
from fleetlab.store.learner import ArmTotals

TASK = "core:rename-readme"


class Toy(Policy):
    """Direct, unless told ``toy:scored``: then it asks for the score and names it."""

    name = "toy"

    def __init__(self, scored: bool) -> None:
        self.scored = scored

    def needs_score(self, context: Context) -> bool:
        return self.scored

    def decide(self, context: Context) -> Decision:
        return Decision("direct", f"toy saw score {context.score}")

    def __str__(self) -> str:
        return "toy:scored" if self.scored else "toy"


def _toy(arg: str | None) -> Policy:
    if arg not in (None, "scored"):
        raise UserError(f"toy takes nothing or 'scored', got {arg!r}")
    return Toy(arg == "scored")


@pytest.fixture
def toy() -> Iterator[None]:
    register_policy("toy", _toy, replace=True)
    yield
    unregister_policy("toy")


def test_built_in_names_and_todays_spellings() -> None:
    assert names()[:5] == ["never", "always", "threshold", "as_needed", "learned"]
    spelled = {
        "never": "never", "direct": "never", "always": "always", "decompose": "always",
        "threshold:4": "threshold:4", "as_needed": "as_needed", "as-needed": "as_needed",
        "learned": "learned",
    }  # fmt: skip
    for text, canonical in spelled.items():
        assert str(parse(text)) == canonical
    assert parse("learned").learns
    assert not parse("threshold:2").learns
    for bad, says in (("nope", "unknown policy 'nope'"), ("threshold:7", "from 1 to 5"),
                      ("never:3", "takes no argument")):  # fmt: skip
        with pytest.raises(UserError, match=says) as info:
            parse(bad)
        assert "\n" not in str(info.value)


def _decisions(store: object, root_id: str) -> list[dict[str, object]]:
    rows = store.query(  # type: ignore[attr-defined]
        "SELECT attrs ->> 'policy', attrs ->> 'reason' FROM events"
        " WHERE kind = 'decomposition.decided' AND task_id = ? ORDER BY seq",
        (root_id,),
    )
    return [{"policy": r[0], "reason": r[1]} for r in rows]


def _scorer_calls(store: object, trace_id: str) -> int:
    rows = store.query(  # type: ignore[attr-defined]
        "SELECT COUNT(*) FROM events WHERE kind = 'model.call' AND role = 'scorer'"
        " AND trace_id = ?",
        (trace_id,),
    )
    return int(rows[0][0])


@pytest.mark.parametrize(("spec", "scored"), [("toy", False), ("toy:scored", True)])
async def test_a_toy_policy_runs_through_the_fleet(
    toy: None, tmp_path: Path, spec: str, scored: bool
) -> None:
    with open_store(tmp_path / "fleet.db") as store:
        [root] = submit_goals(store, [Goal(task=TASK, policy=spec)])
        config = FleetConfig(concurrency=2, poll_s=0.01, workspaces=tmp_path / "ws")
        await Fleet(store, SimModel.from_spec("instant", seed=1), config).run(until_idle=True)
        done = store.get_task(root.id)
        assert done.status == "completed"
        [decided] = _decisions(store, root.id)
        assert decided["policy"] == spec
        # scored only when the policy asked, and the score reached its decide()
        assert _scorer_calls(store, root.trace_id) == int(scored)
        score = done.spec["decision"]["score"]
        assert decided["reason"] == f"toy saw score {score}"
        assert (score is not None) == scored


def test_a_toy_policy_runs_through_the_experiment_runner(toy: None, tmp_path: Path) -> None:
    from fleetlab.experiments import load, load_experiment, run

    path = tmp_path / "seam.toml"
    path.write_text(
        'name = "seam"\nkind = "agents"\nmodel = "sim:instant"\nsuites = ["core"]\n'
        "trials = 1\nseed = 1\n"
        f'[tasks]\ninclude = ["{TASK}"]\n'
        '[[variants]]\nname = "toy"\npolicy = "toy"\n'
        '[[variants]]\nname = "never"\npolicy = "never"\n',
        encoding="utf-8",
    )
    summary = run(load_experiment(path), root=tmp_path / "out", progress=None)
    assert summary.ran == 2
    frame = load("seam", root=tmp_path / "out")
    [row] = frame.filter(frame["variant"] == "toy").to_dicts()
    assert (row["policy"], row["passed"], row["choice"]) == ("toy", True, "direct")


# --- the learner -----------------------------------------------------------------------------


def _settle(store: object, best: str, n: int = 40) -> None:
    """Give every bucket ``n`` rewards per arm: ``best`` always succeeds at no cost, the
    others always fail (a learner with this evidence cannot prefer anything else)."""
    totals = {
        (bucket, arm): ArmTotals(n, float(n), float(n)) if arm == best else ArmTotals(n, 0.0, 0.0)
        for bucket in ("simple", "medium", "complex")
        for arm in ARMS
    }
    store.seed_learner(totals)  # type: ignore[attr-defined]


async def test_a_settled_learner_skips_the_scoring_call(
    fresh_db: Callable[[], str], tmp_path: Path
) -> None:
    """No scorer model.call for a goal whose decision cannot depend on the score; one for
    the same goal when the learner is not settled (the control)."""
    never_audit = LearnerConfig(audit_rate=0.0)
    calls = {}
    for settled in (True, False):
        with open_store(fresh_db()) as store:
            if settled:
                _settle(store, "as_needed")
            [root] = submit_goals(store, [Goal(task=TASK, policy="learned")])
            config = FleetConfig(
                concurrency=2, poll_s=0.01, learner=never_audit, workspaces=tmp_path / str(settled)
            )
            await Fleet(store, SimModel.from_spec("instant", seed=2), config).run(until_idle=True)
            done = store.get_task(root.id)
            calls[settled] = _scorer_calls(store, root.trace_id)
            if settled:
                assert done.spec["decision"]["strategy"] == "as_needed"
                assert done.spec["decision"]["bucket"] is None
    assert calls == {True: 0, False: 1}


async def test_fixed_strategies_never_score(fresh_db: Callable[[], str], tmp_path: Path) -> None:
    with open_store(fresh_db()) as store:
        roots = submit_goals(
            store,
            [
                Goal(task=TASK, policy=p, instance=i)
                for i, p in enumerate(("never", "always", "as_needed"))
            ],
        )
        config = FleetConfig(concurrency=3, poll_s=0.01, workspaces=tmp_path / "ws")
        await Fleet(store, SimModel.from_spec("instant", seed=2), config).run(until_idle=True)
        assert [_scorer_calls(store, r.trace_id) for r in roots] == [0, 0, 0]


#: A reward world the learner never sees: per bucket, each arm's success probability and
#: cost. Its best arm per bucket (by success - cost) is written down by hand: simple ->
#: direct (0.93 vs 0.79), medium -> as_needed (0.85 - 0.05), complex -> decompose (0.8 - 0.08).
WORLD = {
    "simple": {"direct": (0.95, 0.02), "decompose": (0.9, 0.08), "as_needed": (0.85, 0.06)},
    "medium": {"direct": (0.6, 0.03), "decompose": (0.75, 0.08), "as_needed": (0.85, 0.05)},
    "complex": {"direct": (0.3, 0.04), "decompose": (0.8, 0.08), "as_needed": (0.6, 0.09)},
}
BEST = {"simple": "direct", "medium": "as_needed", "complex": "decompose"}


def test_the_learner_finds_each_buckets_best_of_three_arms(fresh_db: Callable[[], str]) -> None:
    world = random.Random(11)
    with open_store(fresh_db()) as store:
        learner = Learner(store, LearnerConfig(cost_weight=1.0), seed=5)
        picks: dict[str, list[str]] = {b: [] for b in WORLD}
        for i in range(900):
            bucket = ("simple", "medium", "complex")[i % 3]
            arm, _ = learner.choose(bucket)
            p, cost = WORLD[bucket][arm]
            learner.update(
                task_id=f"g{i}", trace_id="t", bucket=bucket, arm=arm,
                success=world.random() < p, cost_usd=cost, tokens=0,
            )  # fmt: skip
            picks[bucket].append(arm)
        for bucket, best in BEST.items():
            assert learner.preferred(bucket) == best, bucket
            late = picks[bucket][-50:]
            assert late.count(best) >= 30, (bucket, late)  # mostly exploiting, still exploring
        # the posterior table agrees: the preferred arm is the most probably best
        table = learner.posterior()
        for bucket, best in BEST.items():
            rows = [r for r in table if r["bucket"] == bucket]
            assert max(rows, key=lambda r: r["p_best"])["arm"] == best
            assert [r["arm"] for r in rows if r["preferred"]] == [best]


def test_a_registered_policy_is_offered_by_both_panels(toy: None, tmp_path: Path) -> None:
    """The console's and the A/B panel's policy menus come from the registry: a policy
    registered here appears in both, with no edit to the widgets; threshold offers its
    examples."""
    from fleetlab.widgets.ab import ABPanel
    from fleetlab.widgets.console import FleetConsole

    console = FleetConsole(db=str(tmp_path / "fleet.db"))
    try:
        offered = list(console.policy.options)
    finally:
        console.close()
    assert "toy" in offered
    assert {"never", "always", "threshold:3", "threshold:4", "as_needed", "learned"} <= set(offered)
    panel = ABPanel(root=tmp_path / "out", folder=tmp_path, models=["sim:instant"])
    assert "toy" in panel.policies.options
    assert "toy" not in panel.policies.value  # offered, not ticked by default


def test_a_try_then_split_goal_teaches_direct_too(fresh_db: Callable[[], str]) -> None:
    """An ``as_needed`` goal starts with a direct attempt: unsplit, the attempt's outcome is
    the goal's (a direct reward equal to its own); split, the attempt failed at about the
    root's own cost. Rewards computed by hand: success - cost (a success is worth $1)."""
    from fleetlab.policies.base import Outcome

    with open_store(fresh_db()) as store:
        learner = Learner(store, LearnerConfig(cost_weight=1.0))
        policy = parse("learned")
        decision = {"policy": "learned", "bucket": "medium", "arm": "as_needed"}
        for i, (success, split, cost, own) in enumerate(
            [(True, False, 0.04, 0.04), (True, True, 0.10, 0.05), (False, True, 0.12, 0.06)]
        ):
            policy.learn(Outcome(f"g{i}", "t", decision, success, cost, 100, learner, split, own))
        policy.learn(Outcome("d", "t", {**decision, "arm": "decompose"}, True, 0.2, 9, learner))
        totals = store.learner_totals()
        assert totals[("medium", "as_needed")].n == 3
        assert totals[("medium", "as_needed")].reward_sum == pytest.approx(0.96 + 0.90 - 0.12)
        assert totals[("medium", "direct")].n == 3
        assert totals[("medium", "direct")].reward_sum == pytest.approx(0.96 - 0.05 - 0.06)
        assert totals[("medium", "decompose")].n == 1  # no direct attempt in a decomposition


async def test_a_goal_that_spends_its_budget_teaches_a_failure(
    fresh_db: Callable[[], str], tmp_path: Path
) -> None:
    """A goal its budget stopped after its strategy ran failed under that strategy: the learner
    records a failure at the cost the goal's tree spent, with its event, in the trace (a
    learner that never saw these would take the strategy that blows the budget for a safe
    one). A budget the scoring call alone spent teaches nothing: the strategy never ran."""
    always_score = LearnerConfig(audit_rate=1.0)
    for budget, taught in ((0.009, True), (0.002, False)):
        with open_store(fresh_db()) as store:
            [root] = submit_goals(store, [Goal(task=TASK, policy="learned", budget_usd=budget)])
            config = FleetConfig(
                concurrency=2, poll_s=0.01, learner=always_score, workspaces=tmp_path / str(budget)
            )
            await Fleet(store, SimModel.from_spec("instant", seed=2), config).run(until_idle=True)
            done = store.get_task(root.id)
            assert done.status == "cancelled"
            assert str(done.error).startswith("budget exceeded")
            decision = done.spec["decision"]
            calls = [e for e in store.events(kind="model.call") if e.trace_id == root.trace_id]
            assert len(calls) > 1 if taught else len(calls) == 1  # the scorer's call only
            updates = [u for u in store.learner_history() if u["arm"] == decision["arm"]]
            if not taught:
                assert updates == []
                assert store.events(kind="learner.updated") == []
                continue
            [update] = updates
            assert (update["task_id"], update["bucket"]) == (root.id, decision["bucket"])
            assert update["success"] in (False, 0)
            assert update["cost_usd"] == pytest.approx(done.tree_cost_usd)
            assert update["cost_usd"] >= budget
            events = store.events(kind="learner.updated")
            [event] = [e for e in events if e.attrs["arm"] == update["arm"]]
            assert event.trace_id == root.trace_id
