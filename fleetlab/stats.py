"""Statistics for A/B comparisons of fleet variants and for time to task completion.

Functions over plain sequences: Wilson intervals, exact McNemar, paired (cluster) BCa
bootstrap, cluster-robust SE, a paired z-test on clustered differences, Holm's correction
for several comparisons, power for paired binary A/B tests, and Kaplan-Meier with
in-flight tasks censored. The tests, intervals and curves come from ``scipy.stats``
(``binomtest``, ``bootstrap``, ``ecdf``); this module adds the input checks, the
clustering, the flags on unreliable intervals and an exact Kaplan-Meier median. Bad
arguments raise ``ValueError`` naming the argument, as ``fleetlab.clock`` does for naive
datetimes.

``scipy.stats`` is imported inside the functions that use it: it takes most of a second to
import, and importing this module should not.
"""

from __future__ import annotations

import math
import numbers
import warnings
from bisect import bisect_right
from collections.abc import Callable, Hashable, Sequence, Sized
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any, Literal

import numpy as np

__all__ = [
    "MIN_BOOTSTRAP_UNITS",
    "MIN_DIFFERING_UNITS",
    "MIN_DISTINCT_REPLICATES",
    "Interval",
    "KaplanMeier",
    "PairedDifference",
    "cluster_se",
    "holm",
    "kaplan_meier",
    "mcnemar_exact",
    "minimum_detectable_effect",
    "normal_ppf",
    "paired_bootstrap",
    "paired_z_test",
    "sample_size_for",
    "share_of_way",
    "wilson_interval",
]

#: Fewer resampling units (tasks, or pairs without clusters) flag a bootstrap interval.
MIN_BOOTSTRAP_UNITS = 10
#: Fewer units whose difference is not the most common one flag a bootstrap interval.
MIN_DIFFERING_UNITS = 5
#: Fewer distinct values among the bootstrap replicates flag a bootstrap interval.
MIN_DISTINCT_REPLICATES = 10


@dataclass(frozen=True)
class Interval:
    """A point estimate with a two-sided confidence interval at ``level``."""

    estimate: float
    low: float
    high: float
    level: float = 0.95


@dataclass(frozen=True)
class PairedDifference:
    """``mean(variant - baseline)`` with a bootstrap CI and a cluster-robust SE.

    ``method`` is how the interval was read off the replicates: ``"BCa"``, or
    ``"percentile"`` where BCa is undefined. ``note`` is empty for an interval to trust and
    otherwise says why it is not (see ``paired_bootstrap`` for the rule).
    """

    estimate: float
    low: float
    high: float
    se: float
    n_clusters: int
    p_value: float | None
    method: Literal["BCa", "percentile"] = "BCa"
    note: str = ""

    @property
    def unreliable(self) -> bool:
        """True when the interval should not be read as a 95% interval (``note`` says why)."""
        return bool(self.note)


def normal_ppf(p: float) -> float:
    """Inverse of the standard normal CDF: the z with ``P(Z <= z) = p``.

    Raises:
        ValueError: if ``p`` is not strictly between 0 and 1.
    """
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be strictly between 0 and 1, got {p!r}")
    return NormalDist().inv_cdf(p)


def _same_length(**named: Sized) -> int:
    """The common length of the named sequences; ValueError naming them if they differ."""
    lengths = {name: len(seq) for name, seq in named.items()}
    if len(set(lengths.values())) > 1:
        got = ", ".join(f"{name}={length}" for name, length in lengths.items())
        raise ValueError(f"{' and '.join(lengths)} must have the same length, got {got}")
    return next(iter(lengths.values()))


def _check_level(level: float) -> None:
    """ValueError unless ``level`` is strictly between 0 and 1."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be strictly between 0 and 1, got {level!r}")


def _check_count(name: str, value: object) -> int:
    """``value`` as a count: an integer (not a bool) >= 0, else ValueError naming it."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Integral):
        raise ValueError(
            f"{name} must be a count (an int), got {value!r} of type {type(value).__name__}"
        )
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return int(value)


