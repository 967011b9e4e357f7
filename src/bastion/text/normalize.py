"""Canonical text and decoded views: what every input scanner looks at.

Encodings are the cheapest bypass of a guard: a blocked phrase written in Cyrillic look-alikes,
split by zero-width spaces, spaced out letter by letter, or base64-encoded passes any scanner
that reads the raw string. So scanners never read the raw string. They read:

* the **canonical** text: Unicode NFKC (fullwidth and mathematical letters become plain ones),
  invisible characters removed (zero-width spaces and joiners, soft hyphens, bidi controls,
  variation selectors, Unicode tag characters, control characters other than newline and tab,
  lone surrogates), look-alike letters folded to Latin inside words that mix scripts, and
  whitespace collapsed. Every canonical character remembers the offset of the original
  character it came from, so spans found in it are reported in the caller's text.
* the **folded** text, for phrase matching: the canonical text further case-folded, stripped of
  diacritics and with every look-alike folded, also with offsets into the original.
* **decoded views**, each a whole text a scanner can read: ``base64`` and ``hex`` (runs that
  decode to readable UTF-8, replaced in place), ``url`` (percent-encoding), ``rot13``,
  ``leetspeak`` (digits and symbols read as letters inside words), ``reversed``, ``spaced``
  (letter-by-letter text joined back into words) and ``tags`` (text hidden in Unicode tag
  characters). A view is produced only when it differs from the canonical text.

All of it runs in time linear in the input; nothing here uses a regular expression that can
backtrack catastrophically (every pattern is a simple character-class run).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from bastion.text.fold import HOMOGLYPHS, TAG_END, TAG_START, Folded, canonical, folded
from bastion.text.views import LEET, VIEW_MAKERS

T = TypeVar("T")
_MISSING: Any = object()

__all__ = [
    "HOMOGLYPHS",
    "LEET",
    "TAG_END",
    "TAG_START",
    "Folded",
    "Normalized",
    "View",
    "canonical",
    "folded",
    "normalize",
]


@dataclass(frozen=True, slots=True)
class View:
    name: str
    text: str


@dataclass(frozen=True)
class Normalized:
    """Everything the scanners read about one input. The decoded views are computed the first
    time a scanner asks for them (a PII-only stack never pays for them)."""

    original: str
    canonical: Folded
    folded: Folded
    # what the caller knows about the exchange: "prompt" (the user's request) and "system"
    # (the system prompt) for output scanners that compare the answer with them
    context: Mapping[str, str] = field(default_factory=dict, compare=False)

    @functools.cached_property
    def views(self) -> tuple[View, ...]:
        """Decoded views that differ from the canonical text."""
        if not self.original:
            return ()
        views = []
        for name, make in VIEW_MAKERS.items():
            made = make(self.original, self.canonical.text)
            if made is not None and made != self.canonical.text and made.strip():
                views.append(View(name, made))
        return tuple(views)

    def memo(self, key: str, make: Callable[[], T]) -> T:
        """``make()``, computed once per text and kept under ``key`` (for what several scanners
        derive from the same views, such as n-gram features)."""
        found = self.__dict__.get(key, _MISSING)
        if found is _MISSING:
            found = self.__dict__[key] = make()
        return found  # type: ignore[no-any-return]

    @functools.cached_property
    def folded_views(self) -> tuple[str, ...]:
        """The folded text of the canonical text and of every view (for phrase matching and
        n-grams), computed once for all the scanners that read them."""
        return (self.folded.text, *(folded(v.text).text for v in self.views))

    @classmethod
    def raw(cls, text: str) -> Normalized:
        """Only the original text, for scanners that read nothing else (no work done)."""
        empty = Folded("")
        raw = cls(text, empty, empty, {})
        raw.__dict__["views"] = ()
        return raw

    def all_views(self) -> tuple[View, ...]:
        """The canonical text first, then every decoded view."""
        return (View("canonical", self.canonical.text), *self.views)


def normalize(text: str, context: Mapping[str, str] | None = None) -> Normalized:
    return Normalized(text, canonical(text), folded(text), dict(context or {}))
