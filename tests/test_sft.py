from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from bastion import Conversation, DataError
from bastion.align.sft import SftTrainer, encode_conversation, sft_loss
from bastion.align.train import TrainConfig
from bastion.models.hf import end_of_turn_ids
from helpers import TOKENIZER, tiny_lm

CONVERSATION = (
    Conversation.user("hi", system="be brief")
    .append("assistant", "hello")
    .append("user", "bread?")
    .append("assistant", "flour and water")
)


def test_only_assistant_tokens_are_targets() -> None:
    m = tiny_lm()
    example = encode_conversation(TOKENIZER, CONVERSATION, end_of_turn_ids(m, TOKENIZER), 512)
    learned = [t for t, keep in zip(example.ids, example.targets, strict=True) if keep]
    assert TOKENIZER.decode(learned) == "hello<|im_end|>flour and water<|im_end|>"
    full = TOKENIZER.apply_chat_template(CONVERSATION.to_dicts(), tokenize=False)
    assert full.startswith(TOKENIZER.decode(list(example.ids)))


def test_loss_is_the_mean_nll_of_assistant_tokens() -> None:
    m = tiny_lm()
    eos = end_of_turn_ids(m, TOKENIZER)
    examples = [
        encode_conversation(TOKENIZER, c, eos, 512)
        for c in (
            CONVERSATION,
            Conversation.user("a much longer question here").append("assistant", "Paris"),
        )
    ]
    nll, count = 0.0, 0
    with torch.no_grad():
        for e in examples:
            logits = m(torch.tensor([list(e.ids)])).logits[0, :-1].double()
            targets = torch.tensor(e.ids[1:])
            keep = torch.tensor(e.targets[1:])
            nll += F.cross_entropy(logits[keep], targets[keep], reduction="sum").item()
            count += int(keep.sum())
        packed = sft_loss(m, examples, TOKENIZER.pad_token_id).item()
        padded = sft_loss(m, examples, TOKENIZER.pad_token_id, packing=False).item()
    assert packed == pytest.approx(nll / count, abs=1e-5)
    assert padded == pytest.approx(nll / count, abs=1e-5)


def test_packed_and_padded_batches_give_the_same_gradient() -> None:
    eos = end_of_turn_ids(tiny_lm(), TOKENIZER)
    examples = [
        encode_conversation(TOKENIZER, c, eos, 512)
        for c in (CONVERSATION, Conversation.user("why?").append("assistant", "because"))
    ]
    grads = []
    for packing in (True, False):
        m = tiny_lm(seed=5)
        sft_loss(m, examples, TOKENIZER.pad_token_id, packing=packing).backward()
        grads.append(torch.cat([p.grad.flatten() for p in m.parameters()]))
    torch.testing.assert_close(grads[0], grads[1], atol=1e-5, rtol=1e-4)


def test_training_lowers_the_loss(tmp_path: Path) -> None:
    data = [CONVERSATION] * 8
    trainer = SftTrainer(
        tiny_lm(),
        TOKENIZER,
        data,
        TrainConfig(output_dir=tmp_path, batch_size=4, lr=1e-2, epochs=5),
    )
    result = trainer.fit(progress=False)
    assert result.history[-1]["loss"] < 0.5 * result.history[0]["loss"]


def test_conversation_without_assistant_turn(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="conversation 1: the conversation has no assistant"):
        SftTrainer(
            tiny_lm(),
            TOKENIZER,
            [CONVERSATION, Conversation.user("only a question")],
            TrainConfig(output_dir=tmp_path),
        )
