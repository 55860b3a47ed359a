"""The comparison table and the report: every number checked against the statistic computed
here, independently, from the same rows (by hand, or by scipy.stats called here; never by
fleetlab.stats)."""

from __future__ import annotations

import math
import random
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from scipy import stats as scipy_stats

from fleetlab.cli import main
from fleetlab.experiments import ResultsDB, compare, load, output_dir, write_report

Z = 1.959963984540054
TASKS = [f"core:t{n}" for n in range(8)]
COMPLEXITY = [1, 1, 2, 2, 3, 3, 4, 5]


def _rows() -> list[dict[str, Any]]:
    """Two variants, eight tasks, three trials each; outcomes drawn with a fixed seed."""
    rng = random.Random(42)
    rows = []
    for trial in range(3):
        for task, c in zip(TASKS, COMPLEXITY, strict=True):
            for variant, p_pass, agents in (("base", 0.55, 1), ("split", 0.8, 4)):
                cost = round(0.01 * c * agents * (1 + rng.random()), 6)
                rows.append(
                    {
                        "experiment": "synthetic",
                        "kind": "agents",
                        "variant": variant,
                        "policy": "never" if variant == "base" else "always",
                        "prompt": "default",
                        "task": task,
                        "suite": "core",
                        "trial": trial,
                        "seed": trial,
                        "complexity": c,
                        "bucket": "simple" if c <= 2 else "medium" if c == 3 else "complex",
                        "passed": rng.random() < p_pass,
                        "status": "completed",
                        "tokens_in": 1000 * agents,
                        "tokens_out": 100 * agents,
                        "tokens": 1100 * agents,
                        "cost_usd": cost,
                        "agents": agents + (trial if variant == "split" else 0),
                        "model_calls": 3 * agents,
                        "wall_s": 0.1,
                        "sim_time_s": 1.0,
                        "model": "sim:instant",
                        "simulated": True,
                    }
                )
    return rows


@pytest.fixture
def root(tmp_path: Path) -> Path:
    with ResultsDB(output_dir("synthetic", tmp_path)) as db:
        db.insert_many(_rows())
    return tmp_path


def wilson(k: int, n: int) -> tuple[float, float]:
    p = k / n
    centre = (p + Z * Z / (2 * n)) / (1 + Z * Z / n)
    half = Z / (1 + Z * Z / n) * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n))
    return centre - half, centre + half


def mcnemar(b: int, c: int) -> float:
    n = b + c
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(min(b, c) + 1)) / (1 << n))


def cluster_bootstrap(diffs: list[float], tasks: list[str]) -> tuple[float, float]:
    """The 95% BCa interval of the mean paired difference, resampling whole tasks: scipy's
    bootstrap over the per-task sums and counts (2,000 resamples, numpy generator seed 0, as
    the report documents), the statistic being the mean over the drawn tasks' observations.
    Where BCa is undefined, the percentile interval of the same resamples."""
    sums: dict[str, float] = {}
    counts: dict[str, float] = {}
    for d, task in zip(diffs, tasks, strict=True):
        sums[task] = sums.get(task, 0.0) + d
        counts[task] = counts.get(task, 0.0) + 1.0

    def mean_of_drawn(s: np.ndarray[Any, Any], c: np.ndarray[Any, Any], axis: int = -1) -> Any:
        return np.sum(s, axis=axis) / np.sum(c, axis=axis)

    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = scipy_stats.bootstrap(
            (np.array(list(sums.values())), np.array(list(counts.values()))),
            mean_of_drawn,
            paired=True,
            vectorized=True,
            n_resamples=2000,
            method="BCa",
            rng=np.random.default_rng(0),
        )
    low, high = result.confidence_interval
    if not (math.isfinite(low) and math.isfinite(high)):
        low, high = np.percentile(result.bootstrap_distribution, [2.5, 97.5])
    return float(low), float(high)


