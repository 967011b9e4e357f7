"""Fuzz the gateway's request parser and every route: a client's input must never be a 5xx.

Hypothesis generates requests and sends them to :func:`bastion.serve.create_app` in process
through ``httpx.ASGITransport`` (no sockets): structurally valid chat requests with fuzzed
values (every role, tool calls, content strings with surrogates, NUL and a few hundred
kilobytes, content part lists, ``n``, tools, streams, sampling parameters out of range,
unknown fields, deep nesting), raw bodies (not UTF-8, truncated, huge numbers, ``NaN``, BOMs,
duplicate keys), wrong content types, bad ``Authorization`` and ``Content-Length`` headers,
huge headers, every route with every method, odd paths, the review pages' forms and queries
(signed in and not) and feedback bodies.

The gateway runs as ``bastion serve`` runs it: the shipped guard policy and the event store on
a temporary SQLite file with its journal. Its upstream is in process and always answers: an
echo model, or for a tenth of the chat requests a tiny transformer (the kind of upstream
``bastion serve`` has by default, generation cut at a few tokens), so any 5xx is the
gateway's own. A finding is a 5xx, an exception out of the app, a
request that hangs, or a ``/v1`` (or other non-review) response that is not JSON in OpenAI's
error shape (``{"error": {"message", "type", "param", "code"}}``) or a well-formed event
stream. Each kind of finding is shrunk by Hypothesis and kept as the ``repr()`` of its
smallest request.

    python benchmarks/gateway_fuzz.py [--inputs 100000 | --quick] [--seed 0] [--minutes M]
        [--out benchmarks/measured/gateway_fuzz.json]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import math
import os
import platform
import re
import signal
import sys
import tempfile
import time
import traceback
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
import hypothesis
from fuzz_requests import BODY_LIMIT, CASES, CHAT, KEY, PLACEHOLDER, Case
from hypothesis import HealthCheck, Phase, given, seed, settings
from opentelemetry.sdk.trace import TracerProvider

from bastion.models import HFChatModel
from bastion.models.fakes import EchoChatModel
from bastion.models.tiny import build_tiny_chat_model
from bastion.monitor.events import Event
from bastion.monitor.store import EventStore
from bastion.serve import GatewayConfig, ModelUpstream, create_app

BATCH = 2_000  # examples per Hypothesis run (each run has its own seed)
REPR_CHARS = 20_000  # a reproducer longer than this is stored cut, with its length and digest
HANG_S = 60.0
MAX_NEW_TOKENS = 12
KEYS = {
    "sk-fuzz-alice": {"user": "alice", "rate_per_minute": None},
    "sk-fuzz-bob": {"user": "bob", "rate_per_minute": None},
    "sk-fuzz-rita": {"user": "rita", "role": "reviewer", "rate_per_minute": None},
    "sk-fuzz-ada": {"user": "ada", "role": "admin", "rate_per_minute": None},
    "sk-fuzz-slow": {"user": "sloth", "rate_per_minute": 1},  # mostly 429s
}
REVIEW_PREFIXES = ("/review", "/dashboard")
DOCS = ("/openapi.json", "/docs", "/redoc", "/docs/oauth2-redirect")


# --- sending and judging ------------------------------------------------------------------


@dataclass
class Finding:
    signature: str
    route: str
    status: int | None
    detail: str
    count: int = 0
    first_at: int = 0  # the input number it was first seen at
    reproducer: str = ""  # repr() of the request: as Hypothesis shrank it, else the shortest
    shrunk: bool = False


@dataclass
class Tally:
    inputs: int = 0  # requests sent while generating
    shrink_inputs: int = 0  # requests sent while Hypothesis shrank a finding
    unsendable: int = 0  # requests httpx itself refused to build
    by_route: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    by_family: Counter[str] = field(default_factory=Counter)
    error_codes: Counter[str] = field(default_factory=Counter)  # route and code of /v1 4xx
    server_errors: int = 0  # 5xx, exceptions and hangs while generating
    malformed: int = 0  # a non-review response that is neither OpenAI-shaped JSON nor SSE
    findings: dict[str, Finding] = field(default_factory=dict)


class LogTally(logging.Handler):
    """Counts what the app logs at WARNING or above (an event the store refused, say), by
    logger and message template; nothing is printed."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.counts: Counter[str] = Counter()
        self.examples: dict[str, str] = {}

    def emit(self, record: logging.LogRecord) -> None:
        key = f"{record.name}: {str(record.msg)[:120]}"
        self.counts[key] += 1
        self.examples.setdefault(key, record.getMessage()[:300])


