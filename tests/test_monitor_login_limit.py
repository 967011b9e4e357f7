"""The sign-in limit, on a clock the test moves by hand."""

import pytest

from bastion.monitor.login_limit import LoginLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_address_waits_after_five_wrong_tokens_until_the_first_leaves_the_minute() -> None:
    clock = Clock()
    limiter = LoginLimiter(per_address=5, overall=50, window=60, clock=clock)
    for _ in range(5):
        assert limiter.attempt("10.0.0.1") is None
        clock.now += 10  # tries at 0, 10, 20, 30, 40 s
    assert limiter.attempt("10.0.0.1") == 10  # at 50 s: the try at 0 s leaves at 60 s
    assert limiter.attempt("10.0.0.2") is None  # another address is not held up
    clock.now += 10
    assert limiter.attempt("10.0.0.1") is None
    assert limiter.attempt("10.0.0.1") == 10  # full again: the try at 10 s leaves at 70 s


def test_right_tokens_do_not_count() -> None:
    limiter = LoginLimiter(per_address=2, overall=4, window=60, clock=Clock())
    for _ in range(10):
        assert limiter.attempt("10.0.0.1") is None
        limiter.forgive("10.0.0.1")
    assert limiter.attempt("10.0.0.1") is None
    assert limiter.attempt("10.0.0.1") is None
    assert limiter.attempt("10.0.0.1") == 60


def test_all_addresses_together_have_a_limit_too() -> None:
    clock = Clock()
    limiter = LoginLimiter(per_address=5, overall=8, window=60, clock=clock)
    for i in range(8):
        assert limiter.attempt(f"10.0.0.{i}") is None  # one wrong token each, from 8 addresses
    assert limiter.attempt("10.0.0.99") == 60
    clock.now += 60
    assert limiter.attempt("10.0.0.99") is None


def test_the_limits_must_make_sense() -> None:
    with pytest.raises(ValueError, match="per_address <= overall"):
        LoginLimiter(per_address=10, overall=5)
