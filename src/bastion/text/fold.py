"""Canonical and folded text, with offsets back into the original.

* the **canonical** text: Unicode NFKC (fullwidth and mathematical letters become plain ones),
  invisible characters removed (zero-width spaces and joiners, soft hyphens, bidi controls,
  variation selectors, Unicode tag characters, control characters other than newline and tab,
  lone surrogates), look-alike letters folded to Latin inside words that mix scripts, and
  whitespace collapsed. Every canonical character remembers the offset of the original
  character it came from, so spans found in it are reported in the caller's text.
* the **folded** text, for phrase matching: the canonical text further case-folded, stripped of
  diacritics and with every look-alike folded, also with offsets into the original.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

# Look-alikes of Latin letters (Cyrillic, Greek, and a few others). NFKC already folds the
# fullwidth and mathematical alphabets; these it leaves alone because they are real letters.
HOMOGLYPHS = {
    # Cyrillic
    "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p",
    "с": "c", "т": "t", "у": "y", "х": "x", "ѕ": "s", "і": "i", "ї": "i", "ј": "j", "ԁ": "d",
    "һ": "h", "ԛ": "q", "ԝ": "w", "ɡ": "g", "ӏ": "l", "ь": "b",
    "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P", "С": "C",
    "Т": "T", "У": "Y", "Х": "X", "Ѕ": "S", "І": "I", "Ј": "J", "Ԁ": "D", "Һ": "H", "Ԛ": "Q",
    "Ԝ": "W",
    # Greek
    "α": "a", "β": "b", "ε": "e", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p", "τ": "t",
    "υ": "u", "χ": "x", "γ": "y", "ω": "w",
    "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M", "Ν": "N",
    "Ο": "O", "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X",
    # Latin extensions and symbols that read as letters
    "ı": "i", "ȷ": "j", "ʟ": "l", "ɪ": "i", "ʀ": "r", "ᴀ": "a", "ᴄ": "c", "ᴅ": "d", "ᴇ": "e",
    "ᴋ": "k", "ᴍ": "m", "ᴏ": "o", "ᴘ": "p", "ᴛ": "t", "ᴜ": "u", "ᴠ": "v", "ᴡ": "w", "ᴢ": "z",
    "ꜱ": "s", "ɢ": "g", "ʜ": "h", "ɴ": "n",
}  # fmt: skip

TAG_START, TAG_END = 0xE0000, 0xE007F  # Unicode tag characters


@dataclass(frozen=True, slots=True)
class Folded:
    """A transformed text and where each of its characters came from in the original.

    The map is kept as segments, not one offset per character: from folded position
    ``starts[k]`` on, characters come from consecutive original offsets beginning at
    ``offsets[k]``, until the next segment. Ordinary text is a handful of segments (one more
    per collapsed whitespace run or changed character), so building the map costs next to
    nothing and looking an offset up is a binary search.
    """

    text: str
    starts: tuple[int, ...] = ()
    offsets: tuple[int, ...] = ()

    def origin(self, position: int) -> int:
        """The original offset of ``text[position]``."""
        k = bisect.bisect_right(self.starts, position) - 1
        return self.offsets[k] + position - self.starts[k]

    def span(self, start: int, end: int) -> tuple[int, int]:
        """Offsets in the original text of ``text[start:end]`` (end exclusive)."""
        if start >= end:
            at = self.origin(start) if start < len(self.text) else self._end()
            return at, at
        return self.origin(start), self.origin(end - 1) + 1

    def _end(self) -> int:
        return self.origin(len(self.text) - 1) + 1 if self.text else 0


class _Segments:
    """Builds a :class:`Folded` text piece by piece, with its segment map."""

    __slots__ = ("expect", "length", "offsets", "parts", "starts")

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.starts: list[int] = []
        self.offsets: list[int] = []
        self.length = 0
        self.expect = -1  # the original offset that would continue the last segment

    def add(self, piece: str, at: int) -> None:
        """``piece`` came from consecutive original characters starting at ``at``."""
        if at != self.expect:
            self.starts.append(self.length)
            self.offsets.append(at)
        self.parts.append(piece)
        self.length += len(piece)
        self.expect = at + len(piece)

    def folded(self, *, mixed_words: bool) -> Folded:
        text = "".join(self.parts)
        if mixed_words and not _HOMOGLYPH_SET.isdisjoint(text):
            chars = list(text)
            _fold_mixed_words(chars)  # one character for one: the map is unchanged
            text = "".join(chars)
        return Folded(text, tuple(self.starts), tuple(self.offsets))


def invisible(ch: str) -> bool:
    code = ord(ch)
    if ch in "\n\t":
        return False
    category = unicodedata.category(ch)
    # Cf: format (zero-width, bidi, soft hyphen, tags); Cc: controls (NUL …); Cs: surrogates;
    # Mn variation selectors; Co private use
    return (
        category in ("Cf", "Cc", "Cs", "Co")
        or 0xFE00 <= code <= 0xFE0F
        or 0xE0100 <= code <= 0xE01EF
        or TAG_START <= code <= TAG_END
    )


@lru_cache(maxsize=65536)
def _nfkc(ch: str) -> str:
    return unicodedata.normalize("NFKC", ch)


@lru_cache(maxsize=65536)
def _bare(ch: str) -> str:
    """Case-folded, diacritics stripped, look-alikes folded."""
    ch = HOMOGLYPHS.get(ch, ch)
    out = []
    for part in unicodedata.normalize("NFD", ch):
        if unicodedata.category(part) != "Mn":
            out.append(HOMOGLYPHS.get(part, part))
    return "".join(out).casefold()


def _is_latin_letter(ch: str) -> bool:
    return "a" <= ch <= "z" or "A" <= ch <= "Z"


_ASCII_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
# whitespace runs that shift offsets: longer than one character (a lone tab or newline becomes
# a space in place)
_IRREGULAR_SPACE = re.compile(r"[ \t\n]{2,}")


def _fold_ascii(text: str, *, matching: bool) -> Folded:
    """The fast path for plain ASCII (no controls but tab and newline): nothing to normalize
    but whitespace, and case when matching; the same result as the general path, in C but
    for one step per irregular whitespace run."""
    body = " ".join(text.split())
    if not body:
        return Folded("")
    lead = len(text) - len(text.lstrip())
    starts, offsets = [0], [lead]
    removed = lead
    for run in _IRREGULAR_SPACE.finditer(text, lead):
        if run.end() == len(text):  # trailing whitespace is dropped
            break
        removed += run.end() - run.start() - 1  # the run became one space
        starts.append(run.end() - removed)
        offsets.append(run.end())
    return Folded(body.lower() if matching else body, tuple(starts), tuple(offsets))


def _fold(text: str, *, matching: bool) -> Folded:
    if text.isascii() and not _ASCII_CONTROL.search(text):
        return _fold_ascii(text, matching=matching)
    return _fold_general(text, matching=matching)


# Runs that need no per-character work: printable ASCII words with single spaces between
# them (NFKC and invisibles change nothing; folding is lower-casing), and whitespace other than
# control characters (collapsed to one space; a control character such as CR is invisible and
# removed, as in the slow path).
_PLAIN_RUN = re.compile(r"([!-~]+(?: [!-~]+)*)|([^\S\x00-\x08\x0b-\x1f\x7f-\x9f]+)")


def _fold_general(text: str, *, matching: bool) -> Folded:
    out = _Segments()
    space_at = -1  # offset of a whitespace run not yet written (as one space)
    at = 0
    for run in _PLAIN_RUN.finditer(text):
        if run.start() > at:  # characters between plain runs, one by one
            space_at = _fold_chars(text, at, run.start(), out, space_at, matching)
        at = run.end()
        if run.group(2) is not None:  # whitespace
            if out.length and space_at < 0:
                space_at = run.start()
            continue
        if space_at >= 0:
            out.add(" ", space_at)
            space_at = -1
        plain = run.group(1)
        out.add(plain.lower() if matching else plain, run.start())
    if at < len(text):
        _fold_chars(text, at, len(text), out, space_at, matching)
    return out.folded(mixed_words=not matching)


def _fold_chars(
    text: str, start: int, end: int, out: _Segments, space_at: int, matching: bool
) -> int:
    """Fold ``text[start:end]`` character by character onto ``out``; returns ``space_at``."""
    for index in range(start, end):
        raw = text[index]
        if invisible(raw):
            continue
        for ch in _nfkc(raw):
            if ch.isspace():
                if out.length and space_at < 0:
                    space_at = index
                continue
            if space_at >= 0:
                out.add(" ", space_at)
                space_at = -1
            for piece in _bare(ch) if matching else ch:
                out.add(piece, index)  # every piece of one character maps to it
    return space_at


_HOMOGLYPH_SET = frozenset(HOMOGLYPHS)


def _fold_mixed_words(chars: list[str]) -> None:
    """Fold look-alikes in place inside words that also contain Latin letters (a word wholly
    in Cyrillic or Greek is real text and stays as it is)."""
    start = 0
    n = len(chars)
    while start < n:
        if not chars[start].isalpha():
            start += 1
            continue
        end = start
        while end < n and chars[end].isalpha():
            end += 1
        word = chars[start:end]
        if any(_is_latin_letter(c) for c in word) and any(c in HOMOGLYPHS for c in word):
            for i in range(start, end):
                chars[i] = HOMOGLYPHS.get(chars[i], chars[i])
        start = end


def canonical(text: str) -> Folded:
    """NFKC, invisibles removed, mixed-script look-alikes folded, whitespace collapsed."""
    return _fold(text, matching=False)


def folded(text: str) -> Folded:
    """The canonical text case-folded, without diacritics, every look-alike folded."""
    return _fold(text, matching=True)
