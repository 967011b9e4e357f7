"""Guard latency: the default input + output stack on 1 KB texts, one call at a time.

Texts: 200 deterministic 1 KB texts built from the pinned corpora (benign chats, instructions
and agent tasks, jailbreak templates filled with goals, PII sentences), so the stack meets what
it meets in production: mostly clean text, some attacks, some personal data. The default stack
(the harmful rail's encoder stage on the texts its n-grams do not clear) runs beside the
n-gram stages alone. Reported: p50/p95/p99 of
``check_input`` + ``check_output`` per text on one thread (``torch`` limited to one thread),
and throughput of ``Guard.check_many`` on two worker processes (input then output stage, on
2,000 texts). Peers (Presidio's pattern recognizers, LLM Guard's
offline scanners) run in the same process on the same texts when they are installed; this
script says so when they are not.

    python benchmarks/guard_latency.py [--texts 200] [--out benchmarks/results/guard_latency.json]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from pathlib import Path
from typing import Any

import torch


def texts(n: int) -> list[str]:
    from bastion.data.registry import fill_template, load_corpus

    rng = random.Random(0)
    pools = {
        "benign": [i.text for name in ("langkit-chats", "asb-agent-tasks", "chatterbot",
                                       "alpacaeval", "ifeval") for i in load_corpus(name)],
        "pii": [i.text for i in load_corpus("presidio-templates")],
    }  # fmt: skip
    templates = [i for i in load_corpus("gptfuzzer-templates") if i.meta.get("slot")]
    goals = [i.text for i in load_corpus("advbench")]
    out = []
    for k in range(n):
        if k % 10 == 0:  # one in ten an attack
            chunk = fill_template(rng.choice(templates), rng.choice(goals))
        else:
            parts: list[str] = []
            while sum(map(len, parts)) < 1024:
                parts.append(rng.choice(pools["pii" if k % 10 == 1 else "benign"]))
            chunk = " ".join(parts)
        out.append(chunk[:1024])
    return out


def requests(n: int) -> list[str]:
    """Single requests as users send them (not 1 KB blocks): everyday instructions and chats,
    one in ten a plain harmful request — the texts the harmful rail's encoder stage reads."""
    from bastion.data.registry import load_corpus

    rng = random.Random(1)
    benign = [i.text for name in ("alpacaeval", "ifeval", "chatterbot", "healthsearchqa")
              for i in load_corpus(name)]  # fmt: skip
    harmful = [i.text for i in load_corpus("advbench")]
    return [rng.choice(harmful if k % 10 == 0 else benign)[:1024] for k in range(n)]


def percentiles(ms: list[float]) -> dict[str, float]:
    ranked = sorted(ms)
    at = lambda q: ranked[min(int(q * len(ranked)), len(ranked) - 1)]  # noqa: E731
    return {"p50": statistics.median(ranked), "p95": at(0.95), "p99": at(0.99)}


def ngram_only_guard() -> Any:
    """The default policy with the harmful rail's encoder stage switched off."""
    import yaml

    from bastion.guard.pipeline import Guard
    from bastion.guard.policy import default_policy_path, parse_policy

    raw = yaml.safe_load(default_policy_path().read_text())
    for entry in raw["input"]:
        if entry["scanner"] == "harmful":
            entry["encoder"] = False
    return Guard(parse_policy(raw, base=default_policy_path().parent))


