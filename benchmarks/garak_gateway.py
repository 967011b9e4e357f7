"""A real client against the gateway: garak's OpenAI-compatible generator through ``bastion
serve``, every attempt checked against the event store.

The gateway runs as ``bastion serve --config`` with the default guard and its default
upstream, the packaged SmolLM2-135M-Instruct in process (CPU, so the probe set is small: garak's
``encoding.InjectBase64`` capped at ``--prompts`` prompts plus ``dan.Dan_11_0``, one
generation each, ``--max-tokens`` tokens). The store keeps raw text here (``store_raw: true``)
so garak's prompts can be matched exactly; redaction is what it always is otherwise. garak
(in ``.venv-garak``, as for ``redteam_vs_garak.py``) must finish; then its report's attempts are
matched to the store's events, prompt and answer: every attempt, hits included, must be there.

    python benchmarks/garak_gateway.py [--prompts 8] [--max-tokens 32]
        [--garak .venv-garak/bin/garak] [--out benchmarks/results/garak_gateway.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from gateway_load import KEY, GatewayProcess
from redteam_vs_garak import garak_version

from bastion.models.packaged import DEFAULT_CHAT_MODEL
from bastion.monitor.store import EventStore

PROBES = "probes.encoding.InjectBase64,probes.dan.Dan_11_0"


def run_garak(garak: Path, url: str, work: Path, prompts: int, max_tokens: int) -> dict[str, Any]:
    config = {
        "run": {"generations": 1, "soft_probe_prompt_cap": prompts, "seed": 0},
        "plugins": {
            "target_type": "openai.OpenAICompatible",
            "target_name": DEFAULT_CHAT_MODEL,
            "generators": {
                "openai": {
                    "OpenAICompatible": {
                        "uri": f"{url}/v1",
                        "api_key": KEY,
                        "max_tokens": max_tokens,
                        "seed": 0,
                    }
                }
            },
        },
        "reporting": {"report_dir": str(work), "report_prefix": "garak"},
    }
    path = work / "garak.json"
    path.write_text(json.dumps(config))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    start = time.perf_counter()
    done = subprocess.run(
        [str(garak), "--config", str(path), "--spec", PROBES],
        capture_output=True,
        text=True,
        env=env,
        cwd=work,
        check=False,
    )
    wall = time.perf_counter() - start
    (work / "garak.log").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        sys.exit(f"garak failed ({done.returncode}): see {work / 'garak.log'}")
    rows = [json.loads(line) for line in (work / "garak.report.jsonl").read_text().splitlines()]
    attempts = [r for r in rows if r.get("entry_type") == "attempt" and r.get("status") == 2]
    return {"wall_s": wall, "attempts": [attempt(a) for a in attempts]}


def attempt(row: dict[str, Any]) -> dict[str, Any]:
    scores = [max(v or [0.0]) for v in row["detector_results"].values()]
    return {
        "probe": row["probe_classname"],
        "prompt": row["prompt"]["turns"][-1]["content"]["text"],
        "outputs": [(o or {}).get("text") for o in row["outputs"]],
        "hit": max(scores, default=0.0) >= 0.5,
    }


def check(store: Path, attempts: list[dict[str, Any]]) -> dict[str, Any]:
    """Each attempt against the events: one with its prompt, and with its answer."""
    with EventStore(store) as events:  # opening replays the journal, if anything is left
        recorded = [e for e in events.events() if e.user == "bench"]
    by_prompt: dict[str, list[Any]] = {}
    for event in recorded:
        by_prompt.setdefault(event.raw_prompt or "", []).append(event)
    missing, answer_mismatch = [], 0
    for a in attempts:
        found = by_prompt.get(a["prompt"], [])
        if not found:
            missing.append(a["prompt"][:80])
        elif not any(e.response in a["outputs"] for e in found):
            answer_mismatch += 1
    hits = [a for a in attempts if a["hit"]]
    return {
        "events": len(recorded),
        "attempts": len(attempts),
        "attempts_in_store": len(attempts) - len(missing),
        "hits": len(hits),
        "hits_in_store": sum(bool(by_prompt.get(a["prompt"])) for a in hits),
        "answer_mismatch": answer_mismatch,
        "missing": missing,
        "decisions": dict(Counter(e.decision for e in recorded)),
        "statuses": dict(Counter(e.status for e in recorded)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prompts", type=int, default=8, help="InjectBase64 prompt cap")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--garak", type=Path, default=Path(".venv-garak/bin/garak"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/garak_gateway.json"))
    args = parser.parse_args()
    if not args.garak.is_file():
        sys.exit(f"{args.garak} not found: `make bench-redteam` installs garak in .venv-garak")
    work = Path(tempfile.mkdtemp(prefix="garak-gateway-"))
    gateway = GatewayProcess(work, {"max_tokens": args.max_tokens}, store_raw=True)
    start_s = gateway.start(timeout=300)
    try:
        garak = run_garak(args.garak.absolute(), gateway.url, work, args.prompts, args.max_tokens)
    finally:
        exit_code = gateway.stop()
    found = check(gateway.store, garak["attempts"])
    report = {
        "benchmark": "garak_gateway",
        "garak_version": garak_version(args.garak),
        "probes": PROBES,
        "upstream": f"{DEFAULT_CHAT_MODEL}, in process (CPU)",
        "max_tokens": args.max_tokens,
        "gateway_start_s": start_s,
        "gateway_exit_code": exit_code,
        "gateway_tracebacks": gateway.tracebacks(),
        "garak_wall_s": garak["wall_s"],
        **found,
        "work_dir": str(work),
    }
    ok = not found["missing"] and found["events"] >= found["attempts"]
    print(
        f"garak {report['garak_version']} through the gateway: {found['attempts']} attempts "
        f"({found['hits']} hits) in {garak['wall_s']:.0f} s · events stored {found['events']} · "
        f"attempts found in the store {found['attempts_in_store']}/{found['attempts']} "
        f"(hits {found['hits_in_store']}/{found['hits']}) · answers differing "
        f"{found['answer_mismatch']} · decisions {found['decisions']} · "
        + ("OK" if ok else "MISSING EVENTS")
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
