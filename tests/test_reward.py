from pathlib import Path
from typing import Any

import pytest
import torch

from bastion import Conversation, PreferencePair
from bastion.align.logprobs import Encoded
from bastion.align.reward import RewardModel, RewardTrainer, length_bias
from bastion.align.train import TrainConfig
from bastion.models.scoring import left_pad
from helpers import TOKENIZER, tiny_lm


def pairs(n: int) -> list[PreferencePair]:
    reply = Conversation(())
    return [
        PreferencePair(
            Conversation.user(f"question {i}"),
            reply.append("assistant", "Sure, bread."),
            reply.append("assistant", "Sorry."),
            id=str(i),
        )
        for i in range(n)
    ]


def test_reward_is_read_at_the_last_token_whatever_the_padding() -> None:
    trainer = RewardTrainer(tiny_lm(), TOKENIZER, pairs(2), TrainConfig())
    short, long = trainer.chosen[0], trainer.rejected[0]
    with torch.no_grad():
        together = trainer.model.score([short, long], TOKENIZER.pad_token_id)
        alone = [trainer.model.score([e], TOKENIZER.pad_token_id).item() for e in (short, long)]
    assert together.tolist() == pytest.approx(alone, abs=1e-5)


def test_training_separates_chosen_from_rejected(tmp_path: Path) -> None:
    trainer = RewardTrainer(
        tiny_lm(),
        TOKENIZER,
        pairs(8),
        TrainConfig(output_dir=tmp_path, batch_size=4, lr=1e-2, epochs=4),
    )
    trainer.fit(progress=False)
    report = trainer.evaluate(pairs(12)[8:])
    assert report["accuracy"] == 1.0 and report["margin"] > 0


def test_length_bias_flags_a_length_tracking_reward() -> None:
    lengths = [5, 10, 20, 40, 80, 160]
    tracking = length_bias(torch.tensor([float(x) for x in lengths]), lengths, [True, False])
    assert tracking["length_correlation"] == pytest.approx(1.0)
    assert tracking["length_warning"] is True
    flat = length_bias(torch.tensor([1.0, -1.0, 1.0, -1.0, 1.0, -1.0]), lengths, [True, True])
    assert abs(flat["length_correlation"]) < 0.5 and flat["length_warning"] is False
    assert flat["longer_wins_accuracy"] == 1.0


def trunk_inputs(model: RewardModel, rows: list[Encoded]) -> tuple[torch.Tensor, list[Any]]:
    """``model.score(rows)`` and the shapes of the token ids each trunk pass took."""
    widths: list[tuple[int, ...]] = []
    hook = model.trunk.register_forward_hook(
        lambda module, args, kwargs, out: widths.append(tuple(kwargs["input_ids"].shape)),
        with_kwargs=True,
    )
    try:
        with torch.no_grad():
            return model.score(rows, TOKENIZER.pad_token_id), widths
    finally:
        hook.remove()


def test_a_shared_prefix_is_scored_once_with_the_same_rewards() -> None:
    """In eval mode the tokens every row starts with run once, at batch size one: the
    rewards equal the left-padded pass's, down to a row whose only own token is its last."""
    model = RewardModel(tiny_lm(5)).eval()
    torch.manual_seed(0)
    torch.nn.init.normal_(model.head.weight)
    head = (11, 12, 13, 14, 15, 16, 17, 18)
    encoded = [
        Encoded(head, (5,)),  # shares all but its last token
        Encoded(head, (6, 7, 8, 9)),
        Encoded((*head, 5), ()),  # the same tokens as the first row
        Encoded(head[:4], (20, 21, 22, 23, 24, 25)),
    ]
    cases = [(encoded[:3], 8), ([encoded[0], encoded[2]], 8), (encoded, 0)]  # 9 shared: capped
    for rows, shared in cases:
        rewards, widths = trunk_inputs(model, rows)
        tokens = [e.prompt + e.completion for e in rows]
        with torch.no_grad():
            plain = model(*left_pad(tokens, TOKENIZER.pad_token_id, torch.device("cpu")))
        width = max(len(t) for t in tokens)
        whole = [(len(rows), width)]
        assert widths == ([(1, shared), (len(rows), width - shared)] if shared else whole)
        torch.testing.assert_close(rewards, plain, rtol=1e-5, atol=1e-5)
        if len(set(tokens)) > 1:  # the rows' rewards differ: a wrong row would show
            assert float(plain.std()) > 0.1
    model.train()  # dropout would be shared by the rows: one plain pass
    assert trunk_inputs(model, encoded[:3])[1] == [(3, 12)]
