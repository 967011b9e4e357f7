from pathlib import Path

import pytest
import torch

from bastion import Conversation, PreferencePair
from bastion.align.reward import RewardTrainer, length_bias
from bastion.align.train import TrainConfig
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