def wilson_interval(successes: int, n: int, level: float = 0.95) -> Interval:
    """Wilson score interval for a binomial proportion.

    With ``p = successes / n`` and ``z = z_{1-(1-level)/2}``::

        centre = (p + z²/(2n)) / (1 + z²/n)
        half   = z / (1 + z²/n) * sqrt(p(1-p)/n + z²/(4n²))

    computed by ``scipy.stats.binomtest(successes, n).proportion_ci(method="wilson")``.
    The interval ``centre ± half`` always lies in [0, 1]. The estimate is ``p`` itself.
    With ``n == 0`` nothing is known: estimate ``nan``, interval [0, 1].

    Raises:
        ValueError: on counts that are not ints (``2.5``, ``True``), negative counts,
            ``successes > n`` or a level outside (0, 1).
    """
    _check_level(level)
    n = _check_count("n", n)
    successes = _check_count("successes", successes)
    if successes > n:
        raise ValueError(f"successes must be between 0 and n={n}, got {successes}")
    if n == 0:
        return Interval(math.nan, 0.0, 1.0, level)
    from scipy.stats import binomtest

    # scipy sets the bound to exactly 0 at 0/n and exactly 1 at n/n.
    ci = binomtest(successes, n).proportion_ci(confidence_level=level, method="wilson")
    return Interval(successes / n, float(ci.low), float(ci.high), level)


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar test on the discordant pairs.

    ``b`` counts pairs where the baseline passed and the variant failed, ``c`` the
    reverse. Under the null each discordant pair goes either way with probability 1/2, so
    with ``n = b + c`` and ``k = min(b, c)``::

        p = min(1, 2 * sum_{i=0..k} C(n, i) / 2^n)

    which is ``scipy.stats.binomtest(k, n, 0.5)``'s two-sided p-value (under a
    millisecond at 10,000/10,000 pairs). Returns 1.0 when there are no discordant pairs.

    Raises:
        ValueError: if ``b`` or ``c`` is negative or not an int.
    """
    b, c = _check_count("b", b), _check_count("c", c)
    n = b + c
    if n == 0:
        return 1.0
    from scipy.stats import binomtest

    return float(binomtest(min(b, c), n, 0.5).pvalue)  # scipy caps it at 1


def _group(values: Sequence[float], clusters: Sequence[Hashable]) -> list[list[float]]:
    """Values grouped by cluster, clusters in order of first appearance."""
    groups: dict[Hashable, list[float]] = {}
    for value, key in zip(values, clusters, strict=True):
        groups.setdefault(key, []).append(value)
    return list(groups.values())


def cluster_se(values: Sequence[float], clusters: Sequence[Hashable]) -> float:
    """Cluster-robust (CR1) standard error of the mean of ``values``.

    With ``n`` observations in ``G`` clusters, mean ``m`` and residuals ``r_i = x_i - m``::

        se = sqrt(G/(G-1) * sum_g (sum_{i in g} r_i)² / n²)

    When every cluster holds one observation this is exactly the textbook
    ``statistics.stdev(values) / sqrt(n)``, i.e. ``pstdev(values) / sqrt(n)`` times
    ``sqrt(G/(G-1))``. Returns ``nan`` with a single cluster, where it is undefined.

    Raises:
        ValueError: if ``values`` is empty or the lengths differ.
    """
    n = _same_length(values=values, clusters=clusters)
    if n == 0:
        raise ValueError("values must not be empty")
    # Computed on values / scale and scaled back (se is linear in the values): squares of
    # values near 1e160 would overflow, and of values near 1e-160 underflow to zero. A power
    # of two scales exactly: ordinary values give what they gave unscaled.
    largest = max(abs(float(v)) for v in values)
    scale = 2.0 ** math.frexp(largest)[1] if 0.0 < largest < math.inf else 1.0
    unit = [float(v) / scale for v in values]
    mean = math.fsum(unit) / n
    groups = _group([v - mean for v in unit], clusters)
    g = len(groups)
    if g < 2:
        return math.nan
    total = math.fsum(math.fsum(group) ** 2 for group in groups)
    return scale * math.sqrt(g / (g - 1) * total / n**2)


def paired_z_test(
    differences: Sequence[float], clusters: Sequence[Hashable] | None = None
) -> float:
    """Two-sided p-value that the mean of paired ``differences`` is zero, by the normal
    approximation with the cluster-robust standard error (``cluster_se``; every difference its
    own cluster when ``clusters`` is None)::

        z = mean / se,  p = 2 * (1 - Phi(|z|))

    For continuous paired outcomes (a success minus a price on cost), where McNemar does not
    apply. Returns 1.0 when every difference is zero, and ``nan`` with a single cluster. When
    every cluster's differences sum to the same nonzero value there is no spread to build the
    normal approximation on: the p-value is then that of the exact sign-flip test, 2 / 2^k over
    k clusters (the observed sum is the most extreme of the 2^k sign patterns, tied with its
    mirror), not 0: five tasks that agree are not proof.

    Raises:
        ValueError: if ``differences`` is empty or the lengths differ.
    """
    values = [float(d) for d in differences]
    keys: Sequence[Hashable] = clusters if clusters is not None else range(len(values))
    se = cluster_se(values, keys)
    mean = math.fsum(values) / len(values)
    if math.isnan(se):
        return math.nan
    if se <= 1e-12 * abs(mean):  # no spread but rounding's (a constant 0.2 averages 0.2000...04)
        return 1.0 if mean == 0.0 else min(1.0, 2.0 ** (1 - len(set(keys))))
    return min(1.0, math.erfc(abs(mean / se) / math.sqrt(2.0)))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the order given.

    Sort the ``m`` p-values ascending, ``p(1) <= ... <= p(m)``; the adjusted value of the
    i-th is ``max_{j <= i} min(1, (m - j + 1) * p(j))``. Rejecting where the adjusted value is
    below alpha keeps the family-wise error rate at alpha over the ``m`` comparisons, under
    any dependence between them (Holm 1979). ``nan`` entries are left out of the family and
    stay ``nan``.

    Raises:
        ValueError: if a p-value is outside [0, 1].
    """
    values = [float(p) for p in p_values]
    for n, p in enumerate(values):
        if not math.isnan(p) and not 0.0 <= p <= 1.0:
            raise ValueError(f"p_values[{n}] must be in [0, 1], got {p}")
    order = sorted((i for i, p in enumerate(values) if not math.isnan(p)), key=lambda i: values[i])
    m = len(order)
    adjusted = [math.nan] * len(values)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * values[i]))
        adjusted[i] = running
    return adjusted


