"""Tables of the gateway benchmarks (load, latency, soak, fuzz, breakdown, a real client),
read from their JSON. A key missing from a file fails the build with the file and the key."""

from __future__ import annotations

from typing import Any

from docgen_table import code, file_name, number, percent, table, text


def gateway_load(runs: dict[str, Any]) -> str:
    """One column per run; a latency-only run (``--parts latency``) leaves the rest empty."""
    rows: list[tuple[str, Any]] = [
        (
            "added p50, concurrency 1 (ms)",
            lambda r: number(r["latency"]["concurrency_1"]["added_p50_ms"]),
        ),
        (
            "added p99, concurrency 1 (ms)",
            lambda r: number(r["latency"]["concurrency_1"]["added_p99_ms"]),
        ),
        (
            "direct p50, concurrency 1 (ms)",
            lambda r: number(r["latency"]["concurrency_1"]["direct"]["p50_ms"]),
        ),
        (
            "gateway CPU a request, concurrency 1 (ms)",
            lambda r: number(
                r["latency"]["concurrency_1"]["gateway"]["gateway_cpu_ms_per_request"]
            ),
        ),
        (
            "added p50 / p99, store on tmpfs (ms)",
            lambda r: _pair(r["latency"]["concurrency_1_store_on_tmpfs"]),
        ),
        ("added p50 / p99, open loop (ms)", lambda r: _pair(r["latency"]["open_loop"])),
        (
            "open loop: offered requests/s",
            lambda r: number(r["latency"]["open_loop"]["gateway"]["offered_per_s"], 0),
        ),
        (
            "gateway p50, concurrency 64 (ms)",
            lambda r: number(r["latency"]["concurrency_64"]["gateway"]["p50_ms"], 0),
        ),
        ("faults: requests at concurrency 64", lambda r: number(r["faults"]["requests"])),
        ("faults: unhandled errors", lambda r: number(r["faults"]["unhandled"])),
        (
            "faults: answers by kind",
            lambda r: text(", ".join(f"{k} {v:,}" for k, v in r["faults"]["kinds"].items())),
        ),
        (
            "faults: acknowledged without an event",
            lambda r: (
                f"{r['faults']['events']['lost']:,} of {r['faults']['events']['acknowledged']:,}"
            ),
        ),
        ("faults: requests/s", lambda r: number(r["faults"]["requests_per_s"], 0)),
        (
            "memory: start → after warm-up → end (MiB)",
            lambda r: " → ".join(
                number(r["faults"]["memory"][k], 0)
                for k in ("start_mib", "after_warm_up_mib", "end_mib")
            ),
        ),
        (
            "memory: growth after warm-up",
            lambda r: percent(r["faults"]["memory"]["growth_after_warm_up_pct"] / 100, 2),
        ),
        (
            "kill -9: acknowledged without an event",
            lambda r: (
                f"{r['crash']['acknowledged_without_event']:,} of "
                f"{r['crash']['events']['acknowledged']:,}"
            ),
        ),
        (
            "kill -9: requests cut in flight",
            lambda r: number(r["crash"]["kinds"].get("connection_cut", 0)),
        ),
    ]
    body = []
    for label, read in rows:
        cells = []
        for run in runs.values():
            try:
                cells.append(read(run))
            except KeyError:
                if "faults" in run or not label.startswith(("faults", "memory", "kill")):
                    raise
                cells.append("–")
        body.append([label, *cells])
    headers = ["", *(code(file_name(p)) for p in runs)]
    return table(headers, body, numeric=range(1, len(headers)))


def _pair(part: dict[str, Any]) -> str:
    return f"{number(part['added_p50_ms'])} / {number(part['added_p99_ms'])}"


def gateway_paired(runs: dict[str, Any]) -> str:
    rows = []
    for path, run in runs.items():
        base, this = run["baseline"], run["this_checkout"]
        rows.append(
            [
                code(file_name(path)),
                code(run["baseline_commit"][:7]),
                number(run["requests"]),
                number(run["direct"]["p50_ms"]),
                number(base["added_p50_ms"]),
                number(this["added_p50_ms"]),
                f"{this['added_p50_ms'] - base['added_p50_ms']:+.2f}",
                number(base["gateway_cpu_ms_per_request"]),
                number(this["gateway_cpu_ms_per_request"]),
                f"{this['gateway_cpu_ms_per_request'] - base['gateway_cpu_ms_per_request']:+.2f}",
            ]
        )
    return table(
        [
            "JSON",
            "baseline",
            "requests",
            "direct p50 (ms)",
            "baseline added p50",
            "checkout added p50",
            "change",
            "baseline CPU/request (ms)",
            "checkout CPU/request",
            "change",
        ],
        rows,
        numeric={2, 3, 4, 5, 6, 7, 8, 9},
    )


