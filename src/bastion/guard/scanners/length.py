"""Length limit: refuse texts too long to be a reasonable request (or to scan cheaply).

Characters are counted on the original text; tokens are estimated as words and punctuation
marks (``\\w+`` runs and single other symbols), which is close to a subword tokenizer's count
for English prose and never lower for it; either limit may be left out.
"""

from __future__ import annotations

import re
from typing import ClassVar

from bastion.guard.result import ScanResult
from bastion.guard.scanners.base import Scanner, register
from bastion.text.normalize import Normalized

_PIECE = re.compile(r"\w+|[^\w\s]")


@register
class LengthScanner(Scanner):
    """Flags a text longer than ``max_chars`` characters or ``max_tokens`` estimated tokens."""

    name: ClassVar[str] = "length"
    bounded: ClassVar[bool] = True
    stage: ClassVar[str] = "both"
    reads_original_only: ClassVar[bool] = True

    def __init__(
        self,
        *,
        max_chars: int | None = 32_000,
        max_tokens: int | None = None,
        threshold: float = 0.5,
    ) -> None:
        super().__init__(threshold=threshold)
        for key, value in (("max_chars", max_chars), ("max_tokens", max_tokens)):
            if value is not None and value < 1:
                raise ValueError(f"length: {key} must be at least 1, got {value}")
        self.max_chars, self.max_tokens = max_chars, max_tokens

    def scan_normalized(self, text: Normalized) -> ScanResult:
        chars = len(text.original)
        if self.max_chars is not None and chars > self.max_chars:
            return self.result(1.0, f"{chars} characters, limit {self.max_chars}")
        if self.max_tokens is not None:
            tokens = sum(1 for _ in _PIECE.finditer(text.original))
            if tokens > self.max_tokens:
                return self.result(1.0, f"~{tokens} tokens, limit {self.max_tokens}")
        return self.result(0.0)
