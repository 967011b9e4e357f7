"""Blocklist: thousands of phrases matched in one linear pass (Aho-Corasick).

Phrases and text are compared in folded form (case-folded, diacritics and look-alikes folded,
invisibles removed, whitespace collapsed; see :mod:`bastion.text.normalize`), on the canonical
text and on every decoded view, and only at word boundaries: "ass" does not match "class".
Phrases are literal strings, never regular expressions, so no user-supplied list can make
matching backtrack: the automaton reads each character of the input once.

Lists come from Python, from text files (one phrase per line, ``#`` comments) or from YAML
files (a list of phrases, or ``{phrases: [...]}``); a bad file is an error naming it and the
line or key.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

import ahocorasick

from bastion.errors import ConfigError
from bastion.guard.result import ScanResult, Span
from bastion.guard.scanners.base import Scanner, register
from bastion.text.normalize import Normalized, folded


def load_phrases(path: Path) -> list[str]:
    """Phrases from a ``.txt`` file (one per line) or a ``.yaml``/``.yml`` file."""
    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the phrase list ({exc})") from None
    if path.suffix in (".yaml", ".yml"):
        import yaml

        try:
            data: Any = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({exc})") from None
        if isinstance(data, dict):
            if set(data) != {"phrases"}:
                raise ConfigError(f"{path}: expected a list, or a mapping with only 'phrases'")
            data = data["phrases"]
        if not isinstance(data, list):
            raise ConfigError(f"{path}: expected a list of phrases")
        for index, item in enumerate(data):
            if not isinstance(item, str):
                raise ConfigError(f"{path}: phrases[{index}] must be a string, got {item!r}")
        return list(data)
    phrases = []
    for line in raw.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            phrases.append(line)
    return phrases


def _boundary(text: str, start: int, end: int) -> bool:
    """True when ``text[start:end]`` is not part of a longer word on either side."""
    before = text[start - 1] if start > 0 else " "
    after = text[end] if end < len(text) else " "
    edge_in, edge_out = text[start], text[end - 1]
    return not (before.isalnum() and edge_in.isalnum()) and not (
        after.isalnum() and edge_out.isalnum()
    )


@register
class BlocklistScanner(Scanner):
    """Flags a text containing any listed phrase (score 1.0), in any view."""

    name: ClassVar[str] = "blocklist"
    bounded: ClassVar[bool] = True
    stage: ClassVar[str] = "both"

    def __init__(
        self,
        phrases: Iterable[str] = (),
        *,
        files: Iterable[str | Path] = (),
        threshold: float = 0.5,
    ) -> None:
        super().__init__(threshold=threshold)
        all_phrases = list(phrases)
        for file in files:
            all_phrases += load_phrases(Path(file))
        self.automaton = ahocorasick.Automaton()
        self.phrases: dict[str, str] = {}  # folded -> as listed
        for phrase in all_phrases:
            key = folded(phrase).text.strip()
            if key and key not in self.phrases:
                self.phrases[key] = phrase
                self.automaton.add_word(key, key)
        if self.phrases:
            self.automaton.make_automaton()

    def __len__(self) -> int:
        return len(self.phrases)

    def matches(self, text: str) -> list[tuple[int, int, str]]:
        """``(start, end, phrase)`` of every listed phrase in an already folded text."""
        if not self.phrases or not text:
            return []
        found = []
        for last, key in self.automaton.iter(text):
            start = last - len(key) + 1
            if _boundary(text, start, last + 1):
                found.append((start, last + 1, key))
        return found

    def scan_normalized(self, text: Normalized) -> ScanResult:
        # the canonical text first (spans in the caller's offsets), then each decoded view
        for view, bare in zip(text.all_views(), text.folded_views, strict=True):
            name = view.name
            hits = self.matches(bare)
            if not hits:
                continue
            if name == "canonical":
                spans = [Span("blocklist", *text.folded.span(s, e)) for s, e, _ in hits]
            else:
                spans = [Span("blocklist", start, end, view=name) for start, end, _ in hits]
            listed = sorted({self.phrases[key] for _, _, key in hits})
            reason = f"listed phrase ({name}): {', '.join(listed[:5])}"
            return self.result(1.0, reason, spans=tuple(spans), view=name)
        return self.result(0.0)
