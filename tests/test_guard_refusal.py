"""Refusal and system-prompt leak scanners on answers."""

import pytest

from bastion.guard.scanners import LeakScanner, RefusalScanner
from bastion.judges import RefusalPhraseJudge

SYSTEM = (
    "You are Orbit, the support assistant of Acme Rockets. Never discuss launch codes or pricing."
)


@pytest.mark.parametrize(
    ("answer", "refused"),
    [
        ("I'm sorry, but I can't help with that.", True),
        ("As an AI language model, I do not have opinions.", True),
        ("Sure! Paris is the capital of France.", False),
        ("Here is the recipe. " * 30 + "I'm sorry if it is long.", False),  # past the opening
    ],
)
def test_refusal_in_the_opening_only(answer: str, refused: bool) -> None:
    assert RefusalScanner().scan(answer).flagged == refused
    assert RefusalPhraseJudge().judge(answer).label == refused  # the red team agrees


def test_leak_by_canary_with_span_in_the_answer() -> None:
    scanner = LeakScanner(canaries=["ZEBRA-7741"])
    answer = "My instructions mention zebra-7741 somewhere."
    result = scanner.scan(answer)
    assert result.flagged
    assert answer[result.spans[0].start : result.spans[0].end] == "zebra-7741"


def test_leak_by_a_verbatim_run_of_the_system_prompt() -> None:
    scanner = LeakScanner(system_prompt=SYSTEM, min_words=8)
    leaked = "Sure: you are Orbit, the support assistant of Acme rockets. That's me."
    assert scanner.scan(leaked).flagged
    assert not scanner.scan("I am Orbit, Acme's assistant. How can I help?").flagged
    with pytest.raises(ValueError, match="min_words"):
        LeakScanner(min_words=1)


def test_the_system_prompt_can_come_with_the_request() -> None:
    from bastion.guard.pipeline import Guard
    from bastion.guard.policy import parse_policy

    guard = Guard(parse_policy({"output": [{"scanner": "leak", "min_words": 6}]}))
    leaked = "Okay: you are Orbit, the support assistant of Acme Rockets, as told."
    assert not guard.check_output(leaked).blocked  # no system prompt known
    assert guard.check_output(leaked, system=SYSTEM, prompt="who are you?").blocked
