"""Core value types shared by every part of Bastion.

Small frozen dataclasses: a :class:`Message`, a :class:`Conversation`, a
:class:`PreferencePair` (the prompt/chosen/rejected rows DPO-style trainers read) and an
:class:`UnpairedExample` (the prompt/completion/label rows KTO-style trainers read). Users write
conversations as lists of ``{"role", "content"}`` dicts; :func:`as_conversation` accepts those,
a plain string (one user turn) or a :class:`Conversation`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias, get_args

from bastion.errors import DataError

Role = Literal["system", "user", "assistant", "tool"]
ROLES: tuple[str, ...] = get_args(Role)


@dataclass(frozen=True, slots=True)
class Message:
    """One turn of a conversation."""

    role: Role
    content: str

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise DataError(f"unknown role {self.role!r}; expected one of {', '.join(ROLES)}")
        if not isinstance(self.content, str):
            raise DataError(f"message content must be a string, got {type(self.content).__name__}")

    def to_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


@dataclass(frozen=True, slots=True)
class Conversation:
    """An ordered, immutable sequence of messages."""

    messages: tuple[Message, ...]

    def __iter__(self) -> Iterator[Message]:
        return iter(self.messages)

    def __len__(self) -> int:
        return len(self.messages)

    def __getitem__(self, index: int) -> Message:
        return self.messages[index]

    def __add__(self, other: Conversation) -> Conversation:
        return Conversation(self.messages + other.messages)

    def append(self, role: Role, content: str) -> Conversation:
        return Conversation((*self.messages, Message(role, content)))

    def to_dicts(self) -> list[dict[str, str]]:
        return [m.to_dict() for m in self.messages]

    @property
    def last_user(self) -> str:
        """The content of the last user turn ("" if there is none)."""
        for message in reversed(self.messages):
            if message.role == "user":
                return message.content
        return ""

    @classmethod
    def from_dicts(cls, items: Sequence[Mapping[str, Any]]) -> Conversation:
        messages = []
        for i, item in enumerate(items):
            if not isinstance(item, Mapping):
                raise DataError(f"message {i} must be an object with 'role' and 'content'")
            missing = [k for k in ("role", "content") if k not in item]
            if missing:
                raise DataError(f"message {i} lacks {' and '.join(repr(k) for k in missing)}")
            messages.append(Message(item["role"], item["content"]))
        return cls(tuple(messages))

    @classmethod
    def user(cls, content: str, *, system: str | None = None) -> Conversation:
        head = (Message("system", system),) if system is not None else ()
        return cls((*head, Message("user", content)))


ConversationLike: TypeAlias = Conversation | Sequence[Mapping[str, Any]] | str


def as_conversation(value: ConversationLike) -> Conversation:
    """Accept what users write: a Conversation, a list of role/content dicts, or a string."""
    if isinstance(value, Conversation):
        return value
    if isinstance(value, str):
        return Conversation.user(value)
    return Conversation.from_dicts(value)


Text: TypeAlias = str | Conversation
"""Standard (raw text) or conversational data, as in the TRL dataset formats."""


@dataclass(frozen=True)
class PreferencePair:
    """A prompt with a preferred (chosen) and a dispreferred (rejected) completion.

    In the *standard* format the three fields are strings; in the *conversational* format the
    prompt is a conversation and chosen/rejected are the assistant turn(s) that follow it.
    """

    prompt: Text
    chosen: Text
    rejected: Text
    id: str | None = None
    meta: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        kinds = {isinstance(x, str) for x in (self.prompt, self.chosen, self.rejected)}
        if len(kinds) != 1:
            raise DataError("prompt, chosen and rejected must all be strings or all conversations")
        if _is_empty(self.chosen):
            raise DataError("chosen is empty", field="chosen")
        if _is_empty(self.rejected):
            raise DataError("rejected is empty", field="rejected")
        if self.chosen == self.rejected:
            raise DataError("chosen and rejected are identical; the pair teaches nothing")

    @property
    def conversational(self) -> bool:
        return isinstance(self.prompt, Conversation)


@dataclass(frozen=True)
class UnpairedExample:
    """A prompt and one completion labelled desirable (True) or undesirable (False)."""

    prompt: Text
    completion: Text
    label: bool
    id: str | None = None
    meta: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.prompt, str) != isinstance(self.completion, str):
            raise DataError("prompt and completion must both be strings or both conversations")
        if not isinstance(self.label, bool):
            raise DataError(f"label must be true or false, got {self.label!r}", field="label")
        if _is_empty(self.completion):
            raise DataError("completion is empty", field="completion")


def _is_empty(value: Text) -> bool:
    if isinstance(value, str):
        return not value.strip()
    return all(not m.content.strip() for m in value.messages)


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a judge decided about one response: a yes/no label, a score in [0, 1], and why."""

    judge: str
    label: bool
    score: float
    reason: str = ""

    def __post_init__(self) -> None:
        if not 0.0 <= self.score <= 1.0:
            raise ValueError(f"{self.judge}: verdict score must be in [0, 1], got {self.score}")
