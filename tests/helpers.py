"""Shared test helpers: the tiny tokenizer and seeded tiny Llamas, built in code."""

from typing import Any

from bastion.models.tiny import build_tiny_llama, build_tiny_tokenizer

TOKENIZER = build_tiny_tokenizer()


def tiny_lm(seed: int = 0) -> Any:
    """A fresh 2-layer Llama in training mode, identical for identical seeds."""
    return build_tiny_llama(
        len(TOKENIZER),
        seed=seed,
        eos_token_id=TOKENIZER.eos_token_id,
        pad_token_id=TOKENIZER.pad_token_id,
    ).train()
