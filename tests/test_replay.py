"""Replaying the learner over an experiment's logged trials of the fixed strategies.

Oracle: the experiment runner itself. The same experiment runs a ``learned`` variant through
real fleets (a store and agents per trial); the replay, which never sees those rows, must
make the same decision on every goal and reach the same mean reward after the warm-up. The
fleets' learner explores for one reward a cell only (``LEARNER``), so most goals are decided
by its posterior: Thompson draws, the score's value, the sampling seeds, unscored goals."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from fleetlab.cli import main
from fleetlab.errors import UserError
from fleetlab.experiments import _trial, load, load_experiment, replay_learner, run
from fleetlab.learning import LearnerConfig
from fleetlab.orchestrator import FleetConfig

FILE = """
name = "replayed"
model = "sim:lossy_handoff@instant"
suites = ["core"]
trials = 8
seed = 11
concurrency = 2
workers = 1
warmup_passes = 2

[objective]
success_value_usd = 2.0

# One sub-agent at a time: a split goal's sub-agents share its workspace, so with several at
# once which runs first can change what one of them finds (a search for a helper another is
# removing) and with it that trial's tokens and cost; then the replay is not exact.
[defaults]
agent_concurrency = 1

[tasks]
include = ["core:rename-readme", "core:customer-totals", "core:sales-by-region",
           "core:logging-migration"]
