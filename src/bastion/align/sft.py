"""Supervised fine-tuning on conversations, with the loss on assistant tokens only.

Each conversation is rendered with the chat template; the tokens of every assistant turn
(through its end-of-turn token) are the targets, everything else (system, user, tool turns and
the template's markup) is context only. The loss is the mean negative log-likelihood over all
assistant tokens of the batch, so long answers weigh as much per token as short ones.

With ``packing`` (the default, for models :mod:`bastion.models.packing` supports) a
micro-batch's conversations are laid side by side in one row without padding, each attending
only to itself: the same loss as a padded batch, with no work spent on padding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from bastion.align.train import LoopTrainer, TrainConfig
from bastion.errors import DataError
from bastion.models.hf import end_of_turn_ids
from bastion.models.packing import (
    base_model,
    can_pack,
    pack_sequences,
    packed_hidden,
    token_logps,
)
from bastion.models.scoring import left_pad, split_prompt_completion
from bastion.types import Conversation


@dataclass(frozen=True, slots=True)
class SftExample:
    ids: tuple[int, ...]
    targets: tuple[bool, ...]  # True where the token is an assistant token to learn


def encode_conversation(
    tokenizer: Any, conversation: Conversation, eos_ids: Sequence[int], max_length: int
) -> SftExample:
    """Token ids of a whole conversation and the mask of its assistant tokens.

    Truncation keeps the start of the conversation (the system prompt and the first turns) and
    cuts the end; a conversation left without any assistant token is an error.
    """
    ids: list[int] = []
    targets: list[bool] = []
    for index, message in enumerate(conversation.messages):
        if message.role != "assistant":
            continue
        head, tail = split_prompt_completion(
            tokenizer,
            Conversation(conversation.messages[:index]),
            Conversation((message,)),
            eos_ids,
        )
        if head[: len(ids)] != ids:
            raise DataError("the chat template renders earlier turns differently later on")
        targets += [False] * (len(head) - len(ids)) + [True] * len(tail)
        ids = head + tail
    if not any(targets):
        raise DataError("the conversation has no assistant turn to learn from")
    return SftExample(tuple(ids[:max_length]), tuple(targets[:max_length]))


def sft_loss(
    model: Any, examples: Sequence[SftExample], pad_id: int, *, packing: bool = True
) -> Tensor:
    """Mean NLL over the assistant tokens of a batch, in one forward pass (packed when the
    model allows it, else left-padded)."""
    device = next(model.parameters()).device
    if packing and can_pack(model):
        predictors: list[int] = []
        targets: list[int] = []
        offset = 0
        for e in examples:  # position t predicts token t + 1 of the same conversation
            for t in range(1, len(e.ids)):
                if e.targets[t]:
                    predictors.append(offset + t - 1)
                    targets.append(e.ids[t])
            offset += len(e.ids)
        packed = pack_sequences([e.ids for e in examples], device)
        hidden = packed_hidden(model, packed).index_select(
            0, torch.tensor(predictors, device=device)
        )
        head = base_model(model).get_output_embeddings()
        return -token_logps(head, hidden, torch.tensor(targets, device=device)).mean()
    ids, mask, logits = padded_forward(model, examples, pad_id)
    # position t predicts token t+1: score only targets that are assistant tokens
    shifted_logits, shifted_ids, shifted_mask = logits[:, :-1], ids[:, 1:], mask[:, 1:]
    return F.cross_entropy(shifted_logits[shifted_mask].float(), shifted_ids[shifted_mask])


def padded_forward(
    model: Any, examples: Sequence[SftExample], pad_id: int
) -> tuple[Tensor, Tensor, Tensor]:
    """One left-padded forward pass: the token ids, the mask of assistant tokens, the logits."""
    device = next(model.parameters()).device
    ids, attention = left_pad([e.ids for e in examples], pad_id, device)
    width = ids.shape[1]
    mask = torch.zeros_like(ids, dtype=torch.bool)
    for row, example in enumerate(examples):
        mask[row, width - len(example.ids) :] = torch.tensor(example.targets)
    positions = (attention.cumsum(-1) - 1).clamp(min=0)
    logits = model(input_ids=ids, attention_mask=attention, position_ids=positions).logits
    return ids, mask, logits


class SftTrainer(LoopTrainer):
    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        conversations: Sequence[Conversation],
        train: TrainConfig,
        *,
        max_length: int = 1024,
        packing: bool = True,
    ) -> None:
        self.model, self.tokenizer, self.train_config = model, tokenizer, train
        self.packing = packing
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        eos_ids = end_of_turn_ids(model, tokenizer)
        self.examples = []
        for i, conversation in enumerate(conversations):
            try:
                self.examples.append(
                    encode_conversation(tokenizer, conversation, eos_ids, max_length)
                )
            except DataError as exc:
                raise exc.at(f"conversation {i}") from None

    def example_count(self) -> int:
        return len(self.examples)

    def step(self, model: Any, batch: Sequence[int]) -> tuple[Tensor, dict[str, float]]:
        examples = [self.examples[i] for i in batch]
        loss = sft_loss(model, examples, self.pad_id, packing=self.packing)
        return loss, {"tokens": float(sum(sum(e.targets) for e in examples))}
