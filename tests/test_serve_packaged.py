"""The default gateway: the packaged chat model in process, through the official client."""

from __future__ import annotations

import openai
import pytest

from bastion.serve import GatewayConfig, MemorySink, create_app
from bastion.serve.fakes import serving


@pytest.mark.slow
def test_the_packaged_model_answers_through_the_openai_client() -> None:
    sink = MemorySink()
    app = create_app(GatewayConfig(keys={"sk-demo": {"user": "demo"}}), sink=sink)
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    with serving(app) as base_url:
        client = openai.OpenAI(base_url=f"{base_url}/v1", api_key="sk-demo", max_retries=0)
        assert [m.id for m in client.models.list()] == ["smollm2-135m-instruct"]
        reply = client.chat.completions.create(
            model="smollm2-135m-instruct", messages=messages, max_tokens=24
        )
        text = reply.choices[0].message.content or ""
        assert text.strip() and reply.usage is not None
        assert 0 < reply.usage.completion_tokens <= 24
        chunks = list(
            client.chat.completions.create(
                model="smollm2-135m-instruct", messages=messages, max_tokens=24, stream=True
            )
        )
        streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert streamed == text  # greedy: the same answer, token-streamed
    assert [e.stream for e in sink.events] == [False, True]
    assert all(e.status == 200 and e.upstream_ms > 0 for e in sink.events)