class CappedModel(HFChatModel):
    """A transformer that stops after :data:`MAX_NEW_TOKENS`, whatever the client asked for
    (the gateway lets a client ask an in-process model for any number of tokens)."""

    def generation_options(self, max_new_tokens: int, *args: Any) -> dict[str, Any]:
        return super().generation_options(min(max_new_tokens, MAX_NEW_TOKENS), *args)


class Harness:
    """Two gateways on one event store (one before an echo model, one before a tiny
    transformer, the in-process upstream ``bastion serve`` has by default), an httpx client on
    each, and the tally."""

    def __init__(self, workdir: Path) -> None:
        self.store = EventStore(workdir / "bastion.db")
        tiny = CappedModel.from_pretrained(
            build_tiny_chat_model(workdir / "tiny", seed=0), device="cpu"
        )
        self.upstreams = {
            "echo": ModelUpstream(EchoChatModel("You said: ")),
            "model": ModelUpstream(tiny),
        }
        config = GatewayConfig(keys=KEYS, max_body_bytes=BODY_LIMIT)
        self.clients = {}
        for name, upstream in self.upstreams.items():
            app = create_app(config, sink=self.store, upstream=upstream, traces=TracerProvider())
            transport = httpx.ASGITransport(app=app)
            self.clients[name] = httpx.AsyncClient(transport=transport, base_url="http://gw")
        self.client = self.clients["echo"]
        self.tally = Tally()
        self.shrinking = False
        self.events: list[str] = []  # alice's events, for feedback
        self.items: list[str] = []  # review item ids
        self.cookies: dict[str, bytes] = {
            "forged": b"bastion_review=ada." + b"0" * 64,
            "garbage": b"bastion_review=\xff; =;;",
        }

    async def start(self) -> None:
        for n in range(3):  # items for the review pages
            self.store.record(
                Event("alice", "tiny", f"prompt {n}", "answer", "review", review=True)
            )
        self.store.flush()
        for who, token in (("reviewer", "sk-fuzz-rita"), ("admin", "sk-fuzz-ada")):
            response = await self.client.post("/review/login", data={"token": token})
            self.cookies[who] = f"bastion_review={response.cookies['bastion_review']}".encode()
            self.client.cookies.clear()
        self.refresh()

    def refresh(self) -> None:
        self.items = [item.id for item in self.store.review_items(status=None, limit=20)]

    async def close(self) -> None:
        for name, client in self.clients.items():
            await client.aclose()
            await self.upstreams[name].aclose()
        self.store.close()

    def resolve(self, raw: bytes) -> bytes:
        def one(match: re.Match[bytes]) -> bytes:
            kind, key = match.group(1), match.group(2).decode()
            if kind == b"cookie":
                return self.cookies.get(key, b"")
            ids = self.events if kind == b"event" else self.items
            return ids[int(key) % len(ids)].encode() if ids else b"none"

        return PLACEHOLDER.sub(one, raw) if b"@@" in raw else raw

    def materialize(self, case: Case) -> Case:
        path = self.resolve(case.path.encode("utf-8", "surrogatepass")).decode("utf-8", "replace")
        resolved = tuple((k, self.resolve(v)) for k, v in case.headers)
        return replace(case, path=path, headers=resolved, body=self.resolve(case.body))

    async def send(self, case: Case) -> tuple[int | None, str | None]:
        """(status, a finding's signature or None); counts the request."""
        url = f"http://gw{case.path}" + (f"?{case.query}" if case.query else "")
        client = self.clients[case.upstream]
        try:
            request = client.build_request(
                case.method,
                url,
                headers=list(case.headers),
                content=self._pieces(case.body) if case.chunked else case.body,
            )
        except (httpx.InvalidURL, UnicodeError, ValueError, TypeError) as exc:
            if os.environ.get("FUZZ_DEBUG"):
                print("unsendable", type(exc).__name__, str(exc)[:200], repr(case)[:300])
            self.tally.unsendable += 1
            return None, None
        try:
            response = await asyncio.wait_for(client.send(request), HANG_S)
        except TimeoutError:
            return None, self._note(case, None, "hang", f"no answer in {HANG_S:g} s")
        except Exception as exc:
            where = _origin(exc)
            return None, self._note(
                case,
                None,
                f"exception {type(exc).__name__} at {where}",
                f"{type(exc).__name__}: {str(exc)[:300]}",
            )
        finally:
            client.cookies.clear()
        self._count(case, str(response.status_code))
        if response.status_code == 200 and case.route == CHAT:
            event = response.headers.get("x-bastion-event-id")
            if event and _is_alice(case):
                self.events = [*self.events[-29:], event]
        if 400 <= response.status_code < 500 and not self.shrinking:
            self.tally.error_codes[f"{case.route} {_error_code(response)}"] += 1
        problem = judge(case, response)
        if problem is None:
            return response.status_code, None
        return response.status_code, self._note(case, response.status_code, *problem)

    @staticmethod
    async def _pieces(body: bytes) -> Any:
        yield body[: len(body) // 2]
        yield body[len(body) // 2 :]

    def _count(self, case: Case, status: str) -> None:
        if self.shrinking:
            self.tally.shrink_inputs += 1
            return
        self.tally.inputs += 1
        self.tally.by_route[case.route][status] += 1
        self.tally.by_family[case.family] += 1

    def _note(self, case: Case, status: int | None, kind: str, detail: str) -> str:
        if status is None:
            self._count(case, "exception")
        server_error = status is None or status >= 500
        signature = f"{case.route} {status or ''} {kind}".replace("  ", " ")
        if not self.shrinking:
            if server_error:
                self.tally.server_errors += 1
            else:
                self.tally.malformed += 1
        found = self.tally.findings.setdefault(
            signature, Finding(signature, case.route, status, detail, first_at=self.tally.inputs)
        )
        found.count += 0 if self.shrinking else 1
        text = repr(case)
        if self.shrinking:  # Hypothesis replays the smallest failing input last
            found.reproducer, found.detail, found.shrunk = text, detail, True
        elif not found.shrunk and (not found.reproducer or len(text) < len(found.reproducer)):
            found.reproducer, found.detail = text, detail
        return signature


def _error_code(response: httpx.Response) -> str:
    try:
        error = response.json()["error"]
        return f"{error['code']} {error['param'] or ''}".strip()
    except (ValueError, KeyError, TypeError):
        return f"{response.status_code} (not JSON)"


def _is_alice(case: Case) -> bool:
    return dict(case.headers).get(b"authorization") == KEY


def _origin(exc: BaseException) -> str:
    """The innermost frame of the project (else the innermost) where ``exc`` was raised."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "/bastion/" in f.filename] or frames
    if not ours:
        return "?"
    frame = ours[-1]
    return f"{frame.filename.rsplit('/src/', 1)[-1]}:{frame.lineno}"


def judge(case: Case, response: httpx.Response) -> tuple[str, str] | None:
    """A problem with the response, as (kind, detail), or None."""
    status = response.status_code
    if status >= 500:
        return "server error", response.text[:300]
    path = response.request.url.path
    if case.method == "HEAD" or path.startswith(REVIEW_PREFIXES) or path in DOCS:
        return None
    if 300 <= status < 400:  # a redirect (/v1/models/ to /v1/models) has no body to judge
        return None
    kind = response.headers.get("content-type", "").split(";")[0].strip()
    if kind == "text/event-stream":
        return _stream_problem(status, response.content)
    if path == "/metrics" and status == 200:
        return None
    try:
        body = json.loads(response.content)
    except ValueError:
        return "not JSON", f"{status} {kind} {response.content[:120]!r}"
    if status >= 400:
        error = body.get("error") if isinstance(body, dict) else None
        if not isinstance(error, dict) or set(error) != {"message", "type", "param", "code"}:
            return "not OpenAI-shaped", f"{status} {str(body)[:200]}"
    elif not isinstance(body, dict):
        return "not an object", f"{status} {str(body)[:200]}"
    return None


def _stream_problem(status: int, raw: bytes) -> tuple[str, str] | None:
    if status != 200:
        return "stream with an error status", str(status)
    events = [e for e in raw.split(b"\n\n") if e.strip()]
    for event in events:
        if not event.startswith(b"data: "):
            return "bad stream event", repr(event[:120])
        data = event.removeprefix(b"data: ")
        if data == b"[DONE]":
            continue
        try:
            json.loads(data)
        except ValueError:
            return "bad stream event", repr(event[:120])
    ended = events and (events[-1] == b"data: [DONE]" or b'"error"' in events[-1])
    return None if ended else ("stream without an end", repr(raw[-120:]))


# --- the run ------------------------------------------------------------------------------


class Found(Exception):
    """A finding not seen before: Hypothesis shrinks the input that made it."""


def fuzz(
    harness: Harness,
    loop: asyncio.AbstractEventLoop,
    inputs: int,
    base_seed: int,
    deadline: float = math.inf,
) -> None:
    """Batches of Hypothesis runs until ``inputs`` requests were generated (or the batch that
    passes ``deadline``, a ``time.monotonic()``, ends); a finding not seen before ends its batch
    and is shrunk (every call after it is shrinking), and later batches go on past it."""
    known: set[str] = set()
    batch = 0
    while harness.tally.inputs < inputs and time.monotonic() < deadline:
        todo = min(BATCH, inputs - harness.tally.inputs)
        harness.shrinking = False

        @settings(
            max_examples=todo,
            database=None,
            deadline=None,
            derandomize=True,
            phases=(Phase.generate, Phase.shrink),
            suppress_health_check=(
                HealthCheck.too_slow,
                HealthCheck.data_too_large,
                HealthCheck.filter_too_much,
                HealthCheck.large_base_example,
            ),
            report_multiple_bugs=False,  # generation stops at the first new finding
            print_blob=False,
        )
        @seed(base_seed * 1_000_003 + batch)
        @given(CASES)
        def check(case: Case) -> None:
            _, signature = loop.run_until_complete(harness.send(harness.materialize(case)))
            if signature is not None and signature not in known:
                harness.shrinking = True
                raise Found(signature)

        try:
            check()
        except Found as found:
            known.add(str(found))
        batch += 1
        if batch % 5 == 0:
            harness.refresh()
            print(
                f"  {harness.tally.inputs} inputs, {harness.tally.server_errors} 5xx, "
                f"{len(harness.tally.findings)} findings",
                file=sys.stderr,
                flush=True,
            )


def cut(text: str) -> str:
    if len(text) <= REPR_CHARS:
        return text
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return text[:REPR_CHARS] + f"…[{len(text) - REPR_CHARS} more chars, sha256 {digest}]"


def report(tally: Tally, seconds: float, seed_: int, target: int) -> dict[str, Any]:
    return {
        "inputs": tally.inputs,
        "target_inputs": target,
        "shrink_inputs": tally.shrink_inputs,
        "unsendable": tally.unsendable,
        "5xx": tally.server_errors,
        "malformed": tally.malformed,
        "statuses_by_route": {
            r: dict(sorted(c.items())) for r, c in sorted(tally.by_route.items())
        },
        "inputs_by_family": dict(sorted(tally.by_family.items())),
        "error_codes": dict(tally.error_codes.most_common()),
        "failures": [
            {**asdict(f), "reproducer": cut(f.reproducer)} for f in tally.findings.values()
        ],
        "seconds": round(seconds, 1),
        "seed": seed_,
        "setup": {
            "app": "bastion.serve.create_app over httpx.ASGITransport (in process)",
            "sink": "EventStore on a temporary SQLite file, with its journal",
            "upstream": "ModelUpstream in process (always answers): an echo model, or for "
            f"a tenth of the chat requests a tiny transformer (at most {MAX_NEW_TOKENS} tokens)",
            "guard": "the shipped default policy",
            "max_body_bytes": BODY_LIMIT,
            "hypothesis": f"{hypothesis.__version__}, batches of {BATCH}, seeded, "
            "database=None, deadline=None",
        },
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
    }


def print_table(result: dict[str, Any]) -> None:
    print(
        f"inputs: {result['inputs']} (+{result['shrink_inputs']} while shrinking, "
        f"{result['unsendable']} unsendable) in {result['seconds']:.0f} s"
    )
    print(f"{'route':<24} {'inputs':>8}  statuses")
    for route, counts in result["statuses_by_route"].items():
        statuses = " ".join(f"{s}:{n}" for s, n in counts.items())
        print(f"{route:<24} {sum(counts.values()):>8}  {statuses}")
    print(f"5xx: {result['5xx']} (goal 0); malformed responses: {result['malformed']}")
    for logged in result["logged"]:
        print(f"  logged ×{logged['count']}: {logged['where'][:110]}")
    for failure in result["failures"]:
        print(f"  finding: {failure['signature']} ×{failure['count']}: {failure['detail'][:100]}")


def stop(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # SIGTERM as Ctrl-C: the inputs sent so far are reported


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inputs", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="5000 inputs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--minutes", type=float, default=0, help="stop after this long (0: no)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/measured/gateway_fuzz.json"))
    args = parser.parse_args()
    inputs = 5_000 if args.quick else args.inputs
    deadline = time.monotonic() + args.minutes * 60 if args.minutes > 0 else math.inf
    signal.signal(signal.SIGTERM, stop)
    logs = LogTally()
    logging.getLogger().addHandler(logs)
    loop = asyncio.new_event_loop()
    with tempfile.TemporaryDirectory(prefix="gateway-fuzz-") as workdir:
        harness = Harness(Path(workdir))
        loop.run_until_complete(harness.start())
        start = time.perf_counter()
        try:
            fuzz(harness, loop, inputs, args.seed, deadline)
        except KeyboardInterrupt:  # as many as there was time for: still reported
            print("stopped early", file=sys.stderr)
        finally:
            seconds = time.perf_counter() - start
            loop.run_until_complete(harness.close())
            loop.close()
    result = report(harness.tally, seconds, args.seed, inputs)
    result["logged"] = [
        {"where": key, "count": n, "example": logs.examples[key]}
        for key, n in logs.counts.most_common()
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=True) + "\n")
    print_table(result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
