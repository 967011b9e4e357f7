"""Sentence embeddings from a local transformers encoder (the packaged MiniLM by default).

Mean pooling over the attention mask, then L2 normalization: the recipe sentence-transformers
uses for all-MiniLM-L6-v2 (Reimers & Gurevych 2019), so cosine similarity is a dot product.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from bastion.errors import ModelError
from bastion.models.hf import default_device, length_sorted_batches


class HFEmbedder:
    """Batched, normalized, offline sentence embeddings."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        name: str = "hf-embedder",
        batch_size: int = 64,
        max_length: int = 256,
    ) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name
        self.batch_size = batch_size
        self.max_length = max_length
        self.dim = int(model.config.hidden_size)
        self.device = next(model.parameters()).device

    @classmethod
    def from_pretrained(
        cls, path: str | Path, *, name: str | None = None, device: str | torch.device | None = None
    ) -> HFEmbedder:
        from transformers import AutoModel, AutoTokenizer

        if not Path(path).exists():
            raise ModelError(f"embedder path {path} does not exist")
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(path))
            model = AutoModel.from_pretrained(str(path), dtype=torch.float32)
        except (OSError, ValueError) as exc:
            raise ModelError(f"cannot load an embedder from {path}: {exc}") from None
        model = model.to(torch.device(device) if device is not None else default_device())
        return cls(model, tokenizer, name=name or Path(path).name)

    @torch.inference_mode()
    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        # character length stands in for token length when grouping texts into batches
        for batch in length_sorted_batches([len(t) for t in texts], self.batch_size):
            encoded = self.tokenizer(
                [texts[i] for i in batch],
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            )
            encoded = {k: v.to(self.device) for k, v in encoded.items()}
            hidden = self.model(**encoded).last_hidden_state
            mask = encoded["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
            out[batch] = pooled.float().cpu().numpy()
        return out
