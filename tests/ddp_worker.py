"""Run by test_ddp.py under torchrun: a tiny DPO run, each rank saving its final weights."""

import sys
from pathlib import Path

import torch

from bastion.align.preference import PreferenceConfig, PreferenceTrainer
from bastion.align.train import TrainConfig, shutdown_distributed
from bastion.models.tiny import build_tiny_llama, build_tiny_tokenizer
from bastion.types import Conversation, PreferencePair


def main(out: Path, batch_size: int) -> None:
    tokenizer = build_tiny_tokenizer()
    model = build_tiny_llama(
        len(tokenizer),
        seed=5,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    ).train()
    pairs = [
        PreferencePair(
            Conversation.user(f"question {i} about bread"),
            Conversation(()).append("assistant", f"Sure, answer {i}."),
            Conversation(()).append("assistant", "I'm sorry, no."),
        )
        for i in range(8)
    ]
    config = TrainConfig(output_dir=out / "run", batch_size=batch_size, lr=1e-3, max_steps=2)
    trainer = PreferenceTrainer(model, tokenizer, pairs, PreferenceConfig(beta=0.5), config)
    trainer.fit(progress=False)
    rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
    weights = torch.cat([p.detach().flatten() for p in trainer.model.parameters()])
    torch.save(weights, out / f"rank{rank}.pt")
    shutdown_distributed()


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]))
