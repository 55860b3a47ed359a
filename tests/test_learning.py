"""The learned policy, on the simulated model, ends up where the best fixed choices are."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fleetlab.cli import main
from fleetlab.learning import (
    ARMS,
    BUCKETS,
    DEFAULT_OBJECTIVE,
    Learner,
    LearnerConfig,
    posterior_frame,
)
from fleetlab.models.sim import SimModel
from fleetlab.objective import Objective
from fleetlab.orchestrator import Fleet, FleetConfig, Goal, submit_goals
from fleetlab.store import open_store
from fleetlab.store.learner import ArmTotals, LearnerSeed
from fleetlab.suites import builtin_suites

pytestmark = pytest.mark.both_backends

CORE = builtin_suites()["core"].tasks
Row = dict[str, Any]


async def run_policy(
    path: Path, policy: str, seeds: range, pin: str | None = None, concurrency: int = 4
) -> list[Row]:
    """Run every core task once per seed in one store (so a learner keeps learning).

    ``pin`` fixes the learned policy's arm: every task is scored, then gets that
    strategy — a fixed choice measured in the learner's own buckets.
    With ``concurrency=1`` goals finish in a fixed order, so a learner's updates, and the
    result, do not depend on how busy the machine is.
    """
    rows: list[Row] = []
    with open_store(path, synchronous="OFF") as store:
        for seed in seeds:
            roots = submit_goals(
                store, [Goal(task=t.key, policy=policy, instance=seed) for t in CORE]
            )
            model = SimModel.from_spec("instant", seed=seed)
            config = FleetConfig(concurrency=concurrency, poll_s=0.01)
            fleet = Fleet(store, model, config, seed=seed)
            if pin is not None:  # every goal scored (its bucket known), then ``pin`` played
                fleet.learner.needs_score = lambda: True  # type: ignore[method-assign]
                fleet.learner.choose = lambda bucket: (pin, {})  # type: ignore[method-assign,assignment,return-value]
            await fleet.run(until_idle=True)
            for root in roots:
                done = store.get_task(root.id)
                rows.append(
                    {
                        "seed": seed,
                        "bucket": done.spec["decision"].get("bucket"),
                        "arm": done.spec["decision"].get("arm"),
                        "success": done.status == "completed",
                        "cost": done.tree_cost_usd,
                    }
                )
    return rows


def mean_reward(rows: list[Row], objective: Objective, bucket: str | None = None) -> float:
    picked = [r for r in rows if bucket is None or r["bucket"] == bucket]
    return sum(objective.score(r["success"], r["cost"]) for r in picked) / len(picked)


# What the learner converges on does not depend on the engine (its store operations run on both
# in the tests below): on SQLite only, which keeps `make test` within its time budget.
@pytest.mark.slow
@pytest.mark.sqlite_only
async def test_learned_policy_matches_best_fixed_choices(
    fresh_db: Callable[[], str], tmp_path: Path
) -> None:
    """The oracle is measured, not assumed: each arm pinned (scored as usual, then always that
    strategy) gives each bucket's best arm, and the fixed policies on the learner's own
    seeds give the worst and best fixed reward."""
    objective = DEFAULT_OBJECTIVE
    pinned = {
        arm: await run_policy(fresh_db(), "learned", range(100, 102), pin=arm) for arm in ARMS
    }
    # Paired: the fixed strategies see the same tasks and seeds as the learner's late window.
    fixed = {
        p: await run_policy(fresh_db(), p, range(4, 8)) for p in ("never", "always", "as_needed")
    }
    learned_path = fresh_db()
    learned = await run_policy(learned_path, "learned", range(8), concurrency=1)  # 344 goals

    with open_store(learned_path) as store:
        learner = Learner(store)
        for bucket in ("simple", "medium", "complex"):
            rewards = {arm: mean_reward(rows, objective, bucket) for arm, rows in pinned.items()}
            ranked = sorted(rewards, key=rewards.__getitem__, reverse=True)
            means = {arm: round(s.mean, 3) for arm, s in learner.stats(bucket).items()}
            print(
                f"{bucket}: pinned {rewards}; learned {means}; prefers {learner.preferred(bucket)}"
            )
            if rewards[ranked[0]] - rewards[ranked[1]] > 0.1:  # a real difference
                assert learner.preferred(bucket) == ranked[0], bucket
        # a scored goal teaches its arm; a try-then-split goal teaches direct too
        scored = [r for r in learned if r["bucket"] is not None]
        assert len(learner.history()) == len(scored) + sum(r["arm"] == "as_needed" for r in scored)

    late = [r for r in learned if r["seed"] >= 4]  # seeds 4-7, after 172 goals of learning
    scores = {p: mean_reward(rows, objective) for p, rows in fixed.items()}
    worst, best = min(scores.values()), max(scores.values())
    got = mean_reward(late, objective)
    print(f"learned {got:.3f}; fixed {scores}")
    # Measured 84% of the way (0.880 between never 0.806 and as_needed 0.895): it pays for
    # scoring and for exploring three arms in three buckets. The 90% criterion of issue 17 is
    # judged by the worlds experiment, over more goals; this guards against a learner that
    # learns nothing (which lands near the mean of the three, about 45%).
    assert got >= worst + 0.75 * (best - worst)


def test_posterior_is_the_normal_gamma_update(fresh_db: Callable[[], str], tmp_path: Path) -> None:
    """Mean, scale and degrees of freedom against the textbook conjugate update, and a
    bucket whose rewards barely vary is surer than a noisy one with as many rewards."""
    config = LearnerConfig(
        cost_weight=5.0, prior_mean=0.5, prior_weight=1.0, noise=0.5, share_weight=0.0,
        sample_scale=1.0, min_evidence=0,  # plain Thompson sampling from the first reward
    )  # fmt: skip
    steady = [0.9, 0.88, 0.91, 0.89]
    noisy = [1.0, -0.2, 0.95, -0.1]
    with open_store(fresh_db()) as store:
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
        assert stats["as_needed"].n == 0  # the third arm, untried: the prior
        assert stats["as_needed"].mean == pytest.approx(0.5)
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
        for i in range(4):  # the third arm, clearly worse, so the share below is about two
            learner.update(
                task_id=f"a{i}", trace_id="t", bucket="b", arm="as_needed", success=False,
                cost_usd=0.1, tokens=0,
            )  # fmt: skip
        picks = [learner.choose("b") for _ in range(4000)]
        direct_draws = [d["sample_direct"] for _, d in picks]
        mean = sum(direct_draws) / len(direct_draws)
        sd = (sum((x - mean) ** 2 for x in direct_draws) / (len(direct_draws) - 1)) ** 0.5
        s = stats["direct"]
        assert mean == pytest.approx(s.mean, abs=0.01)
        assert sd == pytest.approx(s.posterior_sd * (s.dof / (s.dof - 2)) ** 0.5, rel=0.1)
        share = sum(arm == "direct" for arm, _ in picks) / len(picks)
        assert 0.5 < share < 0.99  # better on average, but the noisy arm is still explored


@pytest.mark.parametrize(
    ("success", "cost_usd", "tokens", "reward"),
    [
        # 1 - 2 * 0.1 - 0.5 * 3000 / 1000 = 1 - 0.2 - 1.5
        (True, 0.1, 3000, -0.7),
        # 0 - 2 * 0.05 - 0.5 * 400 / 1000 = -0.1 - 0.2
        (False, 0.05, 400, -0.3),
        # no tokens: only the dollar term, 1 - 2 * 0.25
        (True, 0.25, 0, 0.5),
    ],
)
def test_reward_charges_tokens(
    fresh_db: Callable[[], str],
    tmp_path: Path,
    success: bool,
    cost_usd: float,
    tokens: int,
    reward: float,
) -> None:
    """The reward is success - cost_weight * USD - token_weight * tokens / 1000, by hand, and
    the update stores that reward (arm totals and history)."""
    config = LearnerConfig(cost_weight=2.0, token_weight=0.5)
    with open_store(fresh_db()) as store:
        learner = Learner(store, config)
        assert learner.reward(success, cost_usd, tokens) == pytest.approx(reward)
        got = learner.update(
            task_id="t1", trace_id="t", bucket="b", arm="direct", success=success,
            cost_usd=cost_usd, tokens=tokens,
        )  # fmt: skip
        assert got == pytest.approx(reward)
        [arm] = store.query("SELECT n, reward_sum, reward_sq FROM learner_arms")
        assert (arm["n"], arm["reward_sum"], arm["reward_sq"]) == pytest.approx(
            (1, reward, reward**2)
        )
        [row] = learner.history()
        assert row["reward"] == pytest.approx(reward)


def test_token_cost_changes_which_arm_the_learner_prefers(
    fresh_db: Callable[[], str], tmp_path: Path
) -> None:
    """Direct is a cent cheaper in dollars but uses 40,000 tokens to decompose's 2,000. With
    tokens free the learner prefers direct; charging 0.01 points per 1,000 tokens makes
    decompose the better arm, which it then prefers and samples most."""
    # rewards (cost_weight 5): direct 1 - 0.05 - w * 40, decompose 1 - 0.10 - w * 2;
    # w = 0: 0.95 vs 0.90 (direct); w = 0.01: 0.55 vs 0.88 (decompose).
    arms = {"direct": (0.01, 40_000), "decompose": (0.02, 2_000)}
    expected = {0.0: ("direct", 0.95, 0.90), 0.01: ("decompose", 0.55, 0.88)}
    for token_weight, (best, direct_reward, decompose_reward) in expected.items():
        # min_evidence=0: only two of the three arms have rewards (the third is not the point)
        config = LearnerConfig(cost_weight=5.0, token_weight=token_weight, min_evidence=0)
        with open_store(fresh_db()) as store:
            learner = Learner(store, config, seed=7)
            for i in range(20):
                for arm, (cost, tokens) in arms.items():
                    learner.update(
                        task_id=f"{arm}{i}", trace_id="t", bucket="medium", arm=arm,
                        success=True, cost_usd=cost, tokens=tokens,
                    )  # fmt: skip
            [direct] = store.query(
                "SELECT DISTINCT reward FROM learner_updates WHERE arm = 'direct'"
            )
            [decompose] = store.query(
                "SELECT DISTINCT reward FROM learner_updates WHERE arm = 'decompose'"
            )
            assert (direct[0], decompose[0]) == pytest.approx((direct_reward, decompose_reward))
            assert learner.preferred("medium") == best
            picks = [learner.choose("medium")[0] for _ in range(200)]
            assert picks.count(best) > 100  # Thompson sampling mostly picks it too


async def test_the_fleet_charges_a_goals_whole_tree_tokens(
    fresh_db: Callable[[], str], tmp_path: Path
) -> None:
    """A learned-policy goal teaches the learner with its tree's input + output tokens: the
    stored reward is success - cost_weight * tree USD - token_weight * tree tokens / 1000."""
    learner_config = LearnerConfig(cost_weight=5.0, token_weight=0.25)
    with open_store(fresh_db()) as store:
        [root] = submit_goals(store, [Goal(task=CORE[0].key, policy="learned")])
        config = FleetConfig(concurrency=2, poll_s=0.01, learner=learner_config)
        await Fleet(store, SimModel.from_spec("instant", seed=3), config).run(until_idle=True)
        done = store.get_task(root.id)
        [row] = Learner(store, learner_config).history()
        tokens = sum(t.tokens_in + t.tokens_out for t in store.tasks(trace_id=root.trace_id))
        cost = sum(t.cost_usd for t in store.tasks(trace_id=root.trace_id))
        assert tokens > 0
        expected = float(done.status == "completed") - 5.0 * cost - 0.25 * tokens / 1000
        assert row["reward"] == pytest.approx(expected)


@pytest.mark.sqlite_only
def test_a_v5_database_migrates_its_learner_on_open(tmp_path: Path) -> None:
    """A fleet.db written before the learner's arms were strategies (schema v5) opens: its
    history keeps its rows (no per-arm means: None), and a warm start can be recorded."""
    import sqlite3

    from fleetlab.store.learner import ArmTotals, LearnerSeed
    from fleetlab.store.sqlite.schema import MIGRATIONS, SCHEMA_VERSION

    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    for script in MIGRATIONS[:5]:
        conn.executescript(script)
    conn.execute("INSERT INTO meta VALUES ('schema_version', '5')")
    conn.execute(
        "INSERT INTO learner_updates (ts_us, task_id, bucket, arm, reward, success, cost_usd,"
        " mean_direct, mean_decompose, preferred) VALUES (1, 't1', 'simple', 'direct', 0.9, 1,"
        " 0.02, 0.7, 0.5, 'direct')"
    )
    conn.execute("INSERT INTO learner_arms VALUES ('simple', 'direct', 1, 0.9, 0.81)")
    conn.execute("PRAGMA user_version = 5")
    conn.commit()
    conn.close()
    with open_store(path) as store:
        assert store.schema_version == SCHEMA_VERSION == 7
        [old] = store.learner_history()
        assert (old["task_id"], old["means"]) == ("t1", None)
        store.add_learner_seeds(
            [LearnerSeed(2, "experiment:x", "simple", "direct", 2, 1.5, 1.2, "{}")]
        )
        assert store.learner_totals()[("simple", "direct")] == ArmTotals(3, 2.4, 2.01)
        assert [r["source"] for r in store.learner_seeds()] == ["experiment:x"]


def test_every_arm_gets_min_evidence_rewards_in_each_bucket_before_the_posterior_decides(
    fresh_db: Callable[[], str],
) -> None:
    """Rewards that agree (every arm 0.95 everywhere) leave nothing to learn by the posterior,
    but a cell short of ``min_evidence`` rewards is played, least-tried first, and goals are
    scored until every cell has them; then the posterior decides (audits off)."""
    with open_store(fresh_db()) as store:
        learner = Learner(store, LearnerConfig(min_evidence=3, audit_rate=0.0), seed=1)
        totals = {(b, a): ArmTotals(5, 4.75, 4.75 * 0.95) for b in BUCKETS for a in ARMS}
        totals[("complex", "decompose")] = ArmTotals(1, 0.95, 0.95**2)
        totals[("complex", "as_needed")] = ArmTotals(2, 1.9, 1.9 * 0.95)
        store.seed_learner(totals)
        assert learner.needs_score()
        assert learner.choose("complex")[0] == "decompose"  # 1 reward, the fewest
        assert learner.choose("simple")[0] in ARMS  # full: the posterior's sample
        learner.update(task_id="g1", trace_id="t", bucket="complex", arm="decompose",
                       success=True, cost_usd=0.05, tokens=0)  # fmt: skip
        learner.update(task_id="g2", trace_id="t", bucket="complex", arm="decompose",
                       success=True, cost_usd=0.05, tokens=0)  # fmt: skip
        assert learner.choose("complex")[0] == "as_needed"  # now 2 against decompose's 3
        learner.update(task_id="g3", trace_id="t", bucket="complex", arm="as_needed",
                       success=True, cost_usd=0.05, tokens=0)  # fmt: skip
        # every cell has 3+ rewards, all 0.95: the score is worth nothing
        assert not any(learner.needs_score() for _ in range(20))


def _replay(values: list[float]) -> Callable[..., float]:
    """A stand-in for ``value_of_scoring`` that returns ``values`` in turn."""
    samples = iter(values)
    return lambda *_, **__: next(samples)


def test_the_value_of_a_score_is_averaged_over_voi_draws_samples(
    fresh_db: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Samples of the score's value 0, 0, 0.1, 0 (mean 0.025) against a call worth 0.008
    points: one sample says no, their average says yes."""
    config = LearnerConfig(min_evidence=0, audit_rate=0.0, score_cost_usd=0.008)
    with open_store(fresh_db()) as store:
        for draws, expected in ((1, False), (4, True)):
            learner = Learner(store, dataclasses.replace(config, voi_draws=draws))
            monkeypatch.setattr(learner, "value_of_scoring", _replay([0.0, 0.0, 0.1, 0.0]))
            assert learner.needs_score() is expected


