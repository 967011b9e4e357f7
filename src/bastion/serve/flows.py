"""The two shapes of a chat request: one JSON completion, or a server-sent-event stream.

Both run the same :class:`~bastion.serve.exchange.Gateway` steps. A stream checks the input
and waits for the upstream's first chunk *before* its response starts, so an upstream that is
down still gets its HTTP status (502, or 503 with ``Retry-After`` while the circuit is open);
a stream that breaks later ends with an ``error`` event, which the OpenAI SDKs raise. The
event is recorded just before ``data: [DONE]`` (or the error), or when the client goes away.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

import anyio
from starlette.responses import JSONResponse, Response, StreamingResponse

from bastion.serve.exchange import Exchange, Gateway
from bastion.serve.schema import chunk_body, completion_body, error_body, usage
from bastion.serve.upstream import Delta, UpstreamFailure

EVENT_ID_HEADER = "x-bastion-event-id"


async def complete(gw: Gateway, ex: Exchange) -> Response:
    try:
        response = await _answer(gw, ex)
    except Exception as exc:
        await _crashed(gw, ex, exc)
        raise
    await gw.record(ex)
    return response


async def _answer(gw: Gateway, ex: Exchange) -> Response:
    failed = await _answered(gw, ex)
    return failed if failed is not None else _completion(gw, ex)


async def _answered(gw: Gateway, ex: Exchange) -> Response | None:
    """Input rails, the upstream, output rails on every answer; the error response when the
    upstream failed."""
    decision = await gw.check_input(ex)
    if not decision.blocked:
        try:
            reply = await gw.call(ex)
        except UpstreamFailure as exc:
            return _failed(gw, ex, exc)
        await gw.answer(ex, reply)
    return None


async def _buffered(gw: Gateway, ex: Exchange) -> Response:
    """A stream answered from one whole completion (:attr:`ChatRequest.buffered`), sent as
    chunks once the rails have judged all of it; a failed upstream keeps its HTTP status."""
    try:
        failed = await _answered(gw, ex)
    except Exception as exc:
        await _crashed(gw, ex, exc)
        raise
    if failed is not None:
        await gw.record(ex)
        return failed
    return _sse(gw, ex, None, None, 0.0)


async def stream(gw: Gateway, ex: Exchange) -> Response:
    if ex.request.buffered:
        return await _buffered(gw, ex)
    try:
        decision = await gw.check_input(ex)
        request = gw.upstream_request(ex)
    except Exception as exc:
        await _crashed(gw, ex, exc)
        raise
    if decision.blocked:
        return _sse(gw, ex, None, None, 0.0)
    start = gw.upstream_started()
    deltas = gw.upstream.stream(request)
    try:
        first = await anext(deltas, None)
    except Exception as exc:
        gw.upstream_done(ex, start)
        await deltas.aclose()
        if isinstance(exc, UpstreamFailure):
            response = _failed(gw, ex, exc)
            await gw.record(ex)
            return response
        await _crashed(gw, ex, exc)
        raise
    return _sse(gw, ex, deltas, first, start)


async def _crashed(gw: Gateway, ex: Exchange, exc: Exception) -> None:
    """A bug, not a user mistake: still recorded, then raised (the server logs it)."""
    ex.status, ex.error = 500, f"{type(exc).__name__}: {exc}"
    await gw.record(ex)


def _sse(
    gw: Gateway,
    ex: Exchange,
    deltas: AsyncGenerator[Delta, None] | None,
    first: Delta | None,
    start: float,
) -> Response:
    started = _Started()
    return _Stream(
        _events(gw, ex, deltas, first, start, started),
        started,
        unsent=lambda: _unsent(gw, ex, deltas, start),
        media_type="text/event-stream",
        headers={EVENT_ID_HEADER: ex.event_id, "cache-control": "no-cache"},
    )


@dataclass
class _Started:
    value: bool = False  # set by the events generator's first step


class _Stream(StreamingResponse):
    """A stream whose events generator, if the response never got to start it (the client
    left before the status line went out), is accounted for by ``unsent``: the exchange is
    recorded and the upstream stream closed all the same (the generator records otherwise)."""

    def __init__(
        self,
        events: AsyncGenerator[str, None],
        started: _Started,
        *,
        unsent: Callable[[], Awaitable[None]],
        **kwargs: Any,
    ) -> None:
        super().__init__(events, **kwargs)
        self._events, self._started, self._unsent = events, started, unsent

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            if not self._started.value:
                with anyio.CancelScope(shield=True):  # also when the client has gone
                    await self._events.aclose()
                    await self._unsent()


async def _unsent(
    gw: Gateway, ex: Exchange, deltas: AsyncGenerator[Delta, None] | None, start: float
) -> None:
    ex.disconnected = True
    if deltas is not None:
        gw.upstream_done(ex, start)
        await deltas.aclose()
    await gw.record(ex)


async def _events(
    gw: Gateway,
    ex: Exchange,
    deltas: AsyncGenerator[Delta, None] | None,
    first: Delta | None,
    start: float,
    started: _Started,
) -> AsyncGenerator[str, None]:
    started.value = True

    def answer(text: str, calls: list[dict[str, Any]]) -> dict[str, Any]:
        delta: dict[str, Any] = {"content": text}
        if calls:
            delta["tool_calls"] = [{"index": i, **call} for i, call in enumerate(calls)]
            delta["content"] = text or None
        return delta

    def chunk(delta: dict[str, Any] | None = None, **fields: Any) -> str:
        body = chunk_body(
            id=ex.id, created=ex.created, model=ex.request.model, delta=delta, **fields
        )
        return f"data: {json.dumps(body)}\n\n"

    recorded = False

    async def close_and_record() -> None:
        nonlocal recorded
        recorded = True
        with anyio.CancelScope(shield=True):  # also when the client has gone
            if deltas is not None:
                await deltas.aclose()  # stops the upstream: a cut stream, a client gone
            await gw.record(ex)

    try:
        yield chunk({"role": "assistant", "content": ""}, bastion={"event_id": ex.event_id})
        if deltas is not None:
            async with aclosing(gw.guarded_stream(ex, deltas, first, start)) as texts:
                async for text in texts:
                    yield chunk({"content": text})
            if ex.output is None or not ex.output.blocked:  # the whole answer, for the record
                await gw.check_output(ex, ex.raw_answer)
            if ex.output is not None and ex.output.blocked:
                yield chunk({"content": gw.refuse(ex, "output")})
        else:  # blocked at the input, or answered whole (several answers, tools)
            yield chunk(answer(ex.answer, ex.tool_calls))
            for index, (text, reason, calls) in enumerate(ex.more, 1):
                yield chunk({"role": "assistant", **answer(text, calls)}, index=index)
                yield chunk({}, index=index, finish_reason=reason)
        yield chunk(
            {},
            finish_reason=ex.finish_reason,
            bastion=gw.verdict(ex).to_dict(ex.event_id, ex.blocked_stage),
        )
        if ex.request.include_usage:
            yield chunk(usage_=usage(gw.prompt_tokens(ex), gw.completion_tokens(ex)))
        await close_and_record()  # before the end: a client that saw [DONE] finds the event
        yield "data: [DONE]\n\n"
    except UpstreamFailure as exc:  # broke mid-stream: the status line is long gone
        ex.error = str(exc)
        gw.metrics.upstream_errors.labels(exc.code).inc()
        await close_and_record()
        yield f"data: {json.dumps(error_body(str(exc), type='server_error', code=exc.code))}\n\n"
    finally:
        if not recorded:
            ex.disconnected = True
            await close_and_record()


def _completion(gw: Gateway, ex: Exchange) -> Response:
    body = completion_body(
        id=ex.id,
        created=ex.created,
        model=ex.request.model,
        text=ex.answer,
        finish_reason=ex.finish_reason,
        tool_calls=ex.tool_calls,
        more=ex.more,
        prompt_tokens=gw.prompt_tokens(ex),
        completion_tokens=gw.completion_tokens(ex),
        bastion=gw.verdict(ex).to_dict(ex.event_id, ex.blocked_stage),
    )
    return JSONResponse(body, headers={EVENT_ID_HEADER: ex.event_id})


def _failed(gw: Gateway, ex: Exchange, exc: UpstreamFailure) -> Response:
    ex.status, ex.error = exc.status, str(exc)
    gw.metrics.upstream_errors.labels(exc.code).inc()
    kind = "server_error" if exc.status >= 500 else "invalid_request_error"
    body = {
        **error_body(str(exc), type=kind, code=exc.code),
        "bastion": gw.verdict(ex).to_dict(ex.event_id, ex.blocked_stage),
    }
    headers = {EVENT_ID_HEADER: ex.event_id}
    if exc.retry_after is not None:
        headers["retry-after"] = str(max(1, math.ceil(exc.retry_after)))
    return JSONResponse(body, status_code=exc.status, headers=headers)