def mde_closed_form(n: int, p: float) -> float:
    """The smallest rate difference d that n pairs detect (McNemar, normal approximation,
    two-sided alpha 0.05, power 0.8, discordance psi = 2p(1-p)), solved in closed form.

    n = (z_a sqrt(psi) + z_b sqrt(psi - d^2))^2 / d^2  means  sqrt(n) d - z_a sqrt(psi) =
    z_b sqrt(psi - d^2); squared: (n + z_b^2) d^2 - 2 z_a sqrt(psi n) d + (z_a^2 - z_b^2) psi = 0,
    whose larger root is the one with sqrt(n) d >= z_a sqrt(psi).
    """
    z_a, z_b = scipy_stats.norm.ppf(0.975), scipy_stats.norm.ppf(0.8)
    psi = 2 * p * (1 - p)
    a, b, c = n + z_b**2, -2 * z_a * math.sqrt(psi * n), (z_a**2 - z_b**2) * psi
    d = (-b + math.sqrt(b * b - 4 * a * c)) / (2 * a)
    assert math.sqrt(n) * d >= z_a * math.sqrt(psi)
    # a root above psi is no difference in rates (psi - d^2 < 0): even d = psi needs more
    # than n pairs, and nothing is detectable
    return float(d) if d <= psi else math.inf


def test_the_mde_oracle_matches_a_hand_value() -> None:
    """The closed form above, checked once by hand: n = 100 pairs at p = 0.5."""
    # psi = 0.5, z_a = 1.959964, z_b = 0.841621: a = 100 + 0.708326 = 100.708326,
    # b = -2 x 1.959964 x sqrt(50) = -27.718076, c = (3.841459 - 0.708326) x 0.5 = 1.566566;
    # b^2 - 4ac = 768.291764 - 631.065064 = 137.226700, whose root is 11.714380;
    # d = (27.718076 + 11.714380) / (2 x 100.708326) = 39.432456 / 201.416652 = 0.195776
    assert mde_closed_form(100, 0.5) == pytest.approx(0.195776, abs=2e-6)
    # and at 8 pairs with p = 10/24 (psi = 0.486111), even d = psi would need
    # (1.959964 x sqrt(0.486111) + 0.841621 x sqrt(0.486111 - 0.236304)) ^ 2 / 0.236304
    # = (1.366520 + 0.420648) ^ 2 / 0.236304 = 13.5 pairs: nothing is detectable
    assert mde_closed_form(8, 10 / 24) == math.inf