def test_thompson_draws_spread_by_sample_scale_around_the_posterior_mean(
    fresh_db: Callable[[], str],
) -> None:
    """Same state, same seed: at scale 0 every draw is the arm's posterior mean (so the best
    mean is played); at 0.3 each draw lies 0.3 as far from the mean as at 1."""
    with open_store(fresh_db()) as store:
        store.seed_learner(
            {("medium", a): ArmTotals(4, 4 * r, 4 * r * r + 0.5)
             for a, r in (("direct", 0.6), ("decompose", 0.5), ("as_needed", 0.55))}
        )  # fmt: skip
        base = LearnerConfig(min_evidence=0)
        means = {a: s.mean for a, s in Learner(store, base).stats("medium").items()}

        def draws(scale: float, seed: int) -> dict[str, float]:
            config = dataclasses.replace(base, sample_scale=scale)
            arm, sampled = Learner(store, config, seed=seed).choose("medium")
            assert arm == max(ARMS, key=lambda a: sampled[f"sample_{a}"])
            return {a: sampled[f"sample_{a}"] for a in ARMS}

        for seed in range(20):
            assert draws(0.0, seed) == pytest.approx(means, abs=1e-4)
            wide, narrow = draws(1.0, seed), draws(0.3, seed)
            for a in ARMS:
                assert narrow[a] - means[a] == pytest.approx(0.3 * (wide[a] - means[a]), abs=2e-4)
        assert any(
            max(draws(1.0, seed), key=draws(1.0, seed).get) != "direct" for seed in range(20)
        )


