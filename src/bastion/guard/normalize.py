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

import base64
import binascii
import bisect
import codecs
import functools
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING
from urllib.parse import unquote

if TYPE_CHECKING:
    from bastion.guard.ngrams import Features

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

LEET = {
    "0": "o", "1": "i", "2": "z", "3": "e", "4": "a", "5": "s", "6": "g", "7": "t", "8": "b",
    "9": "g", "@": "a", "$": "s", "!": "i", "|": "l", "+": "t", "€": "e", "£": "l",
}  # fmt: skip

_TAG_START, _TAG_END = 0xE0000, 0xE007F
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/_-]{16,}={0,2}")
_HEX_RUN = re.compile(r"(?:\\x|0x)?[0-9A-Fa-f]{2}(?:[ :]?(?:\\x|0x)?[0-9A-Fa-f]{2}){7,}")
# every hex run is at least 16 characters of this set in a row; English text (a-f and spaces)
# rarely has one, and looking for it is far cheaper than trying the run at every "a" or "e"
_HEX_CANDIDATE = re.compile(r"[0-9A-Fa-fx\\: ]{16}")
_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")
_SPACED_RUN = re.compile(r"(?<!\S)\w(?:[ .\-_*]\w){3,}(?!\S)")
_LEET_TOKEN = re.compile(r"[A-Za-z0-9@$!|+€£]+")
_LEET_CHARS = r"0-9@$!|+€£"
# a leet character with a letter before or after it; starting from the leet character lets
# the search skip the letters, which are most of any text
_LEET_PAIR = re.compile(rf"[{_LEET_CHARS}](?:(?<=[A-Za-z].)|(?=[A-Za-z]))")
# tokens holding at least one leet character, matched only from a token's start (the
# lookbehind), so a long run of letters is walked once, never once per position
_LEET_CANDIDATE = re.compile(
    rf"(?<![A-Za-z{_LEET_CHARS}])[A-Za-z]*[{_LEET_CHARS}][A-Za-z{_LEET_CHARS}]*"
)
_LEET_TABLE = str.maketrans(LEET)
_ASCII_LETTER = re.compile(r"[A-Za-z]")
_WORD_RUN = re.compile(r"[a-z]+")
_NOT_PLAIN = re.compile(r"[^\x20-\x7e\t\n]")


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

    @functools.cached_property
    def ngram_features(self) -> tuple[Features, ...]:
        """The n-gram features of every view (see :mod:`bastion.guard.ngrams`), computed once
        for all the classifiers that read them."""
        from bastion.guard.ngrams import features

        return tuple(features(text, is_folded=True) for text in self.folded_views)

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


def _invisible(ch: str) -> bool:
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
        or _TAG_START <= code <= _TAG_END
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
        if _invisible(raw):
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


def normalize(text: str, context: Mapping[str, str] | None = None) -> Normalized:
    return Normalized(text, canonical(text), folded(text), dict(context or {}))


# --- decoded views ---------------------------------------------------------------------------


def _readable(data: bytes) -> str | None:
    """Decoded bytes as text when they are mostly printable UTF-8, else None."""
    try:
        decoded = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not decoded:
        return None
    printable = sum(1 for c in decoded if c.isprintable() or c in "\n\t")
    letters = sum(1 for c in decoded if c.isalpha())
    return decoded if printable / len(decoded) >= 0.9 and letters >= len(decoded) * 0.3 else None


def _base64_view(_: str, canon: str) -> str | None:
    def decode(match: re.Match[str]) -> str:
        run = match.group(0)
        padded = run + "=" * (-len(run) % 4)
        for decoder in (base64.b64decode, base64.urlsafe_b64decode):
            try:
                text = _readable(decoder(padded))
            except (binascii.Error, ValueError):
                continue
            if text is not None:
                return text
        return run

    return _BASE64_RUN.sub(decode, canon)


def _hex_view(_: str, canon: str) -> str | None:
    if not _HEX_CANDIDATE.search(canon):
        return None

    def decode(match: re.Match[str]) -> str:
        digits = re.sub(r"\\x|0x|[ :]", "", match.group(0))
        text = _readable(bytes.fromhex(digits)) if len(digits) % 2 == 0 else None
        return text if text is not None else match.group(0)

    return _HEX_RUN.sub(decode, canon)


