"""Where the gateway's answers come from: the :class:`Upstream` protocol, and any
OpenAI-compatible server as one (:class:`HTTPUpstream`).

``HTTPUpstream`` keeps one pooled ``aiohttp`` session: it spends about a third of the CPU
that ``httpx`` does per call (0.33 vs 1.04 ms, ``benchmarks/http_clients.py``), on every
request the gateway forwards. Timeouts, dropped connections, 5xx and 429 answers and bodies
that are not chat completions are retried with exponential backoff and full jitter (honouring
``Retry-After``), as :class:`~bastion.models.OpenAIChatModel` does; other 4xx answers are
passed on at once. A :class:`~bastion.serve.circuit.CircuitBreaker` counts failed attempts
(5xx, timeouts, dropped connections, malformed bodies; a 4xx means the server is alive):
while it is open, calls fail at once with a 503. A stream is retried only until its first
chunk arrives; a stream that breaks later ends with an error.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import re
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
import yarl

from bastion.errors import UpstreamError
from bastion.models.openai_compat import RETRYABLE_STATUS, error_message, retry_after
from bastion.serve.circuit import CircuitBreaker
from bastion.serve.transport import env_proxy, tls_context

logger = logging.getLogger("bastion.serve")


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
class Choice:
    """One answer of several (``n > 1``): its text, finish reason and tool calls."""

    text: str
    finish_reason: str = "stop"
    tool_calls: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class Completion:
    """The first answer's text, finish reason and tool calls (OpenAI's ``tool_calls`` items,
    as the upstream sent them), the token counts, and any further answers (``n > 1``)."""

    text: str
    finish_reason: str = "stop"
    prompt_tokens: int | None = None  # None: the upstream did not say
    completion_tokens: int | None = None
    tool_calls: tuple[dict[str, Any], ...] = ()
    more: tuple[Choice, ...] = ()

    @property
    def choices(self) -> tuple[Choice, ...]:
        return (Choice(self.text, self.finish_reason, self.tool_calls), *self.more)


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
    """Any OpenAI-compatible ``/v1/chat/completions`` server; see the module docstring.

    ``timeout`` bounds the wait for a free pooled connection and each read (a stream may run
    longer, as long as it keeps sending); ``connect_timeout`` bounds opening a connection.
    Proxies come from the environment (``HTTPS_PROXY``, ``NO_PROXY`` …), as with ``httpx``."""

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
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.url = yarl.URL(f"{self.base_url}/chat/completions")
        self.model, self.api_key, self.provider = model, api_key, provider
        self.timeout = aiohttp.ClientTimeout(
            total=None, connect=timeout, sock_connect=connect_timeout, sock_read=timeout
        )
        self.max_retries, self.backoff, self.max_backoff = max_retries, backoff, max_backoff
        self.breaker = breaker or CircuitBreaker()
        self.concurrency = concurrency
        self._sleep = sleep
        self._session: aiohttp.ClientSession | None = None
        self._proxy: str | None = None
        self._models: tuple[float, list[str]] | None = None  # (when asked, names)

    @property
    def circuit_state(self) -> str:
        return self.breaker.state

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:  # made in the server's event loop, on first use
            headers = {"Content-Type": "application/json"}
            if self.api_key:
                headers["Authorization"] = f"Bearer {self.api_key}"
            connector = aiohttp.TCPConnector(limit=self.concurrency, ssl=tls_context())
            self._session = aiohttp.ClientSession(
                headers=headers, timeout=self.timeout, connector=connector
            )
            self._proxy = env_proxy(self.url)  # once: aiohttp's trust_env re-reads per call
        return self._session

    async def list_models(self) -> list[str]:
        """The upstream's model names (``GET /models``), asked at most once a minute."""
        now = asyncio.get_running_loop().time()
        if self._models is not None and now - self._models[0] < MODELS_TTL_S:
            return self._models[1]
        try:
            async with self.session.get(
                f"{self.base_url}/models", proxy=self._proxy, allow_redirects=False
            ) as response:
                status, body = response.status, await response.read()
        except TRANSPORT_ERRORS as exc:
            logger.warning("upstream %s: /models: %s", self.base_url, _describe(exc))
            why = self._scrub(_describe(exc))
            raise UpstreamFailure(f"the upstream's model list: {why}") from None
        try:
            if status != 200:
                raise ValueError(f"HTTP {status}")
            names = [str(m["id"]) for m in json.loads(body)["data"]]
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            logger.warning("upstream %s: /models: %s", self.base_url, exc)
            raise UpstreamFailure("the upstream's model list could not be read") from None
        self._models = (now, names)
        return names

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def complete(self, request: UpstreamRequest) -> Completion:
        payload = self._payload(request, stream=False)
        failure = ""
        for attempt in range(self.max_retries + 1):
            self._admit(failure)
            delay: float | None = None
            try:
                async with self._post(payload, request) as response:
                    status, headers, body = response.status, response.headers, await response.read()
            except TRANSPORT_ERRORS as exc:
                self.breaker.failure()
                failure = _describe(exc)
            except BaseException:
                self.breaker.abandon()
                raise
            else:
                if status == 200:
                    completion = _parse_completion(body)
                    if completion is not None:
                        self.breaker.success()
                        return completion
                    failure = "the response is not a chat completion"
                    self.breaker.failure()
                else:
                    failure, delay = self._judge(status, headers, body)
            await self._backoff(attempt, delay)
        raise self._exhausted(failure)

    async def stream(self, request: UpstreamRequest) -> AsyncGenerator[Delta, None]:
        payload = self._payload(request, stream=True)
        failure = ""
        for attempt in range(self.max_retries + 1):
            self._admit(failure)
            delay: float | None = None
            started = False  # a chunk went to the caller: no more retries
            try:
                async with self._post(payload, request) as response:
                    if response.status != 200:
                        body = await response.read()
                        failure, delay = self._judge(response.status, response.headers, body)
                    else:
                        async for delta in _sse_deltas(response.content):
                            if not started:
                                self.breaker.success()
                                started = True
                            yield delta
                        if started:
                            return
                        failure = "the stream ended before any chunk"
                        self.breaker.failure()
            except (*TRANSPORT_ERRORS, _Malformed) as exc:
                if not started:
                    self.breaker.failure()
                failure = _describe(exc)
                if started:
                    logger.warning("upstream %s: %s mid-stream", self.base_url, failure)
                    message = f"the upstream: {self._scrub(failure)} mid-stream"
                    raise UpstreamFailure(message) from None
            except UpstreamFailure:  # an error event in the stream
                if not started:
                    self.breaker.failure()
                raise
            except BaseException:
                if not started:
                    self.breaker.abandon()
                raise
            await self._backoff(attempt, delay)
        raise self._exhausted(failure)

    def _post(
        self, payload: bytes, request: UpstreamRequest
    ) -> aiohttp.client._RequestContextManager:
        # a redirect is an answer like any other: following it would send the (masked)
        # prompt to a host nobody configured, as httpx would not either
        return self.session.post(
            self.url,
            data=payload,
            headers=request.headers,
            proxy=self._proxy,
            allow_redirects=False,
        )

    def _payload(self, request: UpstreamRequest, *, stream: bool) -> bytes:
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
        return json.dumps(body, separators=(",", ":")).encode()

    def _admit(self, last_failure: str) -> None:
        wait = self.breaker.allow()
        if wait > 0:
            why = f" (last: {last_failure})" if last_failure else ""
            raise UpstreamFailure(
                f"the upstream's circuit is open after repeated failures{why}; "
                f"retry in {wait:.1f} s",
                status=503,
                code="upstream_unavailable",
                retry_after=wait,
            )

    def _judge(
        self, status: int, headers: Mapping[str, str], body: bytes
    ) -> tuple[str, float | None]:
        """(why, Retry-After) for a retryable answer; raises for any other."""
        if status >= 500:
            self.breaker.failure()
        else:
            self.breaker.success()  # it answered: it is alive
        if status in RETRYABLE_STATUS:
            return f"HTTP {status}", retry_after(headers)
        message = error_message(body.decode(errors="replace"))
        logger.warning("upstream %s: HTTP %s: %s", self.base_url, status, message)
        if status in CLIENT_STATUS:  # the request itself (too long a context, say): the
            raise UpstreamFailure(  # client's to fix, with the upstream's own words
                f"the upstream rejected the request (HTTP {status}): {self._scrub(message)}",
                status=status,
                code="upstream_rejected",
            )
        if status in (401, 403, 407):  # the gateway's credentials, not the client's
            raise UpstreamFailure(
                f"the upstream refused the gateway's credentials (HTTP {status})",
                code="upstream_auth_failed",
            )
        raise UpstreamFailure(f"the upstream answered HTTP {status}")

    async def _backoff(self, attempt: int, delay: float | None) -> None:
        if attempt < self.max_retries:
            cap = min(self.max_backoff, self.backoff * 2**attempt)
            await self._sleep(delay if delay is not None else random.uniform(0, cap))

    def _exhausted(self, failure: str) -> UpstreamFailure:
        """The last failure, after every attempt: a 504 for timeouts, a 503 for an upstream
        that kept saying 429 or 503, a 502 otherwise."""
        attempts = self.max_retries + 1
        logger.warning("upstream %s: %s after %d attempts", self.base_url, failure, attempts)
        message = f"the upstream: {self._scrub(failure)} after {attempts} attempts"
        if failure == "timed out":
            return UpstreamFailure(message, status=504, code="upstream_timeout")
        if failure in ("HTTP 429", "HTTP 503"):
            return UpstreamFailure(message, status=503, code="upstream_unavailable")
        return UpstreamFailure(message)

    def _scrub(self, text: str) -> str:
        """``text`` without the upstream's address (the client has no business knowing it)."""
        for secret in (self.base_url, str(self.url.origin()), self.url.host or ""):
            if secret:
                text = text.replace(secret, "the upstream")
        return text


