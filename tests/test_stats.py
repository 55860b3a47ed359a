from __future__ import annotations

import itertools
import math
import random
import statistics
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetlab.stats import (
    Interval,
    KaplanMeier,
    cluster_se,
    kaplan_meier,
    mcnemar_exact,
    minimum_detectable_effect,
    normal_ppf,
    paired_bootstrap,
    sample_size_for,
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
    with pytest.raises(ValueError, match="p must be"):
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


def test_wilson_extremes_stay_in_unit_interval() -> None:
    none = wilson_interval(0, 5)
    every = wilson_interval(5, 5)
    assert none.low == 0.0
    assert 0.0 < none.high < 1.0
    assert every.high == 1.0
    assert 0.0 < every.low < 1.0


def test_wilson_higher_level_is_wider() -> None:
    narrow = wilson_interval(30, 100, level=0.90)
    wide = wilson_interval(30, 100, level=0.99)
    assert wide.low < narrow.low < narrow.high < wide.high
    assert wide.level == 0.99


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


@pytest.mark.parametrize(("b", "c"), [(-1, 3), (3, -1)])
def test_mcnemar_rejects_negative_counts(b: int, c: int) -> None:
    with pytest.raises(ValueError, match="b and c must be >= 0"):
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


def test_cluster_se_is_undefined_with_one_cluster() -> None:
    assert math.isnan(cluster_se([1.0, 2.0, 3.0], ["t", "t", "t"]))


def test_cluster_se_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="values and clusters must have the same length"):
        cluster_se([1.0, 2.0], ["a"])
    with pytest.raises(ValueError, match="values must not be empty"):
        cluster_se([], [])


# --- paired bootstrap -------------------------------------------------------------------


def test_bootstrap_collapses_on_a_constant_difference() -> None:
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
    with pytest.raises(ValueError, match="baseline and variant must have the same length"):
        paired_bootstrap([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="must not be empty"):
        paired_bootstrap([], [])
    with pytest.raises(ValueError, match="clusters"):
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


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: sample_size_for(0.0, 0.5), "effect"),
        (lambda: sample_size_for(0.6, 0.5), "effect"),
        (lambda: sample_size_for(0.1, 0.0), "baseline_rate"),
        (lambda: sample_size_for(0.1, 1.2), "baseline_rate"),
        (lambda: sample_size_for(0.1, 0.5, discordance=0.0), "discordance"),
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


def test_kaplan_meier_median_none_when_curve_stays_above_half() -> None:
    km = kaplan_meier([1.0, 2.0, 3.0, 4.0], [True, False, False, False])
    assert km.survival == pytest.approx((0.75,))
    assert km.median() is None


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