def _url_view(_: str, canon: str) -> str | None:
    return unquote(canon) if _PERCENT.search(canon) else None


@functools.cache
def _common_words() -> frozenset[str]:
    from importlib import resources

    text = (resources.files("bastion.guard") / "common_words.txt").read_text(encoding="utf-8")
    lines = (line.split("#", 1)[0] for line in text.splitlines())
    return frozenset(word for line in lines for word in line.split())


def _decodes_to_english(canon: str, decode: Callable[[str], str]) -> bool:
    """Whether ``decode`` turns at least two words of the text that are not common English
    words into ones that are. Ordinary English gains nothing (its words are common already,
    and their ROT13 or mirror images almost never are), an encoded request gains its "how",
    "make", "ignore", "all" … — however much plain text surrounds it: the test counts words,
    it takes no ratio."""
    common = _common_words()
    words = _uncommon_words(canon)
    if len(words) < 2:
        return False
    decoded = decode(" ".join(words)).split(" ")
    return len(common.intersection(decoded)) >= 2


@functools.lru_cache(maxsize=4)  # the ROT13 and the mirror views ask about the same text
def _uncommon_words(canon: str) -> tuple[str, ...]:
    if canon.isascii():  # the same runs of a-z from the bytes: a translation and a split in C
        common_bytes = _common_words_bytes()
        runs = set(canon.encode().translate(_LOWER_LETTERS_ONLY).split())
        return tuple(w.decode() for w in runs if w not in common_bytes and len(w) > 1)
    common = _common_words()
    return tuple(w for w in set(_WORD_RUN.findall(canon.lower())) if w not in common and len(w) > 1)


# bytes: A-Z lower-cased, a-z kept, anything else a space
_LOWER_LETTERS_ONLY = bytes(
    c if 97 <= c <= 122 else c + 32 if 65 <= c <= 90 else 32 for c in range(256)
)


@functools.cache
def _common_words_bytes() -> frozenset[bytes]:
    return frozenset(word.encode() for word in _common_words())


def _rot13_view(_: str, canon: str) -> str | None:
    if not _ASCII_LETTER.search(canon):
        return None
    if not _decodes_to_english(canon, lambda t: codecs.encode(t, "rot13")):
        return None
    return codecs.encode(canon, "rot13")


def _leet_view(_: str, canon: str) -> str | None:
    # a token (a run of letters and leet characters) mixing both has a letter beside a leet
    # character somewhere, so one search finds whether there is anything to read
    if not _LEET_PAIR.search(canon):
        return None

    def read(match: re.Match[str]) -> str:
        word = match.group(0)
        # in leetspeak text a lone "4" or "1" is a word too ("m4k3 4 b0mb"); a number is not
        if len(word) == 1 or _LEET_PAIR.search(word):
            return word.translate(_LEET_TABLE)
        return word

    return _LEET_CANDIDATE.sub(read, canon)


def _reversed_view(_: str, canon: str) -> str | None:
    if not _decodes_to_english(canon, lambda t: t[::-1]):
        return None
    return canon[::-1]


def _spaced_view(original: str, _: str) -> str | None:
    # on the text before whitespace collapses: words are split by wider gaps than letters
    text = _NOT_PLAIN.sub(lambda m: "" if _invisible(m.group()) else m.group(), original)
    joined = _SPACED_RUN.sub(lambda m: re.sub(r"[ .\-_*]", "", m.group(0)), text)
    return canonical(joined).text if joined != text else None


def _tags_view(original: str, _: str) -> str | None:
    hidden = _TAG_CHARS.findall(original)  # the tag copies of printable ASCII
    return "".join(chr(ord(c) - _TAG_START) for c in hidden) or None


_TAG_CHARS = re.compile(f"[{chr(_TAG_START + 0x20)}-{chr(_TAG_START + 0x7E)}]")


VIEW_MAKERS = {
    "base64": _base64_view,
    "hex": _hex_view,
    "url": _url_view,
    "rot13": _rot13_view,
    "leetspeak": _leet_view,
    "reversed": _reversed_view,
    "spaced": _spaced_view,
    "tags": _tags_view,
}
