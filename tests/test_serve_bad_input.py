"""Bad input and a failing upstream, as a client meets them: a 4xx in OpenAI's shape for the
client's mistakes on every route, a 502/503/504 without the upstream's address for the
upstream's, a health check that tells, and every response counted."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bastion.serve import GatewayConfig, MemorySink, create_app
from bastion.serve.circuit import CircuitBreaker
from bastion.serve.errors import too_deep
from bastion.serve.fakes import fake_openai_app, serving
from bastion.serve.upstream import HTTPUpstream

KEY = {"Authorization": "Bearer sk-alice"}
CHAT = "/v1/chat/completions"


class Setup:
    def __init__(self, base_url: str, sink: MemorySink, upstream_url: str) -> None:
        self.base_url, self.sink, self.upstream_url = base_url, sink, upstream_url

    def post(self, path: str, content: Any, **kwargs: Any) -> httpx.Response:
        headers = {**KEY, "content-type": "application/json", **kwargs.pop("headers", {})}
        return httpx.post(f"{self.base_url}{path}", content=content, headers=headers, **kwargs)

    def metric(self, name: str, **labels: str) -> float:
        text = httpx.get(f"{self.base_url}/metrics").text
        samples = (s for f in text_string_to_metric_families(text) for s in f.samples)
        return sum(
            s.value for s in samples if s.name == name and labels.items() <= s.labels.items()
        )


def gateway(upstream: HTTPUpstream, **config: Any) -> Any:
    settings = GatewayConfig(keys={"sk-alice": {"user": "alice"}}, **config)
    return create_app(settings, sink=MemorySink(), upstream=upstream)


@pytest.fixture(scope="module")
def setup() -> Iterator[Setup]:
    fake = fake_openai_app(lambda prompt: f"You said {len(prompt)} characters.")
    with serving(fake) as upstream_url:
        upstream = HTTPUpstream(f"{upstream_url}/v1", max_retries=0)
        app = gateway(upstream, max_body_bytes=64 * 1024, store_max_chars=1000)
        with serving(app) as base_url:
            yield Setup(base_url, app.state.gateway.sink, upstream_url)


def assert_openai_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["code"] == code
    return dict(error)


def body(content: str, **extra: Any) -> bytes:
    messages = [{"role": "user", "content": content}]
    return json.dumps({"model": "tiny", "messages": messages, **extra}).encode()


def test_a_body_that_is_not_utf8_is_a_400(setup: Setup) -> None:
    response = setup.post(CHAT, body("caf\u00e9").replace(b"\\u00e9", b"\xe9"))
    assert "UTF-8" in assert_openai_error(response, 400, "invalid_json")["message"]


def test_json_nested_deep_is_a_400_at_any_depth(setup: Setup) -> None:
    deep = b"[" * 30_000 + b"]" * 30_000
    assert_openai_error(setup.post(CHAT, deep), 400, "invalid_json")
    moderately = body("hi", metadata=json.loads("[" * 100 + "]" * 100))  # parses, then refused
    assert_openai_error(setup.post(CHAT, moderately), 400, "invalid_json")
    assert setup.post(CHAT, body("hi", metadata={"a": [[1]]})).status_code == 200


def test_a_number_too_long_to_read_is_a_400(setup: Setup) -> None:
    digits = b"1" + b"0" * 5_000  # past Python's 4300-digit limit on int()
    response = setup.post(CHAT, body("hi")[:-1] + b', "seed": ' + digits + b"}")
    assert "digits" in assert_openai_error(response, 400, "invalid_json")["message"]


def test_a_lone_surrogate_is_a_400_that_names_its_field(setup: Setup) -> None:
    """JSON may escape half of a UTF-16 pair (\\ud800) alone; that is no Unicode text to judge,
    forward or store (RFC 7493, section 2.1), while an escaped whole pair is an emoji."""
    response = setup.post(CHAT, body("hi \ud800 there"))
    error = assert_openai_error(response, 400, "invalid_value")
    assert error["param"] == "messages.0.content" and "surrogate" in error["message"]
    in_a_key = setup.post(CHAT, body("hi", metadata={"\udfff": 1}))
    assert assert_openai_error(in_a_key, 400, "invalid_value")["param"] == "metadata"
    assert setup.post(CHAT, body("\U0001f600")).status_code == 200  # sent as \ud83d\ude00


def test_surrogates_encoded_as_utf8_bytes_are_not_utf8(setup: Setup) -> None:
    raw = body("hi \ud800").replace(b"\\ud800", "\ud800".encode("utf-8", "surrogatepass"))
    assert b"\xed\xa0\x80" in raw
    assert "UTF-8" in assert_openai_error(setup.post(CHAT, raw), 400, "invalid_json")["message"]


def test_a_seed_outside_int64_is_a_400(setup: Setup) -> None:
    """OpenAI's seed is a 64-bit integer; a larger one would crash an in-process model."""
    for seed in (2**64, -(2**63) - 1):
        error = assert_openai_error(setup.post(CHAT, body("hi", seed=seed)), 400, "invalid_value")
        assert error["param"] == "seed"
    assert setup.post(CHAT, body("hi", seed=2**63 - 1)).status_code == 200


def test_too_deep_counts_arrays_and_objects() -> None:
    assert not too_deep({"a": [1, {"b": 2}]}, 3) and too_deep({"a": [1, {"b": [2]}]}, 3)
    assert not too_deep("text", 0)


