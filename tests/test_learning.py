"""The learned policy, on the simulated model, ends up where the best fixed choices are."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fleetlab.learning import Learner, LearnerConfig
from fleetlab.models.sim import SimModel
from fleetlab.orchestrator import Fleet, FleetConfig, Goal, submit_goals
from fleetlab.store import Store
from fleetlab.suites import builtin_suites

CORE = builtin_suites()["core"].tasks
Row = dict[str, Any]


async def run_policy(path: Path, policy: str, seeds: range, pin: str | None = None) -> list[Row]:
    """Run every core task once per seed in one store (so a learner keeps learning).

    ``pin`` fixes the learned policy's arm: the scoring step runs as usual, then every task
    goes ``direct`` (or ``decompose``) — a fixed choice measured in the learner's own buckets.
    """
    rows: list[Row] = []
    with Store(path, synchronous="OFF") as store:
        for seed in seeds:
            roots = submit_goals(
                store, [Goal(task=t.key, policy=policy, instance=seed) for t in CORE]
            )
            model = SimModel.from_spec("instant", seed=seed)
            fleet = Fleet(store, model, FleetConfig(concurrency=4, poll_s=0.01), seed=seed)
            if pin is not None:
                fleet.learner.choose = lambda bucket: (pin, {})  # type: ignore[method-assign,assignment,return-value]
            await fleet.run(until_idle=True)
            for root in roots:
                done = store.get_task(root.id)
                rows.append(
                    {
                        "seed": seed,
                        "bucket": done.spec["decision"].get("bucket"),
                        "success": done.status == "completed",
                        "cost": done.tree_cost_usd,
                    }
                )
    return rows


def success_per_dollar(rows: list[Row]) -> float:
    return sum(r["success"] for r in rows) / sum(r["cost"] for r in rows)


def mean_reward(rows: list[Row], bucket: str, config: LearnerConfig) -> float:
    picked = [r for r in rows if r["bucket"] == bucket]
    return sum(r["success"] - config.cost_weight * r["cost"] for r in picked) / len(picked)


@pytest.mark.slow
async def test_learned_policy_matches_best_fixed_choices(tmp_path: Path) -> None:
    config = LearnerConfig()
    fixed = {
        arm: await run_policy(tmp_path / f"{arm}.db", "learned", range(100, 102), pin=arm)
        for arm in ("direct", "decompose")
    }
    # Paired: the sweep sees the same tasks and seeds as the learner's evaluation window.
    sweep = {
        k: await run_policy(tmp_path / f"t{k}.db", f"threshold:{k}", range(4, 8))
        for k in range(1, 6)
    }
    learned_path = tmp_path / "learned.db"
    learned = await run_policy(learned_path, "learned", range(8))  # 344 root tasks

    with Store(learned_path) as store:
        learner = Learner(store, config)
        for bucket in ("simple", "medium", "complex"):
            rewards = {arm: mean_reward(rows, bucket, config) for arm, rows in fixed.items()}
            best = max(rewards, key=rewards.__getitem__)
            means = {arm: round(s.mean, 3) for arm, s in learner.stats(bucket).items()}
            print(
                f"{bucket}: fixed {rewards}; learned {means}; prefers {learner.preferred(bucket)}"
            )
            if abs(rewards["direct"] - rewards["decompose"]) > 0.1:  # a real difference
                assert learner.preferred(bucket) == best, bucket
        assert len(learner.history()) == len(learned)

    best_k, best_rows = max(sweep.items(), key=lambda item: success_per_dollar(item[1]))
    late = [r for r in learned if r["seed"] >= 4]  # seeds 4-7, after 172 tasks of learning
    ratio = success_per_dollar(late) / success_per_dollar(best_rows)
    print(
        f"learned success/$ {success_per_dollar(late):.2f}; best fixed threshold:{best_k} "
        f"{success_per_dollar(best_rows):.2f}; ratio {ratio:.1%}"
    )
    assert ratio >= 0.9