def test_the_value_of_a_score_is_drawn_at_value_scale(fresh_db: Callable[[], str]) -> None:
    """Every bucket's posterior means prefer as_needed, by a few points: valued on the means
    alone (scale 0) a score is worth nothing; on the full posterior (scale 1) its draws
    sometimes disagree per bucket, which is worth something."""
    with open_store(fresh_db()) as store:
        store.seed_learner(
            {(b, a): ArmTotals(3, 3 * r, 3 * r * r + 0.6)
             for b in BUCKETS
             for a, r in (("direct", 0.55), ("decompose", 0.5), ("as_needed", 0.6))}
        )  # fmt: skip
        for scale, worth in ((0.0, False), (1.0, True)):
            config = LearnerConfig(min_evidence=0, value_scale=scale)
            values = [Learner(store, config, seed=s).value_of_scoring() for s in range(20)]
            assert (sum(values) > 0) is worth
            assert min(values) >= 0.0


def test_a_warm_start_is_trusted_from_the_first_goal_even_below_min_evidence(
    fresh_db: Callable[[], str],
) -> None:
    """Two rewards per cell from an experiment (below ``min_evidence``): the learner plays
    what the experiment found best (as_needed) instead of exploring the others first. The
    same totals without a warm start's record explore (the control)."""
    from fleetlab.store.learner import LearnerSeed

    def totals(arm: str) -> ArmTotals:
        r = 0.95 if arm == "as_needed" else 0.1
        return ArmTotals(2, 2 * r, 2 * r * r)

    for warm in (True, False):
        with open_store(fresh_db()) as store:
            if warm:
                store.add_learner_seeds(
                    [LearnerSeed(0, "experiment:small", b, a, t.n, t.reward_sum, t.reward_sq, "{}")
                     for b in BUCKETS for a in ARMS for t in [totals(a)]]
                )  # fmt: skip
            else:
                store.seed_learner({(b, a): totals(a) for b in BUCKETS for a in ARMS})
            learner = Learner(store, LearnerConfig(min_evidence=3), seed=3)
            picks = [learner.choose("medium")[0] for _ in range(20)]
            if warm:
                assert picks.count("as_needed") >= 15
            else:
                assert set(picks) == {"direct"}  # the first of the least-tried arms