#: Cells (replicates x units) scipy's bootstrap builds at once; bounds memory on large inputs.
_BATCH_CELLS = 4_000_000


def _distinct(values: np.ndarray[Any, Any]) -> int:
    """How many distinct values ``values`` holds, equal up to 1e-9 of the largest one.

    Means that are equal in exact arithmetic can differ in the last bits when summed in
    another order; they count once.
    """
    ordered = np.sort(values)
    tolerance = 1e-9 * max(float(np.max(np.abs(ordered))), np.finfo(float).tiny)
    return 1 + int(np.count_nonzero(np.diff(ordered) > tolerance))


def _differing(values: np.ndarray[Any, Any]) -> int:
    """How many of ``values`` differ (beyond 1e-9 of the largest) from the most common one."""
    scale = max(float(np.max(np.abs(values))), np.finfo(float).tiny)
    _, counts = np.unique(np.round(values / scale, 9), return_counts=True)
    return int(values.size - counts.max())


def _ratio_of_sums(
    sums: np.ndarray[Any, Any], counts: np.ndarray[Any, Any], axis: int = -1
) -> np.ndarray[Any, Any]:
    """The mean over the observations of the drawn clusters (scipy's vectorised statistic)."""
    result: np.ndarray[Any, Any] = np.sum(sums, axis=axis) / np.sum(counts, axis=axis)
    return result


