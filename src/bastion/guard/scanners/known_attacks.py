"""Known-attack similarity: is this input close to an attack seen before?

Embeds the canonical text and its decoded views (not ROT13 or reversed: an embedding of noise
is noise) and takes the highest cosine similarity to the :class:`KnownAttackIndex`. The index
lives in a folder (default: the cache, per embedder); it is seeded from the pinned corpora the
first time and saved, and :meth:`KnownAttackScanner.add` grows it at runtime. Embedding costs
milliseconds per text on a CPU (MiniLM), so this scanner is not in the default policy.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from bastion.cache import cache_dir
from bastion.guard.result import ScanResult
from bastion.guard.scanners.base import Scanner, register
from bastion.guard.similarity import KnownAttackIndex
from bastion.models.base import Embedder
from bastion.text.normalize import Normalized

SKIPPED_VIEWS = ("rot13", "reversed")


@register
class KnownAttackScanner(Scanner):
    """Flags an input whose embedding is within ``threshold`` cosine of a known attack."""

    name: ClassVar[str] = "known_attacks"
    stage: ClassVar[str] = "input"

    def __init__(
        self,
        *,
        embedder: str | Embedder = "all-minilm-l6-v2",
        index: str | Path | None = None,
        threshold: float = 0.9,
    ) -> None:
        super().__init__(threshold=threshold)
        if isinstance(embedder, str):
            from bastion.models.packaged import load_embedder

            embedder = load_embedder(embedder)
        self.folder = (
            Path(index) if index else cache_dir() / "guard" / "known-attacks" / embedder.name
        )
        if (self.folder / "items.jsonl").is_file():
            self.index = KnownAttackIndex.load(self.folder, embedder)
        else:
            self.index = KnownAttackIndex.seed(embedder)
            self.index.save(self.folder)

    def add(self, texts: Sequence[str], source: str) -> int:
        """Add attacks (from review, the red team, the loop) and save the index."""
        added = self.index.add(texts, source)
        if added:
            self.index.save(self.folder)
        return added

    def scan_normalized(self, text: Normalized) -> ScanResult:
        views = [v for v in text.all_views() if v.name not in SKIPPED_VIEWS and v.text.strip()]
        if not views:
            return self.result(0.0)
        matches = self.index.nearest([v.text for v in views])
        best = max(
            ((m[0], v.name) for m, v in zip(matches, views, strict=True) if m),
            key=lambda pair: pair[0].similarity,
            default=None,
        )
        if best is None:
            return self.result(0.0)
        match, view = best
        score = min(max(match.similarity, 0.0), 1.0)
        reason = f"{score:.2f} similar to a known attack from {match.source} ({view})"
        return self.result(score, reason if score >= self.threshold else "", view=view)
