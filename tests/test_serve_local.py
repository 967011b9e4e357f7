"""A model in the gateway's process: token streaming from a transformers model, word chunks
from any other ChatModel, one generation at a time."""

from __future__ import annotations

import asyncio
from functools import partial

import pytest

from bastion.models import HFChatModel, ScriptedChatModel
from bastion.serve import Delta, ModelUpstream, UpstreamRequest
from bastion.serve.upstream import UpstreamFailure

REQUEST = UpstreamRequest("tiny", [{"role": "user", "content": "Count to ten."}], max_tokens=12)


async def collect(upstream: ModelUpstream, request: UpstreamRequest) -> list[Delta]:
    return [delta async for delta in upstream.stream(request)]


def test_tokens_stream_as_they_are_generated(tiny_chat: HFChatModel) -> None:
    upstream = ModelUpstream(tiny_chat)
    deltas = asyncio.run(collect(upstream, REQUEST))
    expected = tiny_chat.generate(["Count to ten."], max_new_tokens=12)[0]
    pieces = [d.text for d in deltas if d.text]
    assert len(pieces) > 1 and "".join(pieces) == expected
    final = deltas[-1]
    assert final.finish_reason in ("stop", "length") and final.prompt_tokens
    assert final.prompt_tokens == len(tiny_chat.prompt_ids("Count to ten."))
    completion = asyncio.run(upstream.complete(REQUEST))
    assert completion.text == expected and completion.completion_tokens == final.completion_tokens
    assert upstream.provider == "transformers"


def test_a_stop_string_ends_the_stream_before_it(tiny_chat: HFChatModel) -> None:
    upstream = ModelUpstream(tiny_chat)
    full = tiny_chat.generate(["Count to ten."], max_new_tokens=12)[0]
    if len(full) < 6:
        pytest.skip("the tiny model's answer is too short to cut")
    stop = full[3:6]
    request = UpstreamRequest(REQUEST.model, REQUEST.messages, max_tokens=12, stop=[stop])
    text = "".join(d.text for d in asyncio.run(collect(upstream, request)))
    assert text == full[: full.find(stop)]


def test_a_client_that_leaves_stops_the_generation(tiny_chat: HFChatModel) -> None:
    upstream = ModelUpstream(tiny_chat)
    long = UpstreamRequest(REQUEST.model, REQUEST.messages, max_tokens=2000)

    async def first_then_leave() -> None:
        stream = upstream.stream(long)
        await anext(stream)
        await stream.aclose()
        # the worker is free again long before 2,000 tokens
        await asyncio.wait_for(upstream.complete(REQUEST), timeout=30)

    asyncio.run(first_then_leave())


def test_a_temperature_next_to_zero_is_greedy_decoding(tiny_chat: HFChatModel) -> None:
    """Logits divided by 1e-300 overflow to inf, which a sampler cannot draw from; a client
    may still ask for any temperature in [0, 2]."""
    upstream = ModelUpstream(tiny_chat)
    greedy = asyncio.run(upstream.complete(REQUEST)).text
    for temperature in (5e-324, 1e-300):
        request = UpstreamRequest(
            REQUEST.model, REQUEST.messages, max_tokens=12, temperature=temperature
        )
        assert asyncio.run(upstream.complete(request)).text == greedy
        streamed = "".join(d.text for d in asyncio.run(collect(upstream, request)))
        assert streamed == greedy


def test_a_prompt_past_the_context_is_a_400_and_a_long_answer_stops_at_it(
    tiny_chat: HFChatModel,
) -> None:
    """As OpenAI answers (context_length_exceeded), instead of running a model past its
    positions for minutes while every other request waits for the one generation worker."""
    upstream = ModelUpstream(tiny_chat)
    context = tiny_chat.model.config.max_position_embeddings
    too_long = UpstreamRequest("tiny", [{"role": "user", "content": "x " * context}])
    for attempt in (upstream.complete, partial(collect, upstream)):
        with pytest.raises(UpstreamFailure) as caught:
            asyncio.run(attempt(too_long))
        assert (caught.value.status, caught.value.code) == (400, "context_length_exceeded")
    room = context - len(tiny_chat.prompt_ids("Count to ten."))
    expected = tiny_chat.generate(["Count to ten."], max_new_tokens=room)[0]
    long = UpstreamRequest(REQUEST.model, REQUEST.messages, max_tokens=10 * context)
    assert "".join(d.text for d in asyncio.run(collect(upstream, long))) == expected
    assert asyncio.run(upstream.complete(long)).text == expected


def test_other_models_stream_their_answer_in_word_chunks() -> None:
    model = ScriptedChatModel({}, default="one two three four five six seven eight nine")
    deltas = asyncio.run(collect(ModelUpstream(model), REQUEST))
    assert [d.text for d in deltas[:-1]] == ["one two three four ", "five six seven eight ", "nine"]
    assert deltas[-1].completion_tokens == 9 and deltas[-1].finish_reason == "stop"