def test_a_body_over_the_limit_is_a_413_declared_or_chunked(setup: Setup) -> None:
    large = body("x" * 70_000)
    assert_openai_error(setup.post(CHAT, large), 413, "request_too_large")

    def chunks() -> Iterator[bytes]:  # no Content-Length: refused once past the limit
        yield large[:40_000]
        yield large[40_000:]

    assert_openai_error(setup.post(CHAT, chunks()), 413, "request_too_large")
    assert setup.metric("bastion_http_responses_total", route=CHAT, status="413") >= 2


def test_unknown_routes_and_wrong_methods_answer_in_openai_shape(setup: Setup) -> None:
    assert_openai_error(httpx.get(f"{setup.base_url}/v1/nothing", headers=KEY), 404, "not_found")
    response = httpx.get(f"{setup.base_url}{CHAT}", headers=KEY)
    assert_openai_error(response, 405, "method_not_allowed")
    assert setup.metric("bastion_http_responses_total", route="other", status="404") >= 1


def test_a_long_prompt_is_stored_cut_with_its_length_and_digest(setup: Setup) -> None:
    response = setup.post(CHAT, body("word " * 2000))
    assert response.status_code == 200
    event = setup.sink.event(response.json()["bastion"]["event_id"])
    assert len(event.prompt) < 1100 and event.prompt.startswith("word word")
    assert event.meta["prompt_chars"] == 10_000 and len(event.meta["prompt_sha256"]) == 64


def test_an_upstream_401_is_a_502_that_names_no_address() -> None:
    fake = fake_openai_app("unused", failures=[401])
    with serving(fake) as upstream_url:
        app = gateway(HTTPUpstream(f"{upstream_url}/v1", max_retries=0))
        with serving(app) as base_url:
            client = openai.OpenAI(base_url=f"{base_url}/v1", api_key="sk-alice", max_retries=0)
            with pytest.raises(openai.InternalServerError) as caught:
                client.chat.completions.create(
                    model="tiny", messages=[{"role": "user", "content": "Hi"}]
                )
    assert caught.value.status_code == 502
    assert caught.value.body["code"] == "upstream_auth_failed"  # type: ignore[index]
    host = upstream_url.split("//")[1]
    assert host not in caught.value.message and "127.0.0.1" not in caught.value.message


def test_an_upstream_400_is_the_clients_to_fix() -> None:
    fake = fake_openai_app("unused", failures=[400])
    with serving(fake) as upstream_url:
        app = gateway(HTTPUpstream(f"{upstream_url}/v1", max_retries=0))
        with serving(app) as base_url:
            response = httpx.post(f"{base_url}{CHAT}", content=body("Hi"), headers=KEY)
    error = assert_openai_error(response, 400, "upstream_rejected")
    assert "scripted 400" in error["message"] and upstream_url not in error["message"]


def test_an_upstream_that_times_out_is_a_504() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)
        writer.close()

    async def run() -> tuple[int, dict[str, Any]]:
        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        upstream = HTTPUpstream(f"http://127.0.0.1:{port}/v1", max_retries=0, timeout=0.2)
        app = gateway(upstream)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            response = await client.post(CHAT, content=body("Hi"), headers=KEY)
        await upstream.aclose()
        server.close()
        return response.status_code, response.json()["error"]

    status, error = asyncio.run(run())
    assert (status, error["code"]) == (504, "upstream_timeout")
    assert "127.0.0.1" not in error["message"]


def test_healthz_is_a_503_while_the_circuit_is_open() -> None:
    breaker = CircuitBreaker(failures=1, cooldown=60)
    fake = fake_openai_app("Hi", failures=[500])
    with serving(fake) as upstream_url:
        app = gateway(HTTPUpstream(f"{upstream_url}/v1", max_retries=0, breaker=breaker))
        with serving(app) as base_url:
            assert httpx.get(f"{base_url}/healthz").json()["status"] == "ok"
            assert httpx.post(f"{base_url}{CHAT}", content=body("Hi"), headers=KEY).status_code
            health = httpx.get(f"{base_url}/healthz")
            assert health.status_code == 503
            assert health.json()["status"] == "unavailable"
            assert health.json()["circuit"] == "open"


def test_models_lists_the_upstreams_own_when_none_is_configured(setup: Setup) -> None:
    listed = httpx.get(f"{setup.base_url}/v1/models", headers=KEY).json()
    assert [m["id"] for m in listed["data"]] == ["fake-model"]


def test_models_of_an_upstream_that_is_down_is_a_502() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = gateway(HTTPUpstream(f"http://127.0.0.1:{port}/v1", max_retries=0))
    with serving(app) as base_url:
        response = httpx.get(f"{base_url}/v1/models", headers=KEY)
    assert_openai_error(response, 502, "upstream_error")
    assert str(port) not in response.text


def test_a_nul_character_is_stored_as_a_replacement_character(setup: Setup) -> None:
    """PostgreSQL's text type refuses NUL: the stored event carries U+FFFD instead."""
    response = setup.post(CHAT, body("hello\u0000world"))
    assert response.status_code == 200
    event = setup.sink.event(response.json()["bastion"]["event_id"])
    assert "\x00" not in event.prompt and "hello\ufffdworld" in event.prompt


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_not_json(setup: Setup, literal: str) -> None:
    """Python's parser takes them; forwarded, they would be invalid JSON to the upstream."""
    raw = body("hi").replace(
        b'"hi"}]', b'"hi"}], "metadata": {"weight": ' + literal.encode() + b"}"
    )
    error = assert_openai_error(setup.post(CHAT, raw), 400, "invalid_json")
    assert literal in error["message"]
