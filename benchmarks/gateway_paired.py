"""The gateway's added latency at two commits, measured in the same run: did a change help?

This host's speed drifts by half within minutes, so two runs of ``gateway_load.py`` made at
different times cannot tell a 10% change from the drift. Here the fake upstream (fault-free)
runs once and two ``bastion serve`` processes run side by side: the baseline's source from a
temporary ``git worktree`` of ``--baseline``, and this checkout's. The client sends each
prompt directly, through the baseline and through this checkout, one request at a time and
in alternating order, so the three paths share the machine's state; the added latency of each
gateway is its p50 (p99) minus the direct path's, and its CPU a request is read from its
process.

    python benchmarks/gateway_paired.py --baseline REV [--requests 1500]
        [--out benchmarks/results/gateway_paired.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from gateway_load import CLEAN, KEY, GatewayProcess, Upstream, bodies, http_upstream
from guard_latency import texts

ROOT = Path(__file__).resolve().parent.parent
WARM_UP = 100


def gateway(name: str, source: Path, upstream_url: str) -> GatewayProcess:
    """``python -m bastion serve`` importing ``bastion`` from ``source`` (its ``src`` folder)."""
    folder = Path(tempfile.mkdtemp(prefix=f"gateway-paired-{name}-"))
    command = [sys.executable, "-m", "bastion", "serve", "--config"]
    process = GatewayProcess(folder, http_upstream(upstream_url), command=command)
    previous = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(source / "src")
    try:
        process.start()
    finally:
        if previous is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = previous
    return process


async def alternate(urls: dict[str, str], payloads: list[bytes], n: int) -> dict[str, list[float]]:
    """Each payload to every path in turn (the order reversed every other round); ms."""
    headers = {"authorization": f"Bearer {KEY}", "content-type": "application/json"}
    limits = httpx.Limits(max_connections=1)
    clients = {k: httpx.AsyncClient(headers=headers, limits=limits, timeout=30) for k in urls}
    latencies: dict[str, list[float]] = {k: [] for k in urls}
    try:
        for i in range(WARM_UP + n):
            order = list(urls) if i % 2 else list(reversed(urls))
            for path in order:
                start = time.perf_counter()
                response = await clients[path].post(
                    f"{urls[path]}/v1/chat/completions", content=payloads[i % len(payloads)]
                )
                if response.status_code != 200:
                    raise SystemExit(f"{path}: HTTP {response.status_code}: {response.text}")
                if i >= WARM_UP:
                    latencies[path].append((time.perf_counter() - start) * 1000)
    finally:
        for client in clients.values():
            await client.aclose()
    return latencies


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", required=True, help="a commit to compare this checkout to")
    parser.add_argument("--requests", type=int, default=1500)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/gateway_paired.json"))
    args = parser.parse_args()
    tree = Path(tempfile.mkdtemp(prefix="gateway-paired-baseline-"))
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), args.baseline],
        check=True,
        capture_output=True,
    )
    gateways: dict[str, GatewayProcess] = {}
    upstream: Upstream | None = None
    try:  # the worktree goes whatever fails from here on
        baseline_commit = subprocess.run(
            ["git", "-C", str(tree), "rev-parse", "HEAD"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        benign = [t for k, t in enumerate(texts(400)) if k % 10 != 0]
        upstream = Upstream(CLEAN, seed=1)
        gateways["baseline"] = gateway("baseline", tree, upstream.url)
        gateways["this_checkout"] = gateway("this", ROOT, upstream.url)
        urls = {"direct": upstream.url, **{k: g.url for k, g in gateways.items()}}
        cpu = {k: g.cpu_s() for k, g in gateways.items()}
        latencies = asyncio.run(alternate(urls, bodies(benign), args.requests))
        sent = WARM_UP + args.requests
        cpu = {k: (g.cpu_s() - cpu[k]) * 1000 / sent for k, g in gateways.items()}
    finally:
        for process in gateways.values():
            process.stop()
        if upstream is not None:
            upstream.close()
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
            check=False,
            capture_output=True,
        )
    direct = latencies["direct"]
    report: dict[str, Any] = {
        "benchmark": "gateway_paired",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "requests": args.requests,
        "baseline": args.baseline,
        "baseline_commit": baseline_commit,
        "direct": {"p50_ms": statistics.median(direct), "p99_ms": p99(direct)},
    }
    for name in gateways:
        values = latencies[name]
        report[name] = {
            "p50_ms": statistics.median(values),
            "p99_ms": p99(values),
            "added_p50_ms": statistics.median(values) - statistics.median(direct),
            "added_p99_ms": p99(values) - p99(direct),
            "gateway_cpu_ms_per_request": cpu[name],
        }
    print(f"direct: p50 {report['direct']['p50_ms']:.2f} ms, p99 {report['direct']['p99_ms']:.2f}")
    for name in gateways:
        row = report[name]
        print(
            f"{name:<14} added p50 {row['added_p50_ms']:.2f} ms, p99 {row['added_p99_ms']:.2f} ms;"
            f" CPU {row['gateway_cpu_ms_per_request']:.2f} ms a request"
        )
    change = report["this_checkout"]["added_p50_ms"] - report["baseline"]["added_p50_ms"]
    print(f"this checkout against {args.baseline}: {change:+.2f} ms added p50")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