def test_a_bucket_no_goal_landed_in_stops_forcing_the_score_after_explore_rewards(
    fresh_db: Callable[[], str],
) -> None:
    """Only simple goals so far, direct clearly best there: below ``explore_rewards``
    rewards the learner still scores to find the other buckets; past it, the empty buckets
    no longer force the score, and nothing else makes it worth its price (audits off)."""
    config = LearnerConfig(min_evidence=3, explore_rewards=100, audit_rate=0.0)
    for per_arm, scored in ((20, True), (200, False)):  # 60 rewards, then 600
        with open_store(fresh_db()) as store:
            store.seed_learner(
                {
                    ("simple", a): ArmTotals(per_arm, per_arm * r, per_arm * r * r)
                    for a, r in (("direct", 0.95), ("decompose", 0.5), ("as_needed", 0.6))
                }
            )
            learner = Learner(store, config, seed=5)
            assert [learner.needs_score() for _ in range(30)] == [scored] * 30


async def test_goals_still_running_count_as_tried_while_exploring(
    fresh_db: Callable[[], str],
) -> None:
    """complex: direct 3 rewards, decompose 2, as_needed 2. With no goal running the next
    complex goal explores decompose (the first least-tried arm); with one complex goal
    running decompose, as_needed (so concurrent goals spread over the arms)."""
    with open_store(fresh_db()) as store:
        store.seed_learner(
            {("complex", "direct"): ArmTotals(3, 1.5, 1.0),
             ("complex", "decompose"): ArmTotals(2, 1.0, 0.6),
             ("complex", "as_needed"): ArmTotals(2, 1.0, 0.6)}
        )  # fmt: skip
        learner = Learner(store, LearnerConfig(min_evidence=3))
        assert learner.choose("complex")[0] == "decompose"
        [goal] = submit_goals(store, [Goal(title="running", policy="learned")])
        store.transition(goal.id, "running", worker="w", lease_s=600)
        decision = {"policy": "learned", "bucket": "complex", "arm": "decompose"}
        store.set_task_spec(goal.id, {**goal.spec, "decision": decision})
        assert learner.choose("complex")[0] == "as_needed"
        assert learner.choose("simple")[0] == "direct"  # another bucket: not counted


