"""Where the gateway's answers come from: the :class:`Upstream` protocol, and any
OpenAI-compatible server as one (:class:`HTTPUpstream`).

``HTTPUpstream`` keeps one pooled ``httpx.AsyncClient``. Timeouts, dropped connections, 5xx and
429 answers and bodies that are not chat completions are retried with exponential backoff and
full jitter (honouring ``Retry-After``), as :class:`~bastion.models.OpenAIChatModel` does; other
4xx answers are passed on at once. A :class:`~bastion.serve.circuit.CircuitBreaker` counts
failed attempts (5xx, timeouts, dropped connections, malformed bodies; a 4xx means the server
is alive): while it is open, calls fail at once with a 503. A stream is retried only until its
first chunk arrives; a stream that breaks later ends with an error.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from bastion.errors import UpstreamError
from bastion.models.openai_compat import RETRYABLE_STATUS, _error_message, _retry_after
from bastion.serve.circuit import CircuitBreaker


@dataclass(frozen=True)
class UpstreamRequest:
    """A chat request as the gateway forwards it (the user turn already masked if needed)."""

    model: str
    messages: list[dict[str, Any]]
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # other OpenAI fields, for HTTP servers
    headers: dict[str, str] = field(default_factory=dict)  # trace context


@dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: str = "stop"
    prompt_tokens: int | None = None  # None: the upstream did not say
    completion_tokens: int | None = None


@dataclass(frozen=True)
class Delta:
    """One piece of a streamed answer; the last ones carry the finish reason and usage."""

    text: str = ""
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


class UpstreamFailure(UpstreamError):
    """The upstream could not answer; ``status`` is what the client gets."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 502,
        code: str = "upstream_error",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.retry_after = status, code, retry_after


class Upstream(Protocol):
    """A model behind the gateway."""

    provider: str  # gen_ai.provider.name

    @property
    def circuit_state(self) -> str: ...  # "closed", "open" or "half_open"

    async def complete(self, request: UpstreamRequest) -> Completion: ...

    def stream(self, request: UpstreamRequest) -> AsyncGenerator[Delta, None]: ...

    async def aclose(self) -> None: ...


