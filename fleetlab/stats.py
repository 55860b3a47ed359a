"""Statistics for A/B comparisons of fleet variants and for time to task completion.

Pure functions over plain sequences, standard library only: Wilson intervals, exact
McNemar, paired (cluster) bootstrap, cluster-robust SE, power for paired binary A/B
tests, and Kaplan-Meier with in-flight tasks censored. Bad arguments raise ``ValueError``
naming the argument, as ``fleetlab.clock`` does for naive datetimes.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_right
from collections.abc import Callable, Hashable, Sequence, Sized
from dataclasses import dataclass
from statistics import NormalDist

__all__ = [
    "Interval",
    "KaplanMeier",
    "PairedDifference",
    "cluster_se",
    "kaplan_meier",
    "mcnemar_exact",
    "minimum_detectable_effect",
    "normal_ppf",
    "paired_bootstrap",
    "sample_size_for",
    "wilson_interval",
]


@dataclass(frozen=True)
class Interval:
    """A point estimate with a two-sided confidence interval at ``level``."""

    estimate: float
    low: float
    high: float
    level: float = 0.95


@dataclass(frozen=True)
class PairedDifference:
    """``mean(variant - baseline)`` with a bootstrap CI and a cluster-robust SE."""

    estimate: float
    low: float
    high: float
    se: float
    n_clusters: int
    p_value: float | None


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


def _check_level(level: float) -> float:
    """Return the two-sided critical value ``z_{1-(1-level)/2}`` for ``level``."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be strictly between 0 and 1, got {level!r}")
    return normal_ppf(1.0 - (1.0 - level) / 2.0)


