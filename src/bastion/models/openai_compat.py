"""Any OpenAI-compatible ``/v1/chat/completions`` server as a :class:`ChatModel`.

vLLM, SGLang, TGI, llama.cpp's server, Ollama and hosted APIs all speak this protocol. Requests
run concurrently up to a limit; timeouts, connection errors, 429 and 5xx answers (and bodies
that are not the expected JSON) are retried with exponential backoff and full jitter, honouring
``Retry-After``; any other 4xx fails at once. The API key comes from the environment
(``$OPENAI_API_KEY`` unless ``api_key_env`` names another variable), never from code.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import httpx

from bastion.errors import UpstreamError
from bastion.models.base import truncate_at_stop
from bastion.types import ConversationLike, as_conversation

RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
MAX_STOP_STRINGS = 4


class OpenAIChatModel:
    """A remote chat model; see the module docstring."""

    def __init__(
        self,
        model: str,
        *,
        base_url: str = "http://127.0.0.1:8000/v1",
        api_key: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        concurrency: int = 8,
        timeout: float = 60.0,
        max_retries: int = 4,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        extra_body: dict[str, Any] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        name: str | None = None,
    ) -> None:
        if concurrency < 1 or max_retries < 0 or timeout <= 0:
            raise ValueError("need concurrency >= 1, max_retries >= 0 and timeout > 0")
        self.model = model
        self.name = name or model
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key if api_key is not None else os.environ.get(api_key_env)
        self.concurrency = concurrency
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.extra_body = dict(extra_body or {})
        self._transport = transport
        self._sleep = sleep

    def generate(
        self,
        conversations: Sequence[ConversationLike],
        *,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int | None = None,
        stop: Sequence[str] | None = None,
    ) -> list[str]:
        """Blocking form of :meth:`agenerate` (safe to call from inside an event loop)."""
        work = self.agenerate(
            conversations,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_p=top_p,
            seed=seed,
            stop=stop,
        )
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(work)
        box: dict[str, Any] = {}

        def run() -> None:
            try:
                box["value"] = asyncio.run(work)
            except BaseException as exc:  # re-raised in the caller's thread below
                box["error"] = exc

        thread = threading.Thread(target=run)
        thread.start()
        thread.join()
        if "error" in box:
            raise box["error"]
        result: list[str] = box["value"]
        return result

    async def agenerate(
        self,
        conversations: Sequence[ConversationLike],
        *,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int | None = None,
        stop: Sequence[str] | None = None,
    ) -> list[str]:
        messages = [as_conversation(c).to_dicts() for c in conversations]  # fail before sending
        stop = [s for s in stop or () if s]
        limit = asyncio.Semaphore(self.concurrency)
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        async with httpx.AsyncClient(
            base_url=self.base_url,
            headers=headers,
            timeout=self.timeout,
            transport=self._transport,
            limits=httpx.Limits(max_connections=self.concurrency),
        ) as client:

            async def one(turns: list[dict[str, str]]) -> str:
                body: dict[str, Any] = {
                    "model": self.model,
                    "messages": turns,
                    "max_tokens": max_new_tokens,
                    "temperature": temperature,
                    "top_p": top_p,
                    **self.extra_body,
                }
                if seed is not None:
                    body["seed"] = seed
                if stop:  # the API takes at most 4; any others are applied here
                    body["stop"] = stop[:MAX_STOP_STRINGS]
                async with limit:
                    reply = await self._post_with_retries(client, body)
                return truncate_at_stop(reply, stop)

            # A task group cancels the other requests as soon as one fails for good.
            try:
                async with asyncio.TaskGroup() as group:
                    tasks = [group.create_task(one(turns)) for turns in messages]
            except ExceptionGroup as failed:
                raise failed.exceptions[0] from None  # the first real failure, not a group
            return [task.result() for task in tasks]

    async def _post_with_retries(self, client: httpx.AsyncClient, body: dict[str, Any]) -> str:
        failure = ""
        for attempt in range(self.max_retries + 1):
            delay: float | None = None
            try:
                response = await client.post("/chat/completions", json=body)
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                failure = f"{type(exc).__name__} calling {self.base_url}"
            else:
                if response.status_code == 200:
                    content = _reply_content(response)
                    if content is not None:
                        return content
                    failure = "the response is not a chat completion"
                elif response.status_code in RETRYABLE_STATUS:
                    failure = f"HTTP {response.status_code}"
                    delay = retry_after(response.headers)
                else:
                    message = error_message(response.text)
                    raise UpstreamError(f"{self.base_url}: HTTP {response.status_code}: {message}")
            if attempt < self.max_retries:
                cap = min(self.max_backoff, self.backoff * 2**attempt)
                await self._sleep(delay if delay is not None else random.uniform(0, cap))
        raise UpstreamError(f"{self.base_url}: {failure} after {self.max_retries + 1} attempts")


def _reply_content(response: httpx.Response) -> str | None:
    try:
        data = response.json()
        content = data["choices"][0]["message"].get("content")
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return None
    return content if isinstance(content, str) else ""


def retry_after(headers: Mapping[str, str]) -> float | None:
    """A ``Retry-After`` header in seconds (at most two minutes); None if absent or a date."""
    value = headers.get("retry-after")
    try:
        return min(float(value), 120.0) if value is not None else None
    except ValueError:
        return None


def error_message(body: str) -> str:
    """What an error answer says: its OpenAI ``error.message``, else the start of the body."""
    try:
        error = json.loads(body).get("error")
        message = error.get("message") if isinstance(error, dict) else error
        return str(message or body[:200])
    except (ValueError, AttributeError):
        return body[:200] or "(empty body)"
