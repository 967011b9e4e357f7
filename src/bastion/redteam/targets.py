"""Targets: anything that answers a conversation, behind one interface.

* :class:`ModelTarget` — a :class:`~bastion.models.base.ChatModel`: the packaged model, a local
  Hugging Face model, or any OpenAI-compatible server (a Bastion gateway included: it speaks
  the same API), with a system prompt of the target's own if it has one.
* :class:`GuardedTarget` — a guarded app in process: the guard's input rails on the user's
  turn (and its context rails on the documents of earlier tool turns), the model, then the
  output rails on the answer; a blocked request or answer returns the app's refusal message.

A target answers a batch of conversations (one reply each, in order); multi-turn attacks keep
the conversation and send it whole each turn, as chat APIs are used.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from bastion.errors import BastionError
from bastion.types import Conversation, Message

if TYPE_CHECKING:
    from bastion.guard.pipeline import Guard
    from bastion.models.base import ChatModel

BLOCKED_REPLY = "I can't help with that request."


class Target(Protocol):
    name: str

    def respond(self, conversations: Sequence[Sequence[Message]]) -> list[str]: ...


@dataclass
class ModelTarget:
    """A chat model as a target; greedy unless a temperature is given."""

    model: ChatModel
    max_new_tokens: int = 128
    temperature: float = 0.0
    system: str | None = None  # the app's system prompt, placed before an attack's own
    seed: int = 0
    name: str = ""

    def __post_init__(self) -> None:
        self.name = self.name or getattr(self.model, "name", "model")

    def respond(self, conversations: Sequence[Sequence[Message]]) -> list[str]:
        convs = [Conversation(tuple(self._with_system(list(c)))) for c in conversations]
        replies: list[str] = self.model.generate(
            convs,
            max_new_tokens=self.max_new_tokens,
            temperature=self.temperature,
            seed=self.seed if self.temperature > 0 else None,
        )
        return replies

    def _with_system(self, messages: list[Message]) -> list[Message]:
        if self.system is None:
            return messages
        if messages and messages[0].role == "system":  # the attack brings its own
            return [Message("system", f"{self.system}\n\n{messages[0].content}"), *messages[1:]]
        return [Message("system", self.system), *messages]


@dataclass
class GuardedTarget:
    """A guard in front of (and behind) a model, as an application would run them."""

    guard: Guard
    inner: ModelTarget
    blocked_reply: str = BLOCKED_REPLY
    name: str = ""
    blocked: list[str] = field(default_factory=list)  # "input"/"output" per blocked call

    def __post_init__(self) -> None:
        self.name = self.name or f"guarded:{self.inner.name}"

    def respond(self, conversations: Sequence[Sequence[Message]]) -> list[str]:
        replies: list[str | None] = [None] * len(conversations)
        passed: list[tuple[int, list[Message]]] = []
        for i, conversation in enumerate(conversations):
            messages = list(conversation)
            if not messages or messages[-1].role != "user":
                raise BastionError("a target answers a conversation that ends with a user turn")
            decision = self.guard.check_input(messages[-1].content)
            if decision.blocked:
                replies[i] = self.blocked_reply
                self.blocked.append("input")
                continue
            messages[-1] = Message("user", decision.text)
            passed.append((i, messages))
        if passed:
            answers = self.inner.respond([m for _, m in passed])
            for (i, messages), answer in zip(passed, answers, strict=True):
                out = self.guard.check_output(answer, prompt=messages[-1].content)
                if out.blocked:
                    self.blocked.append("output")
                replies[i] = self.blocked_reply if out.blocked else out.text
        return [r if r is not None else self.blocked_reply for r in replies]


def make_target(
    spec: str,
    *,
    max_new_tokens: int = 128,
    system: str | None = None,
    guard_policy: str | None = None,
    guarded: bool = False,
    batch_size: int = 64,
) -> Target:
    """A target from its command-line form: ``packaged`` (the default chat model), a packaged
    model's name or a local folder/GGUF file, or ``openai:MODEL@URL`` for any
    OpenAI-compatible server (a Bastion gateway included). ``guarded`` puts the guard
    (``guard_policy`` or the default policy) in front of it."""
    from bastion.models.spec import load_chat_model

    model = load_chat_model(spec, batch_size=batch_size)
    target = ModelTarget(model, max_new_tokens=max_new_tokens, system=system)
    if not guarded and guard_policy is None:
        return target
    from bastion.guard.pipeline import Guard

    guard = Guard.from_policy(guard_policy) if guard_policy else Guard.default()
    return GuardedTarget(guard, target)