def wilson_interval(successes: int, n: int, level: float = 0.95) -> Interval:
    """Wilson score interval for a binomial proportion.

    With ``p = successes / n`` and ``z = z_{1-(1-level)/2}``::

        centre = (p + z²/(2n)) / (1 + z²/n)
        half   = z / (1 + z²/n) * sqrt(p(1-p)/n + z²/(4n²))

    The interval ``centre ± half`` always lies in [0, 1]. The estimate is ``p`` itself.
    With ``n == 0`` nothing is known: estimate ``nan``, interval [0, 1].

    Raises:
        ValueError: on negative counts, ``successes > n`` or a level outside (0, 1).
    """
    z = _check_level(level)
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be between 0 and n={n}, got {successes}")
    if n == 0:
        return Interval(math.nan, 0.0, 1.0, level)
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    # At 0/n and n/n the bound is exactly 0 or 1; rounding would leave a ±1e-17 residue.
    low = 0.0 if successes == 0 else centre - half
    high = 1.0 if successes == n else centre + half
    return Interval(p, low, high, level)


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar test on the discordant pairs.

    ``b`` counts pairs where the baseline passed and the variant failed, ``c`` the
    reverse. Under the null each discordant pair goes either way with probability 1/2, so
    with ``n = b + c`` and ``k = min(b, c)``::

        p = min(1, 2 * sum_{i=0..k} C(n, i) / 2^n)

    Returns 1.0 when there are no discordant pairs.

    Raises:
        ValueError: if ``b`` or ``c`` is negative.
    """
    if b < 0 or c < 0:
        raise ValueError(f"b and c must be >= 0, got b={b}, c={c}")
    n = b + c
    if n == 0:
        return 1.0
    # Integer arithmetic then one correctly rounded division: exact even for large n.
    tail = sum(math.comb(n, i) for i in range(min(b, c) + 1))
    return min(1.0, 2 * tail / (1 << n))


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
    mean = math.fsum(values) / n
    groups = _group([v - mean for v in values], clusters)
    g = len(groups)
    if g < 2:
        return math.nan
    total = math.fsum(math.fsum(group) ** 2 for group in groups)
    return math.sqrt(g / (g - 1) * total / n**2)


def _quantile(sorted_values: Sequence[float], q: float) -> float:
    """Quantile with linear interpolation between order statistics (numpy's default)."""
    position = q * (len(sorted_values) - 1)
    below = math.floor(position)
    above = min(below + 1, len(sorted_values) - 1)
    weight = position - below
    return sorted_values[below] * (1 - weight) + sorted_values[above] * weight


def paired_bootstrap(
    baseline: Sequence[float],
    variant: Sequence[float],
    *,
    clusters: Sequence[Hashable] | None = None,
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> PairedDifference:
    """Mean paired difference ``mean(variant - baseline)`` with a percentile bootstrap CI.

    Observation ``i`` pairs ``baseline[i]`` with ``variant[i]`` (same task, same trial).
    With ``clusters`` (one key per observation, usually the task id), each replicate
    draws ``G`` whole clusters with replacement and takes the mean over all their
    observations; trials of one task are correlated, and resampling them one by one
    would understate the uncertainty. Without ``clusters`` observations are resampled.
    The CI is the ``(1-level)/2`` and ``(1+level)/2`` quantiles of the replicates; ``se``
    is ``cluster_se`` of the differences. ``p_value`` is None: use ``mcnemar_exact`` for
    binary outcomes.

    Raises:
        ValueError: on empty, mismatched or non-finite inputs, or a bad n_boot or level.
    """
    _check_level(level)
    keyed = {} if clusters is None else {"clusters": clusters}
    if _same_length(baseline=baseline, variant=variant, **keyed) == 0:
        raise ValueError("baseline and variant must not be empty")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    diffs = [v - b for b, v in zip(baseline, variant, strict=True)]
    if not all(math.isfinite(d) for d in diffs):
        raise ValueError("baseline and variant must hold finite numbers")
    keys: Sequence[Hashable] = clusters if clusters is not None else range(len(diffs))
    groups = _group(diffs, keys)
    sums = [math.fsum(group) for group in groups]
    counts = [len(group) for group in groups]
    g = len(groups)
    rng = random.Random(seed)
    replicates = []
    for _ in range(n_boot):
        picks = rng.choices(range(g), k=g)
        replicates.append(math.fsum(sums[j] for j in picks) / sum(counts[j] for j in picks))
    replicates.sort()
    tail = (1.0 - level) / 2.0
    return PairedDifference(
        estimate=math.fsum(diffs) / len(diffs),
        low=_quantile(replicates, tail),
        high=_quantile(replicates, 1.0 - tail),
        se=cluster_se(diffs, keys),
        n_clusters=g,
        p_value=None,
    )


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


@dataclass(frozen=True)
class KaplanMeier:
    """Kaplan-Meier survival curve: a step function over the distinct event times.

    ``survival[i]`` is S(t) for ``times[i] <= t < times[i+1]``; S(t) = 1 before the first
    event. ``lower``/``upper`` is the pointwise band at ``level``.
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
        """The first event time with S(t) <= 0.5, or None if the curve never gets there."""
        return next((t for t, s in zip(self.times, self.survival, strict=True) if s <= 0.5), None)


def kaplan_meier(
    durations: Sequence[float], observed: Sequence[bool], *, level: float = 0.95
) -> KaplanMeier:
    """Kaplan-Meier estimate of time to completion.

    At each distinct event time ``t_j`` with ``n_j`` tasks at risk (duration >= t_j) and
    ``d_j`` completions: ``S(t) = prod_{t_j <= t} (1 - d_j/n_j)``. A task with
    ``observed=False`` is censored (still in flight at report time); a censoring at the
    same time as an event counts as at risk for it (events come first).

    The band uses Greenwood's variance on the log-log scale (Kalbfleisch-Prentice)::

        v = sum_{t_j <= t} d_j / (n_j (n_j - d_j)) / log(S)²
        lower, upper = S ** exp(+z sqrt(v)), S ** exp(-z sqrt(v))

    which stays inside [0, 1]; where S reaches 0 the band is [0, 0].

    Raises:
        ValueError: on mismatched lengths or a negative or non-finite duration.
    """
    z = _check_level(level)
    _same_length(durations=durations, observed=observed)
    for duration in durations:
        if not (math.isfinite(duration) and duration >= 0):
            raise ValueError(f"durations must be finite and >= 0, got {duration!r}")
    event_counts: dict[float, int] = {}
    for duration, seen in zip(durations, observed, strict=True):
        if seen:
            event_counts[duration] = event_counts.get(duration, 0) + 1
    ordered = sorted(durations)
    rows: list[tuple[float, float, int, int, float, float]] = []
    s, greenwood, start = 1.0, 0.0, 0
    for t in sorted(event_counts):
        while ordered[start] < t:
            start += 1
        n_j, d_j = len(ordered) - start, event_counts[t]
        s *= 1 - d_j / n_j
        if s > 0:
            greenwood += d_j / (n_j * (n_j - d_j))
            spread = z * math.sqrt(greenwood) / abs(math.log(s))
            low, high = s ** math.exp(spread), s ** math.exp(-spread)
        else:
            low = high = 0.0
        rows.append((t, s, n_j, d_j, low, high))
    times, survival, at_risk, events, lower, upper = zip(*rows, strict=True) if rows else [()] * 6
    return KaplanMeier(times, survival, at_risk, events, lower, upper, level)
