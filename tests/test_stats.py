from __future__ import annotations

import itertools
import math
import random
import statistics
import sys
from collections.abc import Callable
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as scipy_stats

from fleetlab.stats import (
    MIN_BOOTSTRAP_UNITS,
    Interval,
    KaplanMeier,
    PairedDifference,
    cluster_se,
    holm,
    kaplan_meier,
    mcnemar_exact,
    minimum_detectable_effect,
    normal_ppf,
    paired_bootstrap,
    paired_z_test,
    sample_size_for,
    share_of_way,
    wilson_interval,
)

Z95 = 1.959963984540054

# --- normal_ppf -------------------------------------------------------------------------


def test_normal_ppf_known_quantiles() -> None:
    assert normal_ppf(0.975) == pytest.approx(Z95, abs=1e-12)
    assert normal_ppf(0.5) == 0.0
    assert normal_ppf(0.8) == pytest.approx(0.8416212335729143, abs=1e-12)


@pytest.mark.parametrize("p", [0.0, 1.0, -0.1, 1.5])
def test_normal_ppf_rejects_p_outside_open_unit_interval(p: float) -> None:
    # fleetlab's own message: NormalDist's StatisticsError is a ValueError too
    with pytest.raises(ValueError, match=r"^p must be strictly between 0 and 1, got "):
        normal_ppf(p)


# --- Wilson -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("successes", "n", "low", "high"),
    [
        # Newcombe (1998), Stat Med 17:857, Table I, method 3 (Wilson score).
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0000, 0.1611),
        (1, 29, 0.0061, 0.1718),
        (29, 29, 0.8830, 1.0000),
    ],
)
def test_wilson_matches_newcombe_table(successes: int, n: int, low: float, high: float) -> None:
    interval = wilson_interval(successes, n)
    assert interval.estimate == successes / n
    assert interval.low == pytest.approx(low, abs=5e-5)
    assert interval.high == pytest.approx(high, abs=5e-5)
    assert interval.level == 0.95


@pytest.mark.parametrize(("successes", "n"), [(7, 10), (3, 50)])
def test_wilson_matches_formula_by_hand(successes: int, n: int) -> None:
    p, z2 = successes / n, Z95**2
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z95 / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    interval = wilson_interval(successes, n)
    assert interval.low == pytest.approx(centre - half, rel=1e-12)
    assert interval.high == pytest.approx(centre + half, rel=1e-12)


def test_wilson_with_no_trials_knows_nothing() -> None:
    interval = wilson_interval(0, 0)
    assert math.isnan(interval.estimate)
    assert (interval.low, interval.high) == (0.0, 1.0)


def test_wilson_with_no_trials_keeps_the_level() -> None:
    """The n == 0 interval carries the level asked for, like every other interval."""
    assert wilson_interval(0, 0, level=0.9).level == 0.9


def test_wilson_extremes_stay_in_unit_interval() -> None:
    """At 0/n the low bound is exactly 0 and at n/n the high bound exactly 1."""
    none = wilson_interval(0, 5)
    every = wilson_interval(5, 5)
    assert none.low == 0.0
    assert 0.0 < none.high < 1.0
    assert every.high == 1.0
    assert 0.0 < every.low < 1.0
    for n in (1, 7, 29, 263, 1000):
        for level in (0.8, 0.9, 0.95, 0.99):
            assert wilson_interval(0, n, level).low == 0.0
            assert wilson_interval(n, n, level).high == 1.0


def test_wilson_higher_level_is_wider() -> None:
    narrow = wilson_interval(30, 100, level=0.90)
    wide = wilson_interval(30, 100, level=0.99)
    assert wide.low < narrow.low < narrow.high < wide.high
    assert wide.level == 0.99


# no deadline: a loaded 2-core machine can take longer than Hypothesis's 200 ms default on one
# example (scipy's first import alone takes most of a second); a bounded number of examples
@settings(deadline=None, max_examples=100)
@given(
    st.integers(min_value=1, max_value=2000).flatmap(
        lambda n: st.tuples(st.integers(min_value=0, max_value=n), st.just(n))
    )
)
def test_wilson_bounds_contain_estimate_within_unit_interval(case: tuple[int, int]) -> None:
    successes, n = case
    interval = wilson_interval(successes, n)
    assert 0.0 <= interval.low <= interval.estimate <= interval.high <= 1.0


