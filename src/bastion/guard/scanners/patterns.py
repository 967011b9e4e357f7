"""What pattern scanners share: finders, precedence among overlaps, and masking.

A finder yields ``(start, end)`` of each validated match in a text. A :class:`PatternScanner`
runs its finders in precedence order on the canonical text (so invisible characters and
fullwidth forms hide nothing), keeps the first detection where two overlap, maps spans back to
the caller's text, and masks them there as ``<LABEL>``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import ClassVar

from bastion.guard.result import ScanResult, Span
from bastion.guard.scanners.base import Scanner
from bastion.guard.vault import mask
from bastion.text.normalize import Normalized

Finder = Callable[[str], Iterator[tuple[int, int]]]
DIGIT = re.compile(r"\d")  # any script's digits, as \d in the patterns


def regex_finder(
    pattern: re.Pattern[str],
    valid: Callable[[re.Match[str]], bool] = lambda m: True,
    *,
    require: tuple[str, ...] | re.Pattern[str] = (),
) -> Finder:
    """Matches of ``pattern`` that pass ``valid`` (a checksum, a rule, a range). ``require``:
    literals of which every match holds at least one (a key's prefix, the ``@`` of an e-mail);
    a text with none of them is skipped with a substring search, without running the regex (a
    pattern: one that every match contains, e.g. a digit)."""

    def find(text: str) -> Iterator[tuple[int, int]]:
        if isinstance(require, re.Pattern):
            if not require.search(text):
                return
        elif require and not any(literal in text for literal in require):
            return
        for match in pattern.finditer(text):
            if valid(match):
                yield match.start(), match.end()

    return find


class PatternScanner(Scanner):
    """Flags (score 1.0) and masks whatever its ``finders`` detect."""

    what: ClassVar[str]  # how the reason names the findings: "personal data", "secret"
    bounded: ClassVar[bool] = True

    def __init__(self, finders: list[tuple[str, Finder]], *, threshold: float = 0.5) -> None:
        super().__init__(threshold=threshold)
        self.finders = finders  # (label, finder), most specific first

    def detect(self, text: str) -> list[Span]:
        """Non-overlapping detections in ``text``, in reading order."""
        taken: list[tuple[int, int]] = []
        spans = []
        for label, find in self.finders:
            for start, end in find(text):
                if any(start < e and s < end for s, e in taken):
                    continue
                taken.append((start, end))
                spans.append(Span(label, start, end))
        return sorted(spans, key=lambda s: s.start)

    def scan_normalized(self, text: Normalized) -> ScanResult:
        canon = text.canonical
        spans = [Span(s.label, *canon.span(s.start, s.end)) for s in self.detect(canon.text)]
        if not spans:
            return self.result(0.0, sanitized=text.original)
        kinds = sorted({s.label for s in spans})
        return self.result(
            1.0,
            f"{self.what}: {', '.join(kinds)}",
            spans=tuple(spans),
            view="canonical",
            sanitized=mask(text.original, spans),
        )
