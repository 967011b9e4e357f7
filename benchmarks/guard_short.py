"""The default input policy on short everyday messages that no classifier trained on.

``benchmarks/data/short_everyday_eval.jsonl``: 400 short harmless messages (1–15 words:
imperatives, questions, follow-ups that steer the previous answer, e-mail and reminder tasks,
coding asks with words filters over-react to, small talk; 21 in Spanish, German or French),
written for Bastion by a writer who opened no dataset, separately from the training set
``src/bastion/guard/training/written/short_everyday.jsonl`` and never trained on. Every
message should pass: a block is a false block, a review a needless look.

    python benchmarks/guard_short.py [--policy POLICY] [--out benchmarks/measured/guard_short.json]
"""

from __future__ import annotations

import argparse
import json
from collections import Counter, defaultdict
from pathlib import Path

from bastion.guard.pipeline import Guard

DATA = Path(__file__).parent / "data" / "short_everyday_eval.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--policy", type=Path, default=None, help="[the shipped default]")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/measured/guard_short.json"))
    args = parser.parse_args()
    guard = Guard.from_policy(args.policy) if args.policy else Guard.default()
    rows = [json.loads(line) for line in DATA.read_text().splitlines() if line.strip()]
    kinds: dict[str, Counter[str]] = defaultdict(Counter)
    rails: Counter[str] = Counter()
    for row in rows:
        decision = guard.check_input(row["text"])
        for key in ("all", row["kind"]):
            kinds[key]["messages"] += 1
            kinds[key][decision.action] += 1
        if decision.blocked:
            rails.update(r.scanner for r in decision.flagged if r.scanner != "pii")
    print(f"{'kind':<22}{'messages':>9}{'blocked':>10}{'reviewed':>10}")
    for kind, counts in sorted(kinds.items(), key=lambda kv: kv[0] != "all"):
        n = counts["messages"]
        print(f"{kind:<22}{n:>9}{counts['block'] / n:>10.1%}{counts['review'] / n:>10.1%}")
    print(f"blocked by: {dict(rails)}")
    report = {
        "benchmark": "guard_short",
        "data": str(DATA.relative_to(Path.cwd()) if DATA.is_relative_to(Path.cwd()) else DATA),
        "policy": str(args.policy or "default"),
        "kinds": {k: dict(v) for k, v in kinds.items()},
        "blocked_by": dict(rails),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
