"""What the guard decides: one :class:`Decision` per text or conversation, one
:class:`ContextDecision` per batch of documents, and the order of strictness of the actions.

Apart from :mod:`bastion.guard.pipeline` so that the pipeline and
:mod:`bastion.guard.conversation` can both build decisions without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bastion.guard.result import ScanResult
from bastion.guard.vault import Vault
from bastion.types import Conversation

SEVERITY = {"allow": 0, "log": 1, "mask": 2, "review": 3, "block": 4}


@dataclass(frozen=True)
class Decision:
    """What to do with a text, why, and every scanner's result."""

    action: str  # allow | log | mask | review | block
    text: str  # the text to pass on: masked when action is "mask", else the input
    results: tuple[ScanResult, ...]
    stage: str
    elapsed_ms: float
    # the masked values behind the text's placeholders; never in to_dict() (see vault.py)
    vault: Vault = field(default_factory=Vault, repr=False, compare=False)
    # for a conversation (Guard.check_input on messages): every message as it is to be passed
    # on, masked and cleaned; ``text`` is its last user message
    messages: Conversation | None = None

    @property
    def blocked(self) -> bool:
        return self.action == "block"

    @property
    def flagged(self) -> tuple[ScanResult, ...]:
        return tuple(r for r in self.results if r.flagged)

    def to_dict(self) -> dict[str, Any]:
        messages = {} if self.messages is None else {"messages": self.messages.to_dicts()}
        return {
            **messages,
            "stage": self.stage,
            "action": self.action,
            "blocked": self.blocked,
            "text": self.text,
            "elapsed_ms": round(self.elapsed_ms, 3),
            "results": [
                {
                    "scanner": r.scanner,
                    "score": r.score,
                    "flagged": r.flagged,
                    "reason": r.reason,
                    "view": r.view,
                    "elapsed_ms": round(r.elapsed_ms, 3),
                    **{
                        k: r.meta[k]
                        for k in ("message", "role", "stage", "review", "part", "capped")
                        if k in r.meta
                    },
                    "spans": [
                        {"label": s.label, "start": s.start, "end": s.end, "view": s.view}
                        for s in r.spans
                    ],
                }
                for r in self.results
            ],
        }


@dataclass(frozen=True)
class ContextDecision:
    """Documents after the context rails: cleaned texts and what was removed where."""

    documents: tuple[str, ...]
    removed: tuple[tuple[int, int, ScanResult], ...]  # (document, passage, the result)
    elapsed_ms: float

    @property
    def flagged(self) -> bool:
        return bool(self.removed)
