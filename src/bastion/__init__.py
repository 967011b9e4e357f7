"""Bastion: align, attack, guard, watch and learn — one closed loop that makes LLMs safer."""

from bastion.errors import (
    BastionError,
    ConfigError,
    DataError,
    IntegrityError,
    ModelError,
    UpstreamError,
)
from bastion.types import (
    Conversation,
    ConversationLike,
    Message,
    PreferencePair,
    UnpairedExample,
    Verdict,
    as_conversation,
)

__version__ = "0.1.0"

__all__ = [
    "BastionError",
    "ConfigError",
    "Conversation",
    "ConversationLike",
    "DataError",
    "IntegrityError",
    "Message",
    "ModelError",
    "PreferencePair",
    "UnpairedExample",
    "UpstreamError",
    "Verdict",
    "__version__",
    "as_conversation",
]