def test_the_table_matches_independent_statistics(root: Path) -> None:
    rows = _rows()
    table = compare("synthetic", root=root)
    assert table.baseline == "base"
    assert table.simulated
    for summary in table.variants:
        mine = [r for r in rows if r["variant"] == summary.variant]
        k = sum(r["passed"] for r in mine)
        low, high = wilson(k, len(mine))
        assert (summary.successes, summary.trials, summary.tasks) == (k, 24, 8)
        assert summary.success.low == pytest.approx(low, abs=1e-12)
        assert summary.success.high == pytest.approx(high, abs=1e-12)
        assert summary.mean_cost_usd == pytest.approx(sum(r["cost_usd"] for r in mine) / 24)
        assert summary.mean_agents == pytest.approx(sum(r["agents"] for r in mine) / 24)

    [paired] = table.paired
    base = {(r["task"], r["trial"]): r for r in rows if r["variant"] == "base"}
    split = {(r["task"], r["trial"]): r for r in rows if r["variant"] == "split"}
    keys = sorted(base)
    b = sum(1 for k in keys if base[k]["passed"] and not split[k]["passed"])
    c = sum(1 for k in keys if split[k]["passed"] and not base[k]["passed"])
    assert (paired.worse, paired.better) == (b, c)
    assert paired.mcnemar_p == pytest.approx(mcnemar(b, c), rel=1e-12)
    assert paired.clustered
    assert (paired.pairs, paired.tasks) == (24, 8)
    clusters = [k[0] for k in keys]
    for column, got in (
        ("passed", paired.success),
        ("cost_usd", paired.cost),
        ("agents", paired.agents),
    ):
        diffs = [float(split[k][column]) - float(base[k][column]) for k in keys]
        assert got.estimate == pytest.approx(sum(diffs) / len(diffs))
        assert (got.low, got.high) == pytest.approx(cluster_bootstrap(diffs, clusters))
    # each task's split trials spawn 4, 5 and 6 agents against base's 1: every task's mean
    # difference is 4, so every resample's is too
    assert (paired.agents.estimate, paired.agents.low, paired.agents.high) == (4.0, 4.0, 4.0)

    for bucket in table.buckets:
        mine = [r for r in rows if r["variant"] == bucket.variant and r["bucket"] == bucket.bucket]
        k = sum(r["passed"] for r in mine)
        assert (bucket.successes, bucket.trials) == (k, len(mine))
        assert (bucket.success.low, bucket.success.high) == pytest.approx(wilson(k, len(mine)))

    assert [(p.variant, p.trial) for p in table.passes] == [
        (v, t) for v in ("base", "split") for t in range(3)
    ]
    for one in table.passes:
        mine = [r for r in rows if r["variant"] == one.variant and r["trial"] == one.trial]
        k = sum(r["passed"] for r in mine)
        assert (one.successes, one.trials) == (k, 8)
        assert (one.success.low, one.success.high) == pytest.approx(wilson(k, 8))
        assert one.mean_agents == pytest.approx(sum(r["agents"] for r in mine) / 8)
        assert one.mean_cost_usd == pytest.approx(sum(r["cost_usd"] for r in mine) / 8)

    rate = sum(r["passed"] for r in base.values()) / 24
    assert table.mde.baseline_rate == pytest.approx(rate)
    assert table.mde.at_pairs == pytest.approx(mde_closed_form(24, rate), abs=1e-9)
    assert table.mde.at_tasks == pytest.approx(mde_closed_form(8, rate), abs=1e-9)
    assert "8 tasks x 3 trials (24 pairs)" in table.mde.text()
    # a partial run, 16 pairs of 8 tasks but not 2 of each: no "x 2 trials"
    kept = {(t, n) for t in TASKS for n in (0, 1)} - {(TASKS[1], 0)} | {(TASKS[0], 2)}
    partial = [r for k, r in base.items() if k in kept]  # 3 trials of t0, 1 of t1, 2 else
    assert len(partial) == 16
    mde = compare(pl.DataFrame(partial + [dict(r, variant="split") for r in partial])).mde
    assert "with 8 tasks (16 pairs) and a baseline" in mde.text()


def test_too_few_pairs_to_detect_anything_is_said_once() -> None:
    from fleetlab.experiments._compare import DetectableEffect

    # Oracle: the closed form finds no detectable difference at 10 pairs (5 tasks) and 70%.
    at_pairs, at_tasks = mde_closed_form(10, 0.7), mde_closed_form(5, 0.7)
    assert math.isinf(at_pairs)
    assert math.isinf(at_tasks)
    text = DetectableEffect(10, 5, 0.7, at_pairs, at_tasks).text()
    assert text == (
        "with 10 pairs (5 tasks) and a baseline success rate of 70.0%, no difference in success"
        " rate is detectable: too few pairs for this baseline rate (alpha 0.05, power 80%)"
    )


