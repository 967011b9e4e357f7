import pytest

from bastion.data.splits import assign_split, split, stable_fraction


def test_fraction_is_a_fixed_function_of_the_folded_text() -> None:
    # Pinned: changing the hash would silently move prompts between train and test.
    assert stable_fraction("How do I bake bread?") == pytest.approx(0.9603900984019995, abs=1e-15)
    assert stable_fraction("  how DO i bake   bread? ") == stable_fraction("How do I bake bread?")
    assert stable_fraction("How do I bake bread?", salt="x") != stable_fraction(
        "How do I bake bread?"
    )


def test_split_sizes_follow_fractions_and_membership_is_stable() -> None:
    texts = [f"prompt number {i}" for i in range(10_000)]
    parts = split(texts, {"train": 0.8, "test": 0.2}, key=str)
    assert abs(len(parts["test"]) - 2_000) < 150
    grown = split([*texts, *(f"new {i}" for i in range(500))], {"train": 0.8, "test": 0.2}, key=str)
    assert set(parts["test"]) <= set(grown["test"])


def test_bad_fractions() -> None:
    with pytest.raises(ValueError, match="sum to 1"):
        assign_split("x", {"a": 0.5, "b": 0.6})
