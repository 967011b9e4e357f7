"""Model backends behind two small protocols: :class:`ChatModel` and :class:`Embedder`."""

from bastion.models.base import ChatModel, CompletionLogprobs, Embedder, ScoringModel
from bastion.models.embed import HFEmbedder
from bastion.models.fakes import EchoChatModel, FakeEmbedder, ScriptedChatModel
from bastion.models.hf import HFChatModel
from bastion.models.openai_compat import OpenAIChatModel
from bastion.models.packaged import PACKAGED, load, load_embedder
from bastion.models.spec import load_chat_model

__all__ = [
    "PACKAGED",
    "ChatModel",
    "CompletionLogprobs",
    "EchoChatModel",
    "Embedder",
    "FakeEmbedder",
    "HFChatModel",
    "HFEmbedder",
    "OpenAIChatModel",
    "ScoringModel",
    "ScriptedChatModel",
    "load",
    "load_chat_model",
    "load_embedder",
]
