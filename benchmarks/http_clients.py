"""The gateway's upstream client: CPU per call of httpx against aiohttp, on the same server.

Both clients post the same ~1 KB chat request to ``fault_upstream.py`` (no faults, no think
time) over one keep-alive connection, one call at a time, and parse the JSON answer; the
figure is this process's CPU time per call (``time.process_time``), the client's own work,
which is what the gateway pays per forwarded request. ``HTTPUpstream`` uses aiohttp because
of this difference.

    python benchmarks/http_clients.py [--calls 2000] [--out benchmarks/results/http_clients.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from fault_upstream import Faults
from gateway_load import Upstream

BODY = json.dumps(
    {"model": "m", "messages": [{"role": "user", "content": "x" * 1000}], "max_tokens": 64}
).encode()
WARM_UP = 100


async def with_httpx(url: str, calls: int) -> list[float]:
    async with httpx.AsyncClient(headers={"content-type": "application/json"}) as client:
        for _ in range(WARM_UP):
            (await client.post(url, content=BODY)).json()
        cpu = []
        for _ in range(calls):
            start = time.process_time()
            (await client.post(url, content=BODY)).json()
            cpu.append(time.process_time() - start)
        return cpu


async def with_aiohttp(url: str, calls: int) -> list[float]:
    headers = {"content-type": "application/json"}
    async with aiohttp.ClientSession(headers=headers) as session:
        for _ in range(WARM_UP):
            async with session.post(url, data=BODY) as response:
                json.loads(await response.read())
        cpu = []
        for _ in range(calls):
            start = time.process_time()
            async with session.post(url, data=BODY) as response:
                json.loads(await response.read())
            cpu.append(time.process_time() - start)
        return cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/http_clients.json"))
    args = parser.parse_args()
    upstream = Upstream(Faults(think_ms=0.0), seed=0)
    url = f"{upstream.url}/v1/chat/completions"
    report: dict[str, Any] = {"benchmark": "http_clients", "cpu_count": os.cpu_count()}
    try:
        for _ in range(2):  # in turn, twice: the host's speed drifts
            for name, run in (("httpx", with_httpx), ("aiohttp", with_aiohttp)):
                cpu = asyncio.run(run(url, args.calls // 2))
                report.setdefault(name, {"cpu_ms": []})["cpu_ms"] += [c * 1000 for c in cpu]
    finally:
        upstream.close()
    for name in ("httpx", "aiohttp"):
        samples = report[name].pop("cpu_ms")
        report[name] = {
            "version": (httpx if name == "httpx" else aiohttp).__version__,
            "calls": len(samples),
            "cpu_ms_per_call": statistics.fmean(samples),
        }
    ratio = report["httpx"]["cpu_ms_per_call"] / report["aiohttp"]["cpu_ms_per_call"]
    report["httpx_over_aiohttp"] = ratio
    for name in ("httpx", "aiohttp"):
        row = report[name]
        print(f"{name} {row['version']}: {row['cpu_ms_per_call']:.3f} ms CPU a call")
    print(f"httpx / aiohttp: {ratio:.2f}x")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
