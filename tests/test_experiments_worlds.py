"""The worlds axis: one experiment runs every variant in every world, paired; results carry a
``world`` column; the report is per world, with the learner's curve, regret and choices.

Oracles: a world's rows must equal a plain one-model run of the same experiment on that
world's model (the runner without the axis), and regret is recomputed here by hand from the
rows (plain Python, no polars join)."""

from __future__ import annotations

import shutil
from collections import defaultdict
from pathlib import Path

import polars as pl
import pytest

from fleetlab.cli import main
from fleetlab.errors import ConfigError, UserError
from fleetlab.experiments import compare, load, load_experiment, regret_frame, run
from fleetlab.experiments._worlds import (
    judged_frame,
    judged_lines,
    world_sections,
    world_tables,
)
from fleetlab.objective import Objective
from fleetlab.stats import share_of_way
from tests.helpers.experiment_files import experiment_body

BODY = experiment_body()
WORLDS = ("solo", "small_context")
NOT_COMPARED = ["seq", "finished_us", "wall_s", "sim_time_s", "trial_dir", "trace_id", "experiment"]


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("worlds")
    path = tmp / "axis.toml"
    path.write_text(f'name = "axis"\nworlds = {list(WORLDS)!r}\n' + BODY, encoding="utf-8")
    summary = run(path, root=tmp / "out", progress=None)
    assert (summary.total, summary.ran, summary.errored) == (2 * 3 * 2 * 2, 24, 0)
    return tmp


@pytest.mark.slow
def test_every_variant_runs_in_every_world_with_paired_seeds(ran: Path) -> None:
    frame = load("axis", root=ran / "out")
    assert frame.height == 24
    assert frame["world"].unique(maintain_order=True).to_list() == list(WORLDS)
    # the same task and trial meet the same seed in every world and variant
    seeds = frame.group_by("task", "trial").agg(pl.col("seed").unique())
    assert all(len(s) == 1 for s in seeds["seed"])
    assert sorted(frame["seed"].unique()) == [7, 8]
    counts = frame.group_by("world", "variant").len()
    assert set(counts["len"]) == {4}


@pytest.mark.slow
def test_a_world_gives_what_a_plain_run_on_its_model_gives(ran: Path) -> None:
    frame = load("axis", root=ran / "out")
    for world in WORLDS:
        path = ran / f"plain_{world}.toml"
        path.write_text(
            f'name = "plain_{world}"\nmodel = "sim:{world}@instant"\n' + BODY, encoding="utf-8"
        )
        run(path, root=ran / "plain", progress=None)
        plain = load(f"plain_{world}", root=ran / "plain").drop(NOT_COMPARED)
        mine = frame.filter(pl.col("world") == world).drop([*NOT_COMPARED, "world"])
        key = ["variant", "task", "trial"]
        assert mine.sort(key).to_dicts() == plain.sort(key).to_dicts()
    # each world ran on its own model
    models = dict(frame.group_by("world").agg(pl.col("model").unique()).iter_rows())
    assert models == {w: [f"sim:{w}@instant"] for w in WORLDS}


@pytest.mark.slow
def test_regret_is_against_the_best_fixed_strategy_in_hindsight(ran: Path) -> None:
    rows = load("axis", root=ran / "out").to_dicts()
    objective = Objective(success_value_usd=2.0)
    regret = {r["world"]: r for r in regret_frame(pl.DataFrame(rows), objective).to_dicts()}
    for world in WORLDS:
        here = [r for r in rows if r["world"] == world]
        reward = {
            (r["variant"], r["task"], r["trial"]): float(r["passed"]) - r["cost_usd"] / 2.0
            for r in here
        }
        per_variant: dict[str, list[float]] = defaultdict(list)
        for (variant, _, _), value in reward.items():
            per_variant[variant].append(value)
        means = {v: sum(x) / len(x) for v, x in per_variant.items() if v != "learned"}
        best = max(means, key=lambda v: (means[v], v))
        gaps = [
            reward[(best, task, trial)] - value
            for (variant, task, trial), value in reward.items()
            if variant == "learned"
        ]
        got = regret[world]
        assert got["best_fixed"] == best
        assert got["pairs"] == len(gaps) == 4
        assert got["mean_regret"] == pytest.approx(sum(gaps) / len(gaps))
        assert got["total_regret"] == pytest.approx(sum(gaps))
        assert sum(got["regret_per_pass"]) == pytest.approx(sum(gaps))


