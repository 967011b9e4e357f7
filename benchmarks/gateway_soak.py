"""A fault-injection soak of the gateway: two stores, bad clients, a faulty upstream, kill -9.

On SQLite and on PostgreSQL: two ``bastion serve`` processes, each on its own store, started
from one shared working directory, share a faulty fake upstream (``fault_upstream.py``: 2%
HTTP 500, 1% bodies that are not JSON, 1% dropped connections, 1% stalls past the gateway's
timeout, and a 1.5 s outage halfway, so the circuit opens). ``--requests`` go through them at
``--concurrency`` in all; one request in twelve is a client's mistake (not UTF-8, cut JSON,
nesting 5,000 deep, a body over the gateway's limit, wrong types, an unknown role, ``n`` too
large, a JSON array, NaN), and one in ten a conversation with a tool result or tools. Each
gateway is killed with ``kill -9`` once, a third and two thirds of the way in, and restarted
from a *different* working directory. Afterwards each store is opened (replaying its
journal) and compared with what the clients were told:

- acknowledged without an event: an event id a client received that its store lacks (goal 0);
- in the wrong store: an event id one gateway acknowledged that the other's store holds (0);
- 5xx for a client's mistake: a bad request answered with a 5xx (goal 0; a 4xx in OpenAI's
  shape is right);
- memory: each gateway process's RSS from its 1,000th request to its last (flat: <= 5%).

    python benchmarks/gateway_soak.py [--requests 20000] [--concurrency 64] [--quick]
        [--backends sqlite,postgresql] [--out benchmarks/measured/gateway_soak.json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import statistics
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
from fault_upstream import Faults
from gateway_load import FAULTY, KEY, GatewayProcess, Upstream, classify, http_upstream
from guard_latency import texts
from sqlalchemy import create_engine, text

from bastion.monitor.store import EventStore

LIMIT = 256 * 1024  # the gateways' max_body_bytes: an oversized body is cheap to send
GOALS = {"acknowledged_without_event": 0, "in_wrong_store": 0, "client_5xx": 0, "rss_pct": 5.0}
ADMIN = "postgresql+psycopg://{user}@127.0.0.1:5432/test"


@dataclass(frozen=True)
class Request:
    body: bytes
    bad: bool  # a client's mistake: a 4xx is the right answer
    content_type: str = "application/json"


def good(prompt: str, rng: random.Random) -> Request:
    messages: list[dict[str, Any]] = [{"role": "user", "content": prompt}]
    extra: dict[str, Any] = {}
    roll = rng.random()
    if roll < 0.05:  # an agent's turn: a tool call and its result, which the context rails read
        call = {"id": "c1", "type": "function", "function": {"name": "search", "arguments": "{}"}}
        messages += [
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "c1", "content": "Opening hours: 9 to 5."},
        ]
    elif roll < 0.10:
        extra["tools"] = [{"type": "function", "function": {"name": "search", "parameters": {}}}]
    body = {"model": "fake-model", "messages": messages, "max_tokens": 64, **extra}
    return Request(json.dumps(body).encode(), bad=False)


def bad_requests() -> list[Request]:
    """Client mistakes, each of which must be a 4xx."""
    ok = {"model": "fake-model", "messages": [{"role": "user", "content": "Hi"}]}

    def js(value: Any) -> Request:
        return Request(json.dumps(value).encode(), bad=True)

    return [
        Request(json.dumps(ok).encode().replace(b"Hi", b"H\xe9\xff"), bad=True),
        Request(json.dumps(ok).encode()[:-7], bad=True),
        Request(b'{"model": "m", "messages": ' + b"[" * 5000 + b"]" * 5000 + b"}", bad=True),
        Request(json.dumps({**ok, "pad": "x" * (LIMIT + 10)}).encode(), bad=True),
        js({**ok, "messages": "Hi"}),
        js({**ok, "messages": [{"role": "wizard", "content": "Hi"}]}),
        js({**ok, "messages": []}),
        js({**ok, "temperature": 7}),
        js({**ok, "n": 1000}),
        js([ok]),
        Request(json.dumps({**ok, "top_p": float("nan")}).encode(), bad=True),  # NaN literal
        js({**ok, "messages": [{"role": "user", "content": 42}]}),
    ]


@dataclass(frozen=True)
class Outcome:
    gateway: int
    kind: str
    status: int
    event_id: str | None


def kind_of(response: httpx.Response, request: Request) -> tuple[str, str | None]:
    if request.bad:
        shaped = False
        with contextlib.suppress(ValueError, AttributeError):
            shaped = isinstance(response.json().get("error"), dict)
        if response.status_code >= 500:
            return "client_5xx", None
        ok = 400 <= response.status_code < 500 and shaped
        return ("client_4xx" if ok else f"client_unexpected_{response.status_code}"), None
    if response.status_code == 504:
        return "upstream_timeout_504", response.headers.get("x-bastion-event-id")
    return classify(response)


class Soak:
    """Workers sending ``requests`` to two gateways (worker i to gateway i % 2)."""

    def __init__(self, gateways: list[GatewayProcess], requests: list[Request], n: int, c: int):
        self.gateways, self.requests, self.n, self.c = gateways, requests, n, c
        self.outcomes: list[Outcome] = []
        self.done = [0, 0]
        self.refused = 0

    async def run(self) -> None:
        """Half the requests to each gateway, so one keeps its load while the other restarts."""
        todo = [iter(range(g, self.n, 2)) for g in (0, 1)]
        await asyncio.gather(*(self._worker(w % 2, todo[w % 2]) for w in range(self.c)))

    async def _worker(self, g: int, todo: Any) -> None:
        headers = {"authorization": f"Bearer {KEY}"}
        limits = httpx.Limits(max_connections=1)
        async with httpx.AsyncClient(headers=headers, limits=limits, timeout=30) as client:
            for i in todo:
                request = self.requests[i % len(self.requests)]
                while not await self._call(client, g, request):
                    self.refused += 1  # the gateway is restarting
                    await asyncio.sleep(0.1)

    async def _call(self, client: httpx.AsyncClient, g: int, request: Request) -> bool:
        url = f"{self.gateways[g].url}/v1/chat/completions"
        status, event_id = 0, None
        try:
            response = await client.post(
                url, content=request.body, headers={"content-type": request.content_type}
            )
            status = response.status_code
            kind, event_id = kind_of(response, request)
        except httpx.ConnectError:
            return False
        except (httpx.ReadError, httpx.RemoteProtocolError, httpx.WriteError):
            kind = "connection_cut"
        except httpx.HTTPError as exc:
            kind = f"unhandled_{type(exc).__name__}"
        self.outcomes.append(Outcome(g, kind, status, event_id))
        self.done[g] += 1
        return True


async def sample(gateways: list[GatewayProcess], soak: Soak, into: list[tuple[int, int, float]]):
    """(pid, requests done by its gateway, RSS MiB) every quarter second."""
    while True:
        for g, gateway in enumerate(gateways):
            try:
                rss = psutil.Process(gateway.pid).memory_info().rss / 2**20
                into.append((gateway.pid, soak.done[g], rss))
            except (psutil.Error, AssertionError):
                pass
        await asyncio.sleep(0.25)


def memory(samples: list[tuple[int, int, float]], warm_up: int = 1000) -> dict[str, Any]:
    """Per process life: RSS after ``warm_up`` requests and at its end."""
    lives: dict[int, list[tuple[int, float]]] = {}
    for pid, done, rss in samples:
        lives.setdefault(pid, []).append((done, rss))
    rows = []
    for pid, points in lives.items():
        start = points[0][0]
        after = [(d, r) for d, r in points if d - start >= warm_up]
        if len(after) < 8:
            continue
        growth = (after[-1][1] - after[0][1]) / after[0][1] * 100
        slope = statistics.linear_regression([d for d, _ in after], [r for _, r in after]).slope
        rows.append(
            {
                "pid": pid,
                "requests": after[-1][0] - start,
                "after_warm_up_mib": round(after[0][1], 1),
                "end_mib": round(after[-1][1], 1),
                "growth_pct": round(growth, 2),
                "slope_mib_per_10k": round(slope * 10_000, 2),
            }
        )
    return {"lives": rows, "max_growth_pct": max((r["growth_pct"] for r in rows), default=0.0)}


def stores(backend: str, work: Path) -> tuple[list[str], Any]:
    """Two fresh store URLs, and what drops them afterwards."""
    if backend == "sqlite":
        return [f"sqlite:///{work / f'store-{i}.db'}" for i in range(2)], lambda: None
    for user in ("postgres", "root"):
        admin = create_engine(ADMIN.format(user=user), isolation_level="AUTOCOMMIT")
        try:
            with admin.connect():
                break
        except Exception:
            admin.dispose()
    else:
        raise SystemExit("PostgreSQL is not reachable at 127.0.0.1:5432 (database test)")
    schemas = [f"bastion_soak_{uuid.uuid4().hex[:10]}" for _ in range(2)]
    with admin.connect() as conn:
        for schema in schemas:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
    urls = [
        admin.url.update_query_dict({"options": f"-csearch_path={s}"}).render_as_string(
            hide_password=False
        )
        for s in schemas
    ]

    def drop() -> None:
        with admin.connect() as conn:
            for schema in schemas:
                conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()

    return urls, drop


def stored_ids(url: str) -> set[str]:
    """The store's event ids, after opening it (which replays its journal)."""
    EventStore(url).close()
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {row[0] for row in conn.execute(text("select id from events"))}
    finally:
        engine.dispose()


