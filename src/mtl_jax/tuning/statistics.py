"""Summary statistics of a method table: mean ± sd over seeds, Student-t intervals, ranks.

- :func:`mean_sd`: the mean and the sample standard deviation (n − 1 in the denominator;
  0 for one value).
- :func:`t_interval`: the 95 % confidence interval of the mean of n seeds under a normal
  model, ``mean ± t_{0.975, n−1} · sd / √n`` (Student 1908); with 3 seeds t = 4.303, so
  the interval is wide: it says how little 3 seeds pin down.
- :func:`t_quantile`: the Student-t quantile, from its CDF written with the regularised
  incomplete beta function, ``P(T ≤ t) = 1 − ½ I_{ν/(ν+t²)}(ν/2, ½)`` for t ≥ 0
  (Abramowitz & Stegun 26.7.1), evaluated by the continued fraction of A&S 26.5.8 (modified
  Lentz) and inverted by bisection.
- :func:`average_ranks`: rank 1 = best, ties share the mean of their ranks.
"""

from __future__ import annotations

import math
from typing import Sequence


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    n = len(values)
    if n == 0:
        raise ValueError("no values")
    mean = sum(values) / n
    if n == 1:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))


def _beta_continued_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of I_x(a, b) (A&S 26.5.8), modified Lentz, to 1e-15."""
    tiny, c, d = 1e-300, 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    result = d
    for m in range(1, 500):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            result *= c * d
        if abs(c * d - 1.0) < 1e-15:
            break
    return result


def regularized_incomplete_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b) for a, b > 0 and x in [0, 1]."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_continued_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_continued_fraction(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T ≤ t) for Student's t with ``df`` degrees of freedom."""
    tail = 0.5 * regularized_incomplete_beta(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The t with P(T ≤ t) = p, by bisection on :func:`t_cdf` (to 1e-12)."""
    if not 0.0 < p < 1.0 or df <= 0:
        raise ValueError(f"need 0 < p < 1 and df > 0, got p={p}, df={df}")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    low, high = 0.0, 1.0
    while t_cdf(high, df) < p:
        high *= 2.0
    for _ in range(200):
        middle = 0.5 * (low + high)
        if t_cdf(middle, df) < p:
            low = middle
        else:
            high = middle
        if high - low < 1e-12:
            break
    return 0.5 * (low + high)


def t_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float] | None:
    """The ``level`` confidence interval of the mean (None for fewer than 2 values)."""
    n = len(values)
    if n < 2:
        return None
    mean, sd = mean_sd(values)
    half = t_quantile(0.5 + level / 2.0, n - 1) * sd / math.sqrt(n)
    return mean - half, mean + half


def average_ranks(values: Sequence[float], higher_is_better: bool) -> list[float]:
    """Rank of each value (1 = best); tied values share the mean of their ranks."""
    order = sorted(range(len(values)), key=lambda i: -values[i] if higher_is_better else values[i])
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for position in range(start, end + 1):
            ranks[order[position]] = (start + end) / 2.0 + 1.0
        start = end + 1
    return ranks
