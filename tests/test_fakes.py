import numpy as np

from bastion.models import ChatModel, EchoChatModel, Embedder, FakeEmbedder, ScriptedChatModel


def test_scripted_model_first_matching_rule_and_calls() -> None:
    model = ScriptedChatModel(
        [(r"france", "Paris."), (r"capital", "Some city.")], default="No idea."
    )
    replies = model.generate(["Capital of France?", "capital of Peru?", "hi"])
    assert replies == ["Paris.", "Some city.", "No idea."]
    assert [c.last_user for c in model.calls] == ["Capital of France?", "capital of Peru?", "hi"]
    assert isinstance(model, ChatModel)


def test_echo_and_stop() -> None:
    model = EchoChatModel(prefix="> ")
    assert model.generate([[{"role": "user", "content": "one. two"}]], stop=["."]) == ["> one"]


def test_fake_embedder_is_normalized_deterministic_and_topical() -> None:
    embedder = FakeEmbedder(dim=128)
    assert isinstance(embedder, Embedder)
    vectors = embedder.embed(
        ["how to bake bread at home", "bake bread at home recipe", "quarterly stock market report"]
    )
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(
        vectors,
        FakeEmbedder(dim=128).embed(
            [
                "how to bake bread at home",
                "bake bread at home recipe",
                "quarterly stock market report",
            ]
        ),
    )
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.3
