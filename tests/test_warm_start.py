"""Warm start: a learner seeded from an experiment's trials of fixed strategies prefers the
arm that experiment found best, from its first goal; ``fleetlab learn`` shows what it learned."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from fleetlab.errors import UserError
from fleetlab.learning import LearnerConfig, posterior_frame, warm_start
from fleetlab.models.sim import SimModel
from fleetlab.objective import Objective
from fleetlab.orchestrator import Fleet, FleetConfig, Goal, submit_goals
from fleetlab.store import open_store
from tests.helpers.refusals import one_error_line

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


@pytest.mark.both_backends
def test_a_warm_start_keeps_whether_its_evidence_was_simulated(
    fresh_db: Callable[[], str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Recorded with its rows, so every later view of the learner can say so: simulated if
    any trial it used says so, real if they all say not, not known if none says."""
    from fleetlab.cli import main

    world = {"simple": {"direct": 0.9, "decompose": 0.5, "as_needed": 0.7}}
    rows = _rows(world, 4)
    n = rows.height
    one_simulated = pl.Series([i == 5 for i in range(n)])
    one_real = pl.Series([False if i == 5 else None for i in range(n)], dtype=pl.Boolean)
    frames = {
        "sim": rows.with_columns(simulated=one_simulated),
        "real": rows.with_columns(simulated=one_real),  # the others do not say
        "nulls": rows.with_columns(simulated=pl.lit(None)),
        "unknown": rows,  # no such column
    }
    db = fresh_db()
    with open_store(db) as store:
        for source, frame in frames.items():
            assert warm_start(store, frame, source=source, objective=OBJECTIVE).before is None
        said = [(w.source, w.simulated) for w in store.learner_warm_starts()]
        assert said == [("sim", True), ("real", False), ("nulls", None), ("unknown", None)]
        stored = {(r["source"], r["simulated"]) for r in store.learner_seeds()}
        assert stored == set(said)
        # seeded once: the first record stands, and the answer says what is stored
        again = warm_start(store, rows.with_columns(simulated=pl.lit(True)), source="real")
        assert again.before is not None
        assert again.simulated is False
        assert store.learner_warm_starts()[1].simulated is False
    assert main(["learn", "--db", db]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(": ", 1)[1].split(", objective")[0] for line in lines[:4]] == [
        "16 trials of the SIMULATED model",
        "16 trials",
        "16 trials, not recorded whether simulated",
        "16 trials, not recorded whether simulated",
    ]


@pytest.mark.both_backends
def test_an_experiment_seeds_a_learner_once(fresh_db: Callable[[], str]) -> None:
    """Seeding again from the same experiment adds nothing and says when it was seeded;
    another experiment under the same objective still adds its trials."""
    world = {"simple": {"direct": 0.9, "decompose": 0.5, "as_needed": 0.7}}
    first = _rows(world, 10).with_columns(pl.lit("first_ab").alias("experiment"))
    with open_store(fresh_db()) as store:
        seeded = warm_start(store, first, objective=OBJECTIVE)  # source: the experiment's name
        again = warm_start(store, first, objective=OBJECTIVE)
        assert (seeded.source, seeded.before) == ("experiment:first_ab", None)
        assert again.before is not None
        assert (again.before.source, again.before.trials, again.totals) == (
            "experiment:first_ab",
            40,  # 10 trials each of never, always, as_needed and threshold:4
            {},
        )
        # counted once (by hand, as in the first test): direct 10 + 10 threshold rewards
        # summing 8.5, decompose 10, as_needed 10
        totals = store.learner_totals()
        assert {k: t.n for k, t in totals.items()} == {
            ("simple", "direct"): 20, ("simple", "decompose"): 10, ("simple", "as_needed"): 10,
        }  # fmt: skip
        assert totals[("simple", "direct")].reward_sum == pytest.approx(8.5)
        assert [w.trials for w in store.learner_warm_starts()] == [40]
        # the same trials named as another experiment are new evidence: they add up
        warm_start(store, first, objective=OBJECTIVE, source="experiment:second_ab")
        assert store.learner_totals()[("simple", "direct")].n == 40
        assert [w.source for w in store.learner_warm_starts()] == [
            "experiment:first_ab",
            "experiment:second_ab",
        ]