MODELS_TTL_S = 60.0  # how long the upstream's model list is reused
# what an upstream says about the request itself (passed on); any other 4xx is a 502
CLIENT_STATUS = (400, 404, 409, 413, 422)
# a dropped or refused connection, a timeout, a broken body: worth another attempt
TRANSPORT_ERRORS = (aiohttp.ClientError, TimeoutError)


class _Malformed(Exception):
    """A stream that is not chat completion chunks (a chunk not JSON, a line far too long)."""


def _describe(exc: BaseException) -> str:
    """One short phrase for a failed attempt (aiohttp's own messages repeat the host)."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return "the server's TLS certificate was not accepted"
    if isinstance(exc, aiohttp.ClientConnectorError):
        error = getattr(exc, "os_error", None)
        number = getattr(error, "errno", None)  # its strerror may name the address
        return f"could not connect ({os.strerror(number) if number else type(error).__name__})"
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        return "the connection was dropped"
    return f"{type(exc).__name__}" + (f": {exc}" if str(exc) else "")


def _parse_completion(body: bytes) -> Completion | None:
    try:
        data = json.loads(body)
        first, *rest = [_choice(c) for c in data["choices"]]
        usage = data.get("usage") or {}
        return Completion(
            text=first.text,
            finish_reason=first.finish_reason,
            prompt_tokens=_int_or_none(usage.get("prompt_tokens")),
            completion_tokens=_int_or_none(usage.get("completion_tokens")),
            tool_calls=first.tool_calls,
            more=tuple(rest),
        )
    except (ValueError, KeyError, IndexError, TypeError, AttributeError, RecursionError):
        return None


def _choice(choice: dict[str, Any]) -> Choice:
    message = choice["message"]
    calls = message.get("tool_calls") or ()
    if not all(isinstance(c, dict) and isinstance(c.get("function"), dict) for c in calls):
        raise TypeError("tool_calls")
    return Choice(
        text=str(message.get("content") or ""),
        finish_reason=str(choice.get("finish_reason") or "stop"),
        tool_calls=tuple(calls),
    )


MAX_LINE_BYTES = 16 * 2**20  # a stream line longer than this is refused as malformed
_LINE_END = re.compile(rb"\r\n|\r|\n")


async def _lines(content: aiohttp.StreamReader) -> AsyncIterator[str]:
    """A stream's lines, ended by CR LF, LF or CR (as server-sent events allow), up to
    ``MAX_LINE_BYTES`` long (aiohttp's own readline stops at 512 KiB); a chunk that splits
    CR LF yields one extra empty line, which server-sent events ignore."""
    pending: list[bytes] = []
    size = 0
    async for chunk in content.iter_any():
        if b"\n" not in chunk and b"\r" not in chunk:
            pending.append(chunk)
            size += len(chunk)
            if size > MAX_LINE_BYTES:
                raise _Malformed(f"a stream line is longer than {MAX_LINE_BYTES} bytes")
            continue
        pieces = _LINE_END.split(b"".join([*pending, chunk]))
        for piece in pieces[:-1]:
            yield piece.decode(errors="replace")
        pending, size = [pieces[-1]], len(pieces[-1])
    if size:
        yield b"".join(pending).decode(errors="replace")


async def _sse_deltas(content: aiohttp.StreamReader) -> AsyncIterator[Delta]:
    """The deltas of an OpenAI server-sent-event stream, up to ``data: [DONE]``."""
    async for line in _lines(content):
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
