"""The two protocols every part of Bastion talks to: :class:`ChatModel` and :class:`Embedder`.

Anything that answers conversations (a local transformers model, an OpenAI-compatible server,
a scripted fake) is a ``ChatModel``; anything that turns texts into unit vectors is an
``Embedder``. Code that needs a model takes the protocol, so backends swap without changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from bastion.types import ConversationLike


@runtime_checkable
class ChatModel(Protocol):
    """Answers a batch of conversations; one reply string per conversation, in order."""

    name: str

    def generate(
        self,
        conversations: Sequence[ConversationLike],
        *,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int | None = None,
        stop: Sequence[str] | None = None,
    ) -> list[str]:
        """``temperature == 0`` is greedy decoding; a ``seed`` makes sampling repeatable."""
        ...


@dataclass(frozen=True)
class CompletionLogprobs:
    """Log-probabilities of a completion's tokens given its prompt (prompt tokens excluded)."""

    token_ids: tuple[int, ...]
    logprobs: tuple[float, ...]

    @property
    def total(self) -> float:
        return float(sum(self.logprobs))

    @property
    def mean(self) -> float:
        return self.total / max(len(self.logprobs), 1)


@runtime_checkable
class ScoringModel(Protocol):
    """A chat model that can also score completions (needed by alignment and judges)."""

    def logprobs(
        self, conversations: Sequence[ConversationLike], completions: Sequence[str]
    ) -> list[CompletionLogprobs]: ...


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalized float32 vectors of a fixed dimension."""

    name: str
    dim: int

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Shape ``(len(texts), dim)``; rows have unit norm."""
        ...


def truncate_at_stop(text: str, stop: Sequence[str] | None) -> str:
    """Cut a reply at the first occurrence of any stop string (the stop string excluded)."""
    if not stop:
        return text
    cut = min((i for s in stop if s and (i := text.find(s)) >= 0), default=len(text))
    return text[:cut]
