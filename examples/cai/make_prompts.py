"""Prompts for `bastion align cai`: harmful behaviours and benign-but-sensitive requests from the
pinned corpora, each marked, chosen by a stable hash (the same on every machine).

    python examples/cai/make_prompts.py [N] > runs/cai-prompts.jsonl

The harmful texts stay in the file you write; nothing is printed to the terminal.
"""

import json
import sys

from bastion.redteam.campaign import benign_suite, load_behaviors


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 8
    for behavior in load_behaviors("harmbench-val", n):
        print(json.dumps({"id": f"h-{behavior.id}", "prompt": behavior.goal, "harmful": True}))
    for behavior in benign_suite(n):
        print(json.dumps({"id": f"b-{behavior.id}", "prompt": behavior.goal, "harmful": False}))


if __name__ == "__main__":
    main()
