"""The gateway in front of an OpenAI-compatible server: retries, the circuit breaker,
streaming pass-through. The upstream is a scripted FastAPI app on its own loopback port."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import openai
import pytest
import yarl

from bastion.guard.pipeline import Guard
from bastion.guard.policy import parse_policy
from bastion.serve import (
    CircuitBreaker,
    GatewayConfig,
    HTTPUpstream,
    MemorySink,
    UpstreamFailure,
    UpstreamRequest,
    create_app,
)
from bastion.serve.fakes import fake_openai_app, serving
from bastion.serve.upstream import env_proxy

KEYS = {"sk-test": {"user": "carol", "rate_per_minute": None}}
MESSAGES = [{"role": "user", "content": "Say something nice."}]


@pytest.fixture(scope="module")
def guard() -> Guard:
    """A light policy: these tests are about the upstream, not the rails."""
    return Guard(parse_policy({"output": [{"scanner": "pii", "action": "mask"}]}))


@contextmanager
def gateway_for(
    upstream_url: str, guard: Guard, **options: float
) -> Iterator[tuple[openai.OpenAI, MemorySink, HTTPUpstream]]:
    upstream = HTTPUpstream(
        f"{upstream_url}/v1",
        model="upstream-model",
        backoff=0.0,
        max_retries=int(options.get("max_retries", 2)),
        timeout=2.0,
        breaker=CircuitBreaker(
            failures=int(options.get("failures", 5)), cooldown=options.get("cooldown", 60.0)
        ),
    )
    sink = MemorySink()
    app = create_app(GatewayConfig(keys=KEYS), sink=sink, upstream=upstream, guard=guard)
    with serving(app) as base_url:
        client = openai.OpenAI(base_url=f"{base_url}/v1", api_key="sk-test", max_retries=0)
        yield client, sink, upstream


def dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_upstream_5xx_and_garbage_are_retried_then_succeed(guard: Guard) -> None:
    fake = fake_openai_app("Happy to help.", failures=[500, "garbage", 503])
    with serving(fake) as url, gateway_for(url, guard, max_retries=3) as (client, sink, _):
        reply = client.chat.completions.create(model="asked", messages=MESSAGES)
        assert reply.choices[0].message.content == "Happy to help."
        assert reply.model == "asked"  # the client's name is echoed
        assert len(fake.state.calls) == 4
        assert fake.state.calls[-1]["model"] == "upstream-model"
        assert reply.usage is not None and reply.usage.completion_tokens == 3  # upstream's usage
        event = sink.events[-1]
        assert event.status == 200 and event.error is None and event.upstream_ms > 0


def test_a_stream_passes_through_with_the_upstream_usage(guard: Guard) -> None:
    answer = "Mail me at ann@corp.example any time, I read it daily and answer quickly."
    fake = fake_openai_app(answer, failures=[502])
    with serving(fake) as url, gateway_for(url, guard) as (client, sink, _):
        chunks = list(
            client.chat.completions.create(
                model="asked",
                messages=MESSAGES,
                stream=True,
                stream_options={"include_usage": True},
            )
        )
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == answer.replace("ann@corp.example", "<EMAIL_1>")
        assert chunks[-1].usage is not None
        assert chunks[-1].usage.completion_tokens == len(answer.split())
        assert fake.state.calls[-1]["stream"] is True
        assert sink.events[-1].stream and sink.events[-1].decision == "mask"


def test_a_client_error_upstream_is_passed_on_not_retried(guard: Guard) -> None:
    fake = fake_openai_app("unused", failures=[400])
    with serving(fake) as url, gateway_for(url, guard) as (client, sink, upstream):
        with pytest.raises(openai.BadRequestError, match="scripted 400"):
            client.chat.completions.create(model="asked", messages=MESSAGES)
        assert len(fake.state.calls) == 1 and upstream.circuit_state == "closed"
        assert sink.events[-1].status == 400


def test_a_dead_upstream_opens_the_circuit_and_then_fails_fast(guard: Guard) -> None:
    port = dead_port()
    url = f"http://127.0.0.1:{port}"
    with gateway_for(url, guard, max_retries=1, failures=2) as (client, sink, upstream):
        with pytest.raises(openai.InternalServerError) as first:
            client.chat.completions.create(model="asked", messages=MESSAGES)
        assert first.value.status_code == 502
        assert "could not connect (Connection refused)" in first.value.message
        assert str(port) not in first.value.message  # no address for the client
        assert upstream.circuit_state == "open"
        for stream in (False, True):
            start = time.perf_counter()
            with pytest.raises(openai.APIStatusError) as fast:
                client.chat.completions.create(model="asked", messages=MESSAGES, stream=stream)
            assert time.perf_counter() - start < 1.0
            assert fast.value.status_code == 503
            assert int(fast.value.response.headers["retry-after"]) >= 59
            assert fast.value.response.headers["x-bastion-event-id"] == sink.events[-1].id
        assert [e.status for e in sink.events] == [502, 503, 503]
        assert all(e.error for e in sink.events) and sink.events[2].stream
        assert "circuit is open" in (sink.events[1].error or "")
        metrics = httpx.get(str(client.base_url.join("/metrics"))).text
        assert 'bastion_circuit_state{bastion_circuit_state="open"} 1.0' in metrics
        assert 'bastion_upstream_errors_total{code="upstream_unavailable"} 2.0' in metrics


def test_the_circuit_half_opens_for_one_probe() -> None:
    now = [0.0]
    breaker = CircuitBreaker(failures=2, cooldown=10.0, clock=lambda: now[0])
    breaker.failure()
    assert breaker.state == "closed" and breaker.allow() == 0
    breaker.failure()
    assert breaker.state == "open" and breaker.allow() == pytest.approx(10.0)
    now[0] = 10.0
    assert breaker.state == "half_open"
    assert breaker.allow() == 0  # the probe
    assert breaker.allow() > 0  # everyone else waits for it
    breaker.failure()  # the probe failed: open again, for a full cool-down
    assert breaker.state == "open" and breaker.allow() == pytest.approx(10.0)
    now[0] = 20.0
    assert breaker.allow() == 0
    breaker.success()
    assert breaker.state == "closed" and breaker.allow() == 0


def test_a_stream_that_breaks_after_its_first_chunk_is_not_retried() -> None:
    calls = []

    async def breaks(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """A server that sends one chunk of a stream and then loses its connection."""
        calls.append(await reader.readuntil(b"\r\n\r\n"))
        chunk = b'data: {"choices": [{"delta": {"content": "Hel"}}]}\n\n'
        head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
        writer.write(head + b"transfer-encoding: chunked\r\n\r\n")
        writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        await writer.drain()
        writer.transport.abort()

    async def consume() -> list[str]:
        server = await asyncio.start_server(breaks, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        upstream = HTTPUpstream(f"http://127.0.0.1:{port}/v1", backoff=0.0)
        got = []
        try:
            async for delta in upstream.stream(UpstreamRequest("m", MESSAGES)):
                got.append(delta.text)
        finally:
            assert upstream.circuit_state == "closed"
            await upstream.aclose()
            server.close()
        return got

    with pytest.raises(UpstreamFailure, match="dropped mid-stream"):
        asyncio.run(consume())
    assert len(calls) == 1


def test_an_upstream_that_stalls_times_out_and_is_retried() -> None:
    calls = []

    async def stalls(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        calls.append(await reader.readuntil(b"\r\n\r\n"))
        await asyncio.sleep(5)  # never answers within the timeout

    async def call() -> None:
        server = await asyncio.start_server(stalls, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        upstream = HTTPUpstream(
            f"http://127.0.0.1:{port}/v1",
            timeout=0.2,
            max_retries=1,
            backoff=0.0,
            breaker=CircuitBreaker(failures=2),
        )
        start = time.perf_counter()
        try:
            await upstream.complete(UpstreamRequest("m", MESSAGES))
        finally:
            assert 0.4 <= time.perf_counter() - start < 2.0  # two attempts of 0.2 s
            assert upstream.circuit_state == "open"  # both attempts counted as failures
            await upstream.aclose()
            server.close()

    with pytest.raises(UpstreamFailure, match="timed out after 2 attempts"):
        asyncio.run(call())
    assert len(calls) == 2


def test_the_upstream_goes_through_the_proxy_the_environment_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen = []
    body = b'{"choices": [{"message": {"content": "via the proxy"}, "finish_reason": "stop"}]}'

    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        seen.append(head.split(b"\r\n")[0])
        length = next(
            int(line.split(b":")[1]) for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        )  # fmt: skip
        await reader.readexactly(length)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n")
        writer.write(b"content-length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        writer.close()

    async def call() -> str:
        server = await asyncio.start_server(proxy, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{port}")
        monkeypatch.setenv("NO_PROXY", "bypassed.example")
        assert env_proxy(yarl.URL("http://bypassed.example/v1")) is None
        upstream = HTTPUpstream("http://upstream.example/v1", max_retries=0)
        try:
            return (await upstream.complete(UpstreamRequest("m", MESSAGES))).text
        finally:
            await upstream.aclose()
            server.close()

    assert asyncio.run(call()) == "via the proxy"
    assert seen == [b"POST http://upstream.example/v1/chat/completions HTTP/1.1"]


def raw_server(answer: bytes, seen: list[bytes]) -> Any:
    """A one-answer HTTP server on a loopback port: records each request head, sends
    ``answer`` as is, closes the connection."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        seen.append(head.split(b"\r\n")[0])
        writer.write(answer)
        await writer.drain()
        writer.close()

    return asyncio.start_server(handle, "127.0.0.1", 0)


