"""What a scanner returns: a score, a flag, a reason, and the spans it found.

Spans are offsets into the text the caller gave (``view == "original"``) whenever the match can
be traced back through normalization; a match found only in a decoded view (base64, ROT13, …)
is reported in that view's own text, with the view named, since no offset of the original
corresponds to a decoded character.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Span:
    """One detection: what it is, where it is, and in which view of the text."""

    label: str  # entity type or category: "EMAIL", "blocklist", "weapons", …
    start: int
    end: int
    view: str = "original"
    score: float = 1.0

    def __post_init__(self) -> None:
        if not 0 <= self.start <= self.end:
            raise ValueError(f"span [{self.start}, {self.end}) is not a valid range")


@dataclass(frozen=True, slots=True)
class ScanResult:
    """One scanner's finding on one text. ``score`` is in [0, 1]; ``flagged`` is
    ``score >= threshold`` for the scanner's threshold."""

    scanner: str
    score: float
    flagged: bool
    reason: str = ""
    spans: tuple[Span, ...] = ()
    view: str | None = None  # the view that decided the result, when one did
    sanitized: str | None = None  # the text with detections masked, for masking scanners
    elapsed_ms: float = 0.0
    meta: dict[str, object] = field(default_factory=dict, compare=False)
    failed: bool = False  # the scanner raised or ran out of time: the score is its fail mode

    def __post_init__(self) -> None:
        if not 0.0 <= self.score <= 1.0:
            raise ValueError(f"{self.scanner}: score must be in [0, 1], got {self.score}")
