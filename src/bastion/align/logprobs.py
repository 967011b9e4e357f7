"""Completion log-probs for training: encoding, aggregation, and one concatenated forward pass.

Prompt tokens never count: only the completion's tokens (through its end-of-turn token) are
scored. Chosen and rejected completions go through the model together in one forward pass
(Rafailov et al.'s reference implementation does the same), which halves the number of
passes and keeps batch-norm-free models exactly equivalent to two separate passes.

Truncation policy, when a prompt and completion exceed ``max_length`` tokens: the **prompt
loses tokens from its start** (the end of a prompt, nearest the answer, matters most); if the
completion alone does not fit, it keeps its first ``max_length − 1`` tokens after the last
prompt token. A completion is never dropped silently; an empty one is an error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from bastion.errors import DataError
from bastion.models.scoring import completion_logps, split_prompt_completion
from bastion.types import Conversation, Text

Aggregation = str  # "sum" or "mean"


@dataclass(frozen=True, slots=True)
class Encoded:
    """Token ids of a prompt and of one completion that follows it."""

    prompt: tuple[int, ...]
    completion: tuple[int, ...]


def encode(
    tokenizer: Any,
    prompt: Text,
    completion: Text,
    *,
    eos_ids: Sequence[int],
    max_length: int | None = None,
    keep_template_suffix: bool = False,
) -> Encoded:
    """Encode a prompt/completion pair (conversational via the chat template, or raw text)."""
    text = completion if isinstance(completion, str) else " ".join(m.content for m in completion)
    if not text.strip():
        raise DataError("the completion is empty", field="completion")
    if isinstance(prompt, Conversation):
        reply = (
            completion
            if isinstance(completion, Conversation)
            else Conversation(()).append("assistant", completion)
        )
        head, tail = split_prompt_completion(
            tokenizer, prompt, reply, eos_ids, keep_template_suffix=keep_template_suffix
        )
    else:
        if not isinstance(completion, str):
            raise DataError("a text prompt needs a text completion", field="completion")
        head = tokenizer(prompt, add_special_tokens=True)["input_ids"]
        tail = tokenizer(completion, add_special_tokens=False)["input_ids"] + [eos_ids[0]]
    if not tail:
        raise DataError("the completion renders to no tokens", field="completion")
    if max_length is not None and len(head) + len(tail) > max_length:
        if max_length < 2:
            raise ValueError("max_length must be at least 2")
        if len(tail) >= max_length:
            head, tail = head[-1:], tail[: max_length - 1]
        else:
            head = head[len(head) + len(tail) - max_length :]
    return Encoded(tuple(head), tuple(tail))


def aggregate(logps: Tensor, mask: Tensor, aggregation: Aggregation) -> Tensor:
    """Sequence log-prob from per-token log-probs: their ``sum`` or their ``mean``."""
    total = (logps * mask).sum(-1)
    if aggregation == "sum":
        return total
    if aggregation == "mean":
        return total / mask.sum(-1).clamp(min=1)
    raise ValueError(f"aggregation must be 'sum' or 'mean', got {aggregation!r}")


def sequence_logps(
    model: Any, encoded: Sequence[Encoded], pad_id: int, aggregation: Aggregation
) -> Tensor:
    """One sequence log-prob per encoded pair."""
    logps, mask = completion_logps(
        model, [e.prompt for e in encoded], [e.completion for e in encoded], pad_id
    )
    return aggregate(logps, mask, aggregation)


@dataclass(frozen=True)
class PairLogps:
    chosen: Tensor  # (batch,) sequence log-probs
    rejected: Tensor
    chosen_tokens: Tensor  # (batch,) completion token counts
    rejected_tokens: Tensor


def concatenated_logps(
    model: Any,
    chosen: Sequence[Encoded],
    rejected: Sequence[Encoded],
    pad_id: int,
    aggregation: Aggregation,
) -> PairLogps:
    """Chosen and rejected sequence log-probs from a single forward pass over both."""
    if len(chosen) != len(rejected):
        raise ValueError("need as many rejected completions as chosen ones")
    both = [*chosen, *rejected]
    logps, mask = completion_logps(
        model, [e.prompt for e in both], [e.completion for e in both], pad_id
    )
    values, counts = aggregate(logps, mask, aggregation), mask.sum(-1)
    n = len(chosen)
    return PairLogps(values[:n], values[n:], counts[:n], counts[n:])