@pytest.mark.slow
def test_the_report_is_per_world(ran: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = ran / "out"
    assert main(["ab", "report", "axis", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    for world in WORLDS:
        assert f"World {world}" in text
    assert "Regret against the best fixed strategy" in text
    assert "Choices per estimated bucket" in text
    assert text.count("learned after its warm-up (pass 2, 2 trials)") == len(WORLDS)
    assert "After the warm-up (passes 2 on)" in text
    page = (out / "axis" / "report.html").read_text(encoding="utf-8")
    assert page.count("learned after its warm-up (pass 2, 2 trials)") == len(WORLDS)
    assert page.index("World: solo") < page.index("World: small_context")
    assert "SIMULATED" in page
    for world in WORLDS:
        assert (out / f"axis@{world}" / "report.html").is_file()
        assert f"axis@{world}/report.html" in page
    with pytest.raises(UserError, match="several worlds"):
        compare(load("axis", root=out))


def test_a_head_to_head_is_reported_in_every_world(
    ran: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = str(ran / "out")
    html = str(ran / "h2h.html")
    argv = ["ab", "report", "axis", "--out", out, "--html", html, "--compare", "always", "never"]
    assert main(argv) == 0
    line = "head to head, always minus never:"
    assert capsys.readouterr().out.count(line) == len(WORLDS)
    assert Path(html).read_text(encoding="utf-8").count(line) == len(WORLDS)
    assert main(["ab", "report", "axis", "--out", out, "--compare", "never", "nope"]) == 2
    assert "of both never and nope" in capsys.readouterr().err


def test_a_head_to_head_skips_a_world_without_one_of_its_variants(tmp_path: Path) -> None:
    """A world kept from an earlier run of the file, before a variant was added: the pair
    is compared in the worlds that ran both, and the report is not lost."""
    path = tmp_path / "grow.toml"
    two = experiment_body(variants=("never", "always"))
    path.write_text('name = "grow"\nworlds = ["solo", "small_context"]\n' + two, "utf-8")
    run(path, root=tmp_path / "out", progress=None)
    three = experiment_body(variants=("never", "always", "as_needed"))
    path.write_text('name = "grow"\nworlds = ["solo"]\n' + three, "utf-8")
    run(path, root=tmp_path / "out", progress=None)
    _, sections = world_sections("grow", tmp_path / "out", pairs=[("as_needed", "never")])
    lines = {s.world: " ".join(s.lines) for s in sections}
    assert set(lines) == {"solo", "small_context"}
    assert "head to head, as_needed minus never" in lines["solo"]
    assert "head to head" not in lines["small_context"]


def test_an_experiment_without_worlds_has_no_world_column(tmp_path: Path) -> None:
    path = tmp_path / "plain.toml"
    path.write_text(
        'name = "plain"\nmodel = "sim:instant"\n'
        + BODY.replace("trials = 2", "trials = 1").replace("warmup_passes = 1\n", ""),
        encoding="utf-8",
    )
    exp = load_experiment(path)
    assert exp.worlds == ()
    run(exp, root=tmp_path / "out", progress=None, limit=2)
    assert "world" not in load("plain", root=tmp_path / "out").columns


def test_a_limited_worlds_run_counts_the_worlds_it_did_not_reach(tmp_path: Path) -> None:
    """Oracle: BODY plans 3 variants x 2 tasks x 2 trials = 12 trials a world, 24 in two."""
    path = tmp_path / "lim.toml"
    path.write_text('name = "lim"\nworlds = ["solo", "default"]\n' + BODY, encoding="utf-8")
    first = run(path, root=tmp_path / "out", progress=None, limit=5)
    assert (first.total, first.ran, first.skipped, first.remaining) == (24, 5, 0, 19)
    second = run(path, root=tmp_path / "out", progress=None, limit=10)
    assert (second.total, second.ran, second.skipped, second.remaining) == (24, 10, 5, 9)
    assert "9 remaining of 24" in second.describe()[0]


def test_a_world_dropped_from_the_file_keeps_its_results_in_the_report(tmp_path: Path) -> None:
    """The file ran in solo, then was edited to run in default: solo's trials are still
    results of the experiment, loaded and reported beside default's, not silently gone."""
    path = tmp_path / "edit.toml"
    path.write_text('name = "edit"\nworlds = ["solo"]\n' + BODY, encoding="utf-8")
    run(path, root=tmp_path / "out", progress=None, limit=2)
    path.write_text('name = "edit"\nworlds = ["default"]\n' + BODY, encoding="utf-8")
    run(path, root=tmp_path / "out", progress=None, limit=3)
    frame = load("edit", root=tmp_path / "out")
    counts = dict(frame.group_by("world").len().iter_rows())
    assert counts == {"solo": 2, "default": 3}  # the trials each run was limited to
    # under another objective the dropped worlds' rewards would not be the learner's: the
    # manifest keeps only the file's worlds then
    priced = BODY.replace("success_value_usd = 2.0", "success_value_usd = 5.0")
    path.write_text('name = "edit"\nworlds = ["small_context"]\n' + priced, encoding="utf-8")
    run(path, root=tmp_path / "out", progress=None, limit=1)
    frame = load("edit", root=tmp_path / "out")
    assert dict(frame.group_by("world").len().iter_rows()) == {"small_context": 1}


def test_results_a_world_refuses_stop_the_run_before_any_world_runs(tmp_path: Path) -> None:
    """A variant dropped from the file: the second world's results refuse it, and the first
    world (removed by hand, as the first refusal advised) is not run again meanwhile."""
    path = tmp_path / "drop.toml"
    path.write_text('name = "drop"\nworlds = ["solo", "small_context"]\n' + BODY, "utf-8")
    out = tmp_path / "out"
    run(path, root=out, progress=None)
    path.write_text(
        'name = "drop"\nworlds = ["solo", "small_context"]\n'
        + experiment_body(variants=("never", "always")),
        encoding="utf-8",
    )
    shutil.rmtree(out / "drop@solo")
    with pytest.raises(ConfigError, match=r"drop@small_context holds finished trials"):
        run(path, root=out, progress=None)
    assert not (out / "drop@solo").exists()


def test_a_wrong_world_is_one_line_naming_the_worlds(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('name = "bad"\nworlds = ["solo", "mars"]\n' + BODY, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_experiment(path)
    message = str(caught.value)
    assert "\n" not in message
    assert "mars" in message
    assert "small_context" in message
    path.write_text(
        'name = "bad"\nmodel = "anthropic:claude-haiku-4-5"\nworlds = ["solo"]\n' + BODY,
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match=":2: field 'model': worlds are simulated"):
        load_experiment(path)
    # a world is a name (it runs at zero latency), and another simulated model is no axis:
    # each refused on its own line of the file, not silently changed
    for head, expected in (
        ('worlds = ["solo@fast"]\n', r":2: field 'worlds': 'solo@fast' is a world with a latency"),
        ('worlds = ["solo", "solo"]\n', r":2: field 'worlds': list each world once, got \['solo'"),
        (
            'model = "sim:long_thinking@fast"\nworlds = ["solo"]\n',
            r":2: field 'model': with worlds, .* so sim:long_thinking@fast would be ignored",
        ),
    ):
        path.write_text('name = "bad"\n' + head + BODY, encoding="utf-8")
        with pytest.raises(ConfigError, match=expected):
            load_experiment(path)


def _judged_rows() -> list[dict[str, object]]:
    """Three variants on 2 tasks x 3 trials; trial 0 is the warm-up and is built to flip
    every conclusion if it were counted (the learner fails it everywhere)."""
    rows: list[dict[str, object]] = []
    outcome = {  # (variant, trial) -> (passed, cost) for task "a"; task "b" is the same
        ("learned", 0): (False, 0.50),
        ("learned", 1): (True, 0.10),
        ("learned", 2): (False, 0.10),
        ("cheap", 0): (True, 0.01),  # cheap: more successful and cheaper after trial 0
        ("cheap", 1): (True, 0.02),
        ("cheap", 2): (True, 0.02),
        ("pricey", 0): (True, 0.01),
        ("pricey", 1): (False, 0.40),
        ("pricey", 2): (False, 0.40),
    }
    for (variant, trial), (passed, cost) in outcome.items():
        for task, extra in (("a", 0.0), ("b", 0.001)):
            rows.append(_judged_row(variant, task, trial, passed, cost + extra))
    return rows


def _judged_row(
    variant: str, task: str, trial: int, passed: bool, cost: float
) -> dict[str, object]:
    """One result row in world "w"; the variant named "learned" is the one that learns."""
    return {
        "world": "w",
        "variant": variant,
        "policy": "learned" if variant == "learned" else "never",
        "task": task,
        "trial": trial,
        "passed": passed,
        "cost_usd": cost,
    }


def test_a_learner_is_judged_after_its_warm_up_against_every_fixed_strategy() -> None:
    rows = _judged_rows()
    got = {
        r["fixed"]: r
        for r in judged_frame(pl.DataFrame(rows), Objective(success_value_usd=1.0), 1).to_dicts()
    }
    # oracle by hand, from the table above (success worth $1, trials 1 and 2 only)
    learned = ((1 - 0.10) + (0 - 0.10) + (1 - 0.101) + (0 - 0.101)) / 4
    cheap = ((1 - 0.02) * 2 + (1 - 0.021) * 2) / 4
    pricey = ((0 - 0.40) * 2 + (0 - 0.401) * 2) / 4
    assert got["cheap"]["pairs"] == got["pricey"]["pairs"] == 4
    assert got["cheap"]["mean_reward"] == pytest.approx(learned)
    assert got["cheap"]["fixed_mean_reward"] == pytest.approx(cheap)
    assert got["pricey"]["fixed_mean_reward"] == pytest.approx(pricey)
    assert got["cheap"]["reward_diff"] == pytest.approx(learned - cheap)
    share = (learned - pricey) / (cheap - pricey)
    assert got["cheap"]["share_of_way"] == got["pricey"]["share_of_way"] == pytest.approx(share)
    # cheap: +50 points of success (pairs 1,0,1,0 -> 0.5, sd > 0) and $0.08 cheaper in every pair
    assert got["cheap"]["success_diff"] == pytest.approx(0.5)
    assert got["cheap"]["cost_diff"] == pytest.approx(-0.08)
    assert got["cheap"]["success_lo"] < 0.5
    assert got["pricey"]["dominates"] is False
    assert got["cheap"]["beats_every_fixed"] is False
    # success differences 1, 0, 1, 0: mean 0.5, sd 0.577, se 0.289: the CI's low end is
    # 0.5 - 1.96 * 0.289 = -0.066, so "cheap" does not dominate with 4 pairs...
    assert got["cheap"]["success_lo"] == pytest.approx(0.5 - 1.96 * (1 / 3) ** 0.5 / 2)
    assert got["cheap"]["dominates"] is False
    # ... and does with the same pattern over 40 pairs (se shrinks by sqrt(10))
    many = [dict(r, task=f"{r['task']}{k}") for r in rows for k in range(10)]
    again = {
        r["fixed"]: r
        for r in judged_frame(pl.DataFrame(many), Objective(success_value_usd=1.0), 1).to_dicts()
    }
    assert again["cheap"]["pairs"] == 40
    assert again["cheap"]["dominates"] is True
    # counting the warm-up (trial 0) changes the numbers: the filter is applied
    every = {
        r["fixed"]: r
        for r in judged_frame(pl.DataFrame(rows), Objective(success_value_usd=1.0), 0).to_dicts()
    }
    assert every["cheap"]["pairs"] == 6
    assert every["cheap"]["mean_reward"] < got["cheap"]["mean_reward"]


def test_warmup_passes_in_the_experiment_file(tmp_path: Path) -> None:
    head = 'name = "wu"\nworlds = ["solo"]\n'
    path = tmp_path / "wu.toml"
    path.write_text(head + BODY, encoding="utf-8")
    exp = load_experiment(path)
    assert exp.warmup_passes == 1
    assert exp.subset(trials=1).warmup_passes == 0  # a shorter run keeps one judged pass
    for bad, message in (
        ("-1", "integer >= 0"),
        ("2", "less than trials \\(2\\)"),
        ("'two'", "integer"),
    ):
        text = head + BODY.replace("warmup_passes = 1", f"warmup_passes = {bad}")
        path.write_text(text, encoding="utf-8")
        with pytest.raises(ConfigError, match=message) as info:
            load_experiment(path)
        assert "\n" not in str(info.value)
        line = text.splitlines().index(f"warmup_passes = {bad}") + 1
        assert f"wu.toml:{line}: field 'warmup_passes'" in str(info.value)


def test_a_plain_experiment_judges_its_learner_after_the_warm_up(tmp_path: Path) -> None:
    path = tmp_path / "plain.toml"
    path.write_text('name = "plainwu"\nmodel = "sim:instant"\n' + BODY, encoding="utf-8")
    run(path, root=tmp_path / "out", progress=None)
    comparison = compare("plainwu", root=tmp_path / "out")
    assert comparison.warmup_passes == 1  # recorded with the results
    (line,) = comparison.judged
    assert line in comparison.verdict()
    # oracle: the learner's mean value on trial index 1 only, by hand
    rows = [r for r in load("plainwu", root=tmp_path / "out").to_dicts() if r["trial"] == 1]
    values = [float(r["passed"]) - r["cost_usd"] / 2.0 for r in rows if r["variant"] == "learned"]
    assert line.startswith(f"learned after its warm-up (pass 2, {len(values)} trials)")
    assert f"mean value {sum(values) / len(values):.3f}," in line
    # no warm-up asked for: every pass counts, and the line says so
    again = compare("plainwu", root=tmp_path / "out", warmup_passes=0)
    assert again.judged[0].startswith("learned over every pass (1-2, no warm-up set, 4 trials)")
    # a warm-up longer than the run so far (2 passes): nothing judged yet, and no "passes 3-2"
    early = compare("plainwu", root=tmp_path / "out", warmup_passes=2)
    assert list(early.judged) == [
        "learned after its warm-up (from pass 3: the run has reached pass 2): no trial yet that "
        "it and every fixed strategy finished after the warm-up"
    ]


def test_a_partial_run_says_so_first(tmp_path: Path) -> None:
    """A verdict on a run stopped early can change: its first line says how far it got.
    Oracle: BODY plans 3 variants x 2 tasks x 2 trials = 12 trials."""
    path = tmp_path / "part.toml"
    path.write_text('name = "part"\nmodel = "sim:instant"\n' + BODY, encoding="utf-8")
    run(path, root=tmp_path / "out", progress=None, limit=5)
    assert compare("part", root=tmp_path / "out").verdict()[0] == (
        "a partial run: 5 of 12 planned trials finished, so what follows can change "
        "(fleetlab ab run resumes it)"
    )
    run(path, root=tmp_path / "out", progress=None)
    assert not any("partial" in line for line in compare("part", root=tmp_path / "out").verdict())


def test_the_judgement_of_a_partial_run_compares_like_with_like() -> None:
    objective = Objective(success_value_usd=1.0)
    rows = _judged_rows()
    # "pricey" has not finished task b's trial 2 yet: that pair leaves every comparison
    partial = [
        r for r in rows if not (r["variant"] == "pricey" and r["task"] == "b" and r["trial"] == 2)
    ]
    got = judged_frame(pl.DataFrame(partial), objective, 1).to_dicts()
    assert {r["pairs"] for r in got} == {3}
    learned = ((1 - 0.10) + (0 - 0.10) + (1 - 0.101)) / 3  # a1, a2, b1 (by hand)
    assert {round(r["mean_reward"], 9) for r in got} == {round(learned, 9)}
    # only warm-up passes so far: said, not left out
    (line,) = judged_lines(pl.DataFrame([r for r in rows if r["trial"] == 0]), objective, 1)
    assert "no trial yet that it and every fixed strategy finished" in line
    # one pair: no interval to give
    one = [r for r in rows if r["trial"] in (0, 1) and r["task"] == "a"]
    (line,) = judged_lines(pl.DataFrame(one), objective, 1)
    assert "1 trial)" in line
    assert "[CI n/a: one pair]" in line
    assert "nan" not in line
    # every fixed strategy with the same mean: said plainly
    tied = [dict(r, cost_usd=0.02, passed=True) if r["variant"] != "learned" else r for r in rows]
    (line,) = judged_lines(pl.DataFrame(tied), objective, 1)
    assert "every fixed strategy has the same mean value (0.980)" in line


def test_the_share_of_the_way_has_an_interval_from_pairs_matched_on_task_and_trial() -> None:
    """The learner plays exactly what "best" plays on each (task, trial), with costs that vary
    from pair to pair: its share is 1 with no uncertainty at all (every pair says so), which
    holds only if the three variants' rewards are matched on (task, trial), whatever the
    order of the rows."""
    import random

    rng = random.Random(4)
    rows: list[dict[str, object]] = []
    for task in "abcdefgh":
        for trial in range(1, 4):
            cost = rng.uniform(0.01, 0.5)
            for variant, passed, extra in (
                ("learned", True, 0.0),
                ("best", True, 0.0),
                ("worst", rng.random() < 0.5, rng.uniform(0.0, 0.3)),
            ):
                rows.append(_judged_row(variant, task, trial, passed, cost + extra))
    rng.shuffle(rows)
    objective = Objective(success_value_usd=1.0)
    got = judged_frame(pl.DataFrame(rows), objective, 1).to_dicts()
    assert len(got) == 2
    for r in got:
        assert (r["share_of_way"], r["share_lo"], r["share_hi"]) == pytest.approx((1.0, 1.0, 1.0))
    (line,) = judged_lines(pl.DataFrame(rows), objective, 1)
    assert "100% [100%, 100%] of the way from the worst fixed strategy (worst" in line
    assert "against the best (each pair of trials a unit: about these tasks" in line
    # worst and best differ in one pair of 24: the range is within noise, and so is the share
    level = [
        dict(r, cost_usd=0.1, passed=(r["variant"], r["task"], r["trial"]) != ("worst", "a", 1))
        for r in rows
    ]
    (line,) = judged_lines(pl.DataFrame(level), objective, 1)
    assert "[CI unbounded: the worst and the best are within noise of each other]" in line


def test_the_share_interval_does_not_depend_on_which_tied_strategy_is_named_best() -> None:
    """Two fixed strategies tie for best with different pairs passed; the learner follows
    one of them. The share's interval spans both choices' intervals (each computed on its
    own here), so naming either one as "best" cannot narrow it."""
    import random

    rng = random.Random(9)
    plays = {
        "a_worst": [rng.random() < 0.5 for _ in range(40)],
        "b_best": [i % 5 != 0 for i in range(40)],
        "c_best": [i % 5 != 1 for i in range(40)],
    }
    plays["learned"] = [p and rng.random() < 0.97 for p in plays["b_best"]]
    rows = [
        _judged_row(variant, f"t{i}", trial, passed[i] if trial else True, 0.01)
        for variant, passed in plays.items()
        for i in range(40)
        for trial in (0, 1)
    ]
    got = judged_frame(pl.DataFrame(rows), Objective(), 1).row(0, named=True)
    learner = [float(p) for p in plays["learned"]]
    worst = [float(p) for p in plays["a_worst"]]
    each = [
        share_of_way(learner, worst, [float(p) for p in plays[b]]) for b in ("b_best", "c_best")
    ]
    assert each[0].low != pytest.approx(each[1].low)  # the choice would matter
    assert got["share_lo"] == pytest.approx(min(i.low for i in each))
    assert got["share_hi"] == pytest.approx(max(i.high for i in each))
    assert got["share_of_way"] == pytest.approx(each[0].estimate)


def test_a_missing_reward_leaves_the_share_without_an_interval_not_the_report_broken() -> None:
    rows = _judged_rows()
    rows[2] = dict(rows[2], cost_usd=float("nan"))  # the learner's trial 1 of task "a"
    assert rows[2]["variant"] == "learned"
    assert rows[2]["trial"] == 1
    (line,) = judged_lines(pl.DataFrame(rows), Objective(success_value_usd=2.0), 1)
    assert "[CI n/a]" in line


def test_a_dry_run_counts_the_trials_of_every_world(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # BODY: 2 variants x 3 tasks x 2 trials = 12 trials a world (by hand)
    for worlds, said in (
        (["solo"], "axis: 12 trials (in the world solo)"),
        (list(WORLDS), "axis: 24 trials (12 in each of 2 worlds: solo, small_context)"),
    ):
        path = tmp_path / "axis.toml"
        path.write_text(f'name = "axis"\nworlds = {worlds!r}\n' + BODY, encoding="utf-8")
        assert main(["ab", "run", str(path), "--dry-run", "--out", str(tmp_path / "o")]) == 0
        assert said in capsys.readouterr().out


def test_a_long_run_is_shown_in_spans_of_passes_not_a_column_per_pass() -> None:
    """150 passes made the console's learning curve 150 columns wide: past 10 passes, the
    tables show equal spans of passes (25 passes: spans of 3, the last one pass)."""
    rows = []
    for trial in range(25):
        for task in ("a", "b"):  # two trials a pass: means are weighed by trials
            learned = _judged_row("learned", task, trial, trial % 2 == 0, 0.10)
            arm = "direct" if trial < 4 else "decompose"
            learned |= {"learn_bucket": "simple", "learn_arm": arm}
            rows += [learned, _judged_row("never", task, trial, True, 0.0)]
    frame = pl.DataFrame(rows).with_columns(
        pl.lit(None, pl.String).alias(c) for c in ("score_bucket", "strategy", "choice")
    )
    objective = Objective(success_value_usd=1.0)
    tables = world_tables(frame, objective)
    (curve_title,) = [t for t in tables if t.startswith("Learning curve")]
    assert "per 3 passes" in curve_title
    header, curve = tables[curve_title]
    assert header == ["variant", *[f"passes {i}-{i + 2}" for i in range(1, 23, 3)], "pass 25"]
    learned = next(r for r in curve if r[0].startswith("learned"))
    # by hand: passes 1-3 are trials 0, 1, 2: rewards 0.9, -0.1, 0.9; pass 25 is trial 24
    assert learned[1] == f"{(0.9 - 0.1 + 0.9) / 3:.3f}"
    assert learned[-1] == "0.900"
    header, (regret,) = next(v for t, v in tables.items() if t.startswith("Regret"))
    assert header[-1] == "mean regret a trial, per 3 passes"
    # against never (1.0 a trial): 0.1 a pass, 1.1 a failure; passes 1-3: (0.1 + 1.1 + 0.1) / 3
    per_span = regret[-1].split(" / ")
    assert len(per_span) == 9
    assert per_span[0] == f"+{1.3 / 3:.3f}"
    assert per_span[-1] == "+0.100"  # pass 25 alone, a pass: as comparable as the others
    title, (_, choices) = next((t, v) for t, v in tables.items() if t.startswith("Choices"))
    assert "3 passes at a time" in title
    # passes 4-6 are trials 3 (direct), 4 and 5 (decompose)
    assert ["learned", "4-6", "simple", "6", "decompose 67%, direct 33%"] in choices
    assert sum(int(r[3]) for r in choices) == 50
    # a run in progress: the learner has done 7 passes (passes 4-6: a failure, a pass, a
    # failure; pass 7 alone in its span so far), nothing yet after that
    partial = frame.filter((pl.col("variant") != "learned") | (pl.col("trial") < 7))
    (regret,) = next(r for t, (_, r) in world_tables(partial, objective).items() if "Regret" in t)
    assert regret[-1].split(" / ") == [f"+{1.3 / 3:.3f}", f"+{2.3 / 3:.3f}", "+0.100"] + ["-"] * 6


def test_a_pass_missing_from_the_learner_leaves_the_other_spans_where_they_are() -> None:
    """12 passes, spans of 2; the learner's pass 3 is missing (say its trials failed for
    the harness): the spans after it still show their own passes."""
    rows = [
        _judged_row(variant, task, trial, variant == "never" or trial % 2 == 0, 0.0)
        for variant in ("learned", "never")
        for task in ("a", "b")
        for trial in range(12)
        if not (variant == "learned" and trial == 2)
    ]
    frame = pl.DataFrame(rows).with_columns(
        pl.lit(None, pl.String).alias(c)
        for c in ("learn_bucket", "learn_arm", "score_bucket", "strategy", "choice")
    )
    tables = world_tables(frame, Objective(success_value_usd=1.0))
    (regret,) = next(r for t, (_, r) in tables.items() if t.startswith("Regret"))
    # by hand: regret 0 on an even trial (a pass, free), 1 on an odd one; passes 3-4 hold
    # trial 3 only
    assert regret[-1].split(" / ") == ["+0.500", "+1.000", "+0.500", "+0.500", "+0.500", "+0.500"]
