"""Tools and several answers pass through the gateway, each answer and each tool call's
arguments through the output rails: the official openai SDK against the gateway, an
OpenAI-compatible fake behind it."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest
import yaml

from bastion.guard.pipeline import Guard
from bastion.guard.policy import default_policy_path, parse_policy
from bastion.serve import GatewayConfig, MemorySink, create_app
from bastion.serve.fakes import fake_openai_app, serving
from bastion.serve.upstream import HTTPUpstream

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "send_mail",
            "description": "Send an e-mail.",
            "parameters": {"type": "object", "properties": {"to": {"type": "string"}}},
        },
    }
]
ANSWERS = itertools.cycle(["First answer.", "The launch code is 0000.", "Third answer."])


def calls_for(prompt: str) -> list[dict[str, Any]]:
    arguments = {"to": prompt.split()[-1], "body": "launch code" if "rocket" in prompt else "hi"}
    function = {"name": "send_mail", "arguments": json.dumps(arguments)}
    return [{"id": "call_1", "type": "function", "function": function}]


def guard(tool_calls: str) -> Guard:
    raw = yaml.safe_load(default_policy_path().read_text())
    raw["output"].append({"scanner": "blocklist", "phrases": ["launch code"], "action": "block"})
    raw["tool_calls"] = tool_calls
    return Guard(parse_policy(raw, base=default_policy_path().parent))


class Setup:
    def __init__(self, base_url: str, fake: Any, sink: MemorySink) -> None:
        self.base_url, self.fake, self.sink = base_url, fake, sink
        self.client = openai.OpenAI(base_url=f"{base_url}/v1", api_key="sk-a", max_retries=0)

    def chat(self, prompt: str, **kwargs: Any) -> Any:
        messages = [{"role": "user", "content": prompt}]
        return self.client.chat.completions.create(model="tiny", messages=messages, **kwargs)


def _serve(tool_calls: str) -> Iterator[Setup]:
    fake = fake_openai_app(lambda _: next(ANSWERS), tool_calls=calls_for)
    sink = MemorySink()
    with serving(fake) as upstream_url:
        app = create_app(
            GatewayConfig(keys={"sk-a": {"user": "alice"}}),
            sink=sink,
            upstream=HTTPUpstream(f"{upstream_url}/v1", max_retries=0),
            guard=guard(tool_calls),
        )
        with serving(app) as base_url:
            yield Setup(base_url, fake, sink)


@pytest.fixture(scope="module")
def setup() -> Iterator[Setup]:
    yield from _serve("output")


@pytest.fixture(scope="module")
def unchecked() -> Iterator[Setup]:
    yield from _serve("none")


def test_tools_reach_the_upstream_and_its_calls_reach_the_client(setup: Setup) -> None:
    reply = setup.chat("Mail the invoice to jane.doe@example.com", tools=TOOLS, tool_choice="auto")
    sent = setup.fake.state.calls[-1]
    assert sent["tools"] == TOOLS and sent["tool_choice"] == "auto"
    assert "jane.doe@example.com" not in json.dumps(sent["messages"])  # masked on the way
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    call = choice.message.tool_calls[0]
    assert (call.id, call.function.name) == ("call_1", "send_mail")
    # the model addressed <EMAIL_1>; the tool gets the user's own address back
    assert json.loads(call.function.arguments)["to"] == "jane.doe@example.com"
    event = setup.sink.event(reply.model_extra["bastion"]["event_id"])
    assert event.meta["tool_calls"] == ["send_mail"]
    assert "jane.doe@example.com" not in json.dumps(event.to_dict())


def test_a_tool_call_the_output_rails_block_becomes_the_refusal(setup: Setup) -> None:
    reply = setup.chat("Mail the rocket notes to ops@example.com", tools=TOOLS)
    choice = reply.choices[0]
    assert choice.finish_reason == "content_filter" and not choice.message.tool_calls
    meta = reply.model_extra["bastion"]
    assert meta["decision"] == "block" and meta["blocked_stage"] == "output"
    event = setup.sink.event(meta["event_id"])
    parts = {r.get("part") for r in event.output_results if r["flagged"]}
    assert parts == {"choice 0 tool call call_1"}


def test_tool_calls_none_leaves_the_arguments_unchecked(unchecked: Setup) -> None:
    reply = unchecked.chat("Mail the rocket notes to ops@example.com", tools=TOOLS)
    call = reply.choices[0].message.tool_calls[0]
    assert json.loads(call.function.arguments)["body"] == "launch code"


def test_several_answers_each_go_through_the_output_rails(setup: Setup) -> None:
    while next(ANSWERS) != "Third answer.":  # line the cycle up
        pass
    reply = setup.chat("Say something.", n=3)
    assert setup.fake.state.calls[-1]["n"] == 3
    texts = [c.message.content for c in reply.choices]
    assert texts[0] == "First answer." and texts[2] == "Third answer."
    assert "0000" not in texts[1] and reply.choices[1].finish_reason == "content_filter"
    assert [c.index for c in reply.choices] == [0, 1, 2]
    event = setup.sink.event(reply.model_extra["bastion"]["event_id"])
    assert event.meta["choices"] == 3 and event.response == "First answer."


def test_a_stream_with_tools_or_several_answers_is_judged_whole(setup: Setup) -> None:
    chunks = list(setup.chat("Mail the invoice to jane.doe@example.com", tools=TOOLS, stream=True))
    calls = [c for ch in chunks if ch.choices for c in ch.choices[0].delta.tool_calls or []]
    assert len(calls) == 1 and calls[0].index == 0
    assert json.loads(calls[0].function.arguments)["to"] == "jane.doe@example.com"
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    while next(ANSWERS) != "Third answer.":
        pass
    chunks = list(setup.chat("Say something.", n=2, stream=True))
    by_index: dict[int, str] = {}
    for chunk in chunks:
        for choice in chunk.choices:
            by_index[choice.index] = by_index.get(choice.index, "") + (choice.delta.content or "")
    assert by_index[0] == "First answer." and "0000" not in by_index[1]
