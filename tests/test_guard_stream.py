"""Streaming output rails: the same masking as the whole answer, whatever the chunking; a stop
mid-way releases nothing more."""

import random

import pytest

from bastion.guard.pipeline import Guard
from bastion.guard.policy import parse_policy

ANSWER = (
    "Sure. Write to john.smith@example.com or call 415 555 2671 during office hours; "
    "the card on file is 4111 1111 1111 1111 and the server is 10.0.0.7. Anything else?"
)


def chunks(text: str, seed: int) -> list[str]:
    rng, out, at = random.Random(seed), [], 0
    while at < len(text):
        step = rng.randint(1, 12)
        out.append(text[at : at + step])
        at += step
    return out


@pytest.mark.parametrize("seed", range(8))
def test_streamed_masking_equals_whole_answer_masking(seed: int) -> None:
    guard = Guard.default()
    stream = guard.stream_output()
    released = "".join(stream.feed(c).emit for c in chunks(ANSWER, seed)) + stream.close().emit
    assert released == guard.check_output(ANSWER).text


def test_a_blocking_rail_stops_the_stream_mid_way() -> None:
    guard = Guard(
        parse_policy(
            {"output": [{"scanner": "blocklist", "phrases": ["launch code"], "action": "block"}]}
        )
    )
    stream = guard.stream_output(holdback=8)
    released, stopped_at = "", None
    text = "The weather is fine today. The launch code is 0000. More text follows here."
    for index, chunk in enumerate(chunks(text, 1)):
        step = stream.feed(chunk)
        released += step.emit
        if step.stopped:
            stopped_at = index
            assert step.decision is not None and step.decision.blocked
            break
    assert stopped_at is not None
    assert "launch code" not in released.lower() and "0000" not in released
    assert stream.feed("more").stopped and stream.close().emit == ""


@pytest.mark.parametrize("seed", range(4))
def test_streamed_placeholders_number_like_the_whole_answer(seed: int) -> None:
    guard = Guard.default()
    answer = "Ask ann@corp.example, then bob@corp.example, and again ann@corp.example. " * 3
    stream = guard.stream_output(holdback=24)
    released = "".join(stream.feed(c).emit for c in chunks(answer, seed)) + stream.close().emit
    whole = guard.check_output(answer)
    assert released == whole.text and "<EMAIL_2>" in released and "<EMAIL_3>" not in released
    assert stream.vault.restore(released) == answer


@pytest.mark.parametrize("seed", range(3))
def test_a_raw_text_rail_listed_after_masking_does_not_unmask_the_stream(seed: int) -> None:
    """Rails that read only the raw text run first, so results come in run order, not policy
    order: the stream must pair them the same way as the whole answer."""
    guard = Guard(
        parse_policy(
            {
                "output": [
                    {"scanner": "pii", "action": "mask"},
                    {"scanner": "length", "max_chars": 10_000, "action": "block"},
                ]
            }
        )
    )
    stream = guard.stream_output()
    released = "".join(stream.feed(c).emit for c in chunks(ANSWER, seed)) + stream.close().emit
    assert released == guard.check_output(ANSWER).text
    assert "john.smith@example.com" not in released
