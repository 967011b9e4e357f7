"""Rates with confidence intervals, and whether two rates differ.

* :func:`wilson` — the Wilson score interval for a binomial proportion (Wilson 1927): unlike
  the normal approximation it stays inside [0, 1] and behaves at 0/n and n/n, which is where
  attack success rates often sit.
* :func:`two_proportion_test` — the two-sided pooled z-test for p1 = p2, with the p-value
  from the normal tail; for counts too small for the normal approximation (an expected count
  under 5) it falls back to Fisher's exact test, summed over the hypergeometric.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Z95 = 1.959963984540054  # the standard normal's 97.5th percentile


@dataclass(frozen=True)
class Rate:
    """``hits`` of ``n``, with its Wilson 95% interval."""

    hits: int
    n: int

    @property
    def value(self) -> float:
        return self.hits / self.n if self.n else float("nan")

    @property
    def interval(self) -> tuple[float, float]:
        return wilson(self.hits, self.n)

    def to_dict(self) -> dict[str, float | int]:
        low, high = self.interval
        return {"hits": self.hits, "n": self.n, "rate": self.value, "low": low, "high": high}

    def __str__(self) -> str:
        if not self.n:
            return "-"
        low, high = self.interval
        return f"{self.value:.1%} [{low:.1%}, {high:.1%}] ({self.hits}/{self.n})"


def wilson(hits: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of ``hits / n``; (nan, nan) for n = 0."""
    if n == 0:
        return float("nan"), float("nan")
    p = hits / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def two_proportion_test(hits_a: int, n_a: int, hits_b: int, n_b: int) -> float:
    """Two-sided p-value for "the two rates are equal"."""
    if not n_a or not n_b:
        return float("nan")
    total = hits_a + hits_b
    n = n_a + n_b
    expected = min(n_a, n_b) * min(total, n - total) / n
    if expected < 5:
        return fisher_exact(hits_a, n_a, hits_b, n_b)
    pooled = total / n
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    if se == 0:
        return 1.0
    z = (hits_a / n_a - hits_b / n_b) / se
    return math.erfc(abs(z) / math.sqrt(2))


def fisher_exact(hits_a: int, n_a: int, hits_b: int, n_b: int) -> float:
    """Two-sided Fisher exact test on the 2×2 table (sum of the tables no likelier than the
    observed one, with a small relative tolerance for ties)."""
    total = hits_a + hits_b
    n = n_a + n_b

    def probability(k: int) -> float:
        return math.comb(n_a, k) * math.comb(n_b, total - k) / math.comb(n, total)

    observed = probability(hits_a)
    low, high = max(0, total - n_b), min(total, n_a)
    p = sum(q for k in range(low, high + 1) if (q := probability(k)) <= observed * (1 + 1e-7))
    return min(1.0, p)
