"""Decoded views of a text, each a whole text a scanner can read: ``base64`` and ``hex`` (runs
that decode to readable UTF-8, replaced in place), ``url`` (percent-encoding), ``rot13``,
``leetspeak`` (digits and symbols read as letters inside words), ``reversed``, ``spaced``
(letter-by-letter text joined back into words) and ``tags`` (text hidden in Unicode tag
characters). Each maker returns ``None`` when it has nothing to decode.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import functools
import re
from collections.abc import Callable
from urllib.parse import unquote

from bastion.text.fold import TAG_START, canonical, invisible

LEET = {
    "0": "o", "1": "i", "2": "z", "3": "e", "4": "a", "5": "s", "6": "g", "7": "t", "8": "b",
    "9": "g", "@": "a", "$": "s", "!": "i", "|": "l", "+": "t", "€": "e", "£": "l",
}  # fmt: skip

_BASE64_RUN = re.compile(r"[A-Za-z0-9+/_-]{16,}={0,2}")
_HEX_RUN = re.compile(r"(?:\\x|0x)?[0-9A-Fa-f]{2}(?:[ :]?(?:\\x|0x)?[0-9A-Fa-f]{2}){7,}")
# every hex run is at least 16 characters of this set in a row; English text (a-f and spaces)
# rarely has one, and looking for it is far cheaper than trying the run at every "a" or "e"
_HEX_CANDIDATE = re.compile(r"[0-9A-Fa-fx\\: ]{16}")
_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")
_SPACED_RUN = re.compile(r"(?<!\S)\w(?:[ .\-_*]\w){3,}(?!\S)")
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

    text = (resources.files("bastion.text") / "common_words.txt").read_text(encoding="utf-8")
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
    text = _NOT_PLAIN.sub(lambda m: "" if invisible(m.group()) else m.group(), original)
    joined = _SPACED_RUN.sub(lambda m: re.sub(r"[ .\-_*]", "", m.group(0)), text)
    return canonical(joined).text if joined != text else None


def _tags_view(original: str, _: str) -> str | None:
    hidden = _TAG_CHARS.findall(original)  # the tag copies of printable ASCII
    return "".join(chr(ord(c) - TAG_START) for c in hidden) or None


_TAG_CHARS = re.compile(f"[{chr(TAG_START + 0x20)}-{chr(TAG_START + 0x7E)}]")


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