def run(backend: str, n: int, concurrency: int, work: Path, seed: int) -> dict[str, Any]:
    work.mkdir(parents=True)
    urls, drop = stores(backend, work)
    rng = random.Random(seed)
    prompts = texts(400)
    bad = bad_requests()
    requests = [
        bad[k % len(bad)] if k % 12 == 11 else good(prompts[k % len(prompts)], rng)
        for k in range(2400)
    ]
    upstream = Upstream(Faults(**{**FAULTY.__dict__, "outage_at": n // 2, "outage_s": 1.5}), seed)
    shared = work / "cwd-shared"
    shared.mkdir()
    gateways = []
    for g in range(2):
        folder = work / f"gateway-{g}"
        folder.mkdir()
        settings = {"store": urls[g], "max_body_bytes": LIMIT}
        gateways.append(GatewayProcess(folder, http_upstream(upstream.url), **settings))
    soak = Soak(gateways, requests, n, concurrency)
    samples: list[tuple[int, int, float]] = []
    timeline: list[dict[str, Any]] = []

    async def scenario() -> None:
        sampler = asyncio.create_task(sample(gateways, soak, samples))
        running = asyncio.create_task(soak.run())
        for g, share in ((0, 1 / 3), (1, 2 / 3)):  # each gateway at that share of its half
            while soak.done[g] < n / 2 * share and not running.done():
                await asyncio.sleep(0.05)
            at = {"killed": g, "its_requests_done": soak.done[g], "under_load": not running.done()}
            gateways[g].kill()
            elsewhere = work / f"cwd-restart-{g}"
            elsewhere.mkdir()
            at["restart_s"] = round(await asyncio.to_thread(gateways[g].start, 120.0, elsewhere), 1)
            timeline.append(at)
        await running
        sampler.cancel()

    start = time.perf_counter()
    try:
        for gateway in gateways:
            gateway.start(cwd=shared)
        asyncio.run(scenario())
        wall = time.perf_counter() - start
        exit_codes = [gateway.stop() for gateway in gateways]
        fates = upstream.stats()["fates"]
    finally:
        upstream.close()
    os.chdir(work)  # the check opens the stores from yet another directory
    try:
        held = [stored_ids(url) for url in urls]
    finally:
        drop()
    acked = [{o.event_id for o in soak.outcomes if o.gateway == g and o.event_id} for g in (0, 1)]
    kinds = Counter(o.kind for o in soak.outcomes)
    expected = {"answered", "guard_refusal", "upstream_failure_502", "circuit_open_503",
                "upstream_timeout_504", "client_4xx", "connection_cut"}  # fmt: skip
    return {
        "backend": backend,
        "requests": len(soak.outcomes),
        "wall_s": round(wall, 1),
        "requests_per_s": round(len(soak.outcomes) / wall, 1),
        "kills": timeline,
        "connections_refused_while_down": soak.refused,
        "kinds": dict(kinds),
        "unexpected": sum(v for k, v in kinds.items() if k not in expected),
        "client_5xx": kinds["client_5xx"],
        "acknowledged": [len(a) for a in acked],
        "acknowledged_without_event": sum(len(acked[g] - held[g]) for g in (0, 1)),
        "in_wrong_store": len(acked[0] & held[1]) + len(acked[1] & held[0]),
        "recorded_not_acknowledged": [len(held[g] - acked[g]) for g in (0, 1)],
        "gateway_exit_codes": exit_codes,
        "gateway_tracebacks": [g.tracebacks() for g in gateways],
        "memory": memory(samples),
        "upstream_fates": fates,
    }


def table(results: list[dict[str, Any]]) -> None:
    print(f"{'':<36}" + "".join(f"{r['backend']:>14}" for r in results) + f"{'goal':>8}")
    rows = [
        ("requests", "requests", ""),
        ("acknowledged without an event", "acknowledged_without_event", "0"),
        ("events in the wrong store", "in_wrong_store", "0"),
        ("5xx for a client's mistake", "client_5xx", "0"),
        ("other unexpected answers", "unexpected", "0"),
    ]
    for name, key, goal in rows:
        print(f"{name:<36}" + "".join(f"{r[key]:>14}" for r in results) + f"{goal:>8}")
    growth = [f"{r['memory']['max_growth_pct']:.1f}%" for r in results]
    print(
        f"{'RSS growth after warm-up (max)':<36}"
        + "".join(f"{g:>14}" for g in growth)
        + f"{'5%':>8}"
    )
    for r in results:
        print(f"{r['backend']}: {r['requests_per_s']}/s, kinds {r['kinds']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--quick", action="store_true", help="3,000 requests, for development")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/measured/gateway_soak.json"))
    args = parser.parse_args()
    n = 3_000 if args.quick else args.requests
    out = args.out.resolve()
    work = Path(tempfile.mkdtemp(prefix="gateway-soak-"))
    results = [
        run(backend, n, args.concurrency, work / backend, args.seed)
        for backend in args.backends.split(",")
    ]
    table(results)
    report = {
        "benchmark": "gateway_soak",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "goals": GOALS,
        "concurrency": args.concurrency,
        "results": results,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