def paired_bootstrap(
    baseline: Sequence[float],
    variant: Sequence[float],
    *,
    clusters: Sequence[Hashable] | None = None,
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> PairedDifference:
    """Mean paired difference ``mean(variant - baseline)`` with a BCa bootstrap CI.

    Observation ``i`` pairs ``baseline[i]`` with ``variant[i]`` (same task, same trial).
    With ``clusters`` (one key per observation, usually the task id), each replicate
    draws ``G`` whole clusters with replacement and takes the mean over all their
    observations; trials of one task are correlated, and resampling them one by one
    would understate the uncertainty. Without ``clusters`` observations are resampled.
    The CI is ``scipy.stats.bootstrap``'s bias-corrected and accelerated (BCa) interval
    over the resampling units (the acceleration is the leave-one-unit-out jackknife),
    from ``n_boot`` replicates drawn by ``numpy.random.default_rng(seed)``. ``se`` is
    ``cluster_se`` of the differences. ``p_value`` is None: use ``mcnemar_exact`` for
    binary outcomes.

    The interval is flagged unreliable (``note`` says why; ``unreliable`` is True) when:

    * there are fewer than ``MIN_BOOTSTRAP_UNITS`` (10) units: bootstrap intervals
      under-cover on so few (a nominal 95% interval was seen covering 47% with 8 pairs);
    * fewer than ``MIN_DIFFERING_UNITS`` (5) units differ from the most common unit
      difference: nearly all pairs agree (for success: nearly all pairs concordant, all
      when 0 differ), so the interval rests on a handful of pairs or collapses to zero
      width;
    * the replicates take fewer than ``MIN_DISTINCT_REPLICATES`` (10) distinct values;
    * BCa is undefined (every replicate equal, or a jackknife of one unit): the interval is
      then the percentile interval of the same replicates and ``method`` says so.

    A flagged interval still holds the numbers computed, so a reader sees them, but they
    are not a 95% interval.

    Raises:
        ValueError: on empty, mismatched or non-finite inputs, or a bad n_boot or level.
    """
    _check_level(level)
    keyed = {} if clusters is None else {"clusters": clusters}
    if _same_length(baseline=baseline, variant=variant, **keyed) == 0:
        raise ValueError("baseline and variant must not be empty")
    if _check_count("n_boot", n_boot) < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    diffs = [v - b for b, v in zip(baseline, variant, strict=True)]
    if not all(math.isfinite(d) for d in diffs):
        raise ValueError("baseline and variant must hold finite numbers")
    keys: Sequence[Hashable] = clusters if clusters is not None else range(len(diffs))
    groups = _group(diffs, keys)
    sums = np.array([math.fsum(group) for group in groups])
    counts = np.array([float(len(group)) for group in groups])
    g = len(groups)
    unit = "task" if clusters is not None else "pair"
    reasons = []
    if g < MIN_BOOTSTRAP_UNITS:
        reasons.append(
            f"only {g} {unit}{'s' * (g != 1)} (fewer than {MIN_BOOTSTRAP_UNITS}): "
            "bootstrap intervals under-cover"
        )
    differing = _differing(sums / counts)
    if differing == 0:
        reasons.append(f"every {unit} has the same difference: the resamples cannot vary")
    elif differing < MIN_DIFFERING_UNITS:
        reasons.append(
            f"only {differing} of {g} {unit}s {'differs' if differing == 1 else 'differ'} "
            "from the most common difference "
            f"(fewer than {MIN_DIFFERING_UNITS})"
        )
    estimate = math.fsum(diffs) / len(diffs)
    method: Literal["BCa", "percentile"] = "percentile"
    if g == 1:  # scipy needs two units; every resample of one unit is that unit
        low = high = estimate
    else:
        result, method = _bootstrap(sums, counts, n_boot=n_boot, seed=seed, level=level)
        distinct = _distinct(np.asarray(result.bootstrap_distribution))
        if differing and distinct < MIN_DISTINCT_REPLICATES:
            reasons.append(
                f"only {distinct} distinct value{'s' * (distinct != 1)} among "
                f"{n_boot} resample{'s' * (n_boot != 1)}"
            )
        if method == "percentile":
            reasons.append("BCa is undefined on these resamples: percentile interval")
        low, high = (float(x) for x in result.confidence_interval)
    return PairedDifference(
        estimate=estimate,
        low=low,
        high=high,
        se=cluster_se(diffs, keys),
        n_clusters=g,
        p_value=None,
        method=method,
        note="; ".join(reasons),
    )


def _bootstrap(
    sums: np.ndarray[Any, Any],
    counts: np.ndarray[Any, Any],
    *,
    n_boot: int,
    seed: int,
    level: float,
) -> tuple[Any, Literal["BCa", "percentile"]]:
    """scipy's paired bootstrap of the cluster totals: BCa, else percentile on the same draws."""
    from scipy.stats import bootstrap

    g = sums.size
    big = g * max(n_boot, g) > _BATCH_CELLS
    options: dict[str, Any] = {
        "paired": True,
        "vectorized": True,
        "confidence_level": level,
        "batch": max(1, _BATCH_CELLS // g) if big else None,
    }
    # Degenerate replicates make BCa divide by zero: scipy warns (RuntimeWarning and its
    # DegenerateDataWarning) and returns nan, which is checked below instead.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = bootstrap(
            (sums, counts),
            _ratio_of_sums,
            n_resamples=n_boot,
            method="BCa",
            rng=np.random.default_rng(seed),
            **options,
        )
        if all(math.isfinite(x) for x in result.confidence_interval):
            return result, "BCa"
        again = bootstrap(
            (sums, counts),
            _ratio_of_sums,
            n_resamples=0,  # no new draws: the percentile interval of the same replicates
            method="percentile",
            bootstrap_result=result,
            **options,
        )
    return again, "percentile"


def _pairs_needed(
    baseline_rate: float, discordance: float | None, alpha: float, power: float
) -> tuple[float, Callable[[float], float]]:
    """``psi`` and the unrounded pairs-needed function ``d -> n`` of ``sample_size_for``."""
    if not 0.0 <= baseline_rate <= 1.0:
        raise ValueError(f"baseline_rate must be between 0 and 1, got {baseline_rate!r}")
    psi = 2 * baseline_rate * (1 - baseline_rate) if discordance is None else discordance
    if not 0.0 < psi <= 1.0:
        raise ValueError(
            f"discordance must be in (0, 1], got {psi!r} (without discordance it is "
            "2*p*(1-p), so baseline_rate must be strictly between 0 and 1)"
        )
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be strictly between 0 and 1, got {alpha!r}")
    if not 0.5 <= power < 1.0:
        raise ValueError(f"power must be in [0.5, 1), got {power!r}")
    z_a, z_b = normal_ppf(1 - alpha / 2), normal_ppf(power)
    return psi, lambda d: (z_a * math.sqrt(psi) + z_b * math.sqrt(psi - d * d)) ** 2 / d**2


def sample_size_for(
    effect: float,
    baseline_rate: float,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    discordance: float | None = None,
) -> int:
    """Pairs needed to detect a difference ``effect`` in success rate (McNemar, normal approx.).

    With discordant-pair proportion ``psi`` (by default ``2p(1-p)``, the value for
    independent outcomes at baseline rate ``p``), ``z_a = z_{1-alpha/2}`` and
    ``z_b = z_{power}``::

        n = (z_a * sqrt(psi) + z_b * sqrt(psi - d²))² / d²,   rounded up

    ``d = |effect|`` cannot exceed ``psi``: the rate difference is the difference of the
    two discordant proportions, whose sum is ``psi``.

    Raises:
        ValueError: if ``effect`` is 0 or above ``psi``, or ``power`` is not in [0.5, 1).
    """
    psi, pairs_needed = _pairs_needed(baseline_rate, discordance, alpha, power)
    if not 0.0 < abs(effect) <= psi:
        raise ValueError(f"effect must be non-zero and at most discordance {psi:.4g}, got {effect}")
    return math.ceil(pairs_needed(abs(effect)))


def share_of_way(
    learner: Sequence[float],
    worst: Sequence[float],
    best: Sequence[float],
    level: float = 0.95,
) -> Interval:
    """How far ``learner`` gets from ``worst`` to ``best``: ``(L - W) / (B - W)`` of the means,
    with Fieller's confidence interval for a ratio of paired means.

    Observation ``i`` of the three sequences is one pair (same task, same trial), and each
    pair is its own unit. With ``a_i = L_i - W_i`` and ``b_i = B_i - W_i``, the interval is
    every ``r`` for which ``mean(a) - r * mean(b)`` is within the normal quantile of its
    standard error (the variances and covariance of the means from the pairs). It is the
    right interval where the delta method is not: when ``mean(b)`` is not clearly above
    zero (the worst and the best are within noise of each other) that set is unbounded (the
    whole line, or two rays), and ``low`` and ``high`` are ``-inf`` and ``inf``. The
    quantile is the normal one, as in the rest of the A/B statistics: it is meant for the
    hundreds of pairs of an experiment. With fewer than two pairs both bounds are ``nan``.

    Raises:
        ValueError: on empty, mismatched or non-finite inputs, or a bad level.
    """
    _check_level(level)
    n = _same_length(learner=learner, worst=worst, best=best)
    if n == 0:
        raise ValueError("learner, worst and best must not be empty")
    values = np.array([learner, worst, best], dtype=float)
    if not np.isfinite(values).all():
        raise ValueError("learner, worst and best must hold finite numbers")
    a, b = values[0] - values[1], values[2] - values[1]
    mean_a, mean_b = float(a.mean()), float(b.mean())
    estimate = mean_a / mean_b if mean_b else math.nan
    if n < 2:
        return Interval(estimate, math.nan, math.nan, level)
    cov = (np.cov(a, b, ddof=1) / n).tolist()  # of the means
    t2 = normal_ppf(0.5 + level / 2) ** 2
    # (mean_b² - t² v_bb) r² - 2 (mean_a mean_b - t² v_ab) r + (mean_a² - t² v_aa) <= 0
    quad = mean_b**2 - t2 * cov[1][1]
    half = mean_a * mean_b - t2 * cov[0][1]
    const = mean_a**2 - t2 * cov[0][0]
    if quad <= 0:
        return Interval(estimate, -math.inf, math.inf, level)
    root = math.sqrt(max(half**2 - quad * const, 0.0))  # >= 0 but for rounding: r̂ is inside
    return Interval(estimate, float((half - root) / quad), float((half + root) / quad), level)


def minimum_detectable_effect(
    n: int,
    baseline_rate: float,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    discordance: float | None = None,
) -> float:
    """Smallest absolute difference in success rate detectable with ``n`` pairs.

    Inverts the formula of ``sample_size_for``: the ``d`` in ``(0, psi]`` solving
    ``n = (z_a*sqrt(psi) + z_b*sqrt(psi - d²))² / d²``, by bisection (the right side
    decreases in ``d`` when ``power >= 0.5``). Returns ``inf`` when even ``d = psi``
    needs more than ``n`` pairs.

    Raises:
        ValueError: if ``n < 1`` or an argument is out of range.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    psi, pairs_needed = _pairs_needed(baseline_rate, discordance, alpha, power)
    if pairs_needed(psi) > n:
        return math.inf
    low, high = 0.0, psi  # invariant: pairs_needed(low) > n >= pairs_needed(high)
    while high - low > 1e-12:
        mid = (low + high) / 2
        if pairs_needed(mid) > n:
            low = mid
        else:
            high = mid
    return high


#: Survival values within this of 1/2 are compared with 1/2 exactly, on the counts. A
#: product of k float factors is off by at most about k * 2.2e-16 relatively, so any curve
#: of fewer than four million events lands on the right side of 1/2 with this margin.
_HALF_MARGIN = 1e-9


@dataclass(frozen=True)
class KaplanMeier:
    """Kaplan-Meier survival curve: a step function over the distinct event times.

    ``survival[i]`` is S(t) for ``times[i] <= t < times[i+1]``; S(t) = 1 before the first
    event. ``at_risk[i]`` and ``events[i]`` are the counts at ``times[i]``.
    ``lower``/``upper`` is the pointwise band at ``level``.
    """

    times: tuple[float, ...]
    survival: tuple[float, ...]
    at_risk: tuple[int, ...]
    events: tuple[int, ...]
    lower: tuple[float, ...] = ()
    upper: tuple[float, ...] = ()
    level: float = 0.95

    def survival_at(self, t: float) -> float:
        """S(t): the share of tasks still not completed at time ``t``."""
        i = bisect_right(self.times, t)
        return self.survival[i - 1] if i else 1.0

    def completed_by(self, t: float) -> float:
        """1 - S(t): the estimated share of tasks completed by time ``t``."""
        return 1.0 - self.survival_at(t)

    def median(self) -> float | None:
        """The smallest event time with S(t) <= 0.5, or None if the curve never gets there.

        Where the float survival is within ``1e-9`` of 1/2, S(t) <= 1/2 is decided exactly
        on the counts, ``2 * prod(n_j - d_j) <= prod(n_j)``: a curve that lands on 1/2
        exactly (24 tasks, the 12th completion) has its median there, not one event late
        because rounding left S at 0.5000000000000001.
        """
        for i, (t, s) in enumerate(zip(self.times, self.survival, strict=True)):
            if s < 0.5 - _HALF_MARGIN or (s <= 0.5 + _HALF_MARGIN and self._at_most_half(i)):
                return t
        return None

    def _at_most_half(self, i: int) -> bool:
        """S(times[i]) <= 1/2 in exact integer arithmetic on the counts."""
        at_risk, events = self.at_risk[: i + 1], self.events[: i + 1]
        survivors = math.prod(n - d for n, d in zip(at_risk, events, strict=True))
        return 2 * survivors <= math.prod(at_risk)


def kaplan_meier(
    durations: Sequence[float], observed: Sequence[bool], *, level: float = 0.95
) -> KaplanMeier:
    """Kaplan-Meier estimate of time to completion.

    At each distinct event time ``t_j`` with ``n_j`` tasks at risk (duration >= t_j) and
    ``d_j`` completions: ``S(t) = prod_{t_j <= t} (1 - d_j/n_j)``. A task with
    ``observed=False`` is censored (still in flight at report time); a censoring at the
    same time as an event counts as at risk for it (events come first).

    The curve and its band are ``scipy.stats.ecdf`` of the right-censored durations,
    evaluated at the event times. The band uses Greenwood's variance on the log-log scale
    (Kalbfleisch-Prentice, R's ``conf.type = "log-log"``)::

        v = sum_{t_j <= t} d_j / (n_j (n_j - d_j)) / log(S)²
        lower, upper = S ** exp(+z sqrt(v)), S ** exp(-z sqrt(v))

    which stays inside [0, 1]; where S reaches 0 the band is [0, 0].

    Raises:
        ValueError: on mismatched lengths or a negative or non-finite duration.
    """
    _check_level(level)
    _same_length(durations=durations, observed=observed)
    for duration in durations:
        if not (math.isfinite(duration) and duration >= 0):
            raise ValueError(f"durations must be finite and >= 0, got {duration!r}")
    times = np.asarray(durations, dtype=float)
    seen = np.asarray(observed, dtype=bool)
    if not seen.any():
        return KaplanMeier((), (), (), (), (), (), level)
    event_times, events = np.unique(times[seen], return_counts=True)
    at_risk = times.size - np.searchsorted(np.sort(times), event_times, side="left")
    from scipy.stats import CensoredData, ecdf

    sf = ecdf(CensoredData.right_censored(times, ~seen)).sf
    survival = sf.evaluate(event_times)
    # Where S reaches 0 the log-log band is undefined: scipy warns and gives nan there.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        band = sf.confidence_interval(level, method="log-log")
    dead = survival <= 0.0
    lower = np.where(dead, 0.0, band.low.evaluate(event_times))
    upper = np.where(dead, 0.0, band.high.evaluate(event_times))
    return KaplanMeier(
        tuple(event_times.tolist()),
        tuple(survival.tolist()),
        tuple(int(n) for n in at_risk),
        tuple(int(d) for d in events),
        tuple(lower.tolist()),
        tuple(upper.tolist()),
        level,
    )