def bastion_stack(items: list[str], guard: Any = None) -> dict[str, Any]:
    from bastion.guard.pipeline import Guard

    guard = guard or Guard.default()
    for text in items[:5]:  # warm-up: weights loaded, caches filled
        guard.check_input(text)
        guard.check_output(text)
    latencies = []
    for text in items:
        start = time.perf_counter()
        guard.check_input(text)
        guard.check_output(text)
        latencies.append((time.perf_counter() - start) * 1000)
    guard.check_many(items[:20], "input", processes=2)  # the worker processes start
    batch = items * max(1, 2000 // len(items))  # enough work to measure two cores
    start = time.perf_counter()
    guard.check_many(batch, "input", processes=2)
    guard.check_many(batch, "output", processes=2)
    throughput = len(batch) / (time.perf_counter() - start)
    guard.close()
    from bastion.guard.encoder import CLEARED

    has_encoder = any(
        getattr(rail.scanner, "encoder", None) is not None for rail in guard.policy.input
    )
    escalated = has_encoder and sum(
        any(r.scanner == "harmful" and r.score >= CLEARED for r in guard.check_input(t).results)
        for t in items
    )  # fmt: skip
    return {
        **percentiles(latencies),
        "texts_per_s_2_processes": throughput,
        "harmful_encoder_share": escalated / len(items),
    }


def bastion_pii(items: list[str]) -> dict[str, Any]:
    """Bastion's PII scanner alone (normalization included): the like-for-like with Presidio."""
    from bastion.guard.scanners import PiiScanner

    scanner = PiiScanner()
    scanner.scan("warm-up a@b.io")
    latencies = []
    for text in items:
        start = time.perf_counter()
        scanner.scan(text)
        latencies.append((time.perf_counter() - start) * 1000)
    return percentiles(latencies)


def presidio(items: list[str]) -> dict[str, Any]:
    """Presidio's pattern recognizers (the same set as ``pii_f1.py``) on the same texts."""
    from pii_f1 import presidio_analyze

    analyze = presidio_analyze()
    if analyze is None:
        return {"skipped": "presidio-analyzer is not installed"}
    analyze("warm-up a@b.io")
    latencies = []
    for text in items:
        start = time.perf_counter()
        analyze(text)
        latencies.append((time.perf_counter() - start) * 1000)
    return percentiles(latencies)


def llm_guard(items: list[str], python: Path) -> dict[str, Any]:
    """LLM Guard's offline input scanners on the same texts, in its own environment."""
    import subprocess
    import tempfile
    from importlib import resources

    if not python.is_file():
        return {"skipped": f"{python} not found (make bench-guard builds it)"}
    phrases = Path(str(resources.files("bastion.guard") / "injection_phrases.txt"))
    with tempfile.TemporaryDirectory() as tmp:
        texts_file, out = Path(tmp) / "texts.json", Path(tmp) / "out.json"
        texts_file.write_text(json.dumps(items))
        script = Path(__file__).with_name("llm_guard_peer.py")
        env = {"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
        done = subprocess.run(
            [str(python), str(script), str(texts_file), str(phrases), str(out)],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        if done.returncode != 0:
            return {"skipped": "LLM Guard failed: " + done.stderr.strip().splitlines()[-1]}
        result: dict[str, Any] = json.loads(out.read_text())
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--texts", type=int, default=200)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/guard_latency.json"))
    parser.add_argument(
        "--llm-guard-python",
        type=Path,
        default=Path(".venv-llmguard/bin/python"),
        help="the interpreter of an environment with llm-guard installed",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    items = texts(args.texts)
    report = {
        "benchmark": "guard_latency",
        "texts": len(items),
        "text_chars": 1024,
        "bastion_default_input_plus_output_ms": bastion_stack(items),
        "bastion_ngram_only_input_plus_output_ms": bastion_stack(items, ngram_only_guard()),
        "bastion_default_on_requests_ms": bastion_stack(requests(args.texts)),
        "bastion_ngram_only_on_requests_ms": bastion_stack(
            requests(args.texts), ngram_only_guard()
        ),
        "bastion_pii_only_ms": bastion_pii(items),
        "presidio_pattern_recognizers_ms": presidio(items),
        "llm_guard_offline_input_scanners_ms": llm_guard(items, args.llm_guard_python),
    }
    ours = report["bastion_default_input_plus_output_ms"]
    print(
        f"bastion input+output on 1 KB: p50 {ours['p50']:.2f} ms  p95 {ours['p95']:.2f} ms  "
        f"p99 {ours['p99']:.2f} ms  ·  {ours['texts_per_s_2_processes']:.0f} texts/s (input and "
        "output) on 2 processes"
    )
    grams = report["bastion_ngram_only_input_plus_output_ms"]
    print(
        f"bastion n-gram stages only: p50 {grams['p50']:.2f} ms  p99 {grams['p99']:.2f} ms  ·  "
        f"{grams['texts_per_s_2_processes']:.0f} texts/s; the default sends "
        f"{ours['harmful_encoder_share']:.0%} of these texts to the encoder"
    )
    for kind in ("default", "ngram_only"):
        row = report[f"bastion_{kind}_on_requests_ms"]
        print(
            f"bastion {kind} on single requests: p50 {row['p50']:.2f} ms  p99 {row['p99']:.2f} "
            f"ms  ·  {row['texts_per_s_2_processes']:.0f} texts/s; encoder on "
            f"{row['harmful_encoder_share']:.0%}"
        )
    pii = report["bastion_pii_only_ms"]
    print(f"bastion PII scanner alone: p50 {pii['p50']:.2f} ms  p99 {pii['p99']:.2f} ms")
    peer = report["presidio_pattern_recognizers_ms"]
    print("presidio pattern recognizers (PII only): " + (peer["skipped"] if "skipped" in peer
          else f"p50 {peer['p50']:.2f} ms  p99 {peer['p99']:.2f} ms"))  # fmt: skip
    peer = report["llm_guard_offline_input_scanners_ms"]
    print("LLM Guard offline input scanners (regex, ban-substrings, invisible, secrets): "
          + (peer["skipped"] if "skipped" in peer else
             f"p50 {peer['p50']:.2f} ms  p99 {peer['p99']:.2f} ms"))  # fmt: skip
    if "skipped" not in peer:
        ratio = peer["p50"] / ours["p50"]
        report["llm_guard_p50_over_bastion_p50"] = ratio
        print(f"LLM Guard's four offline scanners / Bastion's whole stack, p50: {ratio:.1f}x")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
