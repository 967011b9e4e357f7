"""The scanner contract and the registry every scanner is found through.

A scanner is one small class with one ``scan(normalized) -> ScanResult`` method. It is
registered by name with :func:`register` (a class decorator), so the policy file, the CLI and
the contract test find every scanner the same way and none can be forgotten by a hand-kept
list.
"""

from __future__ import annotations

import abc
import time
from typing import ClassVar, TypeVar

from bastion.guard.result import ScanResult
from bastion.text.normalize import Normalized, normalize

SCANNERS: dict[str, type[Scanner]] = {}
S = TypeVar("S", bound="type[Scanner]")


def register(cls: S) -> S:
    """Add a scanner class to :data:`SCANNERS` under its ``name``."""
    if cls.name in SCANNERS:
        raise ValueError(f"scanner name {cls.name!r} is registered twice")
    SCANNERS[cls.name] = cls
    return cls


class Scanner(abc.ABC):
    """One check on a text. ``threshold``: ``flagged = score >= threshold``."""

    name: ClassVar[str]
    stage: ClassVar[str] = "input"  # "input", "output" or "both"
    reads_original_only: ClassVar[bool] = False  # True: runs before (and without) normalizing
    # True: pure CPU work in time linear in the text, no I/O, no lock. The pipeline runs such a
    # scanner in the caller's thread: under the GIL a thread hand-off costs more than the scan.
    # False (the default, for any scanner that calls a model, a server or a file): it runs in a
    # worker thread, concurrently with the others, and is abandoned at its time budget.
    bounded: ClassVar[bool] = False
    # the calibrated score from which a text deserves a person's look (``review: true`` in a
    # policy), for classifiers that ship one
    review_threshold: float | None = None

    def is_bounded(self) -> bool:
        """``bounded``, for this instance (a scanner may wait only in some settings)."""
        return self.bounded

    def __init__(self, *, threshold: float = 0.5) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"{self.name}: threshold must be in [0, 1], got {threshold}")
        self.threshold = threshold

    @abc.abstractmethod
    def scan_normalized(self, text: Normalized) -> ScanResult:
        """Scan an already normalized text (the pipeline normalizes once for all scanners)."""

    def scan(self, text: str | Normalized) -> ScanResult:
        """Scan a text, normalizing it first if needed; the result carries the time taken."""
        start = time.perf_counter()
        result = self.scan_normalized(normalize(text) if isinstance(text, str) else text)
        elapsed = (time.perf_counter() - start) * 1000
        return ScanResult(
            scanner=result.scanner,
            score=result.score,
            flagged=result.flagged,
            reason=result.reason,
            spans=result.spans,
            view=result.view,
            sanitized=result.sanitized,
            elapsed_ms=elapsed,
            meta=result.meta,
            failed=result.failed,
        )

    def result(self, score: float, reason: str = "", **fields: object) -> ScanResult:
        """A result with ``flagged`` decided by this scanner's threshold."""
        return ScanResult(
            scanner=self.name,
            score=score,
            flagged=score >= self.threshold,
            reason=reason,
            **fields,  # type: ignore[arg-type]
        )
