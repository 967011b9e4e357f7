"""LLM Guard's offline input scanners on given texts: the peer side of ``guard_latency.py``.

Runs in LLM Guard's own environment (it pins transformers and Presidio versions of its own):
``make bench-guard`` builds ``.venv-llmguard`` and ``guard_latency.py`` calls this script with
that interpreter on the same texts, in the same run. The scanners are the ones that need no
model: ``Regex`` (a bearer-token pattern, as in LLM Guard's documentation), ``BanSubstrings``
(Bastion's own injection phrase list, so both sides match the same phrases), ``InvisibleText``
and ``Secrets`` (detect-secrets). Reported: p50/p95/p99 of the four scanners on each text, one
thread, and each scanner's p50.

    .venv-llmguard/bin/python benchmarks/llm_guard_peer.py TEXTS.json PHRASES.txt OUT.json
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path


def percentiles(ms: list[float]) -> dict[str, float]:
    ranked = sorted(ms)
    at = lambda q: ranked[min(int(q * len(ranked)), len(ranked) - 1)]  # noqa: E731
    return {"p50": statistics.median(ranked), "p95": at(0.95), "p99": at(0.99)}


def main() -> None:
    texts_path, phrases_path, out_path = map(Path, sys.argv[1:4])
    import torch

    torch.set_num_threads(1)
    from importlib.metadata import version

    from llm_guard.input_scanners import BanSubstrings, InvisibleText, Regex, Secrets
    from llm_guard.input_scanners.ban_substrings import MatchType
    from llm_guard.util import configure_logger

    configure_logger(log_level="ERROR")
    phrases = [
        line.split("#", 1)[0].strip()
        for line in phrases_path.read_text().splitlines()
        if line.split("#", 1)[0].strip()
    ]
    scanners = {
        "Regex": Regex(patterns=[r"Bearer [A-Za-z0-9\-._~+/]+"]),
        "BanSubstrings": BanSubstrings(
            substrings=phrases, match_type=MatchType.WORD, case_sensitive=False
        ),
        "InvisibleText": InvisibleText(),
        "Secrets": Secrets(),
    }
    texts = json.loads(texts_path.read_text())
    for text in texts[:5]:  # warm-up
        for scanner in scanners.values():
            scanner.scan(text)
    per_scanner: dict[str, list[float]] = {name: [] for name in scanners}
    totals = []
    for text in texts:
        total = 0.0
        for name, scanner in scanners.items():
            start = time.perf_counter()
            scanner.scan(text)
            elapsed = (time.perf_counter() - start) * 1000
            per_scanner[name].append(elapsed)
            total += elapsed
        totals.append(total)
    report = {
        "llm_guard_version": version("llm-guard"),
        "phrases": len(phrases),
        **percentiles(totals),
        "per_scanner_p50": {n: statistics.median(v) for n, v in per_scanner.items()},
    }
    out_path.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
