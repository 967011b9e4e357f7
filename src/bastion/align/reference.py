"""Reference log-probs, computed once and cached on disk.

DPO-style losses compare the policy with a frozen reference. The reference never changes, so
its sequence log-probs are computed in one pass before training and cached under a key made of
the model's weights, the encoded data and the aggregation; a second run on the same model and
data loads them in milliseconds. Under LoRA the reference is the same model with its adapters
switched off, so no second copy of the weights is ever held in memory.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import Tensor

from bastion.align.logprobs import Aggregation, Encoded, sequence_logps
from bastion.align.precision import autocast_for
from bastion.cache import cache_dir


def weights_fingerprint(model: Any) -> str:
    """A digest of parameter names, shapes and values (sums in float64: cheap, and any
    real change to the weights moves it)."""
    digest = hashlib.sha256()
    with torch.no_grad():
        for name, param in model.named_parameters():
            digest.update(
                f"{name}:{tuple(param.shape)}:{param.double().sum().item():.12e}".encode()
            )
    return digest.hexdigest()


def data_fingerprint(encoded: Sequence[Encoded]) -> str:
    digest = hashlib.sha256()
    for item in encoded:
        digest.update(repr((item.prompt, item.completion)).encode())
    return digest.hexdigest()


@contextlib.contextmanager
def as_reference(model: Any) -> Iterator[Any]:
    """The reference view of a model: adapters disabled under peft, the model itself otherwise
    (called before training, when the policy still is the reference)."""
    if hasattr(model, "disable_adapter"):
        with model.disable_adapter():
            yield model
    else:
        yield model


def reference_logps(
    model: Any,
    encoded: Sequence[Encoded],
    pad_id: int,
    aggregation: Aggregation,
    *,
    batch_size: int = 16,
    use_cache: bool = True,
    precision: str = "no",
) -> Tensor:
    """Sequence log-probs of every encoded completion under the reference, cached on disk;
    ``precision`` (``no``, ``bf16``, ``fp16``): the mixed precision training will run the
    policy in, so that policy and reference are computed alike."""
    with as_reference(model) as reference:
        fingerprint = f"{weights_fingerprint(reference)}|{data_fingerprint(encoded)}|{aggregation}"
        if precision != "no":  # fp32 keys stay as they were: earlier caches remain valid
            fingerprint += f"|{precision}"
        key = hashlib.sha256(fingerprint.encode()).hexdigest()[:32]
        path = cache_dir() / "reference-logps" / f"{key}.pt"
        if use_cache and path.is_file():
            cached: Tensor = torch.load(path)
            return cached
        was_training = reference.training
        reference.eval()
        values = []
        with torch.no_grad(), autocast_for(reference, precision):
            for start in range(0, len(encoded), batch_size):
                chunk = encoded[start : start + batch_size]
                values.append(sequence_logps(reference, chunk, pad_id, aggregation).float().cpu())
        reference.train(was_training)
    result = torch.cat(values) if values else torch.zeros(0)
    if use_cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")  # processes of one DDP run write alike
        torch.save(result, tmp)
        tmp.replace(path)
    return result
