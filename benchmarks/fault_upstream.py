"""A fake OpenAI-compatible upstream that injects faults, for the gateway benchmarks.

A bare asyncio HTTP/1.1 server (keep-alive, ``Content-Length`` bodies), not uvicorn: on two
cores the fake must cost as little as possible, or it would be what the benchmark measures.
``POST /v1/chat/completions`` answers a chat completion after a think time drawn uniformly
from [0, ``think_ms``]; a seeded roll per request (in arrival order) turns some requests into
faults instead:

- ``error_500``: HTTP 500 with an OpenAI-shaped error body;
- ``malformed``: HTTP 200 whose body is not JSON;
- ``drop``: the connection is closed after the request is read, without an answer;
- ``slow``: the answer comes after ``slow_s`` seconds (set it past the gateway's timeout).

``outage_s`` > 0 adds one outage: from request number ``outage_at`` on, every request gets a
500 for that many seconds (so the gateway's circuit breaker opens). ``GET /stats`` returns the
counts of each fate so far.

    python benchmarks/fault_upstream.py [--port 0] [--seed 0] [--error-500 0.02] [--malformed
        0.01] [--drop 0.01] [--slow 0.01] [--slow-s 1.5] [--think-ms 1] [--outage-at N
        --outage-s S]

It prints ``listening PORT`` once it accepts connections, and runs until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import signal
import time
from collections import Counter
from dataclasses import dataclass

ANSWERS = (
    "Sure. Here is a short overview: start with the basics, practise a little every day, and "
    "check your progress against a clear goal each week. Small steps add up quickly.",
    "Good question. The usual approach is to measure first, change one thing at a time and "
    "keep notes, so that you can tell which change made the difference.",
    "You can reach our support team at help.desk@example.com or on +1 415 555 0100; they "
    "answer within a working day.",  # personal data: the output rails mask it
    "Here are three ideas: a walk in the park, a picnic by the river, or a visit to the "
    "city museum, which is free on the first Sunday of the month.",
)


@dataclass(frozen=True)
class Faults:
    """Per-request probabilities of each fault, and the timings."""

    error_500: float = 0.0
    malformed: float = 0.0
    drop: float = 0.0
    slow: float = 0.0
    slow_s: float = 1.5
    think_ms: float = 1.0
    outage_at: int = 0  # request number at which the outage starts
    outage_s: float = 0.0  # 0: no outage

    def args(self) -> list[str]:
        """The command-line flags that rebuild these faults."""
        return [
            f"--{name.replace('_', '-')}={getattr(self, name)}"
            for name in self.__dataclass_fields__
        ]


class FaultServer:
    def __init__(self, faults: Faults, seed: int) -> None:
        self.faults = faults
        self.rng = random.Random(seed)
        self.requests = 0
        self.outage_until = 0.0
        self.fates: Counter[str] = Counter()

    def fate(self) -> str:
        f = self.faults
        self.requests += 1
        now = time.monotonic()
        if f.outage_s > 0 and self.requests == f.outage_at:
            self.outage_until = now + f.outage_s
        if now < self.outage_until:
            return "outage_500"
        roll = self.rng.random()
        for name, p in (
            ("error_500", f.error_500),
            ("malformed", f.malformed),
            ("drop", f.drop),
            ("slow", f.slow),
        ):
            if roll < p:
                return name
            roll -= p
        return "ok"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while (request := await read_request(reader)) is not None:
                path, body = request
                if path == "/stats":
                    write(writer, 200, json.dumps(self.stats()).encode())
                    continue
                if path != "/v1/chat/completions":
                    write(writer, 404, b'{"error": {"message": "not found"}}')
                    continue
                fate = self.fate()
                self.fates[fate] += 1
                if fate == "drop":
                    break
                if fate == "slow":
                    await asyncio.sleep(self.faults.slow_s)
                elif self.faults.think_ms > 0:
                    await asyncio.sleep(self.rng.uniform(0, self.faults.think_ms) / 1000)
                if fate in ("error_500", "outage_500"):
                    error = {"error": {"message": f"injected {fate}", "type": "server_error"}}
                    write(writer, 500, json.dumps(error).encode())
                elif fate == "malformed":
                    write(writer, 200, b'{"id": "chatcmpl-x", "choices": [{"mess')
                else:
                    write(writer, 200, completion(body, self.rng.choice(ANSWERS)))
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # the gateway hung up (its timeout, or it was killed)
        except asyncio.CancelledError:
            pass  # shutting down: a stalled answer is still asleep
        finally:
            writer.close()

    def stats(self) -> dict[str, object]:
        return {"requests": self.requests, "fates": dict(self.fates)}


async def read_request(reader: asyncio.StreamReader) -> tuple[str, bytes] | None:
    """(path, body) of the next request on the connection; None once the client closed it."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    lines = head.decode("latin-1").split("\r\n")
    path = lines[0].split(" ")[1]
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    body = await reader.readexactly(length) if length else b""
    return path, body


def write(writer: asyncio.StreamWriter, status: int, body: bytes) -> None:
    reason = {200: "OK", 404: "Not Found", 500: "Internal Server Error"}[status]
    writer.write(
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n\r\n".encode()
        + body
    )


def completion(body: bytes, text: str) -> bytes:
    request = json.loads(body)
    prompt = " ".join(str(m.get("content", "")) for m in request.get("messages", []))
    return json.dumps(
        {
            "id": f"chatcmpl-fake{random.getrandbits(48):012x}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": request.get("model", "fake"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": len(prompt.split()),
                "completion_tokens": len(text.split()),
                "total_tokens": len(prompt.split()) + len(text.split()),
            },
        }
    ).encode()


async def serve(faults: Faults, seed: int, port: int) -> None:
    server = FaultServer(faults, seed)
    listener = await asyncio.start_server(server.handle, "127.0.0.1", port, backlog=1024)
    print(f"listening {listener.sockets[0].getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with listener:
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    for name, default in Faults.__dataclass_fields__.items():
        kind = int if name == "outage_at" else float
        parser.add_argument(f"--{name.replace('_', '-')}", type=kind, default=default.default)
    args = parser.parse_args()
    faults = Faults(**{name: getattr(args, name) for name in Faults.__dataclass_fields__})
    asyncio.run(serve(faults, args.seed, args.port))


if __name__ == "__main__":
    main()
