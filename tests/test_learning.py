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


async def run_policy(
    path: Path, policy: str, seeds: range, pin: str | None = None, concurrency: int = 4
) -> list[Row]:
    """Run every core task once per seed in one store (so a learner keeps learning).

    ``pin`` fixes the learned policy's arm: the scoring step runs as usual, then every task
    goes ``direct`` (or ``decompose``) — a fixed choice measured in the learner's own buckets.
    With ``concurrency=1`` goals finish in a fixed order, so a learner's updates, and the
    result, do not depend on how busy the machine is.
    """
    rows: list[Row] = []
    with Store(path, synchronous="OFF") as store:
        for seed in seeds:
            roots = submit_goals(
                store, [Goal(task=t.key, policy=policy, instance=seed) for t in CORE]
            )
            model = SimModel.from_spec("instant", seed=seed)
            config = FleetConfig(concurrency=concurrency, poll_s=0.01)
            fleet = Fleet(store, model, config, seed=seed)
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
    learned = await run_policy(learned_path, "learned", range(8), concurrency=1)  # 344 goals

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


def test_posterior_is_the_normal_gamma_update(tmp_path: Path) -> None:
    """Mean, scale and degrees of freedom against the textbook conjugate update, and a
    bucket whose rewards barely vary is surer than a noisy one with as many rewards."""
    config = LearnerConfig(prior_mean=0.5, prior_weight=1.0, noise=0.5)
    steady = [0.9, 0.88, 0.91, 0.89]
    noisy = [1.0, -0.2, 0.95, -0.1]
    with Store(tmp_path / "l.db") as store:
        learner = Learner(store, config, seed=3)
        for i, (a, b) in enumerate(zip(steady, noisy, strict=True)):
            learner.update(
                task_id=f"s{i}", trace_id="t", bucket="b", arm="direct", success=True,
                cost_usd=(1 - a) / config.cost_weight, tokens=0,
            )  # fmt: skip
            learner.update(
                task_id=f"n{i}", trace_id="t", bucket="b", arm="decompose", success=b > 0.5,
                cost_usd=(float(b > 0.5) - b) / config.cost_weight, tokens=0,
            )  # fmt: skip
        stats = learner.stats("b")
        for arm, xs in (("direct", steady), ("decompose", noisy)):
            n, xbar = len(xs), sum(xs) / len(xs)
            k_n, alpha = 1.0 + n, 1.0 + n / 2
            beta = 0.25 + sum((x - xbar) ** 2 for x in xs) / 2 + n * (xbar - 0.5) ** 2 / (2 * k_n)
            s = stats[arm]
            assert s.n == n
            assert s.mean == pytest.approx((0.5 + sum(xs)) / k_n)
            assert s.posterior_sd == pytest.approx((beta / (alpha * k_n)) ** 0.5)
            assert s.dof == pytest.approx(2 * alpha)
        assert stats["direct"].posterior_sd < 0.7 * stats["decompose"].posterior_sd

        # Thompson draws follow the Student-t: their spread is scale * sqrt(dof / (dof - 2)).
        picks = [learner.choose("b") for _ in range(4000)]
        direct_draws = [d["sample_direct"] for _, d in picks]
        mean = sum(direct_draws) / len(direct_draws)
        sd = (sum((x - mean) ** 2 for x in direct_draws) / (len(direct_draws) - 1)) ** 0.5
        s = stats["direct"]
        assert mean == pytest.approx(s.mean, abs=0.01)
        assert sd == pytest.approx(s.posterior_sd * (s.dof / (s.dof - 2)) ** 0.5, rel=0.1)
        share = sum(arm == "direct" for arm, _ in picks) / len(picks)
        assert 0.5 < share < 0.99  # better on average, but the noisy arm is still explored
