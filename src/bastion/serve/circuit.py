"""A circuit breaker for the upstream model server.

After ``failures`` consecutive failed attempts the circuit **opens**: calls fail at once,
without touching the upstream, for ``cooldown`` seconds. Then it is **half-open**: one probe
call goes through (the others still fail fast); a success closes the circuit, a failure opens
it again for another cool-down. This is the pattern as Nygard describes it (*Release It!*,
ch. 5): a dead upstream costs clients milliseconds instead of a full timeout-and-retry cycle,
and the upstream is not hammered while it recovers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Literal

State = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    def __init__(
        self,
        *,
        failures: int = 5,
        cooldown: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failures < 1 or cooldown <= 0:
            raise ValueError("need failures >= 1 and cooldown > 0")
        self.failures, self.cooldown, self._clock = failures, cooldown, clock
        self._failed = 0  # consecutive failures
        self._opened_at: float | None = None
        self._probing = False
        self._lock = threading.Lock()

    @property
    def state(self) -> State:
        with self._lock:
            return self._state()

    def _state(self) -> State:
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at < self.cooldown:
            return "open"
        return "half_open"

    def allow(self) -> float:
        """0 when a call may go ahead; else the seconds until the circuit lets one through."""
        with self._lock:
            state = self._state()
            if state == "closed":
                return 0.0
            if state == "half_open" and not self._probing:
                self._probing = True  # this call is the probe
                return 0.0
            assert self._opened_at is not None
            return max(self._opened_at + self.cooldown - self._clock(), 0.001)

    def success(self) -> None:
        with self._lock:
            self._failed, self._opened_at, self._probing = 0, None, False

    def failure(self) -> None:
        with self._lock:
            self._failed += 1
            if self._probing or self._failed >= self.failures:
                self._opened_at = self._clock()
            self._probing = False

    def abandon(self) -> None:
        """A call that was let through ended with no verdict (the client went away)."""
        with self._lock:
            self._probing = False