def test_totals_stored_under_a_too_small_objective_are_left_out_instead_of_a_traceback(
    fresh_db: Callable[[], str], capsys: pytest.CaptureFixture[str]
) -> None:
    """A fleet db seeded before objectives were bounded, with success_value_usd = 1e-300
    (the totals as that warm start stored them): the learner leaves those cells out, as if
    untried, and ``fleetlab learn`` says so, instead of an OverflowError."""
    url = fresh_db()
    objective = '{"success_value_usd": 1e-300, "within_points": 1.0}'
    with open_store(url) as store:
        store.add_learner_seeds(
            [
                LearnerSeed(1, "experiment:tiny", "simple", arm, 2, total, math.inf, objective)
                for arm, total in (("decompose", -5.68398e298), ("direct", -1.87281e298))
            ]
        )
        learner = Learner(store, LearnerConfig(min_evidence=0))
        assert learner.left_out() == [("simple", "decompose"), ("simple", "direct")]
        # nothing usable: every cell is the prior, mean 0.5 with spread noise = 0.5 worth
        # share_weight = 2 rewards, so its sd 0.5 / sqrt(2)
        for row in posterior_frame(store).to_dicts():
            assert (row["n"], row["mean_reward"]) == (0, 0.5), row
            assert row["posterior_sd"] == pytest.approx(0.5 / math.sqrt(2))
        # it still chooses, weighs a score and learns (the cells left out stay out)
        assert learner.choose("simple")[0] in ARMS
        learner.needs_score()
        learner.update(task_id="t", trace_id="r", bucket="medium", arm="direct",
                       success=True, cost_usd=0.0, tokens=0)  # fmt: skip
        assert learner.stats("medium")["direct"].n == 1
    capsys.readouterr()
    assert main(["--db", url, "learn"]) == 0
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    # after the line naming the warm start those totals came from (its objective as stored)
    seeded, left_out = out.splitlines()[:2]
    assert seeded.startswith("seeded from experiment:tiny on ")
    assert seeded.endswith('objective {"success_value_usd": 1e-300, "within_points": 1.0}')
    assert left_out == (
        "left out simple/decompose, simple/direct: their stored totals are not finite numbers"
        " (rewards under an objective too extreme to compute); a fresh fleet database starts"
        " clean"
    )


