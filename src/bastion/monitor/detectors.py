"""The detectors that watch the stream of events as a whole, and the people in it: rate spikes
(:class:`BlockRate`, :class:`RefusalRate`), probing, near-duplicate prompts and a rising attack
score across a session; the detectors of unusual text are in
:mod:`bastion.monitor.text_detectors`, the table of statistics and defaults in
:mod:`bastion.monitor.anomaly`.

A detector is a small dataclass: its fields are its parameters (validated from the config by
pydantic, so a bad key or value is named in the error), its state is private and bounded (per
user or session in an :class:`LRU` of at most ``max_keys`` entries), and :meth:`observe` takes
one :class:`~bastion.monitor.events.Event` and returns the alerts it raises, usually none.
"""

from __future__ import annotations

import math
import re
import statistics
import unicodedata
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Generic, Literal, Protocol, TypeVar

import numpy as np
import numpy.typing as npt
from pydantic import ConfigDict, Field

from bastion.monitor.events import Alert, Event

TextField = Literal["prompt", "response"]
Positive = Annotated[float, Field(gt=0)]
Fraction = Annotated[float, Field(ge=0, le=1)]
Count = Annotated[int, Field(ge=1)]
V = TypeVar("V")
# how pydantic validates a detector's fields from the config: unknown keys are errors
DETECTOR_OPTIONS = ConfigDict(extra="forbid", arbitrary_types_allowed=True)


class Detector(Protocol):
    """What :class:`~bastion.monitor.anomaly.AnomalyMonitor` runs: one event in, alerts out."""

    name: ClassVar[str]

    def observe(self, event: Event) -> list[Alert]: ...

    def state_size(self) -> int:
        """Entries of per-user or per-session state held now (bounded by ``max_keys``)."""
        ...


