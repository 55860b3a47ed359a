"""Experiment definitions, the runner (resumable, paired, learning in order), the cost
estimate and the budget cap. Tiny experiments on ``sim:instant``."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from fleetlab.cli import main
from fleetlab.errors import ConfigError, UserError
from fleetlab.experiments import (
    Experiment,
    Variant,
    compare,
    estimate,
    load,
    load_experiment,
    output_dir,
    run,
)
from fleetlab.experiments._trial import critical_path_s
from fleetlab.models.registry import get_model, register_backend, unregister_backend
from fleetlab.models.types import ModelRequest, ModelResponse
from fleetlab.store import open_store

REPO = Path(__file__).resolve().parents[1]

TINY = """
name = "tiny"
model = "sim:instant"
suites = ["core"]
trials = 2
seed = 3
concurrency = 3

[tasks]
include = ["core:rename-readme", "core:customer-totals", "core:sales-by-region"]

[[variants]]
name = "never"
policy = "never"

[[variants]]
name = "always"
policy = "always"

[[variants]]
name = "t4"
policy = "threshold:4"

[[variants]]
name = "learned"
policy = "learned"
"""


def write(tmp_path: Path, text: str, name: str = "tiny.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- definitions -------------------------------------------------------------------------


def test_the_shipped_experiments_load() -> None:
    ab = load_experiment(REPO / "experiments" / "decomposition_ab.toml")
    policies = {(v.policy, v.prompt) for v in ab.variants}
    assert {
        ("never", "default"),
        ("always", "default"),
        ("threshold:4", "default"),
        ("threshold:4", "strict"),
        ("as_needed", "default"),
        ("learned", "default"),
    } <= policies
    assert ab.model == "sim:instant"
    assert ab.kind == "agents"
    assert len(ab.plan()) == len(ab.variants) * len(ab.selected_tasks()) * ab.trials
    scoring = load_experiment(REPO / "experiments" / "scoring_calibration.toml")
    assert scoring.kind == "scoring"
    assert [v.prompt for v in scoring.variants] == ["default", "strict", "eager"]


def test_a_tiny_file_plans_every_variant_task_and_trial(tmp_path: Path) -> None:
    exp = load_experiment(write(tmp_path, TINY))
    assert exp.seeds == (3, 4)
    assert [t.key for t in exp.selected_tasks()] == [
        "core:rename-readme",
        "core:customer-totals",
        "core:sales-by-region",
    ]
    plan = exp.plan()
    assert len(plan) == 4 * 3 * 2
    assert len({t.key for t in plan}) == len(plan)
    assert exp.baseline_variant.name == "never"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        # bad TOML: the parser's line and column, and the file
        ('name = "x\nmodel = 1', r"tiny\.toml: not valid TOML: .*line 1"),
        # an unknown top-level field: named, with its line
        ("colour = 'blue'\n", r"tiny\.toml:1: field 'colour': unknown field"),
        # wrong type: the field, what was expected and what was given
        ("", r"tiny\.toml:5: field 'trials': expected an integer >= 1, got 'two'"),
    ],
)
def test_malformed_files_name_the_file_line_and_field(
    tmp_path: Path, change: str, expected: str
) -> None:
    text = change + TINY if change else TINY.replace("trials = 2", "trials = 'two'")
    if change.startswith('name = "x'):
        text = change
    with pytest.raises(ConfigError, match=expected):
        load_experiment(write(tmp_path, text))


def test_an_unknown_prompt_variant_is_named_with_its_variant_and_line(tmp_path: Path) -> None:
    text = TINY.replace('name = "t4"\npolicy = "threshold:4"', 'name = "t4"\nprompt = "strickt"')
    with pytest.raises(ConfigError) as info:
        load_experiment(write(tmp_path, text))
    message = str(info.value)
    line = text.splitlines().index('prompt = "strickt"') + 1
    assert f"tiny.toml:{line}:" in message
    assert "variants[3] ('t4')" in message
    assert "unknown prompt variant 'strickt'" in message
    assert "default" in message
    assert "strict" in message


def test_an_unknown_suite_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown suite 'nope'"):
        load_experiment(write(tmp_path, TINY.replace('suites = ["core"]', 'suites = ["nope"]')))


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ('policy = "always"', 'policy = "sometimes"', "unknown policy 'sometimes'"),
        ('policy = "never"', 'policy = "never"\nthreshold = 3', "threshold only applies"),
        (
            'policy = "threshold:4"',
            'policy = "threshold:4"\nthreshold = 3',
            "conflicts with policy",
        ),
        ('name = "always"', 'name = "never"', "already named 'never'"),
        ("[tasks]", "baseline = 'zzz'\n[tasks]", "'zzz' is not a variant"),
        (
            '"core:customer-totals", "core:sales-by-region"]',
            '"core:customer-totals", "core:sales-by-regoin"]',
            "'core:sales-by-regoin' matches no task.*did you mean 'core:sales-by-region'",
        ),
        ("[tasks]", "[tasks]\ntags = ['no-such-tag']", "keeps no task"),
        ("[tasks]", "[tasks]\ncomplexity = [4, 2]", r"\[tasks\] field 'complexity'"),
        ('policy = "always"', 'policy = "always"\ncost_weight = 2', "only applies to policy"),
        # above 1000 points a USD (a success worth under $0.001) rewards overflow
        ('policy = "learned"', 'policy = "learned"\ncost_weight = 1001', "from 0 to 1000"),
        ('policy = "never"', 'policy = "never"\nmax_fanout = 0', "field 'max_fanout'"),
    ],
)
def test_bad_fields_are_explained(tmp_path: Path, old: str, new: str, expected: str) -> None:
    assert old in TINY
    with pytest.raises(ConfigError, match=expected):
        load_experiment(write(tmp_path, TINY.replace(old, new, 1)))


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        (
            "[objective]\nsuccess_value_usd = 0",
            r"tiny.toml:\d+: \[objective\] field 'success_value_usd': expected a number > 0",
        ),
        ("[objective]\nsuccess_value_usd = 'two'", r"\[objective\] field 'success_value_usd'"),
        (
            "[objective]\nwithin_points = -1",
            r"\[objective\] field 'within_points': expected a number >= 0",
        ),
        (
            "[objective]\nprice = 3",
            r"\[objective\] field 'price': unknown field; expected one of success_value_usd",
        ),
    ],
)
def test_a_bad_objective_is_explained_in_one_line(
    tmp_path: Path, table: str, expected: str
) -> None:
    with pytest.raises(ConfigError, match=expected) as caught:
        load_experiment(write(tmp_path, TINY.replace("[tasks]", table + "\n[tasks]", 1)))
    assert "\n" not in str(caught.value)


def test_the_objective_defaults_to_success_and_reads_a_price(tmp_path: Path) -> None:
    assert load_experiment(write(tmp_path, TINY)).objective.success_value_usd is None
    exp = load_experiment(
        write(tmp_path, TINY.replace("[tasks]", "[objective]\nsuccess_value_usd = 4\n[tasks]", 1))
    )
    # a success worth $4: a 90% variant at $0.40 a trial scores 0.9 - 0.4 / 4 = 0.8
    assert exp.objective.score(0.9, 0.40) == pytest.approx(0.8)
    assert exp.objective.cost_weight == pytest.approx(0.25)


def test_no_variants_and_missing_suites_are_explained(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[\[variants\]\] tables"):
        load_experiment(write(tmp_path, 'suites = ["core"]\n'))
    with pytest.raises(ConfigError, match="missing field 'suites'"):
        load_experiment(write(tmp_path, '[[variants]]\npolicy = "never"\n'))
    with pytest.raises(ConfigError, match="cannot read experiment file"):
        load_experiment(tmp_path / "missing.toml")


def test_the_cli_reports_a_bad_file_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, TINY.replace('policy = "always"', 'policy = "sometimes"'))
    code = main(["ab", "run", str(path), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2
    assert "tiny.toml:" in err
    assert "sometimes" in err
    assert "Traceback" not in err


# --- running -------------------------------------------------------------------------------


class Counting:
    """A simulated model that counts every call made through it (all trials together)."""

    calls = 0

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name  # priced like the simulated model it wraps
        self.simulated = True

    async def generate(self, request: ModelRequest) -> ModelResponse:
        type(self).calls += 1
        response: ModelResponse = await self.inner.generate(request)
        return response


@pytest.fixture
def counting() -> Iterator[type[Counting]]:
    Counting.calls = 0
    register_backend(
        "counting", lambda rest, **options: Counting(get_model(f"sim:{rest}", **options))
    )
    yield Counting
    unregister_backend("counting")


def test_a_run_records_every_trial_with_its_measurements(tmp_path: Path) -> None:
    exp = dataclasses.replace(load_experiment(write(tmp_path, TINY)), keep_trials="all")
    summary = run(exp, root=tmp_path / "out", progress=None)
    assert (summary.total, summary.ran, summary.skipped, summary.remaining) == (24, 24, 0, 0)
    frame = load("tiny", root=tmp_path / "out")
    assert frame.height == 24
    assert frame["passed"].dtype == pl.Boolean
    assert frame["simulated"].all()
    assert (frame["cost_usd"] > 0).all()
    assert (frame["tokens"] == frame["tokens_in"] + frame["tokens_out"]).all()
    never = frame.filter(pl.col("variant") == "never")
    assert never["agents"].to_list() == [1] * 6
    assert never["depth"].max() == 0
    always = frame.filter(pl.col("variant") == "always")
    assert (always["agents"] > 2).all()
    assert always["decomposed"].all()
    assert set(frame["bucket"]) == {"simple", "medium", "complex"}
    failed = frame.filter(~pl.col("passed"))
    assert failed["failure"].is_not_null().all()
    # model calls are counted from the trial's own trace, and the row agrees with its db
    for row in frame.iter_rows(named=True):
        with open_store(Path(row["trial_dir"]) / "trial.db") as store:
            calls = store.query(
                "SELECT COUNT(*) FROM events WHERE kind = 'model.call' AND trace_id = ?",
                (row["trace_id"],),
            )[0][0]
            root = store.query("SELECT * FROM tasks WHERE parent_id IS NULL")[0]
        assert row["model_calls"] == calls
        assert row["agents"] == root["tree_agents"] + 1
        assert row["cost_usd"] == pytest.approx(root["tree_cost_usd"])
        assert json.loads(root["spec"])["instance"] == row["seed"]
    # exported to Parquet beside the database
    parquet = pl.read_parquet(output_dir("tiny", tmp_path / "out") / "results.parquet")
    assert parquet.sort("seq").equals(frame.sort("seq"))


def test_paired_design_every_variant_meets_the_same_world(tmp_path: Path) -> None:
    text = TINY.replace(
        'name = "learned"\npolicy = "learned"', 'name = "t3"\npolicy = "threshold:3"'
    )
    run(load_experiment(write(tmp_path, text)), root=tmp_path / "out", progress=None)
    frame = load("tiny", root=tmp_path / "out")
    seeds = frame.group_by("task", "trial").agg(pl.col("seed").n_unique().alias("n"))
    assert (seeds["n"] == 1).all()
    assert sorted(set(frame["seed"])) == [3, 4]
    # same seed, same prompt: the two threshold variants got the very same complexity score
    scores = frame.filter(pl.col("variant").is_in(["t4", "t3"])).pivot(
        "variant", index=["task", "trial"], values="score"
    )
    assert scores["t4"].to_list() == scores["t3"].to_list()
    # and different trials of one task are different worlds
    per_task = frame.filter(pl.col("variant") == "never").group_by("task").agg("tokens")
    assert any(len(set(tokens)) > 1 for tokens in per_task["tokens"])


def test_a_rerun_skips_finished_trials_and_never_calls_the_model_for_them(
    tmp_path: Path, counting: type[Counting]
) -> None:
    text = TINY.replace('model = "sim:instant"', 'model = "counting:instant"')
    exp = load_experiment(write(tmp_path, text))
    fresh = run(exp, root=tmp_path / "fresh", progress=None)
    calls_all_at_once = counting.calls
    assert fresh.ran == 24

    counting.calls = 0
    first = run(exp, root=tmp_path / "out", limit=7, progress=None)
    assert (first.ran, first.remaining) == (7, 17)
    assert first.stopped is not None
    assert "limit" in first.stopped
    before = load("tiny", root=tmp_path / "out")
    calls_first = counting.calls
    second = run(exp, root=tmp_path / "out", progress=None)
    assert (second.skipped, second.ran, second.remaining) == (7, 17, 0)
    after = load("tiny", root=tmp_path / "out")
    assert after.height == 24
    kept = after.filter(pl.col("seq") <= before["seq"].max()).sort("seq")
    assert kept.equals(before.sort("seq"))  # the first run's rows are untouched
    # no finished trial was run again: both runs together called the model exactly as
    # often as one run of everything
    assert 0 < calls_first < counting.calls == calls_all_at_once
    third = run(exp, root=tmp_path / "out", progress=None)
    assert (third.ran, third.skipped) == (0, 24)
    assert counting.calls == calls_all_at_once
    assert sorted(after["model_calls"]) == sorted(
        load("tiny", root=tmp_path / "fresh")["model_calls"]
    )


def test_the_learned_variant_learns_across_its_trials_in_order(tmp_path: Path) -> None:
    exp = dataclasses.replace(load_experiment(write(tmp_path, TINY)), keep_trials="all")
    run(exp, root=tmp_path / "out", progress=None)
    learned = load("tiny", root=tmp_path / "out").filter(pl.col("variant") == "learned").sort("seq")
    assert learned.height == 6
    # a scored goal teaches the learner (one update); one played unscored teaches it nothing
    scored = learned["learn_bucket"].is_not_null().to_list()
    assert any(scored)
    assert (learned["learn_reward"].is_not_null().to_list()) == scored
    # each trial started from the updates of every learned trial that finished before it
    for n, row in enumerate(learned.iter_rows(named=True)):
        db = sqlite3.connect(Path(row["trial_dir"]) / "trial.db")
        try:
            total = db.execute("SELECT TOTAL(n), TOTAL(reward_sum) FROM learner_arms").fetchone()
        finally:
            db.close()
        # its predecessors' updates, plus its own (a try-then-split goal teaches direct too)
        done = [r for r in learned.head(n + 1).iter_rows(named=True) if r["learn_bucket"]]
        also = [u for r in done for u in json.loads(r["learn_also"])]
        assert total[0] == len(done) + len(also)
        rewards = [r["learn_reward"] for r in done] + [u[2] for u in also]
        assert total[1] == pytest.approx(sum(rewards))
    # the plan order: the first pass over the tasks before the second
    assert learned["trial"].to_list() == [0, 0, 0, 1, 1, 1]


def test_a_changed_variant_is_refused_rather_than_mixed(tmp_path: Path) -> None:
    exp = load_experiment(write(tmp_path, TINY))
    run(exp, root=tmp_path / "out", limit=4, progress=None)  # t4 has a row now
    changed = load_experiment(
        write(
            tmp_path,
            TINY.replace(
                'name = "t4"\npolicy = "threshold:4"', 'name = "t4"\npolicy = "threshold:2"'
            ),
        )
    )
    with pytest.raises(ConfigError, match="variant 't4' changed"):
        run(changed, root=tmp_path / "out", progress=None)
    # another model gets its own results folder
    assert exp.with_model("sim:fast").name == "tiny@sim:fast"
    other = run(exp, model="sim:fast", root=tmp_path / "out", limit=1, progress=None)
    assert other.experiment == "tiny@sim:fast"


def test_critical_path_overlaps_executors_only() -> None:
    @dataclasses.dataclass
    class T:
        id: str
        parent_id: str | None
        role: str
        created_at: int

    tree = [
        T("root", None, "orchestrator", 0),
        T("plan", "root", "planner", 1),
        T("e1", "root", "executor", 2),
        T("e2", "root", "executor", 3),
        T("check", "root", "validator", 4),
    ]
    latency = {"root": 1.0, "plan": 2.0, "e1": 5.0, "e2": 3.0, "check": 1.5}
    assert critical_path_s(tree, latency) == pytest.approx(1.0 + 2.0 + 5.0 + 1.5)  # type: ignore[arg-type]


# --- estimate and budget ---------------------------------------------------------------------


def real(tmp_path: Path, budget: float) -> Path:
    text = TINY.replace('model = "sim:instant"', 'model = "anthropic:claude-sonnet-4-6"')
    text = text.replace("concurrency = 3", f"concurrency = 1\nbudget_usd = {budget}")
    return write(tmp_path, text, "costly.toml")


def test_the_estimate_prices_a_pilot_without_calling_the_model(tmp_path: Path) -> None:
    est = estimate(real(tmp_path, 100.0), root=tmp_path / "out")
    assert (est.trials_total, est.trials_todo, est.trials_done) == (24, 24, 0)
    assert est.cost_usd > 0
    assert est.model_calls > 24
    assert not est.over_budget
    assert not est.simulated_model
    assert set(est.per_variant) == {"never", "always", "t4", "learned"}
    assert est.per_variant["always"] > est.per_variant["never"]
    assert sum(est.per_variant.values()) == pytest.approx(est.cost_usd)


def test_the_dry_run_and_the_run_refuse_past_the_cap_without_yes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = real(tmp_path, 0.001)
    out = str(tmp_path / "out")
    assert main(["ab", "run", str(path), "--dry-run", "--out", out]) == 2
    printed = capsys.readouterr().out
    assert "OVER BUDGET" in printed
    assert "would refuse to start" in printed
    assert "--yes" in printed
    # no API key is set: the refusal comes before any model is built or called
    assert main(["ab", "run", str(path), "--out", out]) == 2
    err = capsys.readouterr().err
    assert "refusing to start" in err
    assert "budget cap of $0.00" in err
    assert "--yes" in err
    with pytest.raises(UserError, match="refusing to start"):
        run(path, root=out, progress=None)
    assert not (tmp_path / "out").exists()  # refused before it began: no results folder


def test_with_yes_the_run_starts_and_stops_at_the_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from fleetlab.testing import FakeMessagesAPI

    with FakeMessagesAPI(get_model("sim:instant", seed=3)) as fake:
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.base_url)
        code = main(["ab", "run", str(real(tmp_path, 0.001)), "--yes", "--out", str(tmp_path)])
        out = capsys.readouterr().out
        assert fake.request_count > 0  # the real SDK, over loopback
    assert code == 0
    assert "stopped early: budget cap $0.00 reached" in out
    frame = load("tiny", root=tmp_path)
    assert frame.height == 1  # concurrency 1: the first trial spent past the cap
    assert not frame["simulated"].any()


# --- the comparison table ------------------------------------------------------------------


def test_compare_needs_results() -> None:
    with pytest.raises(UserError, match="no finished trials"):
        compare(pl.DataFrame(schema={"variant": pl.String}))


def test_experiments_can_be_built_in_code(tmp_path: Path) -> None:
    exp = Experiment(
        name="built",
        variants=(Variant("never", policy="never"), Variant("always", policy="always")),
        model="sim:instant",
        seeds=(1,),
    ).subset(per_complexity=1)
    assert len(exp.selected_tasks()) == 5
    summary = run(exp, root=tmp_path, progress=None)
    assert summary.ran == 10
    with pytest.raises(UserError, match="unknown prompt variant"):
        Experiment(name="x", variants=(Variant("v", prompt="nope"),))
    with pytest.raises(UserError, match="two variants are named"):
        Experiment(name="x", variants=(Variant("v"), Variant("v")))
    for seeds in ((-1,), (2**63,)):  # a seed is a goal's instance number: 0 to 2**63 - 1
        with pytest.raises(
            UserError, match=r"seeds must be integers from 0 to 9223372036854775807"
        ):
            Experiment(name="x", variants=(Variant("v"),), seeds=seeds)


def test_one_run_of_an_experiment_at_a_time(tmp_path: Path) -> None:
    import fcntl

    exp = load_experiment(write(tmp_path, TINY))
    folder = output_dir("tiny", tmp_path / "out")
    folder.mkdir(parents=True)
    with (folder / "run.lock").open("a+") as held:  # as another process running it would
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(UserError, match="already being run by another process"):
            run(exp, root=tmp_path / "out", progress=None)
        fcntl.flock(held, fcntl.LOCK_UN)
    assert run(exp, root=tmp_path / "out", limit=1, progress=None).ran == 1


def test_a_trials_cost_does_not_depend_on_the_order_its_agents_paid(tmp_path: Path) -> None:
    """The tree's running total adds each call in commit order, which the timing of its
    sub-agents' turns decides, and float addition is not associative: 0.1 + 0.2 + 0.3 and
    0.3 + 0.2 + 0.1 differ in the last bit. A trial's row sums its agents' own costs exactly,
    so both orders give the cost the exact sum rounds to."""
    from fractions import Fraction

    from fleetlab.experiments._trial import _collect
    from fleetlab.orchestrator import Goal, submit_goals

    amounts = (0.1, 0.2, 0.3)
    exact = float(sum(Fraction(a) for a in amounts))
    costs = []
    with open_store(tmp_path / "fleet.db") as store:
        for order in (amounts, amounts[::-1]):
            [root] = submit_goals(store, [Goal(title="split", policy="never")])
            kids = [store.create_task(f"part {i}", parent_id=root.id) for i in (1, 2)]
            for task, cost in zip([*kids, root], order, strict=True):
                store.add_usage(task.id, 10, 1, cost)
            assert store.get_task(root.id).tree_cost_usd == sum(order)  # the running total
            costs.append(_collect(store, root.id)["cost_usd"])
    assert sum(amounts) != sum(amounts[::-1])  # the two orders do differ in the last bit
    assert costs == [exact, exact]


def test_a_learner_given_trials_before_ones_it_ran_is_told_apart(tmp_path: Path) -> None:
    """A learner sees its trials in plan order. Trials added after the last one it ran (a
    further pass) keep that order; a task added to the file puts new trials before ones it
    already ran, whose results then differ from one uninterrupted run's: the summary says so."""
    path = tmp_path / "order.toml"

    def write(tasks: list[str], trials: int) -> None:
        path.write_text(
            f'name = "order"\nmodel = "sim:instant"\nsuites = ["core"]\ntrials = {trials}\n'
            f"[tasks]\ninclude = {tasks!r}\n"
            '[[variants]]\nname = "fixed"\npolicy = "never"\n'
            '[[variants]]\nname = "learner"\npolicy = "learned"\n',
            encoding="utf-8",
        )

    def lines() -> list[str]:
        summary = run(load_experiment(path), root=tmp_path / "out", progress=None)
        return [line for line in summary.describe() if "plan order" in line]

    write(["core:rename-readme"], 2)
    assert lines() == []  # a first run
    write(["core:rename-readme"], 3)
    assert lines() == []  # a third pass comes after the two it ran
    write(["core:rename-readme", "core:customer-totals"], 3)
    (line,) = lines()
    assert line.startswith("learner: ")  # the fixed variant learns nothing: no line for it
    assert "before trials it had already run, in plan order" in line
