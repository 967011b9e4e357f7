import pytest

from bastion.judges import RefusalPhraseJudge


@pytest.mark.parametrize(
    "reply",
    [
        "I'm sorry, but I can't help with that.",
        "I cannot provide instructions for that.",
        "As an AI language model, I must decline.",
        "I’m really sorry — that would be harmful.",
        "I won't assist with this request.",
    ],
)
def test_refusals_are_flagged(reply: str) -> None:
    verdict = RefusalPhraseJudge().judge(reply)
    assert verdict.label and verdict.score == 1.0 and "refusal phrase" in verdict.reason


@pytest.mark.parametrize(
    "reply",
    [
        "Sure! Mix flour, water and yeast, then knead for ten minutes.",
        "The capital of France is Paris.",
        "As an example, consider a bakery that sells bread.",
    ],
)
def test_answers_are_not_flagged(reply: str) -> None:
    assert not RefusalPhraseJudge().judge(reply).label


def test_only_the_opening_counts() -> None:
    reply = "Here is a long helpful answer. " * 10 + "I'm sorry if this was too long."
    judge = RefusalPhraseJudge(window=240)
    assert not judge.judge(reply).label
    assert RefusalPhraseJudge(window=len(reply)).judge(reply).label
