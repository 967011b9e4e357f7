"""The OpenAI chat-completions wire format: what clients send and what they get back.

Shapes follow the OpenAI API reference (``POST /v1/chat/completions``, the
``chat.completion`` and ``chat.completion.chunk`` objects, and the ``{"error": {...}}`` body),
so the official SDKs work unchanged. Fields the gateway does not use are kept and passed on to
an HTTP upstream.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from bastion.monitor.events import new_id
from bastion.types import Conversation, Message


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None

    @property
    def text(self) -> str:
        """The message's text (the text parts of a multi-part content, joined)."""
        if isinstance(self.content, list):
            return "".join(
                str(part.get("text", "")) for part in self.content if part.get("type") == "text"
            )
        return self.content or ""


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: bool = False


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = Field(None, ge=-(2**63), le=2**63 - 1)  # OpenAI's: a 64-bit integer
    n: int = Field(1, ge=1, le=16)  # answers to one request (each through the output rails)
    user: str | None = None

    @property
    def last_user(self) -> str:
        """The last user turn: what the input rails judge."""
        return next((m.text for m in reversed(self.messages) if m.role == "user"), "")

    @property
    def system(self) -> str | None:
        texts = [m.text for m in self.messages if m.role in ("system", "developer")]
        return "\n".join(texts) if texts else None

    @property
    def stops(self) -> list[str]:
        return [self.stop] if isinstance(self.stop, str) else list(self.stop or [])

    @property
    def buffered(self) -> bool:
        """Whether a stream is answered from one whole completion: several answers, or tools
        (a tool call's arguments are judged whole, before any of it reaches the client)."""
        extra = self.model_extra or {}
        return self.n > 1 or any(extra.get(k) for k in ("tools", "functions"))

    @property
    def include_usage(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event_id: str = Field(min_length=1)
    kind: Literal["thumbs_down", "thumbs_up", "harmful", "over_refusal"]
    comment: str = Field("", max_length=10_000)


def completion_id() -> str:
    return f"chatcmpl-{new_id()}"


def now() -> int:
    return int(time.time())


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def completion_body(
    *,
    id: str,
    created: int,
    model: str,
    text: str,
    finish_reason: str,
    prompt_tokens: int,
    completion_tokens: int,
    bastion: dict[str, Any],
    tool_calls: Sequence[dict[str, Any]] = (),
    more: Sequence[tuple[str, str, Sequence[dict[str, Any]]]] = (),
) -> dict[str, Any]:
    """A ``chat.completion``: the first answer, and ``more`` as (text, finish reason, tool
    calls) for ``n > 1``."""
    answers = [(text, finish_reason, tool_calls), *more]
    return {
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": index,
                "message": message(content, calls),
                "logprobs": None,
                "finish_reason": reason,
            }
            for index, (content, reason, calls) in enumerate(answers)
        ],
        "usage": usage(prompt_tokens, completion_tokens),
        "bastion": bastion,
    }


def message(content: str, tool_calls: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """An assistant message; with tool calls, ``content`` is null when there is no text."""
    body: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
    if tool_calls:
        body["tool_calls"] = list(tool_calls)
        body["content"] = content or None
    return body


def chunk_body(
    *,
    id: str,
    created: int,
    model: str,
    delta: dict[str, Any] | None = None,
    finish_reason: str | None = None,
    usage_: dict[str, int] | None = None,
    bastion: dict[str, Any] | None = None,
    index: int = 0,
) -> dict[str, Any]:
    """One ``chat.completion.chunk``; with ``usage_`` and no delta, the closing usage chunk
    (``choices: []``), as the API sends it for ``stream_options.include_usage``."""
    body: dict[str, Any] = {
        "id": id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": []
        if delta is None
        else [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
    }
    if usage_ is not None:
        body["usage"] = usage_
    if bastion is not None:
        body["bastion"] = bastion
    return body


def error_body(
    message: str, *, type: str, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def conversation_of(request: ChatRequest) -> Conversation:
    """A request's messages as the guard reads them: a developer message is system text, a
    message without text (an assistant's tool call) an empty turn."""
    return Conversation(
        tuple(
            Message("system" if m.role == "developer" else m.role, m.text) for m in request.messages
        )
    )


def session_of(headers: Mapping[str, str], request: ChatRequest) -> str | None:
    return headers.get("x-session-id") or request.user
