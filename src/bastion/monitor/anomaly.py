"""Streaming anomaly detectors over gateway events, the monitor that runs them, and alert sinks.

A detector is a small dataclass: its fields are its parameters (validated from the config by
pydantic, so a bad key or value is named in the error), its state is private and bounded (per
user or session in an LRU of at most ``max_keys`` entries), and :meth:`observe` takes one
:class:`~bastion.monitor.events.Event` and returns the alerts it raises, usually none.
:class:`AnomalyMonitor` runs a set of detectors over a stream, keeps one alert per incident
(a cooldown per detector and user, on event time) and hands each alert to its sinks.

===============  ================================================  ===========================
detector         statistic                                         fires when (defaults)
===============  ================================================  ===========================
block_rate       Bernoulli CUSUM of per-event block flags          S > 9, tuned to 3× baseline
refusal_rate     Bernoulli CUSUM of per-event refusal flags        S > 9, tuned to 3× baseline
probing          blocked among one user's last 10 requests         ≥ 6 within 300 s
near_duplicates  one user's recent prompts this prompt nearly      ≥ 3 of the last 10 within
                 repeats (MinHash of character 4-grams)            600 s at Jaccard ≥ 0.5
attack_trend     Mann–Kendall Z of a session's last 8 attack       Z ≥ 2.7, Theil–Sen slope
                 scores                                            ≥ 0.05/turn, last ≥ 0.5
repetition       share of repeated word 3-grams in a text          > 0.5 (texts ≥ 20 words)
entropy          character entropy, bits/char: of the text; of     < 1.5; > 0.8 × log2 of the
                 its longest unbroken run (≥ 80 chars)             run's alphabet
perplexity       exp(−mean token log-prob) under a language model  > 1000 (off by default)
===============  ================================================  ===========================

On 200,000 synthetic clean events (:mod:`bastion.monitor.traffic`, ten seeds) the defaults
raised four near-duplicate alerts (users repeating a templated request), one refusal-rate
alert and nothing else; every planted anomaly was caught (see ``tests/test_monitor_anomaly.py``
for the delays).
"""

from __future__ import annotations

import logging
import math
import queue
import re
import statistics
import threading
import unicodedata
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Generic, Literal, Protocol, TypeVar

import httpx
import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from bastion.config import error_where, read_yaml, validate
from bastion.errors import ConfigError
from bastion.monitor.events import Alert, Event

if TYPE_CHECKING:
    from bastion.models.base import ScoringModel

logger = logging.getLogger("bastion.monitor")

TextField = Literal["prompt", "response"]
Positive = Annotated[float, Field(gt=0)]
Fraction = Annotated[float, Field(ge=0, le=1)]
Count = Annotated[int, Field(ge=1)]
V = TypeVar("V")
_PARAMS = ConfigDict(extra="forbid", arbitrary_types_allowed=True)


class Detector(Protocol):
    name: ClassVar[str]

    def observe(self, event: Event) -> list[Alert]: ...

    def state_size(self) -> int:
        """Entries of per-user or per-session state held now (bounded by ``max_keys``)."""
        ...


