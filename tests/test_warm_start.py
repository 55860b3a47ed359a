"""Warm start: a learner seeded from an experiment's trials of fixed strategies prefers the
arm that experiment found best, from its first goal; ``fleetlab learn`` shows what it learned."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from fleetlab.learning import LearnerConfig, posterior_frame, warm_start
from fleetlab.models.sim import SimModel
from fleetlab.objective import Objective
from fleetlab.orchestrator import Fleet, FleetConfig, Goal, submit_goals
from fleetlab.store import open_store

TASK = "core:rename-readme"
OBJECTIVE = Objective(success_value_usd=1.0)


def _rows(world: dict[str, dict[str, float]], n: int) -> pl.DataFrame:
    """Results rows of a made-up experiment: per (bucket, fixed policy) ``n`` trials whose
    success rate is the world's, at $0.05 each; the threshold variant supplies each (task,
    seed)'s estimate, as a scored variant does in a real experiment."""
    policy = {"direct": "never", "decompose": "always", "as_needed": "as_needed"}
    score = {"simple": 1, "medium": 3, "complex": 5}
    rows: list[dict[str, Any]] = []
    for bucket, rates in world.items():
        for i in range(n):
            task = f"t:{bucket}"
            rows.append({"variant": "t4", "policy": "threshold:4", "task": task, "seed": i,
                         "score_bucket": bucket, "score": score[bucket], "choice": "direct",
                         "passed": True, "cost_usd": 0.0, "prompt": "default"})  # fmt: skip
            for arm, rate in rates.items():
                passed = i < rate * n
                rows.append({"variant": arm, "policy": policy[arm], "task": task, "seed": i,
                             "score_bucket": None, "score": None, "choice": None,
                             "passed": passed, "cost_usd": 0.05, "prompt": "default"})  # fmt: skip
    frame = pl.DataFrame(rows)
    # the threshold rows are direct choices in their bucket: make them lose everywhere
    return frame.with_columns(
        pl.when(pl.col("policy") == "threshold:4").then(False).otherwise(pl.col("passed"))
        .alias("passed"),
        pl.lit("agents").alias("kind"),
        pl.lit(3).alias("complexity"),
    )  # fmt: skip


def test_warm_start_credits_each_fixed_strategy_to_its_arm_and_bucket(
    fresh_db: Callable[[], str],
) -> None:
    world = {"simple": {"direct": 0.9, "decompose": 0.5, "as_needed": 0.7}}
    with open_store(fresh_db()) as store:
        seeded = warm_start(store, _rows(world, 10), objective=OBJECTIVE, source="x")
        assert (seeded.trials, seeded.estimated, seeded.skipped) == (40, 40, 0)
        got = {(r["bucket"], r["arm"]): r for r in posterior_frame(store).to_dicts()}
        # by hand: direct 9 of 10 pass at $0.05 each -> reward sum 9 - 10 * 0.05 = 8.5; the
        # threshold rows chose direct and all failed at no cost: 10 more rewards of 0
        assert got[("simple", "direct")]["n"] == 20
        assert store.learner_totals()[("simple", "direct")].reward_sum == pytest.approx(8.5)
        assert got[("simple", "decompose")]["n"] == 10
        assert got[("simple", "as_needed")]["n"] == 10
        assert got[("medium", "direct")]["n"] == 0
        [seed_row] = [r for r in store.learner_seeds() if r["arm"] == "decompose"]
        assert (seed_row["source"], json.loads(seed_row["objective"])) == (
            "x",
            {"success_value_usd": 1.0, "within_points": 1.0},
        )