@pytest.mark.both_backends
@pytest.mark.parametrize(
    ("earlier", "later", "said"),
    [
        (1.0, 2.0, "'a success is worth $2.00', the learner's evidence from experiment:first_ab"
                    " under 'a success is worth $1.00'"),
        (None, 0.5, "'a success is worth $0.50', the learner's evidence from experiment:first_ab"
                    " under 'success only'"),
    ],
    ids=["priced", "success-only"],
)  # fmt: skip
def test_a_warm_start_under_another_objective_is_refused(
    fresh_db: Callable[[], str], earlier: float | None, later: float, said: str
) -> None:
    """Rewards under two objectives are on two scales: the second experiment is refused in
    one line naming both objectives, and nothing is added."""
    world = {"simple": {"direct": 0.9, "decompose": 0.5, "as_needed": 0.7}}
    rows = _rows(world, 10)
    with open_store(fresh_db()) as store:  # an empty learner takes any objective
        warm_start(store, rows, objective=Objective(earlier), source="experiment:first_ab")
        totals = store.learner_totals()
        with pytest.raises(UserError) as caught:
            warm_start(store, rows, objective=Objective(later), source="experiment:second_ab")
        message = str(caught.value)
        assert "\n" not in message
        assert message.startswith(f"experiment:second_ab is under the objective {said}")
        how = "(--success-value-usd 1.0)" if earlier else "(no success_value_usd)"
        assert f"seed it under the same objective {how} or seed it into a fresh" in message
        assert store.learner_totals() == totals
        assert len(store.learner_warm_starts()) == 1
        # within_points does not change a reward: the same objective as far as learning goes
        same = Objective(earlier, within_points=5.0)
        warm_start(store, rows, objective=same, source="experiment:second_ab")
        assert store.learner_totals()[("simple", "direct")].n == 40


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
    assert out["warm_start"]["simulated"] is True
    assert out["warm_start"]["added"] is True
    # again: nothing added, whatever the objective asked for, and one line says so
    assert main(["learn", "--from-experiment", "tiny_ws", "--json", "--db", str(db)]) == 0
    again = json.loads(capsys.readouterr().out)
    assert (again["warm_start"]["added"], again["warm_start"]["seeded_before"]["trials"]) == (
        False,
        16,
    )
    assert sum(r["n"] for r in again["posterior"]) == 16
    argv = ["learn", "--from-experiment", "tiny_ws", "--success-value-usd", "2", "--db", str(db)]
    assert main(argv) == 0
    first_line = capsys.readouterr().out.splitlines()[0]
    assert re.fullmatch(
        r"already seeded from experiment:tiny_ws \(16 trials\) on \d{4}-\d\d-\d\d \d\d:\d\d"
        r" UTC: nothing added",
        first_line,
    ), first_line
    assert sum(t.n for t in _totals(db).values()) == 16
    # the same experiment spelt otherwise (a trailing slash, its folder's path) is the same
    # (and its experiment file, as `ab report` takes it)
    for spelt in ("tiny_ws/", str(tmp_path / "out" / "tiny_ws"), str(path)):
        assert main(["learn", "--from-experiment", spelt, "--db", str(db)]) == 0
        assert "nothing added" in capsys.readouterr().out.splitlines()[0]
    assert sum(t.n for t in _totals(db).values()) == 16
    # plain `learn` says where the evidence came from; an objective without a warm start is
    # refused, not ignored
    assert main(["learn", "--db", str(db)]) == 0
    first_line = capsys.readouterr().out.splitlines()[0]
    assert re.fullmatch(
        r"seeded from experiment:tiny_ws on \d{4}-\d\d-\d\d \d\d:\d\d UTC: 16 trials of the"
        r" SIMULATED model, objective value = success - cost / \$0\.50"
        r" \(a success is worth \$0\.50\)",
        first_line,
    ), first_line
    assert main(["learn", "--db", str(db), "--json"]) == 0
    (start,) = json.loads(capsys.readouterr().out)["seeded_from"]
    assert (start["source"], start["trials"], start["objective"], start["simulated"]) == (
        "experiment:tiny_ws",
        16,
        {"success_value_usd": 0.5, "within_points": 1.0},
        True,
    )
    assert main(["learn", "--db", str(db), "--success-value-usd", "5"]) == 2
    out, err = capsys.readouterr()
    assert one_error_line(err, out).startswith(
        "error: --success-value-usd sets the objective of a warm start: give --from-experiment"
    )
    # results recorded before objectives were bounded: one line saying what to do
    with sqlite3.connect(tmp_path / "out" / "tiny_ws" / "results.db") as results:
        results.execute(
            "UPDATE meta SET value = '{\"success_value_usd\": 1e-300}' WHERE key = 'objective'"
        )
    other = str(tmp_path / "other.db")
    assert main(["learn", "--from-experiment", "tiny_ws", "--db", other]) == 2
    out, err = capsys.readouterr()
    assert one_error_line(err, out).startswith(
        "error: experiment 'tiny_ws' ran under an objective no longer accepted (field"
        " 'success_value_usd': expected a number > 0, at least 0.001"
    )
    assert not Path(other).exists()  # a warm start refused leaves no database behind
    assert (
        main(["learn", "--from-experiment", "tiny_ws", "--db", other, "--success-value-usd", "2"])
        == 0
    )
    assert sum(t.n for t in _totals(Path(other)).values()) == 16
    # a fleet learns on that evidence only under the same objective: another is refused
    # before any goal is submitted, naming the way out
    simulate = ["fleet", "simulate", "--days", "1", "--tasks-per-day", "4", "--week", "2026-W48"]
    # (whatever the default policy: a goal of its own may ask for the learned one)
    for argv in ([*simulate, "--quiet"], ["fleet", "run", "--until-idle", "--policy", "never"]):
        assert main([*argv, "--db", str(db)]) == 2
        out, err = capsys.readouterr()
        assert one_error_line(err, out) == (
            "error: the learner was warm-started from experiment:tiny_ws under the objective 'a"
            " success is worth $0.50' and this fleet runs under 'a success is worth $1.00':"
            " rewards under two objectives do not add up; run the fleet with"
            " --success-value-usd 0.5, or seed a fresh fleet database (--db) under the fleet's"
            " objective (fleetlab learn --from-experiment NAME --success-value-usd X)"
        )
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM tasks").fetchone() == (0,)
    # the console's Run says the same in its panel, and runs under the objective it is given
    assert _console_run(db, None) == ("error", 0)
    assert _console_run(db, Objective(success_value_usd=0.5)) == ("info", 1)
    assert main([*simulate, "--quiet", "--success-value-usd", "0.5", "--db", str(db)]) == 0
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM tasks").fetchone()[0] > 0  # it ran