@pytest.mark.parametrize(
    ("successes", "n", "level", "message"),
    [
        (-1, 10, 0.95, "successes"),
        (11, 10, 0.95, "successes"),
        (0, -1, 0.95, "n must be"),
        (1, 10, 1.0, "level"),
        (1, 10, 0.0, "level"),
    ],
)
def test_wilson_rejects_bad_input(successes: int, n: int, level: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        wilson_interval(successes, n, level)


def test_wilson_matches_scipy_on_random_counts() -> None:
    rng = random.Random(12)
    for _ in range(300):
        n = rng.randint(1, 5000)
        successes = rng.randint(0, n)
        level = rng.choice([0.8, 0.9, 0.95, 0.99, rng.uniform(0.5, 0.999)])
        expected = scipy_stats.binomtest(successes, n).proportion_ci(
            confidence_level=level, method="wilson"
        )
        interval = wilson_interval(successes, n, level)
        assert interval.estimate == successes / n
        assert interval.low == pytest.approx(expected.low, abs=1e-12)
        assert interval.high == pytest.approx(expected.high, abs=1e-12)
        assert interval.level == level


@pytest.mark.parametrize(
    ("successes", "n", "message"),
    [
        (2.5, 10, "successes must be a count \\(an int\\), got 2.5 of type float"),
        (3.0, 10, "successes must be a count"),
        (True, 10, "successes must be a count \\(an int\\), got True of type bool"),
        (np.True_, 10, "successes must be a count"),
        ("3", 10, "successes must be a count"),
        (None, 10, "successes must be a count"),
        (3, 10.0, "n must be a count"),
        (1, True, "n must be a count"),
        (-1, 10, "successes must be >= 0"),
        (0, -1, "n must be >= 0"),
        (11, 10, "successes must be between 0 and n=10, got 11"),
    ],
)
def test_wilson_refuses_counts_that_are_not_counts(
    successes: object, n: object, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        wilson_interval(successes, n)  # type: ignore[arg-type]  # the bad types are the test


def test_wilson_accepts_numpy_integers() -> None:
    counts = np.array([3, 10])  # e.g. sums of a polars or numpy column
    assert wilson_interval(counts[0], counts[1]) == wilson_interval(3, 10)


# --- McNemar ----------------------------------------------------------------------------


def _two_sided_binomial(b: int, c: int) -> float:
    n, k = b + c, min(b, c)
    return min(1.0, 2 * sum(math.comb(n, i) * 0.5**n for i in range(k + 1)))


def test_mcnemar_known_answers() -> None:
    assert mcnemar_exact(1, 7) == 0.0703125  # 2 * (1 + 8) / 256
    assert mcnemar_exact(7, 1) == 0.0703125
    assert mcnemar_exact(0, 10) == pytest.approx(2 / 1024)
    assert mcnemar_exact(0, 0) == 1.0


@pytest.mark.parametrize("k", [1, 2, 5, 40])
def test_mcnemar_equal_discordance_is_no_evidence(k: int) -> None:
    assert mcnemar_exact(k, k) == 1.0


@pytest.mark.parametrize(("b", "c"), [(0, 1), (2, 9), (10, 20), (13, 14), (30, 5), (60, 90)])
def test_mcnemar_matches_direct_binomial_sum(b: int, c: int) -> None:
    assert mcnemar_exact(b, c) == pytest.approx(_two_sided_binomial(b, c), rel=1e-12)


def test_mcnemar_stays_finite_for_large_counts() -> None:
    p = mcnemar_exact(600, 800)
    assert 0.0 < p < 1e-6


def _exact_two_sided(b: int, c: int) -> float:
    """The exact p in integers: C(n, i+1) from C(n, i), one correctly rounded division."""
    n, k = b + c, min(b, c)
    term = tail = 1
    for i in range(k):
        term = term * (n - i) // (i + 1)
        tail += term
    return min(1.0, 2 * tail / (1 << n))


def test_mcnemar_matches_scipy_binomtest_on_random_counts() -> None:
    rng = random.Random(8)
    for _ in range(300):
        b, c = rng.randint(0, 3000), rng.randint(0, 3000)
        k, n = min(b, c), b + c
        expected = scipy_stats.binomtest(k, n, 0.5).pvalue if n else 1.0
        assert mcnemar_exact(b, c) == pytest.approx(expected, rel=1e-12, abs=1e-300)
        assert mcnemar_exact(c, b) == mcnemar_exact(b, c)


@pytest.mark.parametrize(
    ("b", "c"), [(10_000, 10_000), (9_800, 10_200), (9_999, 10_001), (3_000, 3_300)]
)
def test_mcnemar_at_ten_thousand_discordant_pairs_is_exact(b: int, c: int) -> None:
    expected = _exact_two_sided(b, c)
    assert mcnemar_exact(b, c) == pytest.approx(expected, rel=1e-12)
    assert mcnemar_exact(b, c) == pytest.approx(
        scipy_stats.binomtest(min(b, c), b + c).pvalue, rel=1e-12
    )


def _python_steps(call: Callable[[], object]) -> int:
    """How many Python-level trace events (calls, lines, returns) ``call()`` makes: a measure
    of work that does not depend on how busy the machine is."""
    count = 0

    def tracer(frame: object, event: str, arg: object) -> object:
        nonlocal count
        count += 1
        return tracer

    previous = sys.gettrace()
    sys.settrace(tracer)
    try:
        call()
    finally:
        sys.settrace(previous)
    return count


@pytest.mark.parametrize(("b", "c"), [(10_000, 10_000), (9_800, 10_200), (3_000, 3_300)])
def test_mcnemar_work_does_not_grow_with_the_discordant_pairs(b: int, c: int) -> None:
    """The exact p-value at 10,000 pairs each way costs about what it costs at 100: it does
    not sum one binomial term per pair (that took 41 s at this size). Counted in Python
    steps, not timed, so a loaded machine cannot fail it."""
    mcnemar_exact(3, 4)  # scipy.stats is imported on first use: not part of the count
    small = _python_steps(lambda: mcnemar_exact(b // 100, c // 100))
    large = _python_steps(lambda: mcnemar_exact(b, c))
    # a sum over the terms makes about 3 steps per term: 100 times more at 100 times the
    # pairs; scipy's binomtest makes at most about 1.6 times more (a search over the tail)
    assert large <= 3 * small, (small, large)


@pytest.mark.parametrize(
    ("b", "c", "message"),
    [
        (-1, 3, "b must be >= 0, got -1"),
        (3, -1, "c must be >= 0, got -1"),
        (1.5, 3, "b must be a count"),
        (3, True, "c must be a count"),
    ],
)
def test_mcnemar_rejects_bad_counts(b: int, c: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        mcnemar_exact(b, c)


# --- cluster_se -------------------------------------------------------------------------


def test_cluster_se_by_hand() -> None:
    # mean 3; residuals -2, -1 | 0, 3; cluster sums -3 | 3; G/(G-1) = 2; n^2 = 16.
    se = cluster_se([1.0, 2.0, 3.0, 6.0], ["a", "a", "b", "b"])
    assert se == pytest.approx(math.sqrt(2 * (9 + 9) / 16))
    assert se == pytest.approx(1.5)


def test_cluster_se_with_singleton_clusters_is_the_textbook_standard_error() -> None:
    values = [0.3, 1.7, 2.2, -0.4, 5.1, 0.0, 3.3]
    n = len(values)
    se = cluster_se(values, list(range(n)))
    assert se == pytest.approx(statistics.stdev(values) / math.sqrt(n), rel=1e-12)
    assert se == pytest.approx(
        statistics.pstdev(values) / math.sqrt(n) * math.sqrt(n / (n - 1)), rel=1e-12
    )


def test_cluster_se_depends_on_grouping_not_labels_or_order() -> None:
    values = [1.0, 4.0, 2.0, 8.0, 3.0, 0.0]
    clusters = ["x", "y", "x", "z", "y", "z"]
    relabelled = [10, (1, 2), 10, None, (1, 2), None]
    shuffled = [5, 0, 2, 3, 1, 4]
    assert cluster_se(values, clusters) == pytest.approx(cluster_se(values, relabelled))
    assert cluster_se(values, clusters) == pytest.approx(
        cluster_se([values[i] for i in shuffled], [clusters[i] for i in shuffled])
    )


@pytest.mark.parametrize("scale", [1e-200, 1e-160, 1e160, 1e200])
def test_cluster_se_of_tiny_and_huge_values_is_the_textbook_value_scaled(scale: float) -> None:
    # Oracle: statistics.stdev on the unscaled values (se is linear in them). Squaring the
    # scaled residuals directly overflows at 1e160 and underflows to 0 at 1e-160.
    values = [0.3, 1.7, 2.2, -0.4, 5.1]
    textbook = statistics.stdev(values) / math.sqrt(len(values))
    se = cluster_se([v * scale for v in values], list(range(len(values))))
    assert se / scale == pytest.approx(textbook, rel=1e-12)
    by_hand = cluster_se([v * scale for v in (1.0, 2.0, 3.0, 6.0)], ["a", "a", "b", "b"])
    assert by_hand / scale == pytest.approx(1.5, rel=1e-12)


def test_cluster_se_is_undefined_with_one_cluster() -> None:
    assert math.isnan(cluster_se([1.0, 2.0, 3.0], ["t", "t", "t"]))


def test_cluster_se_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="values and clusters must have the same length"):
        cluster_se([1.0, 2.0], ["a"])
    with pytest.raises(ValueError, match=r"^values must not be empty$"):
        cluster_se([], [])


# --- paired bootstrap -------------------------------------------------------------------


def test_bootstrap_matches_scipy_bca_on_random_pairs() -> None:
    rng = random.Random(5)
    for trial in range(20):
        n = rng.randint(MIN_BOOTSTRAP_UNITS, 120)
        baseline = [rng.gauss(0, 1) for _ in range(n)]
        variant = [b + rng.uniform(-0.5, 0.5) + rng.expovariate(1.0) for b in baseline]
        diffs = np.subtract(variant, baseline)
        level = rng.choice([0.9, 0.95])
        expected = scipy_stats.bootstrap(
            (diffs,),
            np.mean,
            n_resamples=1000,
            confidence_level=level,
            method="BCa",
            rng=np.random.default_rng(trial),
        ).confidence_interval
        result = paired_bootstrap(baseline, variant, n_boot=1000, seed=trial, level=level)
        assert result.estimate == pytest.approx(float(np.mean(diffs)), abs=1e-12)
        assert (result.low, result.high) == pytest.approx((expected.low, expected.high), abs=1e-9)
        assert result.method == "BCa"
        assert not result.unreliable, result.note


def test_cluster_bootstrap_is_scipy_bca_over_the_tasks() -> None:
    rng = random.Random(6)
    trials = 3
    tasks = [t for t in range(25) for _ in range(trials)]
    baseline = [rng.random() for _ in tasks]
    variant = [b + 0.1 * (t % 4) + rng.gauss(0, 0.2) for b, t in zip(baseline, tasks, strict=True)]
    diffs = np.subtract(variant, baseline)
    # With equal trials per task, resampling tasks is resampling the tasks' mean differences.
    task_means = diffs.reshape(25, trials).mean(axis=1)
    expected = scipy_stats.bootstrap(
        (task_means,), np.mean, n_resamples=2000, method="BCa", rng=np.random.default_rng(4)
    ).confidence_interval
    result = paired_bootstrap(baseline, variant, clusters=tasks, seed=4)
    assert (result.low, result.high) == pytest.approx((expected.low, expected.high), abs=1e-9)
    assert result.n_clusters == 25
    assert not result.unreliable


def test_cluster_bootstrap_with_unequal_tasks_is_the_ratio_of_drawn_sums() -> None:
    rng = random.Random(9)
    sizes = [rng.randint(1, 5) for _ in range(30)]
    tasks = [f"t{t}" for t, size in enumerate(sizes) for _ in range(size)]
    baseline = [float(rng.random() < 0.5) for _ in tasks]
    variant = [float(rng.random() < 0.7) for _ in tasks]
    diffs = np.subtract(variant, baseline)
    edges = np.cumsum([0, *sizes])
    totals = np.array([diffs[a:b].sum() for a, b in itertools.pairwise(edges)])

    def pooled_mean(total: np.ndarray, size: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.asarray(total.sum(axis=axis) / size.sum(axis=axis))

    expected = scipy_stats.bootstrap(
        (totals, np.array(sizes, dtype=float)),
        pooled_mean,
        paired=True,
        vectorized=True,
        n_resamples=2000,
        method="BCa",
        rng=np.random.default_rng(0),
    ).confidence_interval
    result = paired_bootstrap(baseline, variant, clusters=tasks)
    assert result.estimate == pytest.approx(float(diffs.mean()))
    assert (result.low, result.high) == pytest.approx((expected.low, expected.high), abs=1e-9)


def _assert_flagged(result: PairedDifference, *why: str) -> None:
    assert result.unreliable
    for reason in why:
        assert reason in result.note, result.note


def test_bootstrap_flags_a_constant_difference_instead_of_a_confident_zero_width() -> None:
    rng = random.Random(1)
    baseline = [rng.random() for _ in range(50)]
    variant = [b + 0.1 for b in baseline]
    result = paired_bootstrap(baseline, variant)
    assert result.estimate == pytest.approx(0.1, abs=1e-12)
    assert result.low == pytest.approx(0.1, abs=1e-12)
    assert result.high == pytest.approx(0.1, abs=1e-12)
    assert result.se == pytest.approx(0.0, abs=1e-12)
    assert result.n_clusters == 50
    assert result.p_value is None
    # the differences equal 0.1 only up to rounding: flagged on the pairs, not on the replicates
    _assert_flagged(result, "every pair has the same difference")


def test_bootstrap_counts_differences_within_1e9_of_the_largest_as_the_same() -> None:
    """Differences 2 and 2 + 4e-10 (4e-10 < 1e-9 * 2: rounding noise) are one difference."""
    result = paired_bootstrap([1.0] * 50, [2.0] * 40 + [2.0 + 4e-10] * 10)
    _assert_flagged(result, "every pair has the same difference")


def test_bootstrap_flags_fully_concordant_pairs() -> None:
    outcomes = [float(i % 3 == 0) for i in range(40)]  # both variants pass the same pairs
    result = paired_bootstrap(outcomes, outcomes)
    assert (result.estimate, result.low, result.high) == (0.0, 0.0, 0.0)
    _assert_flagged(result, "every pair has the same difference", "BCa is undefined")
    assert result.method == "percentile"
    clustered = paired_bootstrap(outcomes, outcomes, clusters=[i // 4 for i in range(40)])
    _assert_flagged(clustered, "every task has the same difference")


@pytest.mark.parametrize("n", [2, 5, 8, 9])
def test_bootstrap_flags_fewer_than_ten_units(n: int) -> None:
    rng = random.Random(n)
    baseline = [rng.gauss(0, 1) for _ in range(3 * n)]
    variant = [rng.gauss(0.5, 1) for _ in range(3 * n)]
    _assert_flagged(paired_bootstrap(baseline[:n], variant[:n]), f"only {n} pairs (fewer than 10)")
    # n tasks of three trials: 3n pairs, but only n independent units to resample
    tasks = [t for t in range(n) for _ in range(3)]
    clustered = paired_bootstrap(baseline, variant, clusters=tasks)
    _assert_flagged(clustered, f"only {n} tasks (fewer than 10)")
    assert not paired_bootstrap(baseline * 4, variant * 4).note.startswith("only")


def test_bootstrap_flags_nearly_concordant_pairs() -> None:
    baseline = [1.0] * 30 + [0.0] * 30
    variant = list(baseline)
    variant[0], variant[40] = 0.0, 1.0  # two discordant pairs out of 60
    result = paired_bootstrap(baseline, variant)
    _assert_flagged(result, "only 2 of 60 pairs differ from the most common difference")


def test_bootstrap_flags_replicates_with_few_distinct_values() -> None:
    # 20 pairs, half +1 and half -1: healthy; but with 3 replicates there are <= 3 values.
    baseline = [0.0, 1.0] * 10
    variant = [1.0, 0.0] * 10
    assert not paired_bootstrap(baseline, variant).unreliable
    _assert_flagged(
        paired_bootstrap(baseline, variant, n_boot=3), "distinct values among 3 resamples"
    )


@pytest.mark.parametrize("seed", [3, 4])
def test_bootstrap_falls_back_to_the_percentile_interval_of_the_same_replicates(
    seed: int,
) -> None:
    """Where BCa is undefined (here both of 2 replicates lie on one side of the estimate),
    the interval is scipy's percentile interval of those replicates, at the level asked."""
    rng = random.Random(4)
    baseline = [rng.gauss(0, 1) for _ in range(20)]
    variant = [b + rng.gauss(0.3, 1) for b in baseline]
    result = paired_bootstrap(baseline, variant, n_boot=2, seed=seed, level=0.9)
    assert result.method == "percentile"
    assert "BCa is undefined on these resamples: percentile interval" in result.note.split("; ")
    expected = scipy_stats.bootstrap(
        (np.subtract(variant, baseline),),
        np.mean,
        n_resamples=2,
        confidence_level=0.9,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    # With two replicates r1 < r2 the 90% interval is (r1 + .05(r2-r1), r1 + .95(r2-r1)).
    r1, r2 = sorted(expected.bootstrap_distribution)
    assert (result.low, result.high) == pytest.approx(
        (r1 + 0.05 * (r2 - r1), r1 + 0.95 * (r2 - r1)), abs=1e-12
    )
    ci = expected.confidence_interval
    assert (result.low, result.high) == pytest.approx((ci.low, ci.high), abs=1e-12)


def test_bootstrap_over_the_batch_threshold_matches_scipy_bca() -> None:
    """2001 pairs put the jackknife at 2001 x 2000 > 4e6 cells, so scipy runs in batches:
    the interval is still scipy's unbatched BCa interval."""
    rng = random.Random(8)
    baseline = [rng.gauss(0, 1) for _ in range(2001)]
    variant = [b + rng.gauss(0.1, 1) for b in baseline]
    expected = scipy_stats.bootstrap(
        (np.subtract(variant, baseline),),
        np.mean,
        n_resamples=200,
        method="BCa",
        rng=np.random.default_rng(0),
    ).confidence_interval
    result = paired_bootstrap(baseline, variant, n_boot=200, seed=0)
    assert result.method == "BCa"
    assert (result.low, result.high) == pytest.approx((expected.low, expected.high), abs=1e-9)


def test_bootstrap_flag_thresholds_are_strict() -> None:
    """Exactly 10 units, 5 differing units or 10 distinct replicates are enough: no flag."""
    rng = random.Random(12)
    baseline = [rng.gauss(0, 1) for _ in range(30)]
    variant = [b + rng.gauss(0.5, 1) for b in baseline]
    ten = paired_bootstrap(baseline[:10], variant[:10])
    assert "fewer than 10" not in ten.note
    # 10 resamples of continuous data: 10 distinct values
    assert "distinct value" not in paired_bootstrap(baseline, variant, n_boot=10).note
    # 60 binary pairs, 5 discordant: 5 differ from the most common difference (0)
    outcomes = [float(i % 2) for i in range(60)]
    flipped = [1.0 - o if i < 5 else o for i, o in enumerate(outcomes)]
    assert "most common difference" not in paired_bootstrap(outcomes, flipped).note


def test_bootstrap_names_a_single_differing_pair_in_the_singular() -> None:
    """One discordant pair of 60: the note says "only 1 of 60 pairs differs"."""
    baseline = [1.0] * 30 + [0.0] * 30
    variant = list(baseline)
    variant[0] = 0.0
    _assert_flagged(
        paired_bootstrap(baseline, variant),
        "only 1 of 60 pairs differs from the most common difference (fewer than 5)",
    )


def test_bootstrap_compares_tasks_by_mean_difference_not_by_total() -> None:
    """Tasks of 2 and 4 trials all with mean difference 0.5 are tasks that agree."""
    baseline = [0.0] * 12 * 6
    variant = []
    tasks = []
    for task in range(12):
        trials = 2 if task % 2 else 4
        variant += [0.0, 1.0] * (trials // 2)  # mean difference 0.5 in every task
        tasks += [task] * trials
    baseline = baseline[: len(variant)]
    result = paired_bootstrap(baseline, variant, clusters=tasks)
    _assert_flagged(result, "every task has the same difference")
    assert result.estimate == 0.5


def test_bootstrap_counts_the_distinct_replicates_exactly() -> None:
    """One resample is one distinct value, and the note says so (singular, not 2)."""
    result = paired_bootstrap([0.0, 1.0] * 10, [1.0, 0.0] * 10, n_boot=1)
    _assert_flagged(result, "only 1 distinct value among 1 resample;")


@pytest.mark.parametrize("scale", [1e-6, 1e6])
def test_bootstrap_flags_do_not_depend_on_the_unit_of_the_outcome(scale: float) -> None:
    """Outcomes in other units (seconds vs microseconds) give the same interval, scaled,
    and the same flags: the tolerances are relative to the values."""
    rng = random.Random(21)
    # Continuous outcomes: with 0/1 outcomes replicates tie with the estimate and BCa's bias
    # correction depends on how the scaled ties round.
    baseline = [rng.gauss(10, 2) for _ in range(60)]
    variant = [b + rng.gauss(0.5, 1) for b in baseline]
    plain = paired_bootstrap(baseline, variant)
    scaled = paired_bootstrap([b * scale for b in baseline], [v * scale for v in variant])
    assert scaled.note == plain.note == ""
    assert (scaled.low, scaled.high) == pytest.approx(
        (plain.low * scale, plain.high * scale), rel=1e-9
    )


@pytest.mark.parametrize("clusters", [None, ["t", "t", "t"]])
def test_bootstrap_of_a_single_unit_is_flagged_not_an_error(clusters: list[str] | None) -> None:
    n = 1 if clusters is None else 3
    result = paired_bootstrap([0.0, 1.0, 0.0][:n], [1.0, 1.0, 1.0][:n], clusters=clusters)
    assert result.low == result.high == result.estimate
    assert result.n_clusters == 1
    assert result.method == "percentile"  # no BCa on one unit
    _assert_flagged(result, "only 1 ", "has the same difference")


def test_bootstrap_does_not_flag_a_healthy_binary_comparison() -> None:
    rng = random.Random(21)
    baseline = [float(rng.random() < 0.55) for _ in range(60)]
    variant = [float(rng.random() < 0.8) for _ in range(60)]
    result = paired_bootstrap(baseline, variant)
    assert not result.unreliable, result.note
    assert result.note == ""
    assert result.low < result.estimate < result.high


def test_bootstrap_ci_covers_the_mean_difference_and_agrees_with_se() -> None:
    rng = random.Random(7)
    baseline = [rng.gauss(0, 1) for _ in range(300)]
    variant = [b + 0.3 + rng.gauss(0, 1) for b in baseline]
    result = paired_bootstrap(baseline, variant)
    mean_diff = statistics.fmean(v - b for b, v in zip(baseline, variant, strict=True))
    assert result.estimate == pytest.approx(mean_diff)
    assert result.low < mean_diff < result.high
    # For a mean of 300 observations the percentile CI is close to estimate ± z·se.
    assert (result.high - result.low) / (2 * Z95) == pytest.approx(result.se, rel=0.1)


def _correlated_trials(n_tasks: int, trials: int) -> tuple[list[float], list[float], list[int]]:
    """Trials of one task share the task's effect: strongly correlated within a cluster."""
    rng = random.Random(3)
    baseline, variant, tasks = [], [], []
    for task in range(n_tasks):
        effect = rng.gauss(0.1, 0.3)
        for _ in range(trials):
            base = rng.random()
            baseline.append(base)
            variant.append(base + effect + rng.gauss(0, 0.01))
            tasks.append(task)
    return baseline, variant, tasks


def test_cluster_resampling_widens_the_interval_for_correlated_trials() -> None:
    baseline, variant, tasks = _correlated_trials(n_tasks=20, trials=5)
    naive = paired_bootstrap(baseline, variant)
    clustered = paired_bootstrap(baseline, variant, clusters=tasks)
    assert clustered.estimate == naive.estimate
    assert clustered.n_clusters == 20
    assert naive.n_clusters == 100
    # Five near-identical trials per task carry about one task's worth of information,
    # so the honest interval is about sqrt(5) times wider.
    ratio = (clustered.high - clustered.low) / (naive.high - naive.low)
    assert 1.6 < ratio < 3.0
    assert clustered.se > 1.6 * naive.se
    diffs = [v - b for b, v in zip(baseline, variant, strict=True)]
    assert clustered.se == pytest.approx(cluster_se(diffs, tasks))


def test_bootstrap_is_deterministic_for_a_seed() -> None:
    baseline, variant, tasks = _correlated_trials(n_tasks=10, trials=3)
    first = paired_bootstrap(baseline, variant, clusters=tasks, n_boot=500, seed=11)
    again = paired_bootstrap(baseline, variant, clusters=tasks, n_boot=500, seed=11)
    other = paired_bootstrap(baseline, variant, clusters=tasks, n_boot=500, seed=12)
    assert first == again
    assert (first.low, first.high) != (other.low, other.high)


def test_bootstrap_level_controls_width() -> None:
    baseline, variant, _ = _correlated_trials(n_tasks=30, trials=1)
    wide = paired_bootstrap(baseline, variant, level=0.99)
    narrow = paired_bootstrap(baseline, variant, level=0.80)
    assert wide.low < narrow.low < narrow.high < wide.high


def test_bootstrap_rejects_bad_input() -> None:
    """Bad arguments raise ValueError whose message names them (full text pinned)."""
    with pytest.raises(ValueError, match="baseline and variant must have the same length"):
        paired_bootstrap([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match=r"^baseline and variant must not be empty$"):
        paired_bootstrap([], [])
    with pytest.raises(
        ValueError,
        match=r"^baseline and variant and clusters must have the same length, "
        r"got baseline=2, variant=2, clusters=1$",
    ):
        paired_bootstrap([1.0, 2.0], [1.0, 3.0], clusters=["a"])
    with pytest.raises(ValueError, match="n_boot"):
        paired_bootstrap([1.0, 2.0], [1.0, 3.0], n_boot=0)
    with pytest.raises(ValueError, match="finite"):
        paired_bootstrap([1.0, math.nan], [1.0, 3.0])
    with pytest.raises(ValueError, match="level"):
        paired_bootstrap([1.0, 2.0], [1.0, 3.0], level=95)


# --- power: MDE and sample size ---------------------------------------------------------


def _pairs_needed(d: float, psi: float, z_a: float = Z95, z_b: float = 0.8416212335729143) -> float:
    return (z_a * math.sqrt(psi) + z_b * math.sqrt(psi - d * d)) ** 2 / (d * d)


def test_sample_size_by_hand() -> None:
    # psi = 2 * 0.5 * 0.5 = 0.5: (1.96*sqrt(.5) + 0.8416*sqrt(.49))^2 / .01 = 390.08 -> 391
    assert _pairs_needed(0.1, 0.5) == pytest.approx(390.08, abs=0.01)
    assert sample_size_for(0.1, 0.5) == 391
    assert sample_size_for(-0.1, 0.5) == 391
    assert sample_size_for(0.1, 0.5, discordance=0.2) == math.ceil(_pairs_needed(0.1, 0.2))


def test_mde_solves_the_formula_by_hand() -> None:
    d = minimum_detectable_effect(100, 0.5)
    assert _pairs_needed(d, 0.5) == pytest.approx(100, rel=1e-9)
    assert d == pytest.approx(0.1958, abs=1e-4)


def test_mde_shrinks_as_n_grows() -> None:
    mdes = [minimum_detectable_effect(n, 0.3) for n in (20, 50, 100, 400, 1600, 10_000)]
    assert all(a > b for a, b in itertools.pairwise(mdes))


def test_mde_shrinks_with_less_discordance_and_less_power() -> None:
    base = minimum_detectable_effect(200, 0.5)
    assert minimum_detectable_effect(200, 0.5, discordance=0.1) < base
    assert minimum_detectable_effect(200, 0.5, power=0.5) < base
    assert minimum_detectable_effect(200, 0.5, alpha=0.01) > base


@pytest.mark.parametrize("n", [50, 100, 391, 1000, 25_000])
@pytest.mark.parametrize("rate", [0.1, 0.5, 0.85])
def test_sample_size_inverts_mde(n: int, rate: float) -> None:
    d = minimum_detectable_effect(n, rate)
    assert sample_size_for(d, rate) == n


def test_mde_is_infinite_when_no_feasible_effect_is_detectable() -> None:
    # psi = 0.5: even d = psi (every discordant pair favours the variant) needs
    # (1.96*sqrt(.5) + 0.8416*sqrt(.25))^2 / .25 = 13.06 pairs.
    assert _pairs_needed(0.5, 0.5) == pytest.approx(13.06, abs=0.01)
    assert minimum_detectable_effect(13, 0.5) == math.inf
    assert 0.45 < minimum_detectable_effect(14, 0.5) < 0.5


def _z(p: float) -> float:
    """The standard normal quantile from scipy: the oracle for the module's NormalDist."""
    return float(scipy_stats.norm.ppf(p))


@pytest.mark.parametrize("rate", [0.0, 0.3, 1.0])
def test_sample_size_reads_baseline_rate_only_as_the_default_discordance(rate: float) -> None:
    """With ``discordance`` given, any baseline rate in [0, 1] (ends included) is accepted."""
    # psi = 0.2, d = 0.1: (1.95996*0.44721 + 0.84162*sqrt(0.19)=0.43589)^2 / 0.01
    #   = (0.87652 + 0.36685)^2 / 0.01 = 154.599 -> 155 pairs, whatever the baseline rate.
    psi, d = 0.2, 0.1
    by_hand = (_z(0.975) * math.sqrt(psi) + _z(0.8) * math.sqrt(psi - d * d)) ** 2 / d**2
    assert by_hand == pytest.approx(154.599, abs=1e-3)
    assert sample_size_for(d, rate, discordance=psi) == 155
    # 155 pairs detect d = 0.1 and 154 do not: the MDE with 155 lies in (0.0995, 0.1].
    assert 0.0995 < minimum_detectable_effect(155, rate, discordance=psi) <= 0.1


@pytest.mark.parametrize(
    ("effect", "rate", "discordance", "pairs"),
    [
        # psi = 2*.5*.5 = .5, d = psi: (1.95996*sqrt(.5) + 0.84162*sqrt(.5-.25))^2 / .25
        #   = (1.38590 + 0.42081)^2 / .25 = 13.057 -> 14
        (0.5, 0.5, None, 14),
        (-0.5, 0.5, None, 14),
        # psi = .2, d = psi: (1.95996*sqrt(.2) + 0.84162*sqrt(.2-.04))^2 / .04
        #   = (0.87652 + 0.33665)^2 / .04 = 36.795 -> 37
        (0.2, 0.3, 0.2, 37),
    ],
)
def test_sample_size_at_the_largest_feasible_effect(
    effect: float, rate: float, discordance: float | None, pairs: int
) -> None:
    """``|effect| == psi`` (every discordant pair one way) is feasible, not rejected."""
    psi = 2 * rate * (1 - rate) if discordance is None else discordance
    d = abs(effect)
    by_hand = (_z(0.975) * math.sqrt(psi) + _z(0.8) * math.sqrt(psi - d * d)) ** 2 / d**2
    assert math.ceil(by_hand) == pairs
    assert sample_size_for(effect, rate, discordance=discordance) == pairs


def test_mde_with_a_single_pair_is_infinite_not_an_error() -> None:
    """n = 1 is a valid (hopeless) design: no effect is detectable, so the MDE is inf."""
    # Even d = psi = 1 needs (1.95996*1 + 0.84162*0)^2 / 1 = 3.84 > 1 pairs.
    assert minimum_detectable_effect(1, 0.5, discordance=1.0) == math.inf
    assert minimum_detectable_effect(1, 0.5) == math.inf


@pytest.mark.parametrize(("n", "share"), [(5, 1.0), (7, 1.0), (28, 0.5), (30, 0.5)])
def test_mde_at_a_root_that_needs_exactly_n_pairs(n: int, share: float) -> None:
    """A ``d`` that needs exactly ``n`` pairs is detectable with ``n``: the MDE is ``d``.

    With ``power = 0.5`` (``z_b = 0``) the formula is ``n = z_a² psi / d²``. Choosing
    ``psi = z_a² / n / share²`` puts the root at ``d = share * psi``: at ``psi`` itself (the
    edge between a finite MDE and ``inf``) or at ``psi / 2`` (the bisection's first
    midpoint). These psi values make the float formula land on ``n`` exactly.
    """
    z_a = statistics.NormalDist().inv_cdf(0.975)  # the quantile the module documents using
    psi = z_a * z_a / n / share**2
    root = share * psi
    assert (z_a * math.sqrt(psi)) ** 2 / root**2 == n  # the input sits exactly on the root
    assert minimum_detectable_effect(n, 0.5, discordance=psi, power=0.5) == root


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: sample_size_for(0.0, 0.5), "effect"),
        (lambda: sample_size_for(0.6, 0.5), "effect"),
        (
            lambda: sample_size_for(0.1, 0.0),
            r"without discordance it is 2\*p\*\(1-p\), so baseline_rate must be strictly",
        ),
        (lambda: sample_size_for(0.1, 1.2), "baseline_rate"),
        (lambda: sample_size_for(0.1, 1.2, discordance=0.2), "baseline_rate must be between"),
        (lambda: sample_size_for(0.1, -0.1, discordance=0.2), "baseline_rate must be between"),
        (lambda: minimum_detectable_effect(50, 2.0, discordance=0.2), "baseline_rate must be"),
        (lambda: sample_size_for(0.1, 0.5, discordance=0.0), "discordance"),
        (lambda: sample_size_for(0.1, 0.5, discordance=1.5), "discordance must be in"),
        (lambda: sample_size_for(0.1, 0.5, alpha=1.0), "alpha"),
        (lambda: sample_size_for(0.1, 0.5, alpha=1.5), "alpha"),
        (lambda: sample_size_for(0.1, 0.5, power=0.3), "power"),
        (lambda: sample_size_for(0.1, 0.5, alpha=0.0), "alpha"),
        (lambda: minimum_detectable_effect(0, 0.5), "n must be"),
        (lambda: minimum_detectable_effect(10, 0.5, power=1.0), "power"),
    ],
)
def test_power_functions_reject_bad_input(call: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


# --- Kaplan-Meier -----------------------------------------------------------------------

# Freireich et al. (1963), 6-MP group, remission weeks; False = censored (still in remission).
SIX_MP = [
    (6, True),
    (6, True),
    (6, True),
    (6, False),
    (7, True),
    (9, False),
    (10, True),
    (10, False),
    (11, False),
    (13, True),
    (16, True),
    (17, False),
    (19, False),
    (20, False),
    (22, True),
    (23, True),
    (25, False),
    (32, False),
    (32, False),
    (34, False),
    (35, False),
]


def _six_mp() -> KaplanMeier:
    return kaplan_meier([t for t, _ in SIX_MP], [seen for _, seen in SIX_MP])


def test_kaplan_meier_six_mp_textbook_values() -> None:
    km = _six_mp()
    assert km.times == (6.0, 7.0, 10.0, 13.0, 16.0, 22.0, 23.0)
    assert km.at_risk == (21, 17, 15, 12, 11, 7, 6)
    assert km.events == (3, 1, 1, 1, 1, 1, 1)
    expected = (0.857, 0.807, 0.753, 0.690, 0.627, 0.538, 0.448)
    assert km.survival == pytest.approx(expected, abs=5e-4)
    assert km.survival[0] == pytest.approx(18 / 21)
    assert km.median() == 23


def test_kaplan_meier_step_function_between_event_times() -> None:
    km = _six_mp()
    assert km.survival_at(5.9) == 1.0
    assert km.survival_at(6) == pytest.approx(18 / 21)
    assert km.survival_at(9) == pytest.approx(km.survival_at(7))
    assert km.survival_at(100) == pytest.approx(km.survival[-1])
    assert km.completed_by(12) == pytest.approx(1 - km.survival_at(10))
    assert km.completed_by(0) == 0.0


def test_kaplan_meier_greenwood_log_log_band() -> None:
    km = _six_mp()
    greenwood, standard_errors = 0.0, []
    for s, n, d, low, high in zip(
        km.survival, km.at_risk, km.events, km.lower, km.upper, strict=True
    ):
        greenwood += d / (n * (n - d))
        standard_errors.append(s * math.sqrt(greenwood))
        spread = Z95 * math.sqrt(greenwood) / -math.log(s)
        assert low == pytest.approx(s ** math.exp(spread))
        assert high == pytest.approx(s ** math.exp(-spread))
        assert 0.0 < low < s < high < 1.0
    # Greenwood standard errors as printed by R: summary(survfit(Surv(t, relapse) ~ 1)).
    r_std_err = (0.0764, 0.0869, 0.0963, 0.1068, 0.1141, 0.1282, 0.1346)
    assert standard_errors == pytest.approx(r_std_err, abs=5e-5)
    # survfit(..., conf.type = "log-log") bounds at weeks 6 and 23.
    assert (km.lower[0], km.upper[0]) == pytest.approx((0.620, 0.952), abs=5e-4)
    assert (km.lower[-1], km.upper[-1]) == pytest.approx((0.188, 0.680), abs=5e-4)


def test_kaplan_meier_band_is_zero_once_survival_reaches_zero() -> None:
    km = kaplan_meier([1.0, 2.0, 3.0], [True, False, True])
    assert km.survival == pytest.approx((2 / 3, 0.0))
    assert km.lower[-1] == km.upper[-1] == 0.0


def test_kaplan_meier_all_censored_never_drops() -> None:
    km = kaplan_meier([1.0, 5.0, 9.0], [False, False, False])
    assert km.times == km.survival == ()
    assert km.survival_at(100.0) == 1.0
    assert km.completed_by(100.0) == 0.0
    assert km.median() is None


def test_kaplan_meier_empty_input_is_an_empty_curve() -> None:
    km = kaplan_meier([], [])
    assert km.times == km.lower == km.upper == ()
    assert km.median() is None


@settings(deadline=None, max_examples=100)  # no deadline on a loaded machine; bounded examples
@given(st.lists(st.integers(min_value=0, max_value=30), min_size=1, max_size=60))
def test_kaplan_meier_without_censoring_is_the_empirical_survival(durations: list[int]) -> None:
    km = kaplan_meier([float(d) for d in durations], [True] * len(durations))
    n = len(durations)
    for t in range(-1, 32):
        empirical = sum(d > t for d in durations) / n
        assert km.survival_at(t) == pytest.approx(empirical, abs=1e-12)
    assert km.times == tuple(sorted(set(durations)))


def test_kaplan_meier_counts_censored_ties_as_at_risk() -> None:
    # At t=2 the censored task is still at risk: S = 3/4 * (1 - 1/3) = 0.5, not 3/4 * 1/2.
    km = kaplan_meier([1.0, 2.0, 2.0, 3.0], [True, True, False, True])
    assert km.at_risk == (4, 3, 1)
    assert km.survival == pytest.approx((0.75, 0.5, 0.0))
    assert km.median() == 2.0


def test_kaplan_meier_band_and_level_at_ninety_percent() -> None:
    """``level`` sets the band's z (scipy's 0.95 quantile for 90%) and is kept on the curve."""
    km = kaplan_meier([t for t, _ in SIX_MP], [seen for _, seen in SIX_MP], level=0.90)
    assert km.level == 0.90
    z90 = _z(0.95)  # 1.64485
    greenwood = 0.0
    for s, n, d, low, high in zip(
        km.survival, km.at_risk, km.events, km.lower, km.upper, strict=True
    ):
        greenwood += d / (n * (n - d))
        spread = z90 * math.sqrt(greenwood) / -math.log(s)
        assert low == pytest.approx(s ** math.exp(spread), rel=1e-9)
        assert high == pytest.approx(s ** math.exp(-spread), rel=1e-9)
    # Week 6: S = 18/21, Greenwood sum 3/(21*18) = 0.0079365, sqrt = 0.089087,
    # -log S = 0.15415: spread = 1.64485 * 0.089087 / 0.15415 = 0.95060,
    # low = 0.85714 ** exp(0.95060) = 0.85714 ** 2.58725 = exp(-0.15415 * 2.58725) = 0.67111.
    assert km.lower[0] == pytest.approx(0.67111, abs=5e-5)
    censored = kaplan_meier([1.0, 5.0], [False, False], level=0.90)
    assert censored.level == 0.90


def test_kaplan_meier_reads_zero_one_flags_and_int_durations() -> None:
    """Flags stored as 0/1 (SQLite has no bool) mean observed/censored; times come back floats."""
    km = kaplan_meier([t for t, _ in SIX_MP], [int(seen) for _, seen in SIX_MP])
    assert km.times == (6.0, 7.0, 10.0, 13.0, 16.0, 22.0, 23.0)
    assert all(type(t) is float for t in km.times)
    assert km.at_risk == (21, 17, 15, 12, 11, 7, 6)
    assert km.events == (3, 1, 1, 1, 1, 1, 1)
    assert km.survival[0] == pytest.approx(18 / 21)  # 3 of 21 complete at week 6
    assert km.survival[1] == pytest.approx(18 / 21 * 16 / 17)  # 1 of 17 at week 7
    assert km.median() == 23.0


def _two_step_cohort(first: tuple[int, int], second: tuple[int, int]) -> list[tuple[float, bool]]:
    """``(at risk, survivors)`` at t=1 and t=2; survivors of t=1 not at risk at t=2 are
    censored at t=1.5 and survivors of t=2 at t=3."""
    (b, a), (d, c) = first, second
    return (
        [(1.0, True)] * (b - a)
        + [(1.5, False)] * (a - d)
        + [(2.0, True)] * (d - c)
        + [(3.0, False)] * c
    )


@pytest.mark.parametrize(
    ("first", "second", "median"),
    [
        # S(2) = 22503/30001 * 13334/20003; 2 * 22503 * 13334 = 600110004
        # = 30001 * 20003 + 1, so S(2) = 1/2 + 1/(2 * 600110003) = 1/2 + 8.3e-10: above 1/2.
        ((30001, 22503), (20003, 13334), None),
        # S(2) = 21820/30001 * 13750/20001; 2 * 21820 * 13750 = 600050000
        # = 30001 * 20001 - 1, so S(2) = 1/2 - 8.3e-10: at most 1/2 from t=2 on.
        ((30001, 21820), (20001, 13750), 2.0),
    ],
)
def test_kaplan_meier_median_decides_a_hair_from_half_on_the_counts(
    first: tuple[int, int], second: tuple[int, int], median: float | None
) -> None:
    """Within 1e-9 of 1/2 the side of 1/2 comes from the counts, both ways."""
    cohort = _two_step_cohort(first, second)
    km = kaplan_meier([t for t, _ in cohort], [seen for _, seen in cohort])
    assert km.at_risk == (first[0], second[0])
    assert abs(km.survival[-1] - 0.5) < 1e-9  # inside the margin: the exact test decides
    assert km.median() == median


def test_kaplan_meier_median_refuses_a_curve_whose_columns_disagree() -> None:
    """A hand-built curve with columns of different lengths raises instead of being truncated."""
    with pytest.raises(ValueError):
        KaplanMeier((1.0, 2.0), (0.9,), (10, 1), (1, 1)).median()  # a time without S
    with pytest.raises(ValueError):
        KaplanMeier((1.0,), (0.5,), (2,), ()).median()  # S = 1/2 with no event count


def test_kaplan_meier_median_none_when_curve_stays_above_half() -> None:
    km = kaplan_meier([1.0, 2.0, 3.0, 4.0], [True, False, False, False])
    assert km.survival == pytest.approx((0.75,))
    assert km.median() is None


def test_kaplan_meier_median_on_a_curve_landing_exactly_on_half() -> None:
    # 24 tasks, all completed at 1..24: S(12) = 12/24 exactly. lifelines'
    # KaplanMeierFitter().fit(range(1, 25)).median_survival_time_ is 12; rounding in the
    # running product used to leave S(12) = 0.5000000000000001 and the median at 13.
    km = kaplan_meier(list(range(1, 25)), [True] * 24)
    assert km.median() == 12
    assert km.survival_at(12) == pytest.approx(0.5, abs=1e-15)
    assert km.survival_at(11.9) > 0.5


@pytest.mark.parametrize("n", [2, 6, 10, 24, 50, 98, 200, 1000])
def test_kaplan_meier_median_of_an_even_number_of_completions(n: int) -> None:
    durations = [float(d) for d in random.Random(n).sample(range(1, 100_000), n)]
    km = kaplan_meier(durations, [True] * n)
    assert km.median() == sorted(durations)[n // 2 - 1]  # the first time S = 1/2


def _exact_curve(
    durations: list[float], observed: list[bool]
) -> list[tuple[float, int, int, Fraction]]:
    """(t, at risk, events, S(t)) at each event time, in exact fractions: the oracle."""
    rows, s = [], Fraction(1)
    for t in sorted({d for d, seen in zip(durations, observed, strict=True) if seen}):
        at_risk = sum(d >= t for d in durations)
        events = sum(d == t and seen for d, seen in zip(durations, observed, strict=True))
        s *= Fraction(at_risk - events, at_risk)
        rows.append((t, at_risk, events, s))
    return rows


def _random_censored(rng: random.Random) -> tuple[list[float], list[bool]]:
    """Small integer durations (many ties, events and censorings at the same time)."""
    n = rng.randint(1, 80)
    top = rng.choice([5, 20, 60])
    durations = [float(rng.randint(0, top)) for _ in range(n)]
    censoring = rng.choice([0.0, 0.2, 0.5])
    return durations, [rng.random() >= censoring for _ in range(n)]


def _weekly_cohort(rng: random.Random) -> tuple[list[float], list[bool]]:
    """Like a digest's cohort: seconds from spawn to completion, censored at the week's end."""
    week = 7 * 86_400
    durations, observed = [], []
    for _ in range(rng.randint(10, 200)):
        created = rng.uniform(0, week)
        took = rng.expovariate(1 / rng.choice([600, 3_600, 6 * 3_600]))
        done = created + took < week and rng.random() < 0.9
        durations.append(float(round((created + took if done else week) - created)))
        observed.append(done)
    return durations, observed


@pytest.mark.parametrize("make", [_random_censored, _weekly_cohort])
def test_kaplan_meier_matches_exact_fractions_and_scipy_on_random_censored_data(
    make: Callable[[random.Random], tuple[list[float], list[bool]]],
) -> None:
    rng = random.Random(2026)
    exactly_half = 0
    for _ in range(150):
        durations, observed = make(rng)
        km = kaplan_meier(durations, observed)
        exact = _exact_curve(durations, observed)
        assert km.times == tuple(t for t, *_ in exact)
        assert km.at_risk == tuple(n for _, n, _, _ in exact)
        assert km.events == tuple(d for *_, d, _ in exact)
        assert km.survival == pytest.approx([float(s) for *_, s in exact], abs=1e-12)
        median = next((t for t, *_, s in exact if s <= Fraction(1, 2)), None)
        assert km.median() == median
        exactly_half += any(s == Fraction(1, 2) for *_, s in exact)
        if not any(observed):
            continue
        censored = [not seen for seen in observed]
        sf = scipy_stats.ecdf(scipy_stats.CensoredData.right_censored(durations, censored)).sf
        assert km.survival == pytest.approx(sf.evaluate(km.times), abs=1e-12)
        greenwood = np.cumsum([d / (n * (n - d)) if n > d else 0.0 for _, n, d, _ in exact])
        for s, g, low, high in zip(km.survival, greenwood, km.lower, km.upper, strict=True):
            if s == 0:
                assert low == high == 0.0
                continue
            spread = Z95 * math.sqrt(g) / -math.log(s)
            assert low == pytest.approx(s ** math.exp(spread), abs=1e-9)
            assert high == pytest.approx(s ** math.exp(-spread), abs=1e-9)
    assert exactly_half > 10  # the case that used to be one event late is exercised


@pytest.mark.parametrize(
    ("durations", "observed", "message"),
    [
        ([1.0, 2.0], [True], "durations and observed must have the same length"),
        ([1.0, -0.5], [True, True], "durations must be finite and >= 0"),
        ([1.0, math.nan], [True, True], "durations must be finite and >= 0"),
        ([1.0, math.inf], [True, False], "durations must be finite and >= 0"),
    ],
)
def test_kaplan_meier_rejects_bad_input(
    durations: list[float], observed: list[bool], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        kaplan_meier(durations, observed)


def test_public_records_are_frozen() -> None:
    interval = Interval(0.5, 0.4, 0.6)
    with pytest.raises(AttributeError):
        interval.low = 0.0  # type: ignore[misc]  # frozen dataclass: the write must fail


# --- Holm's correction and the paired z-test ------------------------------------------------


def test_holm_on_the_textbook_example() -> None:
    """Wikipedia's "Holm-Bonferroni method" example: four hypotheses with p = 0.01, 0.04, 0.03,
    0.005 at alpha 0.05: Holm rejects H1 and H4 only. By hand, sorted 0.005, 0.01, 0.03, 0.04
    are multiplied by 4, 3, 2, 1: 0.02, 0.03, 0.06, 0.04, and the last is raised to the
    running maximum 0.06."""
    adjusted = holm([0.01, 0.04, 0.03, 0.005])
    assert adjusted == pytest.approx([0.03, 0.06, 0.06, 0.02], abs=1e-15)
    assert [a < 0.05 for a in adjusted] == [True, False, False, True]


def test_holm_by_hand_keeps_the_order_caps_at_one_and_skips_nan() -> None:
    # m = 5: 0.01 x 5, 0.02 x 4, 0.03 x 3, then 0.04 x 2 = 0.08 and 0.05 x 1 = 0.05 both
    # raised to the running maximum 0.09
    assert holm([0.05, 0.04, 0.03, 0.02, 0.01]) == pytest.approx(
        [0.09, 0.09, 0.09, 0.08, 0.05], abs=1e-15
    )
    assert holm([0.3, 0.6]) == [0.6, 0.6]  # 0.3 x 2 = 0.6; 0.6 x 1 = 0.6
    assert holm([0.7, 0.9]) == [1.0, 1.0]  # 1.4 capped at 1
    assert holm([0.2]) == [0.2]  # one comparison: nothing to correct
    out = holm([0.01, math.nan, 0.04])  # a family of two
    assert out[0] == pytest.approx(0.02)
    assert out[2] == pytest.approx(0.04)
    assert math.isnan(out[1])
    assert holm([]) == []
    with pytest.raises(ValueError, match=r"p_values\[1\] must be in \[0, 1\]"):
        holm([0.1, 1.5])


def test_paired_z_test_against_the_textbook_z() -> None:
    diffs = [1.0, 2.0, 3.0, 4.0]
    z = statistics.mean(diffs) / (statistics.stdev(diffs) / math.sqrt(len(diffs)))
    assert paired_z_test(diffs) == pytest.approx(2 * scipy_stats.norm.sf(z), rel=1e-12)
    # clustered: the two tasks' means are 1.5 and 3.5; CR1 with G = 2 over n = 4:
    # residuals -1.5, -0.5 | 0.5, 1.5 sum to -2 and 2: se = sqrt(2 * 8 / 16) = 1
    assert paired_z_test(diffs, ["a", "a", "b", "b"]) == pytest.approx(
        2 * scipy_stats.norm.sf(2.5), rel=1e-12
    )
    assert paired_z_test([0.0, 0.0, 0.0]) == 1.0
    # no spread: the exact sign-flip test, brute-forced over every sign pattern of the clusters
    for diffs, clusters in (
        ([0.5] * 3, None),
        ([0.001] * 5, None),
        ([-0.2, -0.2, -0.2, -0.2, -0.2, -0.2], ["a", "a", "b", "c", "c", "c"]),
    ):
        sums = [math.fsum(g) for g in _groups(diffs, clusters)]
        observed = abs(math.fsum(sums))
        patterns = list(itertools.product((1, -1), repeat=len(sums)))
        extreme = sum(
            abs(math.fsum(s * x for s, x in zip(signs, sums, strict=True))) >= observed - 1e-12
            for signs in patterns
        )
        assert paired_z_test(diffs, clusters) == pytest.approx(extreme / len(patterns))
    assert paired_z_test([0.001] * 5) > 0.05  # five tasks agreeing prove nothing at 5%
    assert math.isnan(paired_z_test([1.0, 2.0], ["a", "a"]))


@pytest.mark.parametrize("scale", [1e-200, 1e200])
def test_paired_z_test_of_tiny_and_huge_differences_is_the_textbook_z(scale: float) -> None:
    # Oracle: the textbook z on the unscaled differences (z does not depend on the unit).
    diffs = [1.0, 2.0, -1.0, 3.0]
    z = statistics.mean(diffs) / (statistics.stdev(diffs) / math.sqrt(len(diffs)))
    expected = 2 * scipy_stats.norm.sf(z)
    assert paired_z_test([d * scale for d in diffs]) == pytest.approx(expected, rel=1e-12)


# --- share_of_way: Fieller's interval for (L - W) / (B - W) of paired means ---------------


def _three(
    rng: np.random.Generator, n: int, means: tuple[float, float, float]
) -> list[list[float]]:
    """Learner, worst and best rewards on ``n`` pairs sharing a per-pair (task) effect."""
    task = rng.normal(0.0, 0.3, n)
    return [(m + task + rng.normal(0.0, 0.2, n)).tolist() for m in means]


def test_share_of_way_covers_the_true_share_95_percent_of_the_time() -> None:
    # Oracle: the share the data were drawn from, (0.74 - 0.70) / (0.75 - 0.70) = 0.8. The
    # pairs share a large task effect: an interval that ignored the pairing would cover
    # nearly always (too wide), one without the standard error almost never.
    rng = np.random.default_rng(7)
    runs = 1000
    covered = sum(
        (i := share_of_way(*_three(rng, 600, (0.74, 0.70, 0.75)))).low <= 0.8 <= i.high
        for _ in range(runs)
    )
    # binomial sd of the rate at 95% over 1000 runs: 0.0069; allow about three either side
    # (seeds 1, 2, 3, 7 and 11 gave 0.938-0.961)
    assert 0.93 <= covered / runs <= 0.97


def test_share_of_way_is_exact_where_the_learner_is_a_fixed_strategy_in_every_pair() -> None:
    worst, best, _ = _three(np.random.default_rng(3), 50, (0.70, 0.75, 0.0))
    as_best = share_of_way(best, worst, best)
    assert (as_best.estimate, as_best.low, as_best.high) == pytest.approx((1.0, 1.0, 1.0))
    as_worst = share_of_way(worst, worst, best)
    assert (as_worst.estimate, as_worst.low, as_worst.high) == pytest.approx((0.0, 0.0, 0.0))


def test_share_of_way_is_unbounded_when_worst_and_best_are_within_noise() -> None:
    learner, worst, best = _three(np.random.default_rng(5), 40, (0.72, 0.70, 0.701))
    got = share_of_way(learner, worst, best)
    assert math.isfinite(got.estimate)
    assert (got.low, got.high) == (-math.inf, math.inf)
    one = share_of_way([1.0], [0.0], [2.0])
    assert one.estimate == 0.5
    assert math.isnan(one.low)
    assert math.isnan(one.high)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (([], [], []), "must not be empty"),
        (([1.0], [1.0, 2.0], [3.0]), "same length"),
        (([math.nan], [0.0], [1.0]), "finite"),
    ],
)
def test_share_of_way_refuses_bad_input_in_one_line(
    args: tuple[list[float], list[float], list[float]], message: str
) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        share_of_way(*args)
    assert "\n" not in str(caught.value)


def _groups(values: list[float], clusters: list[str] | None) -> list[list[float]]:
    """``values`` by cluster, in first-seen order (each its own without clusters)."""
    if clusters is None:
        return [[v] for v in values]
    out: dict[str, list[float]] = {}
    for v, c in zip(values, clusters, strict=True):
        out.setdefault(c, []).append(v)
    return list(out.values())