class _LRU(Generic[V]):
    """A dict that forgets its least recently used key beyond ``cap`` keys."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._items: OrderedDict[Any, V] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: Any, make: Callable[[], V]) -> V:
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        value = self._items[key] = make()
        if len(self._items) > self.cap:
            self._items.popitem(last=False)
        return value


def _alert(
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
    __pydantic_config__ = _PARAMS
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
    __pydantic_config__ = _PARAMS
    max_blocked: Annotated[int, Field(ge=2)] = 6
    of_last: Count = 10
    window_s: Positive = 300.0
    max_keys: Count = 10_000
    _users: _LRU[deque[tuple[float, bool]]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._users = _LRU(self.max_keys)

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
        return [_alert(self.name, stat, count, self.max_blocked, event, window_s=self.window_s)]

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
    __pydantic_config__ = _PARAMS
    similarity: Fraction = 0.4
    min_matches: Count = 3
    window_s: Positive = 600.0
    history: Count = 10
    shingle: Count = 4
    num_perm: Annotated[int, Field(ge=8, le=1024)] = 128
    min_chars: Count = 20
    max_keys: Count = 10_000
    _users: _LRU[deque[tuple[float, npt.NDArray[np.uint16]]]] = field(init=False, repr=False)
    _a: npt.NDArray[np.uint64] = field(init=False, repr=False)
    _b: npt.NDArray[np.uint64] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._users = _LRU(self.max_keys)
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
            _alert(self.name, stat, matches, self.min_matches, event, max_sim=float(sims.max()))
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
    __pydantic_config__ = _PARAMS
    k: Annotated[int, Field(ge=4)] = 8
    z: Positive = 2.7
    min_slope: Positive = 0.05
    min_score: Fraction = 0.5
    max_keys: Count = 10_000
    _sessions: _LRU[deque[float]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._sessions = _LRU(self.max_keys)

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
        return [_alert(self.name, stat, value, self.z, event, **detail)]

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


# --------------------------------------------------------------------------- unusual text


def _texts(event: Event, fields: Sequence[TextField]) -> Iterator[tuple[TextField, str]]:
    for name in fields:
        yield name, event.prompt if name == "prompt" else event.response


def repetition(text: str, n: int = 3) -> float | None:
    """The share of word ``n``-grams that repeat an earlier one (0: none; → 1: one loop)."""
    words = re.findall(r"\w+", text.casefold())
    grams = list(zip(*(words[i:] for i in range(n)), strict=False))
    return 1 - len(set(grams)) / len(grams) if grams else None


@dataclass
class Repetition:
    """Degenerate loops ("I'm sorry. I'm sorry. …"): repeated word ``n``-grams over
    ``threshold`` of a text's ``n``-grams, in texts of at least ``min_words`` words. Prose
    repeats few of its 3-grams (0–5% in 300-word stretches of Bastion's README); a reply
    stuck in a loop repeats nearly all of them (0.86–0.93 for the planted loops)."""

    name: ClassVar[str] = "repetition"
    __pydantic_config__ = _PARAMS
    texts: tuple[TextField, ...] = ("prompt", "response")
    n: Count = 3
    threshold: Fraction = 0.5
    min_words: Count = 20

    def observe(self, event: Event) -> list[Alert]:
        alerts = []
        for where, text in _texts(event, self.texts):
            if len(text.split()) < self.min_words:
                continue
            value = repetition(text, self.n)
            if value is not None and value > self.threshold:
                stat = f"share of repeated word {self.n}-grams"
                alerts.append(_alert(self.name, stat, value, self.threshold, event, field=where))
        return alerts

    def state_size(self) -> int:
        return 0


_HEX = frozenset("0123456789abcdefABCDEF")
_BASE64 = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_")
_PRINTABLE = frozenset(chr(c) for c in range(0x21, 0x7F))


def entropy(text: str) -> float:
    """Shannon entropy of the text's characters, in bits per character."""
    total = len(text)
    if not total:
        return 0.0
    return math.log2(total) - sum(c * math.log2(c) for c in Counter(text).values()) / total


def alphabet_bits(run: str) -> float | None:
    """log2 of the smallest alphabet holding ``run``: hex 4, base64 6, printable ASCII ~6.6;
    None for other text (scripts written without spaces are not blobs)."""
    chars = set(run)
    for alphabet, size in ((_HEX, 16), (_BASE64, 64), (_PRINTABLE, 94)):
        if chars <= alphabet:
            return math.log2(size)
    return None


@dataclass
class Entropy:
    """Character entropy, both ways. Too low: a text of ``min_chars`` or more under ``low``
    bits/char is one or two characters repeated (English prose has 4–4.5). Too high: the
    longest unbroken run of ``min_blob`` or more characters carries more than ``high`` times
    the maximum entropy of its alphabet (hex, base64 or printable ASCII) — an encoded or random
    blob. English words never run that long; URLs and paths use their alphabet unevenly
    (0.65–0.7); base64 of English text reaches ~0.86, hex of it ~0.83, random bytes 0.94–0.98.
    Runs of 64 hex digits (a SHA-256) stay under the default ``min_blob`` of 80; scripts
    written without spaces (Chinese, Japanese) are not checked for blobs.
    """

    name: ClassVar[str] = "entropy"
    __pydantic_config__ = _PARAMS
    texts: tuple[TextField, ...] = ("prompt", "response")
    low: Annotated[float, Field(ge=0)] = 1.5
    high: Fraction = 0.8
    min_chars: Count = 32
    min_blob: Count = 80

    def observe(self, event: Event) -> list[Alert]:
        alerts = []
        for where, text in _texts(event, self.texts):
            if len(text) >= self.min_chars and (value := entropy(text)) < self.low:
                stat = "character entropy (bits/char)"
                alerts.append(_alert(self.name, stat, value, self.low, event, field=where))
                continue
            run = max(text.split(), key=len, default="")
            bits = alphabet_bits(run) if len(run) >= self.min_blob else None
            if bits is not None and (value := entropy(run)) > self.high * bits:
                stat = "character entropy of the longest unbroken run (bits/char)"
                limit = self.high * bits
                alerts.append(
                    _alert(self.name, stat, value, limit, event, field=where, run_chars=len(run))
                )
        return alerts

    def state_size(self) -> int:
        return 0


@dataclass
class Perplexity:
    """``exp(−mean token log-prob)`` of a text under a language model, over ``threshold``.

    ``scorer`` maps a text to its mean token log-prob (any callable; :func:`lm_scorer` wraps a
    Bastion chat model). SmolLM2-135M-Instruct gives English prose 10–25, French ~20, base64
    and symbol soup ~300, keyboard mash ~1,300 — and a sentence full of typos as much, so it
    is a weak signal alone. One forward pass per text: off by default.
    """

    name: ClassVar[str] = "perplexity"
    __pydantic_config__ = _PARAMS
    scorer: Callable[[str], float]
    texts: tuple[TextField, ...] = ("prompt",)
    threshold: Positive = 1000.0
    min_chars: Count = 20

    def observe(self, event: Event) -> list[Alert]:
        alerts = []
        for where, text in _texts(event, self.texts):
            if len(text) < self.min_chars:
                continue
            value = math.exp(-self.scorer(text))
            if value > self.threshold:
                stat = "perplexity under the language model"
                alerts.append(_alert(self.name, stat, value, self.threshold, event, field=where))
        return alerts

    def state_size(self) -> int:
        return 0


def lm_scorer(model: ScoringModel, prompt: str = "Write a message.") -> Callable[[str], float]:
    """Mean token log-prob of a text as the model's reply to a neutral ``prompt`` (chat
    templates need at least one turn before the reply)."""

    def score(text: str) -> float:
        return model.logprobs([prompt], [text])[0].mean

    return score


DETECTORS: dict[str, type[Any]] = {
    cls.name: cls
    for cls in (
        BlockRate,
        RefusalRate,
        Probing,
        NearDuplicates,
        AttackTrend,
        Repetition,
        Entropy,
        Perplexity,
    )
}
OFF_BY_DEFAULT = frozenset({"perplexity"})
DEFAULT_LM = "smollm2-135m-instruct"

# --------------------------------------------------------------------------- the monitor

Sink = Callable[[Alert], object]  # e.g. store.add_alert; what it returns is ignored


class AnomalyMonitor:
    """Runs detectors over events; one alert per incident per detector and user.

    An alert is held back when the same detector raised one for the same user (or, for the
    global rates, at all) less than ``cooldown_s`` seconds of event time earlier — emitted or
    held back, so an incident that keeps firing stays one alert until it has been quiet for
    ``cooldown_s``. ``suppressed`` counts the alerts held back.
    """

    def __init__(
        self,
        detectors: Sequence[Detector],
        *,
        sinks: Sequence[Sink] = (),
        cooldown_s: float = 300.0,
        max_keys: int = 100_000,
    ) -> None:
        self.detectors = list(detectors)
        self.sinks = list(sinks)
        self.cooldown_s = cooldown_s
        self.suppressed = 0
        self._last: _LRU[list[float]] = _LRU(max_keys)

    def observe(self, event: Event) -> list[Alert]:
        alerts = []
        now = event.ts.timestamp()
        for detector in self.detectors:
            for alert in detector.observe(event):
                last = self._last.get((alert.detector, alert.user), lambda: [-math.inf])
                quiet = now - last[0] >= self.cooldown_s
                last[0] = now
                if quiet:
                    alerts.append(alert)
                else:
                    self.suppressed += 1
        for alert in alerts:
            self._send(alert)
        return alerts

    def run(self, events: Iterable[Event]) -> Iterator[Alert]:
        for event in events:
            yield from self.observe(event)

    def close(self) -> None:
        """Close the sinks that hold resources (the webhook's thread and connection)."""
        for sink in self.sinks:
            if isinstance(sink, WebhookSink):
                sink.close()

    def _send(self, alert: Alert) -> None:
        for sink in self.sinks:
            try:
                sink(alert)
            except Exception:  # a broken sink must not stop the monitor; the log says why
                logger.exception("alert sink %r failed", sink)


class LogSink:
    """Logs each alert at ``level`` on the ``bastion.monitor`` logger."""

    def __init__(self, level: int = logging.WARNING) -> None:
        self.level = level

    def __call__(self, alert: Alert) -> None:
        logger.log(
            self.level,
            "anomaly %s: %s = %.4g (threshold %.4g) user=%s event=%s",
            alert.detector, alert.statistic, alert.value, alert.threshold, alert.user,
            alert.event_id,
        )  # fmt: skip


class WebhookSink:
    """POSTs each alert as JSON (:meth:`Alert.to_dict`) from a background thread.

    Calling it only queues the alert: a slow or dead endpoint never blocks or raises into the
    monitor. Failures are logged and counted (``failed``); when ``max_queue`` alerts are
    waiting, new ones are dropped and counted (``dropped``). :meth:`close` sends what is queued
    and stops the thread.
    """

    def __init__(self, url: str, *, timeout_s: float = 5.0, max_queue: int = 1000) -> None:
        self.url = url
        self.sent = self.failed = self.dropped = 0
        self._client = httpx.Client(timeout=timeout_s)
        self._queue: queue.Queue[Alert | None] = queue.Queue(max_queue)
        self._thread = threading.Thread(target=self._work, name="bastion-webhook", daemon=True)
        self._thread.start()

    def __call__(self, alert: Alert) -> None:
        try:
            self._queue.put_nowait(alert)
        except queue.Full:
            self.dropped += 1
            logger.warning("webhook %s: queue full, alert %s dropped", self.url, alert.id)

    def flush(self) -> None:
        """Wait until every queued alert was sent or failed."""
        self._queue.join()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()
        self._client.close()

    def _work(self) -> None:
        while (alert := self._queue.get()) is not None:
            try:
                self._client.post(self.url, json=alert.to_dict()).raise_for_status()
                self.sent += 1
            except httpx.HTTPError as exc:
                self.failed += 1
                logger.warning("webhook %s: alert %s not delivered (%s)", self.url, alert.id, exc)
            except Exception:  # a bug here must not kill the thread and stall the queue
                self.failed += 1
                logger.exception("webhook %s: alert %s not delivered", self.url, alert.id)
            finally:
                self._queue.task_done()
        self._queue.task_done()


# --------------------------------------------------------------------------- configuration


class WebhookConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str
    timeout_s: float = Field(5.0, gt=0)


class MonitorConfig(BaseModel):
    """The ``monitor:`` section: cooldown, state cap, sinks, and per-detector options.

    ``detectors`` maps a detector name to its options plus ``enabled`` (every detector but
    ``perplexity`` is on by default; ``perplexity`` also takes ``model``, the packaged model
    that scores, default ``smollm2-135m-instruct``). ``max_keys`` caps each detector's
    per-user or per-session state unless its own options set it.
    """

    model_config = ConfigDict(extra="forbid")

    cooldown_s: float = Field(300.0, ge=0)
    max_keys: int = Field(10_000, ge=1)
    log: bool = True
    webhook: WebhookConfig | None = None
    detectors: dict[str, dict[str, Any] | None] = Field(default_factory=dict)


def parse_config(raw: Mapping[str, Any] | None, *, source: str = "monitor") -> MonitorConfig:
    """Validate a ``monitor:`` section; a :class:`ConfigError` names the bad key."""
    if raw is not None and not isinstance(raw, Mapping):
        raise ConfigError(f"{source}: must be a mapping, got {type(raw).__name__}")
    config = validate(MonitorConfig, raw or {}, source, brackets=False)
    build_detectors(config, scorer=lambda text: 0.0, source=source)  # checks their options
    return config


def load_config(path: str | Path) -> MonitorConfig:
    """A YAML file: its ``monitor:`` section when it has one, else the whole file."""
    raw = read_yaml(Path(path), "the monitor config") or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the monitor config must be a mapping")
    section = raw.get("monitor", raw)
    return parse_config(section, source=f"{path}: monitor" if "monitor" in raw else str(path))


def build_detectors(
    config: MonitorConfig,
    *,
    scorer: Callable[[str], float] | None = None,
    source: str = "monitor",
) -> list[Detector]:
    """Fresh detectors for the enabled entries (``scorer`` for perplexity; by default the
    configured packaged model, loaded here)."""
    unknown = sorted(set(config.detectors) - set(DETECTORS))
    if unknown:
        known = ", ".join(DETECTORS)
        raise ConfigError(f"{source}: detectors.{unknown[0]}: unknown (known: {known})")
    detectors = []
    for name, cls in DETECTORS.items():
        options = dict(config.detectors.get(name) or {})
        enabled = options.pop("enabled", name not in OFF_BY_DEFAULT)
        if not isinstance(enabled, bool):
            raise ConfigError(f"{source}: detectors.{name}.enabled: must be true or false")
        if not enabled:
            continue
        if "max_keys" in cls.__dataclass_fields__:
            options.setdefault("max_keys", config.max_keys)
        if name == "perplexity":
            model = options.pop("model", DEFAULT_LM)
            options["scorer"] = scorer or _packaged_scorer(model)
        try:
            detectors.append(TypeAdapter(cls).validate_python(options))
        except ValidationError as exc:
            where, message = error_where(exc, brackets=False, prefix=("detectors", name))
            raise ConfigError(f"{source}: {where}: {message}") from None
    return detectors


def _packaged_scorer(name: str) -> Callable[[str], float]:
    from bastion.models import load  # torch and transformers: only when perplexity is on

    return lm_scorer(load(name))


def build_monitor(
    config: MonitorConfig | None = None,
    *,
    sinks: Sequence[Sink] = (),
    scorer: Callable[[str], float] | None = None,
) -> AnomalyMonitor:
    """A monitor with the configured detectors and sinks (log, webhook) plus ``sinks``."""
    config = config or MonitorConfig()
    all_sinks: list[Sink] = [LogSink()] if config.log else []
    if config.webhook is not None:
        all_sinks.append(WebhookSink(config.webhook.url, timeout_s=config.webhook.timeout_s))
    return AnomalyMonitor(
        build_detectors(config, scorer=scorer),
        sinks=[*all_sinks, *sinks],
        cooldown_s=config.cooldown_s,
    )


def scan(
    events: Iterable[Event],
    config: MonitorConfig | None = None,
    *,
    scorer: Callable[[str], float] | None = None,
) -> list[Alert]:
    """Replay history (in time order) through fresh detectors; the alerts, sent nowhere."""
    config = config or MonitorConfig()
    monitor = AnomalyMonitor(build_detectors(config, scorer=scorer), cooldown_s=config.cooldown_s)
    return list(monitor.run(events))


def watch(
    events: Iterable[Event],
    config: MonitorConfig | None = None,
    *,
    sinks: Sequence[Sink] = (),
    scorer: Callable[[str], float] | None = None,
) -> Iterator[Alert]:
    """Follow a live stream: every alert goes to the configured sinks and ``sinks`` and is
    yielded; the webhook is flushed and closed when the stream ends or the caller stops."""
    monitor = build_monitor(config, sinks=sinks, scorer=scorer)
    try:
        yield from monitor.run(events)
    finally:
        monitor.close()