def test_a_warm_start_from_a_partial_experiment_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from fleetlab.cli import main
    from fleetlab.experiments import OUT_ENV, load_experiment, output_dir, run
    from fleetlab.experiments._run import _exclusive

    monkeypatch.setenv(OUT_ENV, str(tmp_path / "out"))
    path = tmp_path / "part_ws.toml"
    path.write_text(
        'name = "part_ws"\nmodel = "sim:instant"\nsuites = ["core"]\ntrials = 2\n'
        '[tasks]\ninclude = ["core:rename-readme", "core:customer-totals"]\n'
        '[[variants]]\nname = "never"\npolicy = "never"\n'
        '[[variants]]\nname = "always"\npolicy = "always"\n',
        encoding="utf-8",
    )
    run(load_experiment(path), progress=None, limit=3)
    db = str(tmp_path / "fleet.db")
    assert main(["learn", "--from-experiment", "part_ws", "--json", "--db", db]) == 0
    notes = json.loads(capsys.readouterr().out)["warm_start"]["notes"]
    # 2 variants x 2 tasks x 2 trials planned, 3 run
    assert any(n.startswith("a partial experiment: 3 of its 8 planned trials") for n in notes)
    busy = tmp_path / "busy.db"
    with _exclusive(output_dir("part_ws"), "part_ws"):  # the lock a run holds
        assert main(["learn", "--from-experiment", "part_ws", "--db", str(busy)]) == 2
    assert one_error_line(capsys.readouterr().err).startswith(
        "error: experiment 'part_ws' is being run now"
    )
    assert not busy.exists()
    run(load_experiment(path), progress=None)  # the rest
    other = str(tmp_path / "other.db")
    assert main(["learn", "--from-experiment", "part_ws", "--json", "--db", other]) == 0
    notes = json.loads(capsys.readouterr().out)["warm_start"]["notes"]
    assert not any("partial" in n for n in notes)


def _console_run(db: Path, objective: Objective | None) -> tuple[str, int]:
    """Press Run in the console: the kind of message it shows, and 1 if the fleet started
    (then stopped at once), 0 if it refused."""
    import asyncio

    from fleetlab.widgets import FleetConsole

    async def go() -> tuple[str, int]:
        console = FleetConsole(str(db), refresh_s=0.01, objective=objective)
        try:
            task = console.start()
            kind = "error" if "fleetlab-error" in console.message.value else "info"
            if kind == "error":
                assert "warm-started from experiment:tiny_ws" in console.message.value
            if task is not None:
                console.stop()
                await task
            return kind, int(task is not None)
        finally:
            console.close()

    return asyncio.run(go())


def _totals(db: Path) -> dict[tuple[str, str], Any]:
    with open_store(str(db)) as store:
        return store.learner_totals()
