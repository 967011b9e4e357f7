"""The gateway's HTTP protocol: a response's head and body leave in one write, and nothing
written is held past the event loop's next turn."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from bastion.serve.fakes import serving
from bastion.serve.wire import HOLD_LIMIT, CoalescingHttpProtocol, CoalescingTransport


class Recording(asyncio.Transport):
    """What reaches the socket, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.log: list[Any] = []
        self.closing = False

    def write(self, data: Any) -> None:
        self.log.append(bytes(data))

    def close(self) -> None:
        self.closing = True
        self.log.append("close")

    def abort(self) -> None:
        self.closing = True
        self.log.append("abort")

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return 0


def coalescing() -> tuple[CoalescingTransport, Recording]:
    inner = Recording()
    return CoalescingTransport(inner, asyncio.get_running_loop()), inner


def test_a_head_and_body_written_together_leave_in_one_write() -> None:
    async def scenario() -> list[Any]:
        transport, inner = coalescing()
        transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
        transport.write(b"{}")
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return inner.log

    assert asyncio.run(scenario()) == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"]


def test_a_lone_write_leaves_at_the_loops_next_turn() -> None:
    async def scenario() -> tuple[list[Any], list[Any]]:
        transport, inner = coalescing()
        transport.write(b"data: 1\n\n")
        before = list(inner.log)
        await asyncio.sleep(0)
        return before, inner.log

    before, after = asyncio.run(scenario())
    assert before == []
    assert after == [b"data: 1\n\n"]


def test_at_most_two_writes_are_joined_and_the_third_waits_for_the_next_turn() -> None:
    async def scenario() -> list[Any]:
        transport, inner = coalescing()
        for chunk in (b"a", b"b", b"c"):
            transport.write(chunk)
        transport.write(b"")  # nothing to send: changes nothing
        assert inner.log == [b"ab"]
        assert transport.get_write_buffer_size() == 1  # the held "c"
        await asyncio.sleep(0)
        return inner.log

    assert asyncio.run(scenario()) == [b"ab", b"c"]


def test_a_large_write_is_not_held() -> None:
    async def scenario() -> list[Any]:
        transport, inner = coalescing()
        transport.write(b"x" * HOLD_LIMIT)
        return list(inner.log)

    assert asyncio.run(scenario()) == [b"x" * HOLD_LIMIT]


def test_close_sends_what_is_held_first_and_abort_drops_it() -> None:
    async def scenario() -> tuple[list[Any], list[Any]]:
        closed, inner = coalescing()
        closed.write(b"last words")
        closed.close()
        aborted, other = coalescing()
        aborted.write(b"never sent")
        aborted.abort()
        await asyncio.sleep(0)  # the scheduled flushes find nothing held
        return inner.log, other.log

    closed, aborted = asyncio.run(scenario())
    assert closed == [b"last words", "close"]
    assert aborted == ["abort"]


class Tap:
    """A connection's real transport, its writes counted."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport

    def write(self, data: Any) -> None:
        Counting.writes.append(bytes(data))
        self.transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


class Counting(CoalescingHttpProtocol):
    writes: ClassVar[list[bytes]] = []

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(Tap(transport))  # type: ignore[arg-type]


def test_through_uvicorn_a_response_is_one_write_and_a_stream_is_never_held() -> None:
    client_has_second = threading.Event()

    async def answer(request: Request) -> Response:
        return JSONResponse({"answer": "Paris"})

    async def events(request: Request) -> Response:
        async def chunks() -> AsyncIterator[bytes]:
            yield b"data: first\n\n"  # leaves with the head
            yield b"data: second\n\n"  # alone: must not wait for the third
            deadline = time.monotonic() + 10
            while not client_has_second.is_set() and time.monotonic() < deadline:
                await asyncio.sleep(0.005)
            yield b"data: third\n\n"

        return StreamingResponse(chunks(), media_type="text/event-stream")

    app = Starlette(routes=[Route("/answer", answer), Route("/events", events)])
    Counting.writes = []
    with serving(app, http=Counting) as base, httpx.Client(base_url=base) as client:
        for _ in range(3):  # keep-alive: one connection, three responses
            assert client.get("/answer").json() == {"answer": "Paris"}
        assert len(Counting.writes) == 3
        assert all(w.startswith(b"HTTP/1.1 200 OK\r\n") for w in Counting.writes)
        assert all(w.endswith(b'\r\n\r\n{"answer":"Paris"}') for w in Counting.writes)
        # the stream's third chunk comes only once the client has read the second: a chunk
        # held until the next write would never arrive, and the read would time out
        with client.stream("GET", "/events", timeout=5) as stream:
            lines = (line for line in stream.iter_lines() if line)
            assert [next(lines), next(lines)] == ["data: first", "data: second"]
            client_has_second.set()
            assert list(lines) == ["data: third"]
