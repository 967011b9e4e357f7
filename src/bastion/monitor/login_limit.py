"""A sliding-window limit on sign-in attempts, per client address and overall.

A reviewer token is an API key: without a limit, ``/review/login`` is an oracle an attacker
can query as fast as the server answers. Each attempt is counted *before* the token is checked
(so concurrent requests cannot all slip under the limit) and handed back when it succeeds, so
only wrong tokens use up the allowance. Once an address has ``per_address`` wrong tries in the
last ``window`` seconds, or all addresses together have ``overall``, every attempt is refused
(a right token too: otherwise a lucky guess during the lock-out would still get in) until the
oldest try leaves the window. The overall limit also bounds the memory: no more addresses are
remembered than attempts were counted in one window.

Behind a reverse proxy every client has the proxy's address unless the server is told to
trust its forwarding headers (uvicorn's ``--forwarded-allow-ips``).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable


class LoginLimiter:
    """``attempt`` before checking a token, ``forgive`` when it was right. ``clock`` returns
    seconds (monotonic); tests pass their own."""

    def __init__(
        self,
        per_address: int = 5,
        overall: int = 50,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if per_address < 1 or overall < per_address or window <= 0:
            raise ValueError(
                f"LoginLimiter needs 1 <= per_address <= overall and window > 0, got "
                f"per_address={per_address}, overall={overall}, window={window}"
            )
        self.per_address, self.overall, self.window = per_address, overall, window
        self._clock = clock
        self._lock = threading.Lock()
        self._all: deque[float] = deque()
        self._by_address: dict[str, deque[float]] = {}

    def attempt(self, address: str) -> int | None:
        """Count an attempt from ``address``: ``None`` when it may go ahead, else how many
        seconds to wait (for ``Retry-After``); a refused attempt is not counted."""
        with self._lock:
            now = self._clock()
            self._expire(self._all, now)
            mine = self._by_address.get(address, deque())
            self._expire(mine, now)
            full = [
                d for d, n in ((mine, self.per_address), (self._all, self.overall)) if len(d) >= n
            ]
            if full:
                return max(1, math.ceil(max(d[0] for d in full) + self.window - now))
            if len(self._by_address) > self.overall:
                self._forget_idle(now)
            mine.append(now)
            self._all.append(now)
            self._by_address[address] = mine
            return None

    def forgive(self, address: str) -> None:
        """The attempt from ``address`` was a right token: it does not count."""
        with self._lock:
            mine = self._by_address.get(address)
            if mine:
                mine.pop()
            if self._all:
                self._all.pop()

    def _expire(self, times: deque[float], now: float) -> None:
        while times and times[0] <= now - self.window:
            times.popleft()

    def _forget_idle(self, now: float) -> None:
        for address in [
            a for a, d in self._by_address.items() if not d or d[-1] <= now - self.window
        ]:
            del self._by_address[address]
