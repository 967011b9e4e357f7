"""Where the gateway's added latency goes: each step of a request, timed inside ``bastion serve``.

The same set-up as ``gateway_load.py``'s latency part (the fake upstream on loopback, the
default guard, the SQLite store, benign ~1 KB prompts, concurrency 1, direct and gateway
requests in turn), but the gateway process wraps the :class:`~bastion.serve.exchange.Gateway`
steps in timers: the input rails, the upstream call (with the prompt's redaction for the
record, done while the request is out), the output rails, and the record (event, redaction,
journal append with its fsync; on the event loop when the exchange is the only one open, as
here, else in a worker thread). Each step's mean wall and CPU time per
request come out beside the added latency of the same run; what the steps do not cover is the
HTTP server, Starlette, parsing and the thread hand-offs.

    python benchmarks/gateway_breakdown.py [--requests 1000]
        [--out benchmarks/results/gateway_breakdown.json]
"""

from __future__ import annotations

import argparse
import atexit
import functools
import inspect
import json
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

STEPS = {  # the step's name: (module, class or None, function)
    "request (flows.complete)": ("bastion.serve.flows", None, "complete"),
    "input rails": ("bastion.serve.exchange", "Gateway", "check_input"),
    "upstream call (+ the prompt's redaction)": ("bastion.serve.exchange", "Gateway", "call"),
    "output rails": ("bastion.serve.exchange", "Gateway", "check_output"),
    "record (event, journal append)": ("bastion.serve.exchange", "Gateway", "finish"),
    "  journal append (json, write, fsync)": ("bastion.monitor.store", "EventStore", "record"),
    "redaction for the record (both texts)": ("bastion.serve.exchange", "Redactor", "__call__"),
    "body parsing": ("bastion.serve.app", None, "parse"),
    "span start": ("bastion.serve.exchange", "Gateway", "begin"),
}


def serve_timed(config: str, out: str) -> None:
    """The gateway (``bastion serve --config``) with timers around :data:`STEPS`; their totals
    are written to ``out`` when it exits."""
    import importlib

    from bastion.serve.main import run

    totals: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0])

    def timed(name: str, f: Any) -> Any:
        def add(wall: float, cpu: float) -> None:
            entry = totals[name]
            entry[0] += 1
            entry[1] += wall
            entry[2] += cpu

        if inspect.iscoroutinefunction(f):

            @functools.wraps(f)
            async def wrapped_async(*args: Any, **kwargs: Any) -> Any:
                wall, cpu = time.perf_counter(), time.thread_time()
                try:
                    return await f(*args, **kwargs)
                finally:  # CPU of this thread only: other tasks may run meanwhile
                    add(time.perf_counter() - wall, time.thread_time() - cpu)

            return wrapped_async

        @functools.wraps(f)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            wall, cpu = time.perf_counter(), time.thread_time()
            try:
                return f(*args, **kwargs)
            finally:
                add(time.perf_counter() - wall, time.thread_time() - cpu)

        return wrapped

    for name, (module_name, owner_name, function) in STEPS.items():
        module = importlib.import_module(module_name)
        owner = getattr(module, owner_name) if owner_name else module
        setattr(owner, function, timed(name, getattr(owner, function)))

    def dump() -> None:
        Path(out).write_text(json.dumps(totals))

    atexit.register(dump)
    run(Path(config), echo=lambda line: None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=1000)
    default_out = Path("benchmarks/results/gateway_breakdown.json")
    parser.add_argument("--out", type=Path, default=default_out)
    parser.add_argument("--serve", nargs=2, metavar=("TOTALS", "CONFIG"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve_timed(args.serve[1], args.serve[0])
        return

    from gateway_load import CLEAN, GatewayProcess, Upstream, bodies, compare, http_upstream
    from guard_latency import texts

    work = Path(tempfile.mkdtemp(prefix="gateway-breakdown-"))
    totals_path = work / "totals.json"
    benign = [t for k, t in enumerate(texts(400)) if k % 10 != 0]
    upstream = Upstream(CLEAN, seed=1)
    try:
        command = [sys.executable, __file__, "--serve", str(totals_path)]
        gateway = GatewayProcess(work, http_upstream(upstream.url), command=command)
        gateway.start()
        try:
            row = compare(upstream, gateway, bodies(benign), args.requests, 1)
        finally:
            gateway.stop()
    finally:
        upstream.close()
    totals = json.loads(totals_path.read_text())
    requests = totals["request (flows.complete)"][0]
    steps = {
        name: {
            "calls_per_request": totals[name][0] / requests,
            "wall_ms_per_request": totals[name][1] / requests * 1000,
            "cpu_ms_per_request": totals[name][2] / requests * 1000,
        }
        for name in STEPS
        if name in totals
    }
    report = {
        "benchmark": "gateway_breakdown",
        "requests": args.requests,
        "added_p50_ms": row["added_p50_ms"],
        "added_p99_ms": row["added_p99_ms"],
        "direct_p50_ms": row["direct"]["p50_ms"],
        "gateway_p50_ms": row["gateway"]["p50_ms"],
        "gateway_cpu_ms_per_request": row["gateway"]["gateway_cpu_ms_per_request"],
        "steps": steps,
    }
    print(f"{'step (mean per request, warm-up included)':<44}{'wall ms':>10}{'CPU ms':>10}")
    for name, step in steps.items():
        wall, cpu = step["wall_ms_per_request"], step["cpu_ms_per_request"]
        print(f"{name:<44}{wall:>10.3f}{cpu:>10.3f}")
    print(
        f"added latency p50 {row['added_p50_ms']:.2f} ms, p99 {row['added_p99_ms']:.2f} ms "
        f"(direct p50 {row['direct']['p50_ms']:.2f}, gateway p50 {row['gateway']['p50_ms']:.2f}); "
        f"gateway CPU {row['gateway']['gateway_cpu_ms_per_request']:.2f} ms a request"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
