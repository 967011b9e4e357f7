"""In-process fakes for tests (ours and users'): no weights, no network, fully deterministic."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from bastion.models.base import truncate_at_stop
from bastion.types import Conversation, ConversationLike, as_conversation


class ScriptedChatModel:
    """Replies from a script: the first rule whose regex matches the last user turn wins.

    >>> model = ScriptedChatModel({r"capital of France": "Paris."}, default="I don't know.")
    >>> model.generate(["What is the capital of France?"])
    ['Paris.']

    Every conversation received is kept in :attr:`calls`, so tests can assert what was sent.
    """

    def __init__(
        self,
        rules: dict[str, str] | Sequence[tuple[str, str]],
        *,
        default: str = "",
        name: str = "scripted",
    ) -> None:
        items = rules.items() if isinstance(rules, dict) else rules
        self.rules = [(re.compile(pattern, re.IGNORECASE), reply) for pattern, reply in items]
        self.default = default
        self.name = name
        self.calls: list[Conversation] = []

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
        replies = []
        for item in conversations:
            conversation = as_conversation(item)
            self.calls.append(conversation)
            text = conversation.last_user
            reply = next((r for p, r in self.rules if p.search(text)), self.default)
            replies.append(truncate_at_stop(reply, stop))
        return replies


class EchoChatModel:
    """Replies with the last user turn, optionally prefixed."""

    def __init__(self, prefix: str = "", *, name: str = "echo") -> None:
        self.prefix = prefix
        self.name = name

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
        return [
            truncate_at_stop(self.prefix + as_conversation(c).last_user, stop)
            for c in conversations
        ]


class FakeEmbedder:
    """Hashed bag of words (plus character trigrams): texts sharing words point the same way.

    Deterministic across processes and machines (it uses sha256, not Python's ``hash``).
    """

    def __init__(self, dim: int = 64, *, name: str = "fake-embedder") -> None:
        self.dim = dim
        self.name = name

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            words = re.findall(r"\w+", text.lower())
            grams = [w[i : i + 3] for w in words for i in range(max(len(w) - 2, 1))]
            for feature in words + grams:
                digest = hashlib.sha256(feature.encode()).digest()
                sign = 1.0 if digest[4] & 1 else -1.0
                out[row, int.from_bytes(digest[:4], "little") % self.dim] += sign
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return (out / np.where(norms == 0, 1.0, norms)).astype(np.float32)
