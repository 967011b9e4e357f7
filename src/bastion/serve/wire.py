"""uvicorn's HTTP/1.1 protocol with a response's head and body sent in one ``send()``.

uvicorn writes a response's status line and headers as soon as the app starts the response,
and its body in a second write. On loopback each write is a system call that hands the data
to the client and wakes it up; sending the gateway's short JSON answers in one write saved
about 0.24 ms of its CPU a request (``benchmarks/gateway_paired.py``, against the commit
before this module). Here
the transport holds a write back until the next one, which it joins, or until the end of the
current loop iteration, whichever comes first: a non-streaming response leaves in one
segment, a stream's chunks are never held past the iteration that wrote them, and at most
one write's bytes wait (already in memory), so flow control is unchanged.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

HOLD_LIMIT = 64 * 1024  # writes this long go out at once


class CoalescingTransport(asyncio.Transport):
    """Delegates to ``transport``; a write waits for the next write or the loop's next turn."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if self._held is None:
            if len(data) >= HOLD_LIMIT:  # a large write gains nothing from company
                self._transport.write(data)
                return
            self._held = bytes(data)
            self._loop.call_soon(self.flush)
            return
        held, self._held = self._held, None
        self._transport.write(held + data)

    def flush(self) -> None:
        """Write what is held, if anything (runs at the end of the iteration that held it).
        Held bytes are dropped only if the transport closed itself meanwhile (the peer shut
        its side down), when the socket would have refused them too."""
        if self._held is not None:
            held, self._held = self._held, None
            if not self._transport.is_closing():
                self._transport.write(held)

    def writelines(self, list_of_data: Any) -> None:
        self.write(b"".join(list_of_data))

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def can_write_eof(self) -> bool:
        return self._transport.can_write_eof()

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._held = None
        self._transport.abort()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + len(self._held or b"")

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._transport.get_write_buffer_limits()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._transport.set_write_buffer_limits(high, low)

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def is_reading(self) -> bool:
        return self._transport.is_reading()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._transport.get_protocol()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)


class CoalescingHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol on a :class:`CoalescingTransport` (``uvicorn.run(...,
    http=CoalescingHttpProtocol)``)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CoalescingTransport(transport, self.loop))
