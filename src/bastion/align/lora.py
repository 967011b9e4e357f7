"""LoRA adapters (Hu et al. 2021) through peft: a few million trainable weights instead of all."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class LoraSettings:
    r: int = 16
    alpha: int = 32
    dropout: float = 0.0
    target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"]
    )


def add_lora(model: Any, settings: LoraSettings) -> Any:
    """Wrap a causal LM with fresh LoRA adapters; the base weights are frozen."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=list(settings.target_modules),
        task_type="CAUSAL_LM",
    )
    from bastion.models.hf import peft_quietly

    with peft_quietly():
        return get_peft_model(model, config)
