"""Refusal and system-prompt leak detection on answers.

``refusal``: a refusal phrase (apologies, "I can't help with", "as an AI language model", …)
in the answer's opening characters, where refusals sit — for over-refusal monitoring, usually
with the ``log`` or ``review`` action. The phrase list is the judges'
(:mod:`bastion.judges.phrases`), so the rail and :class:`~bastion.judges.RefusalPhraseJudge`
agree.

``leak``: the answer repeats the system prompt — a canary string planted in it (folded match),
or a run of ``min_words`` consecutive words of it: the system prompt configured in the policy,
and the one passed with the request (``guard.check_output(answer, system=...)``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from bastion.guard.result import ScanResult, Span
from bastion.guard.scanners.base import Scanner, register
from bastion.judges.phrases import REFUSAL, REFUSAL_PATTERNS, refusal_phrase
from bastion.text.normalize import Normalized, folded

__all__ = ["REFUSAL", "REFUSAL_PATTERNS", "LeakScanner", "RefusalScanner", "refusal_phrase"]


@register
class RefusalScanner(Scanner):
    """Flags an answer that opens with a refusal."""

    name: ClassVar[str] = "refusal"
    bounded: ClassVar[bool] = True
    stage: ClassVar[str] = "output"

    def __init__(self, *, window: int = 240, threshold: float = 0.5) -> None:
        super().__init__(threshold=threshold)
        self.window = window

    def scan_normalized(self, text: Normalized) -> ScanResult:
        phrase = refusal_phrase(text.canonical.text, self.window)
        if phrase is None:
            return self.result(0.0)
        return self.result(1.0, f"refusal phrase: {phrase!r}")


@register
class LeakScanner(Scanner):
    """Flags an answer that contains a canary or a long verbatim run of the system prompt."""

    name: ClassVar[str] = "leak"
    bounded: ClassVar[bool] = True
    stage: ClassVar[str] = "output"

    def __init__(
        self,
        *,
        canaries: Iterable[str] = (),
        system_prompt: str | None = None,
        min_words: int = 8,
        threshold: float = 0.5,
    ) -> None:
        super().__init__(threshold=threshold)
        if min_words < 2:
            raise ValueError(f"leak: min_words must be at least 2, got {min_words}")
        self.canaries = [c for c in (folded(c).text.strip() for c in canaries) if c]
        self.min_words = min_words
        self.runs = self._runs(system_prompt)

    def _runs(self, system_prompt: str | None) -> set[tuple[str, ...]]:
        """Every run of ``min_words`` consecutive words of a system prompt, folded."""
        words = folded(system_prompt).text.split() if system_prompt else []
        n = self.min_words
        return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}

    def scan_normalized(self, text: Normalized) -> ScanResult:
        answer = text.folded
        for canary in self.canaries:
            at = answer.text.find(canary)
            if at >= 0:
                span = Span("canary", *answer.span(at, at + len(canary)))
                return self.result(1.0, "a canary of the system prompt", spans=(span,))
        runs = self.runs | self._runs(text.context.get("system"))
        if runs:
            words = answer.text.split()
            n = self.min_words
            for i in range(len(words) - n + 1):
                if tuple(words[i : i + n]) in runs:
                    return self.result(1.0, f"{n}+ words verbatim from the system prompt")
        return self.result(0.0)
