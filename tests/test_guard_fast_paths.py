"""The guard's fast paths give exactly what their plain definitions give.

Each fast path (a byte translation instead of a regex, a prefilter before a costly regex, a
sort instead of ``np.unique``) is checked against the definition it replaces, on seeded random
strings drawn from the characters that matter to it, and on the edge cases by hand.
"""

from __future__ import annotations

import importlib
import random
import re

import numpy as np
import pytest

from bastion.guard.toxicity import _encoded_words
from bastion.text.fold import folded
from bastion.text.ngrams import _counted, features
from bastion.text.views import _uncommon_words

norm = importlib.import_module("bastion.text.views")  # the decoded views and their patterns

ALPHABET = "abcdefxyzABCDEFXYZ0123456789 :\\!@$|+€£_-.,'\t\nçé\u00a0\u212a"


def random_texts(n: int, seed: int = 0, length: int = 60) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, length))) for _ in range(n)]


def test_counted_is_numpys_unique_with_counts() -> None:
    rng = np.random.default_rng(0)
    for size in (1, 2, 7, 500):
        values = rng.integers(0, 50, size).astype(np.int32)
        index, counts = _counted(values)
        want_index, want_counts = np.unique(values, return_counts=True)
        assert index.tolist() == want_index.tolist()
        assert counts.tolist() == want_counts.tolist()


def test_features_match_their_definition() -> None:
    """Word hashes from the folded text's bytes, buckets by masking, sublinear counts looked up:
    the same buckets and values as CRC-32 of each encoded word and pair, ``% DIM`` and ``1 +
    log c`` (a text of one repeated word reaches counts past the lookup table)."""
    import itertools
    import zlib

    from bastion.text.ngrams import _PAIR_PREFIX, _WORD_PREFIX, DIM, _byte_ngrams

    def definition(text: str) -> tuple[list[int], list[float]]:
        bare = folded(text).text[:4000]
        words = bare.split()
        hashes = [zlib.crc32(w.encode(), _WORD_PREFIX) % DIM for w in words]
        hashes += [
            zlib.crc32(" ".join(p).encode(), _PAIR_PREFIX) % DIM for p in itertools.pairwise(words)
        ]
        grams = _byte_ngrams(f" {bare} ".encode()).tolist()
        index, counts = np.unique(np.array(grams + hashes, dtype=np.int64), return_counts=True)
        values = 1.0 + np.log(counts)
        return index.tolist(), (values / np.sqrt((values * values).sum())).tolist()

    for text in [*random_texts(200, seed=1), "a " * 4999, "Ünïcödé wörds ünd mörë", "x"]:
        index, values = features(text)
        assert (index.tolist(), values.tolist()) == definition(text), text


def test_encoded_words_are_the_word_runs() -> None:
    for text in [*random_texts(300, seed=2), "", "under_score x\x1fy", "naïve café"]:
        assert _encoded_words(text) == [w.encode() for w in re.findall(r"\w+", text)], text


def test_uncommon_words_are_the_letter_runs_not_common() -> None:
    common = norm._common_words()

    def definition(text: str) -> set[str]:
        runs = set(re.findall(r"[a-z]+", text.lower()))
        return {w for w in runs if w not in common and len(w) > 1}

    texts = [*random_texts(300, seed=3), "Qrpbqr guvf zrffntr", "the and", "ÇA VA, Zürich"]
    for text in texts:
        assert set(_uncommon_words(text)) == definition(text), text


@pytest.mark.parametrize(
    "text",
    [
        "deadbeefcafebabe",  # the shortest run: 16 digits
        "say deadbeefcafebabe!",
        "de ad be ef ca fe ba be",  # with separators
        "0xde 0xad 0xbe 0xef 0xca 0xfe 0xba 0xbe",
        "\\x68\\x6f\\x77\\x20\\x74\\x6f\\x20\\x6d",
        "686f7720746f206d616b65",
    ],
)
def test_hex_prefilter_never_hides_a_run(text: str) -> None:
    assert bool(norm._HEX_RUN.search(text)) <= bool(norm._HEX_CANDIDATE.search(text))


def test_hex_prefilter_on_random_text() -> None:
    rng = random.Random(4)
    pieces = ["de", "ad", "0x", "\\x", " ", ":", "g", "7f", "a"]
    for _ in range(2000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 30)))
        if norm._HEX_RUN.search(text):
            assert norm._HEX_CANDIDATE.search(text), text


def test_leet_pair_is_a_letter_beside_a_leet_character() -> None:
    definition = re.compile(r"[A-Za-z][0-9@$!|+€£]|[0-9@$!|+€£][A-Za-z]")
    for text in [*random_texts(500, seed=5, length=12), "h3llo", "3x", "x3", "33 xx", "!"]:
        assert bool(norm._LEET_PAIR.search(text)) == bool(definition.search(text)), text
