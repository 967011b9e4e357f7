"""Behaviours: the harmful goals a campaign tries to elicit, and the over-refusal suite.

From a registered corpus (harmful requests; ``bastion data list``) or a JSONL/text file of
your own; a limit picks by a stable hash, the same behaviours on every machine.
"""

from __future__ import annotations

import json
from pathlib import Path

from bastion.errors import BastionError, DataError
from bastion.redteam.attacks.base import Behavior


def load_behaviors(spec: str, limit: int | None = None, *, salt: str = "redteam") -> list[Behavior]:
    """Behaviours from a registered corpus name (harmful requests) or a JSONL/text file.

    A file holds one behaviour per line: JSON with ``goal`` (or ``behavior``/``prompt``/
    ``text``) and optional ``id`` and ``category``, or plain text. ``limit`` picks that many by a
    stable hash, the same on every machine."""
    from bastion.data.registry import CORPORA, load_corpus
    from bastion.data.splits import stable_fraction

    if spec in CORPORA:
        items = load_corpus(spec)
        behaviors = [
            Behavior(i.id, i.text, i.category or "-", spec) for i in items if i.text.strip()
        ]
    else:
        behaviors = _behaviors_from_file(Path(spec))
    if limit is not None:
        behaviors = sorted(behaviors, key=lambda b: stable_fraction(b.goal, salt=salt))[:limit]
    return behaviors


def _behaviors_from_file(path: Path) -> list[Behavior]:
    if not path.is_file():
        raise BastionError(
            f"--behaviors {path}: neither a registered corpus (see `bastion data list`) nor a file"
        )
    behaviors = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            text = line.strip()
            if not text:
                continue
            if text.startswith("{"):
                try:
                    row = json.loads(text)
                except json.JSONDecodeError as exc:
                    raise DataError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
                goal = next(
                    (row[k] for k in ("goal", "behavior", "prompt", "text") if k in row), None
                )
                if not isinstance(goal, str) or not goal.strip():
                    raise DataError(f"{path}:{number}: expected a 'goal' string")
                bid = str(row.get("id", number))
                behaviors.append(Behavior(bid, goal, str(row.get("category", "-")), path.name))
            else:
                behaviors.append(Behavior(str(number), text, "-", path.name))
    if not behaviors:
        raise DataError(f"{path}: no behaviours in the file")
    return behaviors


def benign_suite(limit: int | None = None) -> list[Behavior]:
    """The over-refusal prompts (benign requests that sound sensitive)."""
    return load_behaviors("rho-overrefusal", limit, salt="redteam-benign")
