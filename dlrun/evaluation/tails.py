"""Tail probabilities of the two significance tests, computed with the standard library.

scipy's distribution functions would do, but importing ``scipy.special`` costs about a quarter
of a second (its array-API layer), paid by every judged run, more than a small run's training.
The binomial tail is a log-space sum of positive terms and the t tail a continued fraction for
the far side of the distribution (no 1 - P), so both keep their relative precision far out in
the tail (p of 1e-300). The one loss is ``math.lgamma`` of large arguments: about 1e-10
relative for tens of thousands of rows, 1e-9 for a million, far below the two digits a report
shows. ``tests/test_significance.py`` holds them to ``scipy.stats.binomtest`` and ``ttest_rel``.
"""

from __future__ import annotations

import math

_NEGLIGIBLE = 40.0  # terms below e**-40 of the largest add nothing to a double's 16 digits
_TINY = 1e-300  # keeps the continued fraction's denominators off zero (Lentz's method)


def binomial_tail(hits: int, total: int, rate: float) -> float:
    """P(X >= hits) for X ~ Binomial(total, rate): ``binomtest(..., alternative="greater")``.

    The probabilities of ``hits``, ``hits + 1``, ... are summed in log space around the largest
    (the mode, or ``hits`` when it lies past the mode), so a tail of 1e-200 keeps its digits;
    terms fall off geometrically on both sides, and each side stops once they no longer count
    (a few thousand terms for a million rows).

    Example:
        >>> round(binomial_tail(7, 10, 0.5), 6)  # (120 + 45 + 10 + 1) / 1024
        0.171875
    """
    if math.isnan(rate):
        return math.nan
    if hits <= 0:
        return 1.0
    if hits > total or rate <= 0.0:
        return 0.0
    if rate >= 1.0:
        return 1.0
    log_rate, log_miss = math.log(rate), math.log1p(-rate)
    log_n = math.lgamma(total + 1)

    def log_term(k: int) -> float:
        return (log_n - math.lgamma(k + 1) - math.lgamma(total - k + 1)
                + k * log_rate + (total - k) * log_miss)  # fmt: skip

    peak = max(hits, min(total, math.floor((total + 1) * rate)))  # the tail's largest term
    top = log_term(peak)
    logs = [top]
    for side in (range(peak + 1, total + 1), range(peak - 1, hits - 1, -1)):
        for k in side:
            term = log_term(k)
            if term < top - _NEGLIGIBLE:
                break
            logs.append(term)
    return min(1.0, math.exp(top) * math.fsum(math.exp(term - top) for term in logs))


def student_t_cdf(t: float, df: int) -> float:
    """P(T <= t) for Student's t with ``df`` degrees of freedom: scipy's ``stdtr``.

    Through the regularized incomplete beta function: P(|T| >= |t|) = I_x(df/2, 1/2) with
    x = df / (df + t**2), which stays exact in the far tail where 1 - P would not.

    Example:
        >>> student_t_cdf(0.0, 5)
        0.5
        >>> round(student_t_cdf(-1.0, 1), 12)  # Cauchy: 1/2 + atan(-1)/pi
        0.25
    """
    if math.isnan(t):
        return math.nan
    if math.isinf(t):
        return 0.0 if t < 0 else 1.0
    square = t * t
    both_tails = _incomplete_beta(df / 2, 0.5, df / (df + square), square / (df + square))
    return 0.5 * both_tails if t < 0 else 1.0 - 0.5 * both_tails


def _incomplete_beta(a: float, b: float, x: float, rest: float) -> float:
    """I_x(a, b), from the side where its continued fraction converges quickly; ``rest`` is
    1 - x computed without cancellation (near x = 1 the subtraction would lose digits)."""
    if x <= 0.0:
        return 0.0
    if rest <= 0.0:
        return 1.0
    log_front = (a * math.log(x) + b * math.log(rest)
                 + math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b))  # fmt: skip
    if x < (a + 1) / (a + b + 2):
        return math.exp(log_front) * _beta_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_fraction(b, a, rest) / b


def _beta_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of I_x(a, b), evaluated by the modified Lentz method; on the side
    :func:`_incomplete_beta` picks it converges in about sqrt(max(a, b)) terms."""
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    fraction = d
    for m in range(1, 100_000):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):  # fmt: skip
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > _TINY else _TINY)
            c = 1.0 + numerator / c
            c = c if abs(c) > _TINY else _TINY
            fraction *= c * d
        if abs(c * d - 1.0) < 1e-16:
            break
    return fraction