class LRU(Generic[V]):
    """A dict that forgets its least recently used key beyond ``cap`` keys."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._items: OrderedDict[Hashable, V] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: Hashable, make: Callable[[], V]) -> V:
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        value = self._items[key] = make()
        if len(self._items) > self.cap:
            self._items.popitem(last=False)
        return value


def alert_at(
    detector: str, statistic: str, value: float, threshold: float, event: Event, **detail: Any
) -> Alert:
    """An alert about one user, raised at ``event``."""
    return Alert(
        detector, statistic, float(value), threshold, event.user, event.id, detail, ts=event.ts
    )


# --------------------------------------------------------------------------- rate spikes


@dataclass
class BlockRate:
    """A one-sided Bernoulli CUSUM (Page 1954; Reynolds & Stoumbos 1999) on ``x = blocked``.

    ``S ← max(0, S + x·ln(p1/p0) + (1−x)·ln((1−p1)/(1−p0)))`` with ``p1 = shift·p0``: the
    log-likelihood ratio of "the rate is now ``shift`` times the baseline" against "it is the
    baseline", accumulated and floored at 0. An alarm when ``S > h`` (then ``S`` restarts).
    The baseline ``p0`` is the running mean of the first events, then an EWMA with weight
    ``1/memory`` (it adapts slowly: a lasting shift becomes the new normal over ~``memory``
    events); no alarm during the first ``warmup`` events.

    Sensitivity: ``shift`` is the change the statistic is optimal for; ``h`` trades false
    alarms for delay. Simulated with the learned baseline (4·10⁶ events per case), ``h = 9``
    gives an in-control run length to a false alarm of ~10⁶ events at ``p0 = 2%`` and
    ~2·10⁵ at 5%; a jump from 2% to 20% is caught after a median ~50 events (``h`` over the
    mean increment, 0.19 per event), 2% → 6% after ~320, 5% → 15% after ~110.
    """

    name: ClassVar[str] = "block_rate"
    __pydantic_config__ = DETECTOR_OPTIONS
    shift: Annotated[float, Field(gt=1)] = 3.0
    h: Positive = 9.0
    warmup: Count = 1000
    memory: Count = 5000
    floor: Annotated[float, Field(gt=0, lt=0.5)] = 0.002
    _n: int = field(default=0, init=False, repr=False)
    _p0: float = field(default=0.0, init=False, repr=False)
    _s: float = field(default=0.0, init=False, repr=False)

    def flag(self, event: Event) -> bool:
        return event.decision == "block"

    def observe(self, event: Event) -> list[Alert]:
        x = 1.0 if self.flag(event) else 0.0
        self._n += 1
        p0 = min(max(self._p0, self.floor), 0.5)
        p1 = min(self.shift * p0, 0.99)
        step = math.log(p1 / p0) if x else math.log((1 - p1) / (1 - p0))
        self._s = max(0.0, self._s + step)
        self._p0 += (x - self._p0) / min(self._n, self.memory)
        if self._n <= self.warmup or self._s <= self.h:
            return []
        value, self._s = self._s, 0.0
        stat = f"Bernoulli CUSUM of the {self.name.replace('_', ' ')}"
        detail = {"baseline": p0, "tuned_to": p1}
        return [Alert(self.name, stat, value, self.h, None, event.id, detail, ts=event.ts)]

    def state_size(self) -> int:
        return 0


@dataclass
class RefusalRate(BlockRate):
    """The same CUSUM on ``x = refused`` (a refusal by the model or by the guard)."""

    name: ClassVar[str] = "refusal_rate"

    def flag(self, event: Event) -> bool:
        return event.refused


# --------------------------------------------------------------------------- probing


@dataclass
class Probing:
    """Blocked requests among one user's last ``of_last`` requests within ``window_s``
    seconds; fires at ``max_blocked``.

    Counting within the user's own recent requests, not in absolute terms, keeps heavy users
    and global spikes from looking like probing: at the base block rate (2%) six of ten is a
    ~10⁻⁸ event, and even during a spike to 20% it is 0.6% (Binomial(10, 0.2) ≥ 6), while
    someone iterating on an attack that keeps being blocked is caught at their sixth try.
    """

    name: ClassVar[str] = "probing"
    __pydantic_config__ = DETECTOR_OPTIONS
    max_blocked: Annotated[int, Field(ge=2)] = 6
    of_last: Count = 10
    window_s: Positive = 300.0
    max_keys: Count = 10_000
    _users: LRU[deque[tuple[float, bool]]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._users = LRU(self.max_keys)

    def observe(self, event: Event) -> list[Alert]:
        now, blocked = event.ts.timestamp(), event.decision == "block"
        recent = self._users.get(event.user, lambda: deque(maxlen=self.of_last))
        recent.append((now, blocked))
        if not blocked:
            return []
        count = sum(b for t, b in recent if now - t <= self.window_s)
        if count < self.max_blocked:
            return []
        stat = f"blocked among a user's last {self.of_last} requests in {self.window_s:g} s"
        return [alert_at(self.name, stat, count, self.max_blocked, event, window_s=self.window_s)]

    def state_size(self) -> int:
        return len(self._users)


def _fold(text: str) -> str:
    """NFKC, case-folded, words only, single spaces: what a paraphrase keeps."""
    return " ".join(re.findall(r"\w+", unicodedata.normalize("NFKC", text).casefold()))


@dataclass
class NearDuplicates:
    """How many of a user's recent prompts (the last ``history``, within ``window_s``) this
    prompt nearly repeats: MinHash (Broder 1997) over character ``shingle``-grams of the
    folded text, ``num_perm`` multiply-shift hashes; a pair counts at estimated Jaccard
    ``≥ similarity``. Fires at ``min_matches`` such prompts.

    Character 4-grams keep most of a paraphrase that swaps a word or two, adds a prefix or
    changes case and punctuation (0.5–0.8 against the original), while unrelated prompts share
    little (< 0.15). The estimate's standard error is ``sqrt(J(1−J)/num_perm)``, ~0.044 at 128
    hashes; a signature is 256 bytes, so the state is at most ``max_keys × history × 256``
    bytes (26 MB at the defaults). Users who send templated requests (the same instruction
    around different data) look like this too: raise ``min_matches`` for such traffic.
    """

    name: ClassVar[str] = "near_duplicates"
    __pydantic_config__ = DETECTOR_OPTIONS
    similarity: Fraction = 0.4
    min_matches: Count = 3
    window_s: Positive = 600.0
    history: Count = 10
    shingle: Count = 4
    num_perm: Annotated[int, Field(ge=8, le=1024)] = 128
    min_chars: Count = 20
    max_keys: Count = 10_000
    _users: LRU[deque[tuple[float, npt.NDArray[np.uint16]]]] = field(init=False, repr=False)
    _a: npt.NDArray[np.uint64] = field(init=False, repr=False)
    _b: npt.NDArray[np.uint64] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._users = LRU(self.max_keys)
        rng = np.random.default_rng(0x5EED)
        self._a = rng.integers(1, 2**63, size=(self.num_perm, 1), dtype=np.uint64) | np.uint64(1)
        self._b = rng.integers(0, 2**63, size=(self.num_perm, 1), dtype=np.uint64)

    def signature(self, text: str) -> npt.NDArray[np.uint16]:
        codes = np.frombuffer(_fold(text).encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
        k = min(self.shingle, len(codes))
        grams = np.zeros(len(codes) - k + 1, dtype=np.uint64)
        for j in range(k):  # a polynomial hash of each k-gram (uint64 arithmetic wraps)
            grams = grams * np.uint64(0x100000001B3) + codes[j : len(codes) - k + 1 + j]
        hashed = (self._a * np.unique(grams)[None, :] + self._b) >> np.uint64(32)
        sig: npt.NDArray[np.uint16] = hashed.min(axis=1).astype(np.uint16)
        return sig

    def similarity_of(self, a: str, b: str) -> float:
        """The estimated Jaccard similarity of two texts' shingle sets."""
        return float(np.mean(self.signature(a) == self.signature(b)))

    def observe(self, event: Event) -> list[Alert]:
        if len(event.prompt) < self.min_chars:
            return []
        now, sig = event.ts.timestamp(), self.signature(event.prompt)
        recent = self._users.get(event.user, lambda: deque(maxlen=self.history))
        olds = [old for t, old in recent if now - t <= self.window_s]
        sims = (np.stack(olds) == sig).mean(axis=1) if olds else np.zeros(0)
        recent.append((now, sig))
        matches = int((sims >= self.similarity).sum())
        if matches < self.min_matches:
            return []
        stat = f"recent prompts by one user with MinHash Jaccard ≥ {self.similarity:g}"
        return [
            alert_at(self.name, stat, matches, self.min_matches, event, max_sim=float(sims.max()))
        ]

    def state_size(self) -> int:
        return len(self._users)


