"""An index of known attacks, searched by embedding similarity; attacks can join at runtime.

The index holds L2-normalized embeddings (so a dot product is the cosine similarity) with a
source and a short id for each, saved as ``vectors.safetensors`` + ``items.jsonl`` in a folder;
the texts themselves are not stored (many are harmful by design), only their sha256. It is
seeded from the jailbreak/injection classifier's training positives
(``KnownAttackIndex.seed``) and grows with :meth:`add` — from the review queue, the red team or
the closed loop — with duplicates (same text digest) skipped. Searching is one matrix-vector
product: exact, and fast enough for tens of thousands of entries on a CPU.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from bastion.errors import ConfigError
from bastion.models.base import Embedder


@dataclass(frozen=True)
class Match:
    similarity: float
    source: str
    digest: str


def digest(text: str) -> str:
    return hashlib.sha256(" ".join(text.split()).casefold().encode()).hexdigest()[:24]


class KnownAttackIndex:
    """Embeddings of known attacks; :meth:`nearest` gives the most similar ones."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder
        self.vectors: npt.NDArray[np.float32] = np.zeros((0, embedder.dim), dtype=np.float32)
        self.sources: list[str] = []
        self.digests: list[str] = []

    def __len__(self) -> int:
        return len(self.digests)

    def add(self, texts: Sequence[str], source: str) -> int:
        """Embed and add new attacks (already known texts are skipped); returns how many."""
        known = set(self.digests)
        fresh = []
        for text in texts:
            key = digest(text)
            if text.strip() and key not in known:
                known.add(key)
                fresh.append((text, key))
        if not fresh:
            return 0
        vectors = self.embedder.embed([t for t, _ in fresh]).astype(np.float32)
        self.vectors = np.concatenate([self.vectors, vectors])
        self.sources += [source] * len(fresh)
        self.digests += [k for _, k in fresh]
        return len(fresh)

    def nearest(self, texts: Sequence[str], k: int = 1) -> list[list[Match]]:
        """The ``k`` most similar known attacks for each text (empty lists when the index is)."""
        if not len(self) or not texts:
            return [[] for _ in texts]
        queries = self.embedder.embed(list(texts)).astype(np.float32)
        similarity = queries @ self.vectors.T
        out = []
        for row in similarity:
            best = np.argsort(-row)[:k]
            out.append([Match(float(row[i]), self.sources[i], self.digests[i]) for i in best])
        return out

    def save(self, folder: Path) -> None:
        """Write the index atomically (a reader never sees half of it)."""
        from safetensors.numpy import save_file

        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".vectors.{os.getpid()}.tmp"
        save_file({"vectors": self.vectors}, str(tmp), metadata={"embedder": self.embedder.name})
        items = folder / f".items.{os.getpid()}.tmp"
        items.write_text(
            "".join(
                json.dumps({"source": s, "sha256": d}) + "\n"
                for s, d in zip(self.sources, self.digests, strict=True)
            )
        )
        tmp.replace(folder / "vectors.safetensors")
        items.replace(folder / "items.jsonl")

    @classmethod
    def load(cls, folder: Path, embedder: Embedder) -> KnownAttackIndex:
        from safetensors import safe_open
        from safetensors.numpy import load_file

        vectors_path, items_path = folder / "vectors.safetensors", folder / "items.jsonl"
        if not vectors_path.is_file() or not items_path.is_file():
            raise ConfigError(f"{folder}: no known-attack index here (build one: add and save)")
        with safe_open(str(vectors_path), framework="numpy") as handle:
            built_with = (handle.metadata() or {}).get("embedder")
        if built_with != embedder.name:
            raise ConfigError(
                f"{folder}: built with embedder {built_with!r}, not {embedder.name!r}"
            )
        index = cls(embedder)
        index.vectors = load_file(str(vectors_path))["vectors"]
        for line in items_path.read_text().splitlines():
            row = json.loads(line)
            index.sources.append(row["source"])
            index.digests.append(row["sha256"])
        if len(index.digests) != len(index.vectors):
            raise ConfigError(f"{folder}: items.jsonl and vectors.safetensors disagree")
        return index

    @classmethod
    def seed(cls, embedder: Embedder) -> KnownAttackIndex:
        """An index of the injection classifier's training positives (pinned corpora and
        written injections)."""
        from bastion.guard.training.data import known_attacks

        index = cls(embedder)
        positives = known_attacks()
        for source in sorted({e.source for e in positives}):
            index.add([e.text for e in positives if e.source == source], source)
        return index
