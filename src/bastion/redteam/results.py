"""What a run leaves behind: one :class:`Result` per judged exchange in ``results.jsonl``, and
the summary of them in ``summary.json``.

The summary holds the rates, each with its Wilson 95% interval: overall, per family, per
attack and per category, a category × family table, the over-refusal rate on the benign
prompts (always beside the attack success rate), and the manual findings. Harmful text leaves
a run only as short single-line excerpts (:func:`excerpt`).
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bastion.data.jsonl import iter_jsonl
from bastion.errors import BastionError, DataError
from bastion.redteam.stats import Rate
from bastion.text import excerpt as short_excerpt

RESULTS = "results.jsonl"
SUMMARY = "summary.json"
EXCERPT = 80  # characters of a response kept in reports (harmful text stays short)


@dataclass
class Result:
    """One judged exchange, as a line of ``results.jsonl``."""

    id: str
    kind: str
    behavior_id: str
    category: str
    source: str
    attack: str
    family: str
    sample: int
    prompt: str
    response: str
    refused: bool
    harmful: bool
    success: bool  # attack items: the attack worked; benign items: unused (False)
    scores: dict[str, float] = field(default_factory=dict)
    canary: str | None = None
    turns: int = 1  # target calls the item took (adaptive attacks take several)
    messages: int = 1  # turns in the conversation finally sent
    finding: dict[str, str] | None = None  # manual sessions: severity and note of a finding

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> Result:
        optional = ("scores", "canary", "turns", "messages", "finding")
        return cls(**{k: row[k] for k in cls.__dataclass_fields__ if k in row or k not in optional})


def load_results(out_dir: Path) -> list[Result]:
    path = out_dir / RESULTS
    if not path.exists():
        raise BastionError(f"{path}: no results here (run `bastion redteam run --out {out_dir}`)")
    results: dict[str, Result] = {}
    for number, row in iter_jsonl(path):
        try:
            result = Result.from_dict(row)
        except KeyError as exc:
            raise DataError(f"{path}:{number}: a result without {exc}") from None
        results[result.id] = result
    return list(results.values())


def summarize(results: Sequence[Result], meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """Rates with Wilson intervals: overall, per family, attack and category; over-refusal."""
    attacks = [r for r in results if r.kind == "attack"]
    benign = [r for r in results if r.kind == "benign"]
    manual = [r for r in results if r.kind == "manual"]
    findings = [r for r in manual if r.success]

    def rate(rows: Sequence[Result], hit: Callable[[Result], bool]) -> dict[str, Any]:
        return Rate(sum(hit(r) for r in rows), len(rows)).to_dict()

    def grouped(key: Callable[[Result], str]) -> dict[str, Any]:
        groups: dict[str, list[Result]] = defaultdict(list)
        for r in attacks:
            groups[key(r)].append(r)
        return {k: rate(v, lambda r: r.success) for k, v in sorted(groups.items())}

    heat: dict[str, dict[str, Any]] = defaultdict(dict)
    cells: dict[tuple[str, str], list[Result]] = defaultdict(list)
    for r in attacks:
        cells[(r.category, r.family)].append(r)
    for (category, family), rows in sorted(cells.items()):
        heat[category][family] = rate(rows, lambda r: r.success)
    return {
        **(meta or {}),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "attack_items": len(attacks),
        "benign_items": len(benign),
        "asr": rate(attacks, lambda r: r.success),
        "refusal_rate_on_attacks": rate(attacks, lambda r: r.refused),
        "over_refusal": rate(benign, lambda r: r.refused),
        "by_family": grouped(lambda r: r.family),
        "by_attack": grouped(lambda r: r.attack),
        "by_category": grouped(lambda r: r.category),
        "heatmap": dict(heat),
        "manual": {
            "exchanges": len(manual),
            "findings": len(findings),
            "by_severity": _count(r.finding["severity"] for r in findings if r.finding),
            "by_category": _count(r.category for r in findings),
        },
    }


def _count(values: Iterable[str]) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for value in values:
        counts[value] += 1
    return dict(sorted(counts.items()))


def write_summary(out_dir: Path, summary: dict[str, Any], name: str = SUMMARY) -> Path:
    """``summary.json`` (or ``name``) in ``out_dir``."""
    path = out_dir / name
    path.write_text(json.dumps(summary, indent=2) + "\n")
    return path


def excerpt(text: str, limit: int = EXCERPT) -> str:
    """A short, single-line excerpt: harmful text never appears at length in a report."""
    return short_excerpt(text, limit)