def gateway_breakdown(runs: dict[str, Any]) -> str:
    parts = []
    for path, run in runs.items():
        rows = [
            [
                text(step),
                number(f["calls_per_request"]),
                number(f["wall_ms_per_request"]),
                number(f["cpu_ms_per_request"]),
            ]
            for step, f in run["steps"].items()
        ]
        parts.append(
            f"{run['requests']:,} requests ({code(file_name(path))}): added p50 "
            f"{number(run['added_p50_ms'])} ms (direct {number(run['direct_p50_ms'])} ms, gateway "
            f"{number(run['gateway_p50_ms'])} ms), gateway CPU "
            f"{number(run['gateway_cpu_ms_per_request'])} ms a request.\n\n"
            + table(
                ["step", "calls a request", "wall ms a request", "CPU ms a request"],
                rows,
                numeric={1, 2, 3},
            )
        )
    return "\n\n".join(parts)


def gateway_soak(runs: dict[str, Any]) -> str:
    parts = []
    for path, run in runs.items():
        results = run["results"]
        lines = [
            ("requests", lambda r: number(r["requests"])),
            (
                "acknowledged without an event",
                lambda r: f"{r['acknowledged_without_event']} of {sum(r['acknowledged']):,}",
            ),
            ("events in the other gateway's store", lambda r: number(r["in_wrong_store"])),
            (
                "5xx for a client's mistake",
                lambda r: f"{r['client_5xx']} of {r['kinds'].get('client_4xx', 0):,} mistakes",
            ),
            ("other unexpected answers", lambda r: number(r["unexpected"])),
            (
                "largest RSS growth of a process life",
                lambda r: percent(r["memory"]["max_growth_pct"] / 100, 2),
            ),
            ("connections cut by the kills", lambda r: number(r["kinds"].get("connection_cut", 0))),
            (
                "restart after kill -9 (s)",
                lambda r: ", ".join(number(k["restart_s"], 1) for k in r["kills"]),
            ),
            ("requests/s", lambda r: number(r["requests_per_s"], 1)),
        ]
        body = [[label, *(read(r) for r in results)] for label, read in lines]
        goals = ", ".join(f"{k} {v}" for k, v in run["goals"].items())
        parts.append(
            table(
                [f"concurrency {run['concurrency']}", *(text(r["backend"]) for r in results)],
                body,
                numeric=range(1, len(results) + 1),
            )
            + f"\n\nGoals: {text(goals)} ({code(file_name(path))})."
        )
    return "\n\n".join(parts)


def gateway_fuzz(runs: dict[str, Any]) -> str:
    parts = []
    for path, run in runs.items():
        summary = table(
            ["inputs", "minutes", "5xx", "not in OpenAI's shape", "unsendable", "findings"],
            [
                [
                    number(run["inputs"]),
                    number(run["seconds"] / 60, 0),
                    run["5xx"],
                    run["malformed"],
                    run["unsendable"],
                    len(run["failures"]),
                ]
            ],
            numeric={0, 1, 2, 3, 4, 5},
        )
        statuses = sorted({s for counts in run["statuses_by_route"].values() for s in counts})
        routes = [
            [code(route), *(number(counts.get(s)) if s in counts else "" for s in statuses)]
            for route, counts in run["statuses_by_route"].items()
        ]
        parts.append(
            f"{summary}\n\nResponses by route and status ({code(file_name(path))}):\n\n"
            + table(["route", *statuses], routes, numeric=range(1, len(statuses) + 1))
        )
    return "\n\n".join(parts)


def garak_gateway(runs: dict[str, Any]) -> str:
    rows = []
    for path, run in runs.items():
        decisions = ", ".join(f"{k} {v}" for k, v in run["decisions"].items())
        rows.append(
            [
                code(file_name(path)),
                text(run["garak_version"]),
                text(run["probes"].replace("probes.", "")),
                run["attempts"],
                run["attempts_in_store"],
                f"{run['hits_in_store']} of {run['hits']}",
                run["answer_mismatch"],
                text(decisions),
                number(run["garak_wall_s"], 1),
            ]
        )
    return table(
        [
            "JSON",
            "garak",
            "probes",
            "attempts",
            "in the store",
            "hits in the store",
            "answers differing",
            "guard decisions",
            "garak wall (s)",
        ],
        rows,
        numeric={3, 4, 5},
    )


def http_clients(runs: dict[str, Any]) -> str:
    rows = []
    for path, run in runs.items():
        for client in ("httpx", "aiohttp"):
            rows.append(
                [
                    text(client),
                    text(run[client]["version"]),
                    number(run[client]["calls"]),
                    number(run[client]["cpu_ms_per_call"]),
                    code(file_name(path)),
                ]
            )
        rows.append(["httpx / aiohttp", "", "", f"{run['httpx_over_aiohttp']:.2f}×", ""])
    return table(["client", "version", "calls", "CPU ms a call", "JSON"], rows, numeric={2, 3})


RENDERERS = {
    "gateway_load": gateway_load,
    "gateway_paired": gateway_paired,
    "gateway_breakdown": gateway_breakdown,
    "gateway_soak": gateway_soak,
    "gateway_fuzz": gateway_fuzz,
    "garak_gateway": garak_gateway,
    "http_clients": http_clients,
}
