"""The gateway under load, faults and ``kill -9``: ``bastion serve`` against a fake upstream.

Three processes on loopback: a fake OpenAI upstream (``fault_upstream.py``, seeded faults),
the gateway (``bastion serve --config``, the default guard, the event store on disk in a
temporary folder) and this script's asyncio httpx client. Prompts are ~1 KB texts from
``guard_latency.texts`` (one in ten an attack the guard blocks, one in ten with personal data).

1. **Latency** on a fault-free upstream: the same client calls the fake upstream directly and
   through the gateway (benign prompts only, so every gateway request makes the upstream call
   too) — at concurrency 1 in turn, request by request, at concurrency 64 one run after the
   other. Added latency = gateway minus direct, at p50 and p99.
2. **Faults**: ``--requests`` at ``--concurrency`` through the gateway while the upstream
   answers 2% with a 500, 1% with a body that is not JSON, drops 1% of connections, stalls 1%
   past the gateway's timeout, and has one outage of 1.5 s halfway (the circuit opens). Every
   response must be a chat completion (answer or guard refusal) or an OpenAI-shaped error
   (502 upstream failure, 503 circuit open); anything else (a 500, a body that is not JSON, a
   reset connection) is an unhandled error. The gateway's RSS is sampled throughout. After a
   SIGTERM the store is opened (replaying its journal) and every event id a client received
   must be in it.
3. **Crash**: the same load, ``kill -9`` of the gateway after a few seconds, a restart on the
   same store and journal, the load carried on; then acknowledged ids without an event.

    python benchmarks/gateway_load.py [--requests 20000] [--concurrency 64] [--quick]
        [--store-dir DIR] [--out benchmarks/results/gateway_load.json]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import random
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
from fault_upstream import Faults
from guard_latency import percentiles, texts

from bastion.monitor.store import EventStore
from bastion.serve.flows import EVENT_ID_HEADER

GOALS = {"added_p50_ms": 5.0, "added_p99_ms": 25.0, "rss_growth_pct": 5.0}
CLEAN = Faults(think_ms=1.0)
FAULTY = Faults(error_500=0.02, malformed=0.01, drop=0.01, slow=0.01, slow_s=1.5, think_ms=1.0)
KEY = "bench-gateway-load-key"
CLEAN_KINDS = ("answered", "guard_refusal", "upstream_failure_502", "circuit_open_503")
CRASH_KINDS = ("connection_cut",)  # expected only at the kill: requests in flight
HERE = Path(__file__).parent


def http_upstream(url: str) -> dict[str, Any]:
    """The gateway's upstream settings for the fake: its stalls (1.5 s) time out, and ten
    failures in a row (at 5% independent faults, an outage) open the circuit."""
    return {
        "url": f"{url}/v1",
        "model": "fake-model",
        "timeout_s": 0.5,
        "connect_timeout_s": 0.5,
        "max_retries": 2,
        "backoff_s": 0.01,
        "max_backoff_s": 0.1,
        "circuit_failures": 10,
        "circuit_cooldown_s": 0.5,
    }


@dataclass(frozen=True)
class Outcome:
    kind: str  # one of CLEAN_KINDS, CRASH_KINDS, or "unhandled_…"
    status: int  # 0: no HTTP response
    latency_ms: float
    event_id: str | None


class Upstream:
    """``fault_upstream.py`` in its own process."""

    def __init__(self, faults: Faults, seed: int) -> None:
        script = HERE / "fault_upstream.py"
        command = [sys.executable, str(script), f"--seed={seed}", *faults.args()]
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.url = f"http://127.0.0.1:{self.proc.stdout.readline().split()[1]}"

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = httpx.get(f"{self.url}/stats").json()
        result["cpu_s"] = sum(psutil.Process(self.proc.pid).cpu_times()[:2])
        return result

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


class GatewayProcess:
    """``bastion serve --config`` on a store in ``folder``; start, stop (SIGTERM) or kill -9."""

    def __init__(
        self,
        folder: Path,
        upstream: dict[str, Any],
        command: list[str] | None = None,
        **settings: Any,
    ) -> None:
        self.folder, self.port = folder, free_port()
        # what starts it, the config file's path appended (default: bastion serve --config)
        bastion = Path(sys.executable).with_name("bastion")
        self.command = command or [str(bastion), "serve", "--config"]
        self.url = f"http://127.0.0.1:{self.port}"
        self.store = folder / "bastion.db"
        self.config = folder / "gateway.yaml"
        config = {
            "host": "127.0.0.1",
            "port": self.port,
            "upstream": upstream,
            "keys": {KEY: {"user": "bench", "role": "user", "rate_per_minute": None}},
            "store": str(self.store),
            **settings,
        }
        self.config.write_text(json.dumps(config, indent=2))  # JSON is YAML
        self.log = folder / "gateway.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, timeout: float = 120.0, cwd: Path | None = None) -> float:
        """Start (in ``cwd``, default this process's working directory) and wait until
        ``/healthz`` answers; returns the seconds that took."""
        begin = time.perf_counter()
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [*self.command, str(self.config)], stdout=log, stderr=log, cwd=cwd
            )
        self.starts += 1
        while time.perf_counter() - begin < timeout:
            if self.proc.poll() is not None:
                raise SystemExit(f"the gateway exited ({self.proc.returncode}): see {self.log}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return time.perf_counter() - begin
            except httpx.HTTPError:
                time.sleep(0.1)
        raise SystemExit(f"the gateway did not start in {timeout} s: see {self.log}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def cpu_s(self) -> float:
        return sum(psutil.Process(self.pid).cpu_times()[:2])

    def sink_errors(self) -> float:
        text = httpx.get(f"{self.url}/metrics").text
        found = re.search(r"^bastion_sink_errors_total (\S+)$", text, re.M)
        return float(found.group(1)) if found else float("nan")

    def kill(self) -> None:
        os.kill(self.pid, signal.SIGKILL)
        assert self.proc is not None
        self.proc.wait()

    def stop(self) -> int:
        """SIGTERM (uvicorn drains, then the store flushes); the exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(120)

    def tracebacks(self) -> int:
        return self.log.read_text(errors="replace").count("Traceback (most recent call last)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def bodies(prompts: list[str]) -> list[bytes]:
    return [
        json.dumps(
            {"model": "fake-model", "messages": [{"role": "user", "content": p}], "max_tokens": 64}
        ).encode()
        for p in prompts
    ]


def classify(response: httpx.Response) -> tuple[str, str | None]:
    """(kind, event id) of one response; see CLEAN_KINDS."""
    event_id = response.headers.get(EVENT_ID_HEADER)
    try:
        body = response.json()
    except ValueError:
        return "unhandled_not_json", event_id
    if not isinstance(body, dict):
        return "unhandled_not_an_object", event_id
    event_id = event_id or (body.get("bastion") or {}).get("event_id")
    status = response.status_code
    if status == 200 and body.get("choices"):
        refused = body["choices"][0].get("finish_reason") == "content_filter"
        return ("guard_refusal" if refused else "answered"), event_id
    error = body.get("error")
    if status in (502, 503) and isinstance(error, dict) and "message" in error:
        return ("upstream_failure_502" if status == 502 else "circuit_open_503"), event_id
    return f"unhandled_http_{status}", event_id


class Load:
    """``n`` requests from ``concurrency`` asyncio workers; ``done`` counts those finished.

    Each worker has its own httpx client with one connection: one client shared by 64
    requests spends more CPU in its connection pool than the fake upstream spends answering,
    and gives second-long tails. ``warm_up`` requests per worker (not counted) open the
    connections before the clock starts."""

    def __init__(
        self,
        url: str,
        payloads: list[bytes],
        n: int,
        concurrency: int,
        warm_up: int = 0,
        rate: float | None = None,
        retry_refused: bool = False,
    ) -> None:
        self.url, self.payloads, self.n, self.concurrency = url, payloads, n, concurrency
        self.warm_up, self.rate, self.retry_refused = warm_up, rate, retry_refused
        # open loop: request i is due at due[i] s (Poisson arrivals, seeded); its latency
        # counts from then, the wait for a free worker included (no coordinated omission)
        rng = random.Random(0)
        self.due = (
            list(itertools.accumulate(rng.expovariate(rate) for _ in range(n))) if rate else []
        )
        self.done = self.refused_while_down = 0
        self.outcomes: list[Outcome] = []
        self.wall_s = self.client_cpu_s = self.start = 0.0

    async def run(self) -> list[Outcome]:
        todo = iter(range(self.n))
        ready = asyncio.Barrier(self.concurrency + 1)
        ssl = httpx.create_ssl_context()  # one for all: building one costs ~40 ms
        workers = [
            asyncio.create_task(self._worker(todo, ready, ssl)) for _ in range(self.concurrency)
        ]
        await ready.wait()
        cpu, start = time.process_time(), time.perf_counter()
        self.start = start
        await asyncio.gather(*workers)
        self.wall_s = time.perf_counter() - start
        self.client_cpu_s = time.process_time() - cpu
        return self.outcomes

    @staticmethod
    def client(ssl: Any) -> httpx.AsyncClient:
        """A client with one connection, as each worker has."""
        headers = {"authorization": f"Bearer {KEY}", "content-type": "application/json"}
        limits = httpx.Limits(max_connections=1)
        return httpx.AsyncClient(headers=headers, limits=limits, timeout=30, verify=ssl)

    async def _worker(self, todo: Any, ready: asyncio.Barrier, ssl: Any) -> None:
        async with self.client(ssl) as client:
            for i in range(self.warm_up):
                await client.post(self.url, content=self.payloads[i % len(self.payloads)])
            await ready.wait()
            for i in todo:
                start = time.perf_counter()
                if self.rate:
                    start = self.start + self.due[i]
                    await asyncio.sleep(start - time.perf_counter())
                payload = self.payloads[i % len(self.payloads)]
                while not await self._call(client, payload, start):
                    self.refused_while_down += 1  # the gateway restarts: try again
                    await asyncio.sleep(0.1)

    async def _call(self, client: httpx.AsyncClient, payload: bytes, start: float) -> bool:
        """One request; False when the connection was refused (nothing recorded)."""
        status, event_id = 0, None
        try:
            response = await client.post(self.url, content=payload)
            status = response.status_code
            kind, event_id = classify(response)
        except httpx.ConnectError:
            if self.retry_refused:
                return False
            kind = "unhandled_ConnectError"
        except (httpx.ReadError, httpx.RemoteProtocolError):
            kind = "connection_cut"
        except httpx.HTTPError as exc:
            kind = f"unhandled_{type(exc).__name__}"
        latency = (time.perf_counter() - start) * 1000
        self.outcomes.append(Outcome(kind, status, latency, event_id))
        self.done += 1
        return True

    def summary(self) -> dict[str, Any]:
        ms = [o.latency_ms for o in self.outcomes]
        return {
            "requests": len(ms),
            "concurrency": self.concurrency,
            **{f"{k}_ms": v for k, v in percentiles(ms).items()},
            "requests_per_s": len(ms) / self.wall_s,
            "offered_per_s": self.rate,
            "client_cpu_fraction": self.client_cpu_s / self.wall_s,
        }


async def sample_rss(pid: int, load: Load, samples: list[tuple[float, int, float]]) -> None:
    process, start = psutil.Process(pid), time.perf_counter()
    while True:
        rss = process.memory_info().rss / 2**20
        samples.append((time.perf_counter() - start, load.done, rss))
        await asyncio.sleep(0.25)


async def drive(load: Load, pid: int | None = None) -> list[tuple[float, int, float]]:
    """Run ``load``, sampling ``pid``'s RSS meanwhile."""
    samples: list[tuple[float, int, float]] = []
    sampler = asyncio.create_task(sample_rss(pid, load, samples)) if pid else None
    await load.run()
    if sampler is not None:
        sampler.cancel()
    return samples


def latency(
    prompts: list[str], n1: int, n64: int, concurrency: int, work: Path, tmpfs: Path | None
) -> dict[str, Any]:
    """Direct vs through the gateway, fault-free: closed loop at concurrency 1 and
    ``concurrency`` (the latter saturates two cores, so its latency is queueing: concurrency
    / throughput), then open loop at half the gateway's saturated throughput with up to
    ``concurrency`` in flight; with ``tmpfs``, concurrency 1 again with the store there (no
    disk fsync: what the gateway costs besides the journal's disk)."""
    payloads = bodies(prompts)
    upstream = Upstream(CLEAN, seed=1)
    result: dict[str, Any] = {}
    try:
        gateway = GatewayProcess(work / "latency", http_upstream(upstream.url))
        result["gateway_start_s"] = gateway.start()
        try:
            result["concurrency_1"] = compare(upstream, gateway, payloads, n1, 1)
            saturated = compare(upstream, gateway, payloads, n64, concurrency)
            result[f"concurrency_{concurrency}"] = saturated
            rate = saturated["gateway"]["requests_per_s"] / 2
            result["open_loop"] = compare(upstream, gateway, payloads, n1, concurrency, rate)
        finally:
            gateway.stop()
        if tmpfs is not None:
            folder = Path(tempfile.mkdtemp(prefix="gateway-load-", dir=tmpfs))
            gateway = GatewayProcess(folder, http_upstream(upstream.url))
            gateway.start()
            try:
                result["concurrency_1_store_on_tmpfs"] = compare(upstream, gateway, payloads, n1, 1)
            finally:
                gateway.stop()
                shutil.rmtree(folder)
    finally:
        upstream.close()
    return result


async def alternate(direct: Load, gateway: Load) -> None:
    """Concurrency 1, the two paths in turn (one request direct, the same one through the
    gateway, and so on), so that both see the machine in the same state: on a shared host its
    speed drifts by half over minutes, which back-to-back runs would count as gateway time."""
    ssl = httpx.create_ssl_context()
    async with direct.client(ssl) as first, gateway.client(ssl) as second:
        pairs = ((direct, first), (gateway, second))
        for i in range(direct.warm_up):
            for load, client in pairs:
                await client.post(load.url, content=load.payloads[i % len(load.payloads)])
        cpu = time.process_time()
        for i in range(direct.n):
            for load, client in pairs:
                payload = load.payloads[i % len(load.payloads)]
                await load._call(client, payload, time.perf_counter())
        cpu = time.process_time() - cpu
    for load in (direct, gateway):  # each path's own time: requests one after another
        load.wall_s = sum(o.latency_ms for o in load.outcomes) / 1000
        load.client_cpu_s = cpu / 2


def compare(
    upstream: Upstream,
    gateway: GatewayProcess,
    payloads: list[bytes],
    n: int,
    concurrency: int,
    rate: float | None = None,
) -> dict[str, Any]:
    """The same load on the upstream directly and through the gateway: in turn at concurrency
    1 (:func:`alternate`), else one after the other."""
    row: dict[str, Any] = {}
    warm_up = max(4, 200 // concurrency)
    loads = {
        path: Load(f"{base}/v1/chat/completions", payloads, n, concurrency, warm_up, rate)
        for path, base in (("direct", upstream.url), ("gateway", gateway.url))
    }
    cpu = gateway.cpu_s()
    if concurrency == 1 and rate is None:
        asyncio.run(alternate(loads["direct"], loads["gateway"]))
    else:
        asyncio.run(drive(loads["direct"]))
        cpu = gateway.cpu_s()
        asyncio.run(drive(loads["gateway"]))
    for path, load in loads.items():
        row[path] = load.summary()
    spent = gateway.cpu_s() - cpu
    row["gateway"]["gateway_cpu_ms_per_request"] = spent / (n + warm_up * concurrency) * 1000
    row["gateway"]["kinds"] = dict(Counter(o.kind for o in loads["gateway"].outcomes))
    row["added_p50_ms"] = row["gateway"]["p50_ms"] - row["direct"]["p50_ms"]
    row["added_p99_ms"] = row["gateway"]["p99_ms"] - row["direct"]["p99_ms"]
    return row


def faults(prompts: list[str], n: int, concurrency: int, work: Path) -> dict[str, Any]:
    """``n`` requests through the gateway while the upstream misbehaves; classes, memory, events."""
    upstream = Upstream(Faults(**{**FAULTY.__dict__, "outage_at": n // 2, "outage_s": 1.5}), seed=2)
    gateway = GatewayProcess(work / "faults", http_upstream(upstream.url))
    try:
        start_s = gateway.start()
        idle_rss = psutil.Process(gateway.pid).memory_info().rss / 2**20
        load = Load(f"{gateway.url}/v1/chat/completions", bodies(prompts), n, concurrency)
        cpu = gateway.cpu_s()
        samples = asyncio.run(drive(load, gateway.pid))
        gateway_cpu = gateway.cpu_s() - cpu
        sink_errors = gateway.sink_errors()
        exit_code = gateway.stop()
        upstream_stats = upstream.stats()
    finally:
        upstream.close()
    kinds = Counter(o.kind for o in load.outcomes)
    return {
        "gateway_start_s": start_s,
        **load.summary(),
        "gateway_cpu_ms_per_request": gateway_cpu / n * 1000,
        "kinds": dict(kinds),
        "unhandled": sum(v for k, v in kinds.items() if k not in CLEAN_KINDS),
        "gateway_tracebacks": gateway.tracebacks(),
        "sink_errors": sink_errors,
        "gateway_exit_code": exit_code,
        "upstream": upstream_stats,
        "memory": memory(idle_rss, samples, warm_up=n // 10),
        "events": check_events(gateway.store, load.outcomes),
    }


def memory(idle: float, samples: list[tuple[float, int, float]], warm_up: int) -> dict[str, Any]:
    """RSS at start, after ``warm_up`` requests and at the end; the slope after warm-up."""
    after = [s for s in samples if s[1] >= warm_up] or samples[-1:]
    done, rss = [s[1] for s in after], [s[2] for s in after]
    slope = statistics.linear_regression(done, rss).slope if len(set(done)) > 1 else 0.0
    return {
        "start_mib": idle,
        "after_warm_up_mib": rss[0],
        "end_mib": rss[-1],
        "peak_mib": max(s[2] for s in samples),
        "growth_after_warm_up_pct": (rss[-1] - rss[0]) / rss[0] * 100,
        "slope_mib_per_10k_requests": slope * 10_000,
        "warm_up_requests": warm_up,
        "samples": len(samples),
    }


def check_events(store: Path, outcomes: list[Outcome]) -> dict[str, Any]:
    """Acknowledged event ids (the client got them) against the store, before and after the
    store replays its journal (opening it does that)."""
    acked = {o.event_id: o.status for o in outcomes if o.event_id}
    before = stored(store)
    EventStore(store).close()
    after = stored(store)
    return {
        "acknowledged": len(acked),
        "in_database_before_replay": len(acked.keys() & before.keys()),
        "in_database": len(acked.keys() & after.keys()),
        "lost": len(acked.keys() - after.keys()),
        "status_mismatch": sum(after[i] != s for i, s in acked.items() if i in after),
        "recorded_not_acknowledged": len(after.keys() - acked.keys()),
    }


def stored(store: Path) -> dict[str, int]:
    with sqlite3.connect(store) as db:
        return dict(db.execute("select id, status from events"))


def crash(
    prompts: list[str], n: int, concurrency: int, kill_after: float, work: Path
) -> dict[str, Any]:
    """Load; ``kill -9`` after ``kill_after`` s; restart on the same store; load on."""
    upstream = Upstream(FAULTY, seed=3)
    gateway = GatewayProcess(work / "crash", http_upstream(upstream.url))
    url = f"{gateway.url}/v1/chat/completions"
    load = Load(url, bodies(prompts), n, concurrency, retry_refused=True)
    timeline: dict[str, Any] = {}

    async def scenario() -> None:
        running = asyncio.create_task(load.run())
        await asyncio.sleep(kill_after)
        timeline["done_at_kill"] = load.done
        gateway.kill()
        timeline["restart_s"] = await asyncio.to_thread(gateway.start)
        timeline["done_at_restart"] = load.done
        await running

    try:
        gateway.start()
        asyncio.run(scenario())
        gateway.stop()
    finally:
        upstream.close()
    kinds = Counter(o.kind for o in load.outcomes)
    events = check_events(gateway.store, load.outcomes)
    return {
        "requests": n,
        "kill_after_s": kill_after,
        **timeline,
        "kinds": dict(kinds),
        "connections_refused_while_down": load.refused_while_down,
        "unhandled": sum(v for k, v in kinds.items() if k not in (*CLEAN_KINDS, *CRASH_KINDS)),
        "acknowledged_without_event": events["lost"],
        "events": events,
    }


def fsync_ms(folder: Path, n: int = 100) -> float:
    """p50 of one appended line + fdatasync in ``folder``: the journal's floor per request."""
    fd = os.open(folder / "fsync-probe", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    times = []
    for _ in range(n):
        start = time.perf_counter()
        os.write(fd, b"x" * 2048 + b"\n")
        os.fdatasync(fd)
        times.append((time.perf_counter() - start) * 1000)
    os.close(fd)
    return statistics.median(times)


def table(report: dict[str, Any]) -> None:
    lat, fault, kill = (report.get(k) for k in ("latency", "faults", "crash"))
    loads = [
        k
        for k in ("concurrency_1", "concurrency_1_store_on_tmpfs", "open_loop")
        if k in (lat or {})
    ]
    if lat:
        loads.append(f"concurrency_{report['concurrency']}")
    rows: list[tuple[str, str, object]] = []
    if fault:
        rows += [
            ("unhandled errors, fault run", "0", fault["unhandled"] + fault["gateway_tracebacks"]),
            ("lost events (acked, not stored)", "0", fault["events"]["lost"]),
            ("memory growth after warm-up", f"<= {GOALS['rss_growth_pct']:g} %",
             round(fault["memory"]["growth_after_warm_up_pct"], 1)),
        ]  # fmt: skip
    if kill:
        rows.append(("acked without event after kill -9", "0", kill["acknowledged_without_event"]))
    for key in loads:
        for q in ("p50", "p99"):
            goal = GOALS[f"added_{q}_ms"]
            rows.append(
                (f"added {q}, {key}", f"<= {goal:g} ms", round(lat[key][f"added_{q}_ms"], 2))
            )
    print(f"{'goal':<44}{'target':>12}{'measured':>12}")
    for name, target, value in rows:
        print(f"{name:<44}{target:>12}{value!s:>12}")
    for key in loads:
        d, g = lat[key]["direct"], lat[key]["gateway"]
        offered = f" at {g['offered_per_s']:.0f}/s offered" if g["offered_per_s"] else ""
        print(
            f"{key}{offered}: direct p50 {d['p50_ms']:.2f} p99 {d['p99_ms']:.2f} ms "
            f"({d['requests_per_s']:.0f}/s) · gateway p50 {g['p50_ms']:.2f} p99 "
            f"{g['p99_ms']:.2f} ms ({g['requests_per_s']:.0f}/s) · gateway/direct p50 "
            f"{g['p50_ms'] / d['p50_ms']:.1f}x · gateway CPU "
            f"{g['gateway_cpu_ms_per_request']:.2f} ms/request"
        )
    if fault:
        print(f"fault run kinds: {fault['kinds']} · upstream fates: {fault['upstream']['fates']}")
    if kill:
        print(f"crash run kinds: {kill['kinds']}")
    print(f"journal fdatasync p50 on the store's disk: {report['fsync_p50_ms']:.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--quick", action="store_true", help="a short run, for development")
    parser.add_argument("--store-dir", type=Path, default=None, help="[a temporary folder]")
    parser.add_argument("--parts", default="latency,faults,crash", help="[all three]")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/gateway_load.json"))
    args = parser.parse_args()
    n = 2_000 if args.quick else args.requests
    n1, n64 = (300, 2_000) if args.quick else (1_000, 5_000)
    crash_n, kill_after = (2_000, 3.0) if args.quick else (6_000, 6.0)
    pool = texts(400)
    benign = [t for k, t in enumerate(pool) if k % 10 != 0]
    work = Path(tempfile.mkdtemp(prefix="gateway-load-", dir=args.store_dir))
    for name in ("latency", "faults", "crash"):
        (work / name).mkdir()
    report: dict[str, Any] = {
        "benchmark": "gateway_load",
        "cpu_count": os.cpu_count(),
        "concurrency": args.concurrency,
        "store_dir": str(work),
        "fsync_p50_ms": fsync_ms(work),
        "goals": GOALS,
        "fault_rates": FAULTY.__dict__,
    }
    tmpfs = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
    parts = args.parts.split(",")
    if "latency" in parts:
        report["latency"] = latency(benign, n1, n64, args.concurrency, work, tmpfs)
    if "faults" in parts:
        report["faults"] = faults(pool, n, args.concurrency, work)
    if "crash" in parts:
        report["crash"] = crash(pool, crash_n, args.concurrency, kill_after, work)
    table(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