def test_a_stream_reads_lines_of_any_length_and_any_line_ending() -> None:
    long = "x" * 600_000  # past aiohttp's own readline limit (512 KiB)
    events = (
        f'data: {{"choices": [{{"delta": {{"content": "{long}"}}}}]}}\n\n'
        'data: {"choices": [{"delta": {"content": "cr"}}]}\r\r'  # bare CR, as SSE allows
        'data: {"choices": [{"delta": {"content": "lf"}, "finish_reason": "stop"}]}\r\n\r\n'
        "data: [DONE]\n\n"
    ).encode()
    head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
    answer = head + b"content-length: %d\r\n\r\n%s" % (len(events), events)

    async def consume() -> list[str]:
        server = await raw_server(answer, [])
        port = server.sockets[0].getsockname()[1]
        upstream = HTTPUpstream(f"http://127.0.0.1:{port}/v1", max_retries=0)
        try:
            return [d.text async for d in upstream.stream(UpstreamRequest("m", MESSAGES))]
        finally:
            await upstream.aclose()
            server.close()

    assert asyncio.run(consume()) == [long, "cr", "lf"]


def test_a_redirect_is_not_followed() -> None:
    """A redirect would send the prompt to a host nobody configured: it is a failed call."""
    elsewhere: list[bytes] = []
    here: list[bytes] = []

    async def call() -> None:
        target = await raw_server(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n", elsewhere)
        port = target.sockets[0].getsockname()[1]
        location = f"http://127.0.0.1:{port}/v1/chat/completions".encode()
        moved = b"HTTP/1.1 307 Temporary Redirect\r\nlocation: %s\r\n" % location
        source = await raw_server(moved + b"content-length: 0\r\n\r\n", here)
        upstream = HTTPUpstream(
            f"http://127.0.0.1:{source.sockets[0].getsockname()[1]}/v1", max_retries=0
        )
        try:
            await upstream.complete(UpstreamRequest("m", MESSAGES))
        finally:
            await upstream.aclose()
            source.close()
            target.close()

    with pytest.raises(UpstreamFailure, match="HTTP 307") as failed:
        asyncio.run(call())
    assert failed.value.status == 502 and len(here) == 1 and elsewhere == []


@pytest.mark.parametrize(
    ("env", "url", "proxy"),
    [
        ({"HTTPS_PROXY": "proxy.corp:3128"}, "https://api.example/v1", "http://proxy.corp:3128"),
        ({"ALL_PROXY": "http://all:1"}, "http://vllm.internal/v1", "http://all:1"),
        ({"ALL_PROXY": "http://all:1", "NO_PROXY": "10.0.0.0/8"}, "http://10.2.3.4/v1", None),
        ({"HTTP_PROXY": "http://p:1", "NO_PROXY": ".internal"}, "http://a.b.internal/v1", None),
        ({"HTTP_PROXY": "http://p:1", "NO_PROXY": "internal"}, "http://xinternal/v1", "http://p:1"),
        ({"HTTP_PROXY": "http://p:1", "NO_PROXY": "*"}, "http://anything/v1", None),
    ],
)
def test_the_environment_proxy_is_read_as_httpx_reads_it(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], url: str, proxy: str | None
) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert env_proxy(yarl.URL(url)) == proxy
