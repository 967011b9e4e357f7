"""Training the second-stage encoder classifier (:mod:`bastion.guard.encoder`).

The packaged MiniLM stays frozen; rank-``r`` adapters on every layer's query, value and
feed-forward projections and a linear head on the mean-pooled output are trained with AdamW,
one pass or two over a sample of the examples: every positive, and at most
``negatives_per_source`` benign examples of each source (a stable hash picks them), so ten
thousand chats do not drown a hundred written requests. Within each class every source weighs
the same (:func:`~bastion.guard.training.learners.source_weights`). Seeded, on a fixed number
of threads, so the same data gives the same adapters on the same machine.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from bastion.data.splits import stable_fraction
from bastion.guard.encoder import EncoderClassifier, adapted_linears, logits_of
from bastion.guard.training.examples import Example
from bastion.guard.training.learners import source_weights


class LoraLinear(torch.nn.Module):
    """``base(x) + (alpha / r) · x Aᵀ Bᵀ``, with ``base`` frozen and B starting at zero."""

    def __init__(self, base: torch.nn.Linear, rank: int, alpha: float) -> None:
        super().__init__()
        self.base = base
        self.scale = alpha / rank
        self.lora_A = torch.nn.Parameter(torch.empty(rank, base.in_features))
        self.lora_B = torch.nn.Parameter(torch.zeros(base.out_features, rank))
        torch.nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.base(x) + (x @ self.lora_A.T @ self.lora_B.T) * self.scale
        return out


def sample(examples: Sequence[Example], negatives_per_source: int) -> list[Example]:
    """Every positive and at most ``negatives_per_source`` negatives of each source, in a
    stable order (a hash of each text)."""
    negatives: dict[str, list[Example]] = defaultdict(list)
    for example in examples:
        if not example.label:
            negatives[example.source].append(example)
    kept = [e for e in examples if e.label]
    for rows in negatives.values():
        rows.sort(key=lambda e: stable_fraction(e.text, salt="encoder-sample"))
        kept += rows[:negatives_per_source]
    kept.sort(key=lambda e: stable_fraction(e.text, salt="encoder-order"))
    return kept


@dataclass
class EncoderScorer:
    classifier: EncoderClassifier
    _cache: dict[str, float] = field(default_factory=dict)

    def scores(self, examples: Sequence[Example]) -> list[float]:
        missing = sorted({e.text for e in examples} - self._cache.keys(), key=lambda t: (len(t), t))
        found = self.classifier.scores(missing) if missing else []
        for text, score in zip(missing, found, strict=True):
            self._cache[text] = score
        return [self._cache[e.text] for e in examples]


@dataclass
class EncoderLearner:
    """LoRA on the packaged MiniLM plus a linear head (see the module's docstring)."""

    task: str
    rank: int = 8
    alpha: float = 16.0
    epochs: int = 1
    lr: float = 5e-4
    batch_size: int = 32
    max_length: int = 64
    negatives_per_source: int = 400
    seed: int = 0
    threads: int = 2

    def fit(self, examples: Sequence[Example]) -> EncoderScorer:
        return EncoderScorer(self.train(examples))

    def train(self, examples: Sequence[Example]) -> EncoderClassifier:
        from bastion.models.packaged import load_embedder

        torch.manual_seed(self.seed)
        threads = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            embedder = load_embedder(device="cpu")
            model, tokenizer = embedder.model, embedder.tokenizer
            for parameter in model.parameters():
                parameter.requires_grad_(False)
            wrapped = self._wrap(model)
            head = torch.nn.Linear(int(model.config.hidden_size), 1)
            self._loop(model, tokenizer, head, wrapped, sample(examples, self.negatives_per_source))
            meta = {
                "task": self.task,
                "rank": str(self.rank),
                "alpha": str(self.alpha),
                "max_length": str(self.max_length),
                "examples": str(len(examples)),
            }
            tensors = {
                **{f"{n}.lora_A": m.lora_A.detach().clone() for n, m in wrapped.items()},
                **{f"{n}.lora_B": m.lora_B.detach().clone() for n, m in wrapped.items()},
                "head.weight": head.weight.detach().clone(),
                "head.bias": head.bias.detach().clone(),
            }
            self._unwrap(model, wrapped)  # the adapters merged: a plain encoder again
        finally:
            torch.set_num_threads(threads)
        return EncoderClassifier(model, tokenizer, head, meta, tensors)

    def _wrap(self, model: Any) -> dict[str, LoraLinear]:
        wrapped = {}
        for name, linear in adapted_linears(model).items():
            parent_name, _, child = name.rpartition(".")
            lora = LoraLinear(linear, self.rank, self.alpha)
            setattr(model.get_submodule(parent_name), child, lora)
            wrapped[name] = lora
        return wrapped

    @staticmethod
    def _unwrap(model: Any, wrapped: dict[str, LoraLinear]) -> None:
        with torch.no_grad():
            for name, lora in wrapped.items():
                lora.base.weight += lora.scale * (lora.lora_B @ lora.lora_A)
                parent_name, _, child = name.rpartition(".")
                setattr(model.get_submodule(parent_name), child, lora.base)

    def _loop(
        self,
        model: Any,
        tokenizer: Any,
        head: torch.nn.Linear,
        wrapped: dict[str, LoraLinear],
        rows: list[Example],
    ) -> None:
        parameters = [p for m in wrapped.values() for p in (m.lora_A, m.lora_B)]
        groups: list[dict[str, Any]] = [
            {"params": parameters},
            {"params": list(head.parameters()), "lr": self.lr * 2},
        ]
        optimizer = torch.optim.AdamW(
            groups,
            lr=self.lr,
            weight_decay=0.01,
        )
        labels = torch.tensor([e.label for e in rows], dtype=torch.float32)
        weights = torch.tensor(source_weights(rows))
        pos_weight = (len(rows) - labels.sum()) / labels.sum().clamp(min=1.0)
        steps = self.epochs * math.ceil(len(rows) / self.batch_size)
        warmup = max(1, steps // 20)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda i: min(1.0, (i + 1) / warmup) * max(0.0, 1.0 - i / steps)
        )
        model.train()
        generator = torch.Generator().manual_seed(self.seed)
        for _ in range(self.epochs):
            order = torch.randperm(len(rows), generator=generator).tolist()
            for start in range(0, len(order), self.batch_size):
                batch = order[start : start + self.batch_size]
                logits = logits_of(
                    model, tokenizer, head, [rows[i].text for i in batch], self.max_length
                )
                loss = torch.nn.functional.binary_cross_entropy_with_logits(
                    logits, labels[batch], weight=weights[batch], pos_weight=pos_weight
                )
                optimizer.zero_grad()
                loss.backward()  # type: ignore[no-untyped-call]
                optimizer.step()
                schedule.step()
        model.eval()


def save(classifier: EncoderClassifier, path: Path, extra: dict[str, str]) -> None:
    """The adapters and the head as safetensors, the settings and thresholds in its
    metadata."""
    from safetensors.torch import save_file

    if classifier.tensors is None:
        raise ValueError("only a classifier trained in this process can be saved")
    path.parent.mkdir(parents=True, exist_ok=True)
    stored = {k: v.contiguous() for k, v in classifier.tensors.items()}
    save_file(stored, str(path), metadata={**classifier.meta, **extra})
