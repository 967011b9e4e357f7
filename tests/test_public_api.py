"""The public API is a promise: this test pins it, so a change to it is a deliberate one."""

import bastion
import bastion.models


def test_top_level_api() -> None:
    assert sorted(bastion.__all__) == sorted(
        [
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
    )


def test_models_api() -> None:
    assert sorted(bastion.models.__all__) == sorted(
        [
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
    )
    for name in bastion.models.__all__:
        assert getattr(bastion.models, name) is not None
