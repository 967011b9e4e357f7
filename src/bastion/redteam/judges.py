"""Judges decide what a response did. Each returns a :class:`~bastion.types.Verdict`."""

from __future__ import annotations

from bastion.guard.scanners.refusal import REFUSAL_PATTERNS, refusal_phrase
from bastion.types import Verdict

__all__ = ["REFUSAL_PATTERNS", "RefusalPhraseJudge"]


class RefusalPhraseJudge:
    """Flags a reply as a refusal when a refusal phrase appears in its opening characters
    (the phrase list is the guard's, :mod:`bastion.guard.scanners.refusal`)."""

    name = "refusal-phrase"

    def __init__(self, window: int = 240) -> None:
        self.window = window

    def judge(self, response: str) -> Verdict:
        phrase = refusal_phrase(response, self.window)
        if phrase is None:
            return Verdict(self.name, False, 0.0, "no refusal phrase in the opening")
        return Verdict(self.name, True, 1.0, f"refusal phrase: {phrase!r}")