def test_the_cli_prints_those_numbers_and_says_simulated(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = compare("synthetic", root=root)
    html_path = root / "report.html"
    code = main(["ab", "report", "synthetic", "--out", str(root), "--html", str(html_path)])
    out = capsys.readouterr().out
    assert code == 0
    assert "SIMULATED" in out
    base, split = table.variants
    for s in (base, split):
        assert (
            f"{s.success.estimate:.1%} [{s.success.low * 100:.1f}, {s.success.high * 100:.1f}]"
            in out
        )
    [p] = table.paired
    assert (
        f"{p.success.estimate * 100:+.1f} [{p.success.low * 100:+.1f}, {p.success.high * 100:+.1f}]"
        in out
    )
    assert f"{p.worse}/{p.better}" in out
    assert re.search(rf"\b{p.mcnemar_p:.3f}\b", out)
    assert f"{p.agents.estimate:+.2f} [{p.agents.low:+.2f}, {p.agents.high:+.2f}]" in out
    assert "you can detect a difference in success rate of" in out
    assert "By pass over the tasks" not in out  # neither variant learns
    assert f"HTML report: {html_path}" in out

    page = html_path.read_text(encoding="utf-8")
    assert "SIMULATED" in page
    assert "<script src" not in page
    assert "cdn.jsdelivr" not in page
    assert "vegaEmbed" in page
    # frontier, buckets, paired differences, agents: no learning curve (nothing learns)
    assert page.count("vegaEmbed('#chart") == 4
    assert f"{p.worse}/{p.better}" in page


def test_intervals_on_eight_tasks_are_shown_unreliable_with_the_reason(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = compare("synthetic", root=root)
    [p] = table.paired
    # 8 tasks of 3 trials: 8 units to resample, under the bootstrap's minimum of 10
    for d in (p.success, p.cost, p.agents):
        assert d.unreliable
        assert "only 8 tasks (fewer than 10)" in d.note
    # every split trial spawns 3 + trial agents against base's 1: each task differs by 3 + 1
    assert "every task has the same difference" in p.agents.note
    assert p.agents.low == p.agents.high == 4.0
    row = table.paired_frame().row(0, named=True)
    assert all(row[f"{quantity}_unreliable"] for quantity in ("success", "cost", "agents"))
    assert row["agents_note"] == p.agents.note

    html_path = root / "report.html"
    assert main(["ab", "report", "synthetic", "--out", str(root), "--html", str(html_path)]) == 0
    out = capsys.readouterr().out
    # rich may wrap a long cell: compare with the whitespace and borders taken out
    flat = re.sub(r"[\s│┃]+", "", out)
    assert "+4.00[+4.00,+4.00](unreliable)" in flat
    assert "Unreliable intervals" in out
    assert "only8tasks(fewerthan10):bootstrapintervalsunder-cover" in flat
    page = html_path.read_text(encoding="utf-8")
    assert "<td>+4.00 [+4.00, +4.00] (unreliable)</td>" in page
    assert "Unreliable intervals" in page
    assert "every task has the same difference: the resamples cannot vary" in page
    assert '"interval":"unreliable"' in page.replace(" ", "")


def _many_tasks_rows() -> list[dict[str, Any]]:
    """Forty tasks, one trial each, outcomes and costs that vary: nothing to flag."""
    rng = random.Random(7)
    template = _rows()[0]
    rows = []
    for n in range(40):
        for variant, p_pass in (("base", 0.5), ("split", 0.75)):
            rows.append(
                {
                    **template,
                    "variant": variant,
                    "task": f"core:m{n}",
                    "trial": 0,
                    "passed": rng.random() < p_pass,
                    "cost_usd": round(0.01 + 0.05 * rng.random(), 6),
                    "agents": rng.randint(1, 5),
                }
            )
    return rows


def test_intervals_on_forty_varied_tasks_are_not_flagged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with ResultsDB(output_dir("many", tmp_path)) as db:
        db.insert_many(_many_tasks_rows())
    [p] = compare("many", root=tmp_path).paired
    assert not p.clustered
    assert [d.note for d in (p.success, p.cost, p.agents)] == ["", "", ""]
    assert main(["ab", "report", "many", "--out", str(tmp_path), "--no-html"]) == 0
    out = capsys.readouterr().out
    assert "unreliable" not in out.lower()


def test_report_finds_the_name_in_a_file_and_explains_a_missing_experiment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["ab", "report", "nothing-here", "--out", str(tmp_path), "--no-html"])
    assert code == 2
    assert "no results for experiment 'nothing-here'" in capsys.readouterr().err


def test_write_report_defaults_to_the_experiment_folder(root: Path) -> None:
    path = write_report("synthetic", root=root)
    assert path == output_dir("synthetic", root) / "report.html"
    assert load("synthetic", root=root).height == 48


def _learning_root(tmp_path: Path) -> Path:
    rows = [{**r, "policy": "learned"} if r["variant"] == "split" else r for r in _rows()]
    with ResultsDB(output_dir("synthetic", tmp_path)) as db:
        db.insert_many(rows)
    return tmp_path


def test_learning_curves_only_for_the_variant_that_learns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _learning_root(tmp_path)
    table = compare("synthetic", root=root)
    assert table.learners == ("split",)
    assert main(["ab", "report", "synthetic", "--out", str(root), "--no-html"]) == 0
    out = capsys.readouterr().out
    assert "By pass over the tasks" in out
    last = table.passes[-1]  # split, pass 3, where every trial spawned 4 + 2 agents
    rate = f"{last.success.estimate:.1%}"
    assert re.search(rf"split\s*│\s*3\s*│\s*8\s*│\s*{re.escape(rate)} .*│\s*6\.00", out)
    assert not re.search(r"base\s*│\s*1\s*│\s*8\s*│", out)  # no curve for base
    page = write_report("synthetic", root=root).read_text("utf-8")
    assert "Learning curves (variants that learn)" in page


def test_the_verdict_comes_first_and_matches_independent_statistics(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = _rows()
    rate = {v: sum(r["passed"] for r in rows if r["variant"] == v) / 24 for v in ("base", "split")}
    best, other = sorted(rate, key=lambda v: -rate[v])
    by = {(r["variant"], r["task"], r["trial"]): r for r in rows}
    keys = [(r["task"], r["trial"]) for r in rows if r["variant"] == "base"]
    worse = sum(1 for k in keys if by[(other, *k)]["passed"] and not by[(best, *k)]["passed"])
    better = sum(1 for k in keys if by[(best, *k)]["passed"] and not by[(other, *k)]["passed"])
    p = mcnemar(worse, better)  # one comparison with the best: Holm leaves it as it is
    table = compare("synthetic", root=root)
    assert table.best == best
    first = table.verdict()[0]
    diff = (better - worse) / 24
    assert first.startswith(
        f"{best} has the highest success, {rate[best]:.1%}, {diff * 100:+.1f} points ["
    )
    assert f"over {other} (next best)" in first
    assert ("not significant" if p >= 0.05 else "significant (") in first
    assert main(["ab", "report", "synthetic", "--out", str(root), "--no-html"]) == 0
    out = capsys.readouterr().out
    assert f"synthetic: {len(rows)} trials, model sim:instant" in out  # every row, once
    # the verdict is printed before any table
    assert out.index("Verdict") < out.index("By true complexity bucket")
    assert out.index(f"{best} has the highest success") < out.index("Variants")
    assert "Holm p" in out


def test_a_partial_run_never_calls_the_best_ahead_of_a_variant_it_trails_paired(
    tmp_path: Path,
) -> None:
    """In a partial run the means cover different trials: ``lead`` ran only the first four
    tasks (passing 70%), ``full`` ran all eight, passing all of the first four and none of
    the rest. ``lead`` has the higher mean, but on the pairs both ran it is 30 points behind;
    the verdict must not call it ahead of ``full``."""
    template = _rows()[0]
    rows = []
    for trial in range(10):
        for n, task in enumerate(TASKS):
            shared = n < 4
            rows.append(
                {
                    **template,
                    "variant": "full",
                    "task": task,
                    "trial": trial,
                    "seed": trial,
                    "passed": shared,
                }
            )
            if shared:
                rows.append(
                    {
                        **template,
                        "variant": "lead",
                        "policy": "always",
                        "task": task,
                        "trial": trial,
                        "seed": trial,
                        "passed": (trial + n) % 10 < 7,
                    }
                )
    lead = [r["passed"] for r in rows if r["variant"] == "lead"]
    full = [r["passed"] for r in rows if r["variant"] == "full"]
    assert sum(lead) / len(lead) > sum(full) / len(full)  # 70% against 50%: lead ranks first
    # Oracle: on the 40 shared pairs full passes all and lead fails 12: McNemar b = 12, c = 0.
    assert mcnemar(12, 0) < 0.05
    with ResultsDB(output_dir("partial", tmp_path)) as db:
        db.insert_many(rows)
    table = compare("partial", root=tmp_path)
    assert table.best == "lead"
    first = next(line for line in table.verdict() if line.startswith("lead has the highest"))
    assert first.startswith(
        "lead has the highest success, 70.0% on the means, but on the (task, trial) pairs both"
        " ran it is behind full (next best), -30.0 points ["
    )
    assert "ahead of" not in first
    assert first.endswith("the means cover different trials")


def test_a_report_the_system_refuses_to_write_is_one_line(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = Path("/sys/fleetlab-report.html")
    with pytest.raises(PermissionError):  # the oracle: sysfs takes no new files, even root's
        target.write_text("x")
    code = main(["ab", "report", "synthetic", "--out", str(root), "--html", str(target)])
    out, err = capsys.readouterr()
    assert code == 1
    assert "Traceback" not in err
    assert err.strip().splitlines() == [
        f"failed: cannot use {target}: Permission denied: check its permissions and the free"
        " space there, or give another path"
    ]
    assert "Verdict" in out  # the tables were printed before the page was written


def test_a_variant_compared_with_itself_is_one_line(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["ab", "report", "synthetic", "--out", str(root), "--no-html", "--compare"]
    assert main([*argv, "split", "split"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.strip().splitlines() == [
        "error: 'split' compared with itself differs by nothing: compare two different"
        " variants of base, split"
    ]


def test_holm_adjusts_the_reported_p_values(tmp_path: Path) -> None:
    """Three variants against one baseline: the Holm column is the textbook step-down
    adjustment of the McNemar column, worked here from the discordant counts."""
    rows = _rows()
    third = [
        {**r, "variant": "third", "passed": not r["passed"] if r["trial"] == 0 else r["passed"]}
        for r in rows
        if r["variant"] == "split"
    ]
    with ResultsDB(output_dir("three", tmp_path)) as db:
        db.insert_many(rows + third)
    table = compare("three", root=tmp_path)
    raw = [mcnemar(p.worse, p.better) for p in table.paired]
    order = sorted(range(len(raw)), key=lambda i: raw[i])
    expected = [0.0] * len(raw)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(raw) - rank) * raw[i]))
        expected[i] = running
    assert [p.holm_p for p in table.paired] == pytest.approx(expected, rel=1e-12)
    assert [p.mcnemar_p for p in table.paired] == pytest.approx(raw, rel=1e-12)


def test_baseline_best_compare_and_model(
    root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    best = compare("synthetic", root=root).best
    assert compare("synthetic", root=root, baseline="best").baseline == best
    code = main(
        [
            "ab",
            "report",
            "synthetic",
            "--out",
            str(root),
            "--no-html",
            "--baseline",
            "best",
            "--compare",
            "split",
            "base",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert f"baseline {best}" in out
    assert "head to head, split minus base" in out
    # results of `ab run --model M` live in NAME@M: --model finds them
    with ResultsDB(output_dir("other@sim:fast", tmp_path)) as db:
        db.insert_many([{**r, "experiment": "other@sim:fast"} for r in _rows()])
    assert (
        main(["ab", "report", "other", "--model", "sim:fast", "--out", str(tmp_path), "--no-html"])
        == 0
    )
    assert "other@sim:fast: 48 trials" in capsys.readouterr().out
    # without --model: one line naming the folder that exists and how to report it
    assert main(["ab", "report", "other", "--out", str(tmp_path), "--no-html"]) == 2
    err = capsys.readouterr().err
    assert "no results for experiment 'other'" in err
    assert "other@sim:fast (ab report other --model sim:fast)" in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_a_priced_objective_ranks_by_value(root: Path) -> None:
    """At $0.05 a success, each trial's value is passed - cost / 0.05: worked out here."""
    from fleetlab.objective import Objective

    rows = _rows()
    value = {
        v: sum(float(r["passed"]) - r["cost_usd"] / 0.05 for r in rows if r["variant"] == v) / 24
        for v in ("base", "split")
    }
    table = compare("synthetic", root=root, objective=Objective(success_value_usd=0.05))
    assert {s.variant: s.score for s in table.variants} == pytest.approx(value)
    assert table.best == max(value, key=lambda v: value[v])
    assert table.verdict()[0].startswith(
        f"{table.best} has the highest value, {value[table.best] * 100:.1f} points"
    )


#: The experiment files of the checkout, listed here by hand from the folder (the oracle).
CHECKOUT_EXPERIMENTS = sorted(
    p.stem for p in (Path(__file__).parents[1] / "experiments").glob("*.toml")
)


@pytest.mark.parametrize(
    "argv", [["ab", "report", "nosuch"], ["learn", "--from-experiment", "nosuch"]]
)
def test_a_missing_experiment_suggests_the_ones_that_exist(
    argv: list[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)  # no ./experiments, no ./reports: the checkout's files only
    extra = ["--db", str(tmp_path / "f.db")] if argv[0] == "learn" else ["--no-html"]
    assert main([*argv, *extra]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert "nosuch.toml" not in err
    assert "ab run nosuch" not in err
    assert CHECKOUT_EXPERIMENTS
    for stem in CHECKOUT_EXPERIMENTS:
        assert stem in err, (stem, err)
    assert not (tmp_path / "f.db").exists()  # a miss creates no database


def test_a_missing_model_run_suggests_running_it_on_that_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name = CHECKOUT_EXPERIMENTS[0]
    argv = ["ab", "report", name, "--model", "sim:fast", "--out", str(tmp_path), "--no-html"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"fleetlab ab run {name} --model sim:fast" in err, err


@pytest.mark.parametrize(
    ("argv", "hint"),
    [
        (["learn", "--from-experiment", "w", "--db", "f.db"], "learn --from-experiment w@solo"),
        (["ab", "report", "w@nowhere", "--no-html"], "w@solo (ab report w --model solo)"),
    ],
)
def test_a_name_with_per_world_results_suggests_each_in_the_commands_own_words(
    argv: list[str],
    hint: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from fleetlab.experiments import OUT_ENV

    monkeypatch.setenv(OUT_ENV, str(tmp_path))
    monkeypatch.chdir(tmp_path)
    for world in ("solo", "default"):
        (tmp_path / f"w@{world}").mkdir()
        (tmp_path / f"w@{world}" / "results.db").touch()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert hint in err, err
    assert not (tmp_path / "f.db").exists()


def test_the_cheapest_the_test_cannot_tell_from_the_best_is_not_called_as_good(
    tmp_path: Path,
) -> None:
    """Two variants 8 points apart whose paired difference no test can call (2 discordant
    pairs of 24): the verdict names the cheaper one as the one the test cannot tell apart, in
    the measure the ranking uses, and never says it is "not significantly worse" beside a
    McNemar line about the same pair."""
    rows = []
    for row in _rows():
        first_pass = row["trial"] == 0 and row["task"] in TASKS[:3]
        fails = first_pass and (row["variant"] == "base" or row["task"] == TASKS[0])
        rows.append({**row, "passed": not fails})
    base = [r["passed"] for r in rows if r["variant"] == "base"]
    split = [r["passed"] for r in rows if r["variant"] == "split"]
    assert (sum(base), sum(split), len(base)) == (21, 23, 24)
    assert mcnemar(2, 0) > 0.05  # oracle: 2 discordant pairs, both for split
    with ResultsDB(output_dir("untold", tmp_path)) as db:
        db.insert_many(rows)
    table = compare("untold", root=tmp_path)
    assert table.best == "split"
    text = " | ".join(table.verdict())
    assert "no other variant is within 1 point of the best; the cheapest whose success the" in text
    assert "cannot tell from the best's (Holm; too few trials to call it worse" in text
    assert "is base: $" in text
    assert "not significantly worse" not in text