def test_finite_but_huge_totals_give_a_posterior_instead_of_an_overflow(
    fresh_db: Callable[[], str],
) -> None:
    """A squared difference of two finite rewards can exceed the largest float: the
    posterior's spread is then infinite, not an OverflowError."""
    big = 1.3e154  # its square, 1.69e308, is just below the largest float (1.8e308)
    with open_store(fresh_db()) as store:
        store.seed_learner(
            {("simple", "direct"): ArmTotals(1, big, big * big),
             ("medium", "direct"): ArmTotals(1, -big, big * big),
             ("complex", "direct"): ArmTotals(1, -big, big * big)}
        )  # fmt: skip
        rows = {(r["bucket"], r["arm"]): r for r in posterior_frame(store).to_dicts()}
    # by hand: the grand mean is -big / 3; direct's prior mean over every bucket
    # (2 * (-big / 3) - big) / (2 + 3) = -big / 3, so simple/direct (big, 1.73e154 from its
    # prior: squared, more than the largest float) has the posterior mean
    # (2 * (-big / 3) + big) / (2 + 1) = big / 9
    assert rows[("simple", "direct")]["n"] == 1
    assert rows[("simple", "direct")]["mean_reward"] == pytest.approx(big / 9)
    assert rows[("simple", "direct")]["posterior_sd"] == math.inf