@dataclass
class AttackTrend:
    """A rising attack score over the last ``k`` turns of a session (of a user, when the
    client sends no session id): a crescendo, each turn a little bolder.

    Statistic: the Mann–Kendall trend statistic (Mann 1945; Kendall 1975)
    ``Z = (S − 1)/sqrt(k(k−1)(2k+5)/18)``, ``S = Σ_{i<j} sign(x_j − x_i)``, which is ~N(0, 1)
    when the order of the scores is random. Fires at ``Z ≥ z`` (2.7, one-sided p ≈ 0.0035:
    over 8 turns at most two of the 28 pairs out of order; a steady climb reaches 3.3) when
    the rise is also large and the session ends high: the Theil–Sen slope (the median
    pairwise slope; Sen 1968) is ``≥ min_slope`` per turn and the last score ``≥ min_score``.
    The median ignores up to ~29% outliers, so a blocked message or two among harmless ones
    makes no slope; the order test keeps a session with several unrelated blocks in random
    places from passing as a climb.
    """

    name: ClassVar[str] = "attack_trend"
    __pydantic_config__ = DETECTOR_OPTIONS
    k: Annotated[int, Field(ge=4)] = 8
    z: Positive = 2.7
    min_slope: Positive = 0.05
    min_score: Fraction = 0.5
    max_keys: Count = 10_000
    _sessions: LRU[deque[float]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._sessions = LRU(self.max_keys)

    def observe(self, event: Event) -> list[Alert]:
        scores = self._sessions.get((event.user, event.session), lambda: deque(maxlen=self.k))
        scores.append(event.attack_score)
        if len(scores) < self.k or scores[-1] < self.min_score:
            return []
        slope = theil_sen(scores)
        value = mann_kendall_z(scores)
        if slope < self.min_slope or value < self.z:
            return []
        stat = f"Mann–Kendall Z of attack scores over {self.k} turns"
        detail = {"session": event.session, "slope": slope, "last": scores[-1]}
        return [alert_at(self.name, stat, value, self.z, event, **detail)]

    def state_size(self) -> int:
        return len(self._sessions)


def _pairs(values: Sequence[float]) -> Iterator[tuple[int, int]]:
    return ((i, j) for i in range(len(values)) for j in range(i + 1, len(values)))


def theil_sen(values: Sequence[float]) -> float:
    """The median slope over all pairs of points ``(i, values[i])``."""
    return statistics.median((values[j] - values[i]) / (j - i) for i, j in _pairs(values))


def mann_kendall_z(values: Sequence[float]) -> float:
    """The Mann–Kendall Z (continuity-corrected, no tie correction) of a sequence."""
    n = len(values)
    s = sum((values[j] > values[i]) - (values[j] < values[i]) for i, j in _pairs(values))
    sd = math.sqrt(n * (n - 1) * (2 * n + 5) / 18)
    return (s - math.copysign(1, s)) / sd if s else 0.0
