"""In-process fakes for testing against the gateway (ours and users'): a scripted
OpenAI-compatible server, and a helper that serves any ASGI app on a loopback port.

>>> with serving(fake_openai_app(lambda prompt: "Hi!")) as base_url:
...     ...  # point an HTTPUpstream, or the openai client, at base_url + "/v1"
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse

from bastion.serve.local import word_chunks
from bastion.serve.schema import chunk_body, completion_body, completion_id, now, usage
from bastion.serve.wire import CoalescingHttpProtocol

Failure = int | str  # an HTTP status to answer with, or "garbage" (200 with a non-JSON body)


def fake_openai_app(
    reply: Callable[[str], str] | str = "Hello from the fake upstream.",
    *,
    failures: Sequence[Failure] = (),
    tool_calls: Callable[[str], list[dict[str, Any]]] | None = None,
) -> FastAPI:
    """An OpenAI-compatible server whose answer is ``reply(last user message)``, asked once
    per answer (``n``); to a request with ``tools``, the answers are ``tool_calls(last user
    message)`` instead, if given. The first requests get ``failures`` in order, then every
    request is answered. Every request body received is kept in ``app.state.calls``."""
    app = FastAPI()
    app.state.calls = []
    script = list(failures)
    answer = reply if callable(reply) else (lambda _: reply)

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": "fake-model", "object": "model"}]}

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        body: dict[str, Any] = await request.json()
        app.state.calls.append(body)
        if script:
            failure = script.pop(0)
            if failure == "garbage":
                return PlainTextResponse("<html>bad gateway</html>")
            status = int(failure)
            error = {"error": {"message": f"scripted {status}", "type": "server_error"}}
            return JSONResponse(error, status_code=status)
        prompt = next((m["content"] for m in reversed(body["messages"]) if m["role"] == "user"), "")
        texts = [answer(str(prompt)) for _ in range(int(body.get("n") or 1))]
        text = texts[0]
        prompt_tokens, completion_tokens = len(str(prompt).split()), len(text.split())
        common = {"id": completion_id(), "created": now(), "model": body["model"]}
        if not body.get("stream"):
            calls = tool_calls(str(prompt)) if tool_calls and body.get("tools") else []
            reply = completion_body(
                **common,
                text="" if calls else text,
                finish_reason="tool_calls" if calls else "stop",
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                bastion={},
                tool_calls=calls,
                more=[(t, "stop", []) for t in texts[1:]],
            )
            del reply["bastion"]
            return JSONResponse(reply)

        def events() -> Iterator[str]:
            yield _sse(chunk_body(**common, delta={"role": "assistant", "content": ""}))
            for piece in word_chunks(text):
                yield _sse(chunk_body(**common, delta={"content": piece}))
            yield _sse(chunk_body(**common, delta={}, finish_reason="stop"))
            if (body.get("stream_options") or {}).get("include_usage"):
                yield _sse(chunk_body(**common, usage_=usage(prompt_tokens, completion_tokens)))
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return app


def _sse(body: dict[str, Any]) -> str:
    return f"data: {json.dumps(body)}\n\n"


@contextmanager
def serving(
    app: Any,
    *,
    host: str = "127.0.0.1",
    timeout: float = 30.0,
    http: type[asyncio.Protocol] = CoalescingHttpProtocol,
) -> Iterator[str]:
    """Serve an ASGI app with uvicorn in a background thread on a free port, by default over
    the HTTP protocol ``bastion serve`` uses; yields its base URL (``http://127.0.0.1:PORT``)
    and stops the server on exit."""
    config = uvicorn.Config(app, host=host, port=0, log_level="warning", lifespan="on", http=http)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the server did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout)