"""
# t4_strict scores with another prompt than the learner's, and comes first: its estimates are
# not what the learner saw, so the replay must take t4's.
VARIANTS = {"never": "never", "always": "always", "as_needed": "as_needed",
            "t4_strict": "threshold:4 strict", "t4": "threshold:4",
            "learned": "learned"}  # fmt: skip
LEARNER = LearnerConfig(min_evidence=1, explore_rewards=4, score_cost_usd=0.2)


def _file(tmp: Path, variants: dict[str, str]) -> Path:
    body = FILE
    for name, spec in variants.items():
        policy, _, prompt = spec.partition(" ")
        body += f'\n[[variants]]\nname = "{name}"\npolicy = "{policy}"\n'
        body += f'prompt = "{prompt}"\n' if prompt else ""
    path = tmp / "replayed.toml"
    path.write_text(body, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("replay")
    path = _file(tmp, VARIANTS)
    with pytest.MonkeyPatch.context() as mp:  # every trial's fleet gets LEARNER (one process)
        mp.setattr(_trial, "FleetConfig", lambda **kw: FleetConfig(**kw, learner=LEARNER))
        summary = run(path, root=tmp / "out", progress=None)
    assert (summary.ran, summary.errored) == (6 * 4 * 8, 0)
    return path, tmp / "out"


@pytest.mark.slow
def test_the_first_replay_is_the_learned_variant_decision_for_decision(
    ran: tuple[Path, Path],
) -> None:
    path, out = ran
    exp = load_experiment(path)
    frame = load("replayed", root=out)
    learned = frame.filter(pl.col("variant") == "learned")
    fixed_only = frame.filter(pl.col("variant") != "learned")  # the replay never sees them
    summary = replay_learner(exp, fixed_only, config=LEARNER, runs=3)
    first = summary.runs[0]
    assert first.exact
    assert first.seeds == tuple(range(11, 19))

    counted = learned.filter(pl.col("trial") >= 2).to_dicts()
    rewards = [float(r["passed"]) - r["cost_usd"] / 2.0 for r in counted]
    assert first.learned == pytest.approx(sum(rewards) / len(rewards), abs=1e-12)
    played: dict[tuple[str, str], int] = {}
    for r in counted:  # the strategy each goal played, in its estimated bucket (or unscored)
        key = (r["learn_bucket"] or "unscored", r["strategy"])
        played[key] = played.get(key, 0) + 1
        assert r["learn_arm"] in (None, r["strategy"])
    assert first.choices == played
    assert len(played) > 1  # the learner did not play one strategy throughout
    assert any(bucket == "unscored" for bucket, _ in played)  # the score's value decided
    taught: dict[tuple[str, str], tuple[int, float]] = {}
    for r in learned.to_dicts():  # every update the fleets made, try-then-split's too
        for bucket, arm, reward in [
            (r["learn_bucket"], r["learn_arm"], r["learn_reward"]),
            *json.loads(r["learn_also"] or "[]"),
        ]:
            if bucket:
                n, total = taught.get((bucket, arm), (0, 0.0))
                taught[(bucket, arm)] = (n + 1, total + reward)
    assert first.taught.keys() == taught.keys()
    for key, (n, total) in taught.items():
        assert first.taught[key][0] == n
        assert first.taught[key][1] == pytest.approx(total, abs=1e-9)

    # every row says which strategy it played (try-then-split's first run is direct)
    strategies = dict(frame.group_by("variant").agg(pl.col("strategy").unique()).iter_rows())
    assert strategies["never"] == ["direct"]
    assert strategies["always"] == ["decompose"]
    assert strategies["as_needed"] == ["as_needed"]
    assert sorted(strategies["t4"]) == ["decompose", "direct"]

    for name in ("never", "always", "as_needed", "t4_strict", "t4"):
        rows = frame.filter((pl.col("variant") == name) & (pl.col("trial") >= 2)).to_dicts()
        mean = sum(float(r["passed"]) - r["cost_usd"] / 2.0 for r in rows) / len(rows)
        assert first.fixed[name] == pytest.approx(mean, abs=1e-12)
    worst, best = min(first.fixed.values()), max(first.fixed.values())
    assert first.share == pytest.approx((first.learned - worst) / (best - worst))

    # the other replays: the same passes in other orders
    assert all(sorted(r.seeds) == list(first.seeds) for r in summary.runs[1:])
    assert any(r.seeds != first.seeds for r in summary.runs[1:])


@pytest.mark.slow
def test_ab_replay_prints_the_spread_over_replays(
    ran: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path, out = ran
    assert main(["ab", "replay", str(path), "--out", str(out), "--runs", "2"]) == 0
    text = capsys.readouterr().out
    changed = ["--set", "min_evidence=0", "--set", "score_cost_usd=1", "--set", "audit_rate=0"]
    assert main(["ab", "replay", str(path), "--out", str(out), "--runs", "2", *changed]) == 0
    other = capsys.readouterr().out
    assert "learner score_cost_usd=1.0, audit_rate=0.0, min_evidence=0" in other
    assert other.splitlines()[-1] != text.splitlines()[-1]  # the settings were used
    assert "replayed, learned: 2 replays (simulated, exact), passes 3-8" in " ".join(text.split())
    for bad in ("sample_scale=x", "sample_scale=-1", "nosuch=1"):
        assert main(["ab", "replay", str(path), "--out", str(out), "--set", bad]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: "), err
        assert bad.split("=")[0] in err
        assert "Traceback" not in err


def test_a_replay_without_a_scored_fixed_strategy_says_what_is_missing(tmp_path: Path) -> None:
    exp = load_experiment(_file(tmp_path, {"never": "never", "always": "always"}))
    frame = pl.DataFrame({"variant": ["never"], "task": ["core:rename-readme"], "seed": [11]})
    with pytest.raises(UserError, match=r"missing: as_needed, threshold:K$"):
        replay_learner(exp, frame)


def test_a_results_file_from_before_the_strategy_column_gets_it(tmp_path: Path) -> None:
    """A results.db written before ``strategy`` existed (its trials table made by hand here,
    without the column) opens, keeps its row, and takes new rows with a strategy."""
    import sqlite3

    from fleetlab.experiments import ResultsDB, output_dir
    from fleetlab.store.results import TRIAL_COLUMNS

    folder = output_dir("old", tmp_path)
    folder.mkdir(parents=True)
    old = [c for c in TRIAL_COLUMNS if c not in ("seq", "strategy")]
    with sqlite3.connect(folder / "results.db") as conn:
        conn.execute(
            f"CREATE TABLE trials (seq INTEGER PRIMARY KEY AUTOINCREMENT, {', '.join(old)},"
            " UNIQUE (variant, task, trial))"
        )
        conn.execute(
            "INSERT INTO trials (variant, task, trial, passed, choice) VALUES (?, ?, ?, ?, ?)",
            ("as_needed", "core:rename-readme", 0, 1, "direct"),
        )
    row = {"variant": "as_needed", "task": "core:bump-version", "trial": 0, "passed": True}
    with ResultsDB(folder) as db:
        db.insert_many([{**row, "choice": "direct", "strategy": "as_needed"}])
    frame = load("old", root=tmp_path).sort("task")
    assert frame["task"].to_list() == ["core:bump-version", "core:rename-readme"]
    assert frame["strategy"].to_list() == ["as_needed", None]


def _synthetic(exp_path: Path, *, drop: int = 0) -> pl.DataFrame:
    """Rows of every fixed variant of the file on every planned (task, seed), made up: all
    pass at $0.10 and 100 tokens, the scorer says 3 (medium); ``drop`` rows left out."""
    exp = load_experiment(exp_path)
    rows = [
        {"variant": v.name, "task": t.key, "seed": seed, "passed": True, "cost_usd": 0.1,
         "tokens": 100, "decomposed": v.policy == "always", "score": 3}
        for v in exp.variants if v.policy != "learned"
        for t in exp.selected_tasks() for seed in exp.seeds
    ]  # fmt: skip
    return pl.DataFrame(rows[drop:])


def test_a_budget_on_the_learner_makes_a_replay_an_estimate(tmp_path: Path) -> None:
    """A budget can stop a scored goal whose unscored trial finished: not exact any more."""
    for budget, exact in (("", True), ("budget_usd = 5.0\n", False)):
        body = FILE + "".join(
            f'\n[[variants]]\nname = "{p}"\npolicy = "{p}"\n{budget}'
            for p in ("never", "always", "as_needed", "threshold:4", "learned")
        )
        path = tmp_path / "budget.toml"
        path.write_text(body.replace('name = "threshold:4"', 'name = "t4"'), encoding="utf-8")
        summary = replay_learner(load_experiment(path), _synthetic(path), runs=1)
        assert summary.runs[0].exact is exact
        assert ("(simulated, exact)" in summary.describe()) is exact


def test_each_learner_is_replayed_over_the_fixed_variants_run_with_its_settings(
    tmp_path: Path,
) -> None:
    body = FILE + "".join(
        f'\n[[variants]]\nname = "{n}"\npolicy = "{p}"\n'
        for n, p in (("never", "never"), ("always", "always"), ("as_needed", "as_needed"),
                     ("t4", "threshold:4"), ("learned", "learned"), ("deep", "learned"))
    ) + "max_depth = 2\n"  # fmt: skip
    path = tmp_path / "two.toml"
    path.write_text(body, encoding="utf-8")
    exp, frame = load_experiment(path), _synthetic(path)
    assert replay_learner(exp, frame, runs=1).variant == "learned"  # the file's first
    with pytest.raises(UserError, match=r"with deep's settings .* missing: never, always, as_n"):
        replay_learner(exp, frame, variant="deep", runs=1)
    with pytest.raises(UserError, match=r"no learning variant 'nosuch' \(its learners: learned,"):
        replay_learner(exp, frame, variant="nosuch", runs=1)
    with pytest.raises(UserError, match="runs must be 1 or more, not 0"):
        replay_learner(exp, frame, runs=0)
    with pytest.raises(UserError, match=r"1 \(task, seed\) pairs of the plan lack"):
        replay_learner(exp, _synthetic(path, drop=1), runs=1)
