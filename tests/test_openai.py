import asyncio
import json

import httpx
import pytest

from bastion.errors import UpstreamError
from bastion.models import OpenAIChatModel


def completion(content: str) -> dict:
    return {
        "id": "x",
        "object": "chat.completion",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
    }


class Recorder:
    """An in-process OpenAI-compatible server scripted by a list of responses."""

    def __init__(self, *responses: httpx.Response) -> None:
        self.responses = list(responses)
        self.requests: list[httpx.Request] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return (
            self.responses.pop(0)
            if self.responses
            else httpx.Response(200, json=completion("last"))
        )


def model(handler, sleeps: list[float] | None = None, **kwargs) -> OpenAIChatModel:
    async def sleep(seconds: float) -> None:
        (sleeps if sleeps is not None else []).append(seconds)

    return OpenAIChatModel(
        "served-model",
        base_url="http://upstream.test/v1",
        transport=httpx.MockTransport(handler),
        sleep=sleep,
        **kwargs,
    )


def test_request_shape_and_api_key_from_environment(monkeypatch) -> None:
    monkeypatch.setenv("MY_KEY", "sk-test")
    server = Recorder(httpx.Response(200, json=completion("Paris. More")))
    replies = model(server, api_key_env="MY_KEY").generate(
        [[{"role": "user", "content": "capital?"}]], max_new_tokens=5, seed=3, stop=["."]
    )
    assert replies == ["Paris"]
    [request] = server.requests
    assert request.url == "http://upstream.test/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer sk-test"
    assert json.loads(request.content) == {
        "model": "served-model",
        "messages": [{"role": "user", "content": "capital?"}],
        "max_tokens": 5,
        "temperature": 0.0,
        "top_p": 1.0,
        "seed": 3,
        "stop": ["."],
    }


def test_429_honours_retry_after_then_succeeds() -> None:
    sleeps: list[float] = []
    server = Recorder(
        httpx.Response(429, headers={"retry-after": "2"}),
        httpx.Response(503),
        httpx.Response(200, json=completion("ok")),
    )
    assert model(server, sleeps, backoff=0.5).generate(["hi"]) == ["ok"]
    assert len(server.requests) == 3
    assert sleeps[0] == 2.0 and 0.0 <= sleeps[1] <= 1.0  # second wait: full jitter up to 0.5*2


def test_malformed_body_and_dropped_connection_are_retried() -> None:
    calls = {"n": 0}

    async def flaky(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            raise httpx.ConnectError("dropped", request=request)
        if calls["n"] == 2:
            return httpx.Response(200, content=b"{not json")
        return httpx.Response(200, json=completion("fine"))

    assert model(flaky).generate(["hi"]) == ["fine"]
    assert calls["n"] == 3


def test_retries_are_bounded() -> None:
    server = Recorder(*[httpx.Response(500)] * 10)
    with pytest.raises(UpstreamError, match="HTTP 500 after 3 attempts"):
        model(server, max_retries=2).generate(["hi"])
    assert len(server.requests) == 3


def test_a_failure_cancels_the_other_requests() -> None:
    started: list[str] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        prompt = json.loads(request.content)["messages"][-1]["content"]
        started.append(prompt)
        if prompt == "bad":
            return httpx.Response(403, json={"error": {"message": "forbidden"}})
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append(prompt)
            raise
        return httpx.Response(200, json=completion("late"))

    cancelled: list[str] = []
    with pytest.raises(UpstreamError, match="HTTP 403: forbidden"):
        model(handler, concurrency=2).generate(["bad", "slow", "later"])
    assert set(cancelled) == set(started) - {"bad"} and "slow" in cancelled


def test_stop_strings_beyond_four_are_applied_locally() -> None:
    server = Recorder(httpx.Response(200, json=completion("a1b2c3d4e5f")))
    stops = ["", "9", "8", "7", "6", "e"]
    assert model(server).generate(["hi"], stop=stops) == ["a1b2c3d4"]
    assert json.loads(server.requests[0].content)["stop"] == ["9", "8", "7", "6"]


def test_client_errors_fail_at_once() -> None:
    server = Recorder(httpx.Response(401, json={"error": {"message": "bad key"}}))
    with pytest.raises(UpstreamError, match="HTTP 401: bad key"):
        model(server).generate(["hi"])
    assert len(server.requests) == 1


def test_concurrency_limit_and_order() -> None:
    state = {"active": 0, "peak": 0}

    async def slow(request: httpx.Request) -> httpx.Response:
        state["active"] += 1
        state["peak"] = max(state["peak"], state["active"])
        await asyncio.sleep(0.01)
        state["active"] -= 1
        prompt = json.loads(request.content)["messages"][-1]["content"]
        return httpx.Response(200, json=completion(prompt.upper()))

    prompts = [f"p{i}" for i in range(12)]
    assert model(slow, concurrency=3).generate(prompts) == [p.upper() for p in prompts]
    assert state["peak"] == 3


def test_generate_works_inside_a_running_event_loop() -> None:
    server = Recorder(httpx.Response(200, json=completion("inside")))

    async def main() -> list[str]:
        return model(server).generate(["hi"])

    assert asyncio.run(main()) == ["inside"]
