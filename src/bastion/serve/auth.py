"""API keys → users, and per-key rate limits.

Keys are kept only as SHA-256 digests (a config may also give them hashed, ``sha256:<hex>``),
and a presented key is compared with every known digest in constant time
(:func:`hmac.compare_digest`, no early exit), so neither the stored keys nor response timing
give a key away. Rate limits are token buckets (capacity = the per-minute rate, refilled
continuously): a burst of a minute's worth is allowed, then one request per ``60 / rate``
seconds; a refused request learns how long to wait (``Retry-After``).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from bastion.errors import ConfigError
from bastion.serve.config import GatewayConfig, KeyEntry, read_keys_file

HASHED = "sha256:"


@dataclass(frozen=True)
class Principal:
    """Who is calling: the user an API key maps to."""

    user: str
    role: str
    rate_per_minute: float | None
    key_id: str  # the first characters of the key's digest: a name for logs and limits


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


class KeyRing:
    """The known API keys, hashed; :meth:`authenticate` maps a presented key to a user."""

    def __init__(self, keys: Mapping[str, KeyEntry]) -> None:
        self._entries: list[tuple[bytes, Principal]] = []
        for key, entry in keys.items():
            if key.startswith(HASHED):
                try:
                    hashed = bytes.fromhex(key.removeprefix(HASHED))
                except ValueError:
                    hashed = b""
                if len(hashed) != 32:
                    raise ConfigError(f"keys: {key[:14]}…: not a sha256 hex digest")
            else:
                hashed = digest(key)
            principal = Principal(entry.user, entry.role, entry.rate_per_minute, hashed.hex()[:12])
            self._entries.append((hashed, principal))

    @classmethod
    def from_config(cls, config: GatewayConfig) -> KeyRing:
        """``keys`` from the config, ``keys_file`` and ``$BASTION_API_KEYS`` together."""
        keys = dict(config.keys)
        if config.keys_file is not None:
            keys.update(read_keys_file(Path(config.keys_file)))
        keys.update(keys_from_env(os.environ.get(config.keys_env, ""), config.keys_env))
        return cls(keys)

    def __len__(self) -> int:
        return len(self._entries)

    def principals(self) -> list[Principal]:
        return [principal for _, principal in self._entries]

    def authenticate(self, key: str) -> Principal | None:
        presented = digest(key)
        found: Principal | None = None
        for hashed, principal in self._entries:  # every entry, always: constant time
            if hmac.compare_digest(presented, hashed):
                found = principal
        return found


def keys_from_env(value: str, name: str) -> dict[str, KeyEntry]:
    """``user:KEY,user:KEY`` (role ``user``, the default rate)."""
    keys = {}
    for item in filter(None, (part.strip() for part in value.split(","))):
        user, sep, key = item.partition(":")
        if not sep or not user or not key:
            raise ConfigError(f"${name}: expected user:KEY pairs separated by commas")
        keys[key] = KeyEntry(user=user)
    return keys


class RateLimiter:
    """One token bucket per key; thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key_id -> (tokens, last refill)
        self._lock = threading.Lock()

    def take(self, principal: Principal) -> float:
        """0 when the request may go ahead (a token is spent), else the seconds to wait."""
        rate = principal.rate_per_minute
        if rate is None:
            return 0.0
        per_second, capacity = rate / 60, max(rate, 1.0)
        with self._lock:
            now = self._clock()
            tokens, last = self._buckets.get(principal.key_id, (capacity, now))
            tokens = min(capacity, tokens + (now - last) * per_second)
            if tokens >= 1:
                self._buckets[principal.key_id] = (tokens - 1, now)
                return 0.0
            self._buckets[principal.key_id] = (tokens, now)
            return (1 - tokens) / per_second