@pytest.mark.parametrize("best", ["as_needed", "decompose"])
async def test_a_seeded_learner_plays_the_best_arm_from_its_first_goal(
    fresh_db: Callable[[], str], tmp_path: Path, best: str
) -> None:
    """The experiment's best arm in every bucket (written into its rows, so known without
    the learner) is the first goal's strategy; unscored, as the choice no longer depends on
    the score."""
    rates = {arm: (0.95 if arm == best else 0.4) for arm in ("direct", "decompose", "as_needed")}
    world = {b: dict(rates) for b in ("simple", "medium", "complex")}
    with open_store(fresh_db()) as store:
        warm_start(store, _rows(world, 30), objective=OBJECTIVE, source="made-up")
        [root] = submit_goals(store, [Goal(task=TASK, policy="learned")])
        config = FleetConfig(
            concurrency=2, poll_s=0.01, objective=OBJECTIVE, workspaces=tmp_path / "ws",
            learner=LearnerConfig(audit_rate=0.0),
        )  # fmt: skip
        await Fleet(store, SimModel.from_spec("instant", seed=4), config).run(until_idle=True)
        decision = store.get_task(root.id).spec["decision"]
        assert decision["strategy"] == best
        assert decision["score"] is None


async def test_a_seeded_learner_picks_each_buckets_best_when_they_differ(
    fresh_db: Callable[[], str], tmp_path: Path
) -> None:
    """Buckets disagree, so the first goal is scored and plays its bucket's best arm."""
    world = {
        "simple": {"direct": 0.95, "decompose": 0.3, "as_needed": 0.3},
        "medium": {"direct": 0.3, "decompose": 0.3, "as_needed": 0.95},
        "complex": {"direct": 0.3, "decompose": 0.95, "as_needed": 0.3},
    }
    best = {b: max(r, key=r.__getitem__) for b, r in world.items()}
    with open_store(fresh_db()) as store:
        warm_start(store, _rows(world, 30), objective=OBJECTIVE, source="made-up")
        roots = submit_goals(
            store, [Goal(task=TASK, policy="learned", instance=i) for i in range(3)]
        )
        config = FleetConfig(concurrency=1, poll_s=0.01, objective=OBJECTIVE,
                             workspaces=tmp_path / "ws")  # fmt: skip
        await Fleet(store, SimModel.from_spec("instant", seed=4), config).run(until_idle=True)
        for root in roots:
            decision = store.get_task(root.id).spec["decision"]
            assert decision["bucket"] is not None
            assert decision["strategy"] == best[decision["bucket"]], decision


@pytest.mark.slow
def test_fleetlab_learn_from_a_real_tiny_experiment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A tiny real experiment on sim:instant, then ``fleetlab learn --from-experiment``: every
    trial of a fixed strategy is counted once, the learned variant's are not."""
    from fleetlab.cli import main
    from fleetlab.experiments import OUT_ENV, load, load_experiment, run

    monkeypatch.setenv(OUT_ENV, str(tmp_path / "out"))
    path = tmp_path / "tiny_ws.toml"
    variants = "".join(
        f'[[variants]]\nname = "{n}"\npolicy = "{p}"\n'
        for n, p in (("never", "never"), ("always", "always"), ("as_needed", "as_needed"),
                     ("t4", "threshold:4"), ("learned", "learned"))
    )  # fmt: skip
    path.write_text(
        'name = "tiny_ws"\nkind = "agents"\nmodel = "sim:instant"\nsuites = ["core"]\n'
        "trials = 2\nseed = 1\n[objective]\nsuccess_value_usd = 0.5\n"
        '[tasks]\ninclude = ["core:rename-readme", "core:customer-totals"]\n' + variants,
        encoding="utf-8",
    )
    run(load_experiment(path), progress=None)
    frame = load("tiny_ws")
    fixed = frame.filter(pl.col("policy") != "learned").height
    db = tmp_path / "fleet.db"
    assert main(["learn", "--from-experiment", "tiny_ws", "--json", "--db", str(db)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["warm_start"]["trials"] == fixed == 16
    assert out["warm_start"]["skipped"] == 4
    assert out["warm_start"]["objective"]["success_value_usd"] == 0.5  # the experiment's
    assert sum(r["n"] for r in out["posterior"]) == fixed
    assert any("SIMULATED" in n for n in out["warm_start"]["notes"])
