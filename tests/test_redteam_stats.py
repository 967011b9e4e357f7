"""Intervals and tests against hand-computed and published values."""

import math

import pytest

from bastion.redteam.stats import Rate, fisher_exact, two_proportion_test, wilson


def test_wilson_interval_by_hand() -> None:
    # p = 0.5, n = 10, z = 1.96: centre 0.5, half = z·sqrt(0.025 + z²/400)/(1 + z²/10)
    z = 1.959963984540054
    half = z * math.sqrt(0.25 / 10 + z * z / 400) / (1 + z * z / 10)
    assert wilson(5, 10) == pytest.approx((0.5 - half, 0.5 + half))
    assert wilson(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    low, high = wilson(0, 10)
    assert low == 0.0 and high == pytest.approx(z * z / 10 / (1 + z * z / 10))  # 0.2775
    assert wilson(10, 10)[1] == pytest.approx(1.0) and math.isnan(wilson(0, 0)[0])


def test_rate_reads_like_a_report() -> None:
    assert str(Rate(5, 10)) == "50.0% [23.7%, 76.3%] (5/10)" and str(Rate(0, 0)) == "-"


def test_two_proportion_z_test_by_hand() -> None:
    # 50/100 vs 30/100: pooled 0.4, se = sqrt(0.4·0.6·0.02), z = 0.2/se = 2.8868
    z = 0.2 / math.sqrt(0.4 * 0.6 * 0.02)
    assert two_proportion_test(50, 100, 30, 100) == pytest.approx(math.erfc(z / math.sqrt(2)))
    assert two_proportion_test(50, 100, 30, 100) == pytest.approx(0.00389, abs=1e-5)
    assert two_proportion_test(3, 10, 3, 10) == pytest.approx(1.0)


def test_small_counts_fall_back_to_fisher_exact() -> None:
    # the 2x2 table [[1, 9], [11, 3]]: two-sided p = 0.002759 (hypergeometric, by hand)
    assert fisher_exact(1, 10, 11, 14) == pytest.approx(0.002759, abs=1e-6)
    # expected count 5 in the smallest cell: the z-test; 3.5 (7 hits of 16): Fisher
    assert two_proportion_test(1, 10, 11, 14) != fisher_exact(1, 10, 11, 14)
    assert two_proportion_test(1, 8, 6, 8) == fisher_exact(1, 8, 6, 8)
    assert fisher_exact(0, 5, 0, 5) == 1.0
