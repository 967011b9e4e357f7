"""A model in the gateway's process: token streaming from a transformers model, word chunks
from any other ChatModel, one generation at a time."""

from __future__ import annotations

import asyncio

import pytest

from bastion.models import HFChatModel, ScriptedChatModel
from bastion.serve import Delta, ModelUpstream, UpstreamRequest

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


def test_other_models_stream_their_answer_in_word_chunks() -> None:
    model = ScriptedChatModel({}, default="one two three four five six seven eight nine")
    deltas = asyncio.run(collect(ModelUpstream(model), REQUEST))
    assert [d.text for d in deltas[:-1]] == ["one two three four ", "five six seven eight ", "nine"]
    assert deltas[-1].completion_tokens == 9 and deltas[-1].finish_reason == "stop"
