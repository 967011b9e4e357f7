"""The default input policy on system prompts that no classifier trained on.

``benchmarks/data/system_prompts_eval.jsonl``: 300 benign system prompts of the kinds app
developers ship (assistant personas, support bots with scope rules, task roles, output-format
and tool instructions, benign policy rules, agents, harmless roleplay, 30 in 17 other
languages) and 100 malicious system messages (persona jailbreaks, policy overrides, prompt
leaks, exfiltration, obfuscated), written for Bastion by a writer who opened no dataset,
separately from the training set ``src/bastion/guard/training/written/system_prompts.jsonl``
and never trained on.

Each is checked the way the gateway checks a request: a conversation of the system message
and a plain user turn (``USER``, which passes on its own), through ``Guard.check_input``.
A benign prompt blocked is a false block of every request the app sends; a malicious one
let through is a miss.

    python benchmarks/guard_system_prompts.py [--policy POLICY]
        [--out benchmarks/measured/guard_system_prompts.json]
"""

from __future__ import annotations

import argparse
import json
from collections import Counter, defaultdict
from pathlib import Path

from bastion.guard.pipeline import Guard

DATA = Path(__file__).parent / "data" / "system_prompts_eval.jsonl"
USER = "Hi! Can you help me with something today?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--policy", type=Path, default=None, help="[the shipped default]")
    parser.add_argument(
        "--out", type=Path, default=Path("benchmarks/measured/guard_system_prompts.json")
    )
    args = parser.parse_args()
    guard = Guard.from_policy(args.policy) if args.policy else Guard.default()
    alone = guard.check_input(USER)
    if alone.action != "allow":
        raise SystemExit(f"the user turn alone is not allowed ({alone.action}): pick another")
    rows = [json.loads(line) for line in DATA.read_text().splitlines() if line.strip()]
    kinds: dict[str, Counter[str]] = defaultdict(Counter)
    rails: Counter[str] = Counter()
    for row in rows:
        conversation = [
            {"role": "system", "content": row["text"]},
            {"role": "user", "content": USER},
        ]
        decision = guard.check_input(conversation)
        side = "malicious" if row["label"] else "benign"
        for key in (f"all {side}", f"{side}: {row['kind']}"):
            kinds[key]["messages"] += 1
            kinds[key][decision.action] += 1
        if decision.blocked and not row["label"]:
            rails.update(r.scanner for r in decision.flagged if r.scanner != "pii")
    print(f"{'kind':<34}{'n':>5}{'blocked':>10}{'reviewed':>10}")
    for kind, counts in sorted(kinds.items(), key=lambda kv: (not kv[0].startswith("all"), kv)):
        n = counts["messages"]
        print(f"{kind:<34}{n:>5}{counts['block'] / n:>10.1%}{counts['review'] / n:>10.1%}")
    print(f"benign blocked by: {dict(rails)}")
    report = {
        "benchmark": "guard_system_prompts",
        "data": "benchmarks/data/system_prompts_eval.jsonl",
        "user_turn": USER,
        "policy": str(args.policy or "default"),
        "kinds": {k: dict(v) for k, v in kinds.items()},
        "benign_blocked_by": dict(rails),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
