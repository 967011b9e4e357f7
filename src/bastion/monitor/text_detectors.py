"""The detectors of unusual text in one exchange: degenerate repetition, character entropy (one
character repeated, or an encoded blob) and perplexity under a language model. Each keeps no
state; see :mod:`bastion.monitor.detectors` for what a detector is."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, ClassVar

from pydantic import Field

from bastion.monitor.detectors import (
    DETECTOR_OPTIONS,
    Count,
    Fraction,
    Positive,
    TextField,
    alert_at,
)
from bastion.monitor.events import Alert, Event

if TYPE_CHECKING:
    from bastion.models.base import ScoringModel


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
    __pydantic_config__ = DETECTOR_OPTIONS
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
                alerts.append(alert_at(self.name, stat, value, self.threshold, event, field=where))
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
    __pydantic_config__ = DETECTOR_OPTIONS
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
                alerts.append(alert_at(self.name, stat, value, self.low, event, field=where))
                continue
            run = max(text.split(), key=len, default="")
            bits = alphabet_bits(run) if len(run) >= self.min_blob else None
            if bits is not None and (value := entropy(run)) > self.high * bits:
                stat = "character entropy of the longest unbroken run (bits/char)"
                limit = self.high * bits
                alerts.append(
                    alert_at(self.name, stat, value, limit, event, field=where, run_chars=len(run))
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
    __pydantic_config__ = DETECTOR_OPTIONS
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
                alerts.append(alert_at(self.name, stat, value, self.threshold, event, field=where))
        return alerts

    def state_size(self) -> int:
        return 0


def lm_scorer(model: ScoringModel, prompt: str = "Write a message.") -> Callable[[str], float]:
    """Mean token log-prob of a text as the model's reply to a neutral ``prompt`` (chat
    templates need at least one turn before the reply)."""

    def score(text: str) -> float:
        return model.logprobs([prompt], [text])[0].mean

    return score
