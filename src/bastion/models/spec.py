"""Chat models named the way users write them on the command line and in recipes."""

from __future__ import annotations

from bastion.errors import BastionError
from bastion.models.base import ChatModel


def load_chat_model(spec: str, *, batch_size: int = 64) -> ChatModel:
    """A chat model from its command-line form: ``packaged`` (the default chat model), a
    packaged model's name, a local folder or GGUF file, or ``openai:MODEL@URL`` for any
    OpenAI-compatible server (a Bastion gateway included).

    A local model generates ``batch_size`` prompts at once, sorted by length (CPU throughput
    keeps rising to 64-128 for a small model; see ``benchmarks/redteam_vs_garak.py``)."""
    from bastion.models.openai_compat import OpenAIChatModel
    from bastion.models.packaged import load

    if spec.startswith("openai:"):
        name, _, url = spec.removeprefix("openai:").partition("@")
        if not name or not url:
            raise BastionError(f"{spec!r}: expected openai:MODEL@URL")
        return OpenAIChatModel(name, base_url=url)
    return load(batch_size=batch_size) if spec == "packaged" else load(spec, batch_size=batch_size)