class HTTPUpstream:
    """Any OpenAI-compatible ``/v1/chat/completions`` server; see the module docstring."""

    def __init__(
        self,
        base_url: str,
        *,
        model: str | None = None,
        api_key: str | None = None,
        provider: str = "openai",
        timeout: float = 60.0,
        connect_timeout: float = 5.0,
        max_retries: int = 2,
        backoff: float = 0.25,
        max_backoff: float = 8.0,
        breaker: CircuitBreaker | None = None,
        concurrency: int = 64,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model, self.api_key, self.provider = model, api_key, provider
        self.timeout = httpx.Timeout(timeout, connect=connect_timeout)
        self.max_retries, self.backoff, self.max_backoff = max_retries, backoff, max_backoff
        self.breaker = breaker or CircuitBreaker()
        self.concurrency = concurrency
        self._transport, self._sleep = transport, sleep
        self._client: httpx.AsyncClient | None = None

    @property
    def circuit_state(self) -> str:
        return self.breaker.state

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:  # made in the server's event loop, on first use
            headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
            self._client = httpx.AsyncClient(
                base_url=self.base_url,
                headers=headers,
                timeout=self.timeout,
                transport=self._transport,
                limits=httpx.Limits(max_connections=self.concurrency),
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def complete(self, request: UpstreamRequest) -> Completion:
        body = self._body(request, stream=False)
        failure = ""
        for attempt in range(self.max_retries + 1):
            self._admit(failure)
            delay: float | None = None
            try:
                response = await self.client.post(
                    "/chat/completions", json=body, headers=request.headers
                )
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                failure = _describe(exc)
                self.breaker.failure()
            except BaseException:
                self.breaker.abandon()
                raise
            else:
                if response.status_code == 200:
                    completion = _parse_completion(response)
                    if completion is not None:
                        self.breaker.success()
                        return completion
                    failure = "the response is not a chat completion"
                    self.breaker.failure()
                else:
                    failure, delay = self._judge(response)
            await self._backoff(attempt, delay)
        raise self._exhausted(failure)

    async def stream(self, request: UpstreamRequest) -> AsyncGenerator[Delta, None]:
        body = self._body(request, stream=True)
        failure = ""
        for attempt in range(self.max_retries + 1):
            self._admit(failure)
            delay: float | None = None
            started = False  # a chunk went to the caller: no more retries
            try:
                async with self.client.stream(
                    "POST", "/chat/completions", json=body, headers=request.headers
                ) as response:
                    if response.status_code != 200:
                        await response.aread()
                        failure, delay = self._judge(response)
                    else:
                        async for delta in _sse_deltas(response):
                            if not started:
                                self.breaker.success()
                                started = True
                            yield delta
                        if started:
                            return
                        failure = "the stream ended before any chunk"
                        self.breaker.failure()
            except (httpx.TimeoutException, httpx.TransportError, _Malformed) as exc:
                if not started:
                    self.breaker.failure()
                failure = _describe(exc)
                if started:
                    raise UpstreamFailure(f"{self.base_url}: {failure} mid-stream") from None
            except UpstreamFailure:
                raise
            except BaseException:
                if not started:
                    self.breaker.abandon()
                raise
            await self._backoff(attempt, delay)
        raise self._exhausted(failure)

    def _body(self, request: UpstreamRequest, *, stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            **request.extra,
            "model": self.model or request.model,
            "messages": request.messages,
            "stream": stream,
        }
        optional = {
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "seed": request.seed,
            "stop": request.stop or None,
        }
        body.update((k, v) for k, v in optional.items() if v is not None)
        if stream:
            body["stream_options"] = {"include_usage": True}
        return body

    def _admit(self, last_failure: str) -> None:
        wait = self.breaker.allow()
        if wait > 0:
            why = f" (last: {last_failure})" if last_failure else ""
            raise UpstreamFailure(
                f"{self.base_url}: the circuit is open after repeated failures{why}; "
                f"retry in {wait:.1f} s",
                status=503,
                code="upstream_unavailable",
                retry_after=wait,
            )

    def _judge(self, response: httpx.Response) -> tuple[str, float | None]:
        """(why, Retry-After) for a retryable answer; raises for any other."""
        status = response.status_code
        if status >= 500:
            self.breaker.failure()
        else:
            self.breaker.success()  # it answered: it is alive
        if status in RETRYABLE_STATUS:
            return f"HTTP {status}", _retry_after(response)
        raise UpstreamFailure(
            f"{self.base_url}: HTTP {status}: {_error_message(response)}",
            status=status if 400 <= status < 500 else 502,
        )

    async def _backoff(self, attempt: int, delay: float | None) -> None:
        if attempt < self.max_retries:
            cap = min(self.max_backoff, self.backoff * 2**attempt)
            await self._sleep(delay if delay is not None else random.uniform(0, cap))

    def _exhausted(self, failure: str) -> UpstreamFailure:
        attempts = self.max_retries + 1
        return UpstreamFailure(f"{self.base_url}: {failure} after {attempts} attempts")


class _Malformed(Exception):
    """A stream chunk that is not JSON."""


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}" + (f": {exc}" if str(exc) else "")


def _parse_completion(response: httpx.Response) -> Completion | None:
    try:
        data = response.json()
        choice = data["choices"][0]
        content = choice["message"].get("content") or ""
        usage = data.get("usage") or {}
        return Completion(
            text=str(content),
            finish_reason=str(choice.get("finish_reason") or "stop"),
            prompt_tokens=_int_or_none(usage.get("prompt_tokens")),
            completion_tokens=_int_or_none(usage.get("completion_tokens")),
        )
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return None


async def _sse_deltas(response: httpx.Response) -> AsyncIterator[Delta]:
    """The deltas of an OpenAI server-sent-event stream, up to ``data: [DONE]``."""
    async for line in response.aiter_lines():
        if not line.startswith("data:"):
            continue  # blank separators, comments, event: lines
        data = line[5:].strip()
        if data == "[DONE]":
            return
        try:
            chunk = json.loads(data)
            if "error" in chunk:
                error = chunk["error"]
                message = error.get("message") if isinstance(error, dict) else error
                raise UpstreamFailure(f"upstream stream error: {message}")
            choices = chunk.get("choices") or [{}]
            delta = choices[0].get("delta") or {}
            usage = chunk.get("usage") or {}
        except (ValueError, TypeError, AttributeError, IndexError) as exc:
            raise _Malformed(f"a stream chunk is not a chat completion chunk: {data[:80]}") from exc
        yield Delta(
            text=str(delta.get("content") or ""),
            finish_reason=choices[0].get("finish_reason"),
            prompt_tokens=_int_or_none(usage.get("prompt_tokens")),
            completion_tokens=_int_or_none(usage.get("completion_tokens")),
        )


def _int_or_none(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) else None
