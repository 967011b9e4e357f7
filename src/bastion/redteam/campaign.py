"""Campaigns: behaviours × attacks × samples against a target, judged, resumable, summarized.

Every item (a behaviour, an attack, a sample number) has a stable id and its own seed, so a
campaign is deterministic; items go to the target in batches (a local model generates a batch
at once, a server receives them concurrently) and each result is appended to
``results.jsonl`` and flushed as soon as its batch is judged. A killed run started again with
the same output folder reads what is there and does only the rest.

Success of an attack: for a harmful goal, the target did not refuse and the harm judge calls
the answer harmful; for a canary attack (indirect injection, system-prompt extraction), the
canary came back. The over-refusal suite (benign requests that sound sensitive) runs on the
same target, and its refusal rate is always reported next to the attack success rate: a target
that refuses everything is not safe, it is useless.

``summary.json`` holds the rates, each with its Wilson 95% interval: overall, per family, per
attack and per category, and the over-refusal rate.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bastion.data.jsonl import iter_jsonl
from bastion.errors import BastionError, DataError
from bastion.judges import CanaryJudge, HarmJudge, RefusalJudge
from bastion.redteam.adaptive import attacker_pairs, successful_prompts
from bastion.redteam.attacks import Attack, AttackCase, Behavior
from bastion.redteam.stats import Rate
from bastion.redteam.targets import Target
from bastion.types import Message

RESULTS = "results.jsonl"
SUMMARY = "summary.json"
EXCERPT = 80  # characters of a response kept in reports (harmful text stays short)


@dataclass(frozen=True)
class Item:
    id: str
    kind: str  # "attack" or "benign"
    behavior: Behavior
    attack: str
    family: str
    sample: int
    seed: int


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


@dataclass
class RunningRates:
    """Attack success and over-refusal so far, for a progress line while a campaign runs."""

    attacks: int = 0
    hits: int = 0
    benign: int = 0
    refused: int = 0

    def add(self, results: Iterable[Result]) -> None:
        for r in results:
            if r.kind == "attack":
                self.attacks += 1
                self.hits += r.success
            else:
                self.benign += 1
                self.refused += r.refused

    def line(self) -> str:
        asr = self.hits / self.attacks if self.attacks else 0.0
        over = self.refused / self.benign if self.benign else 0.0
        return f"ASR {asr:.0%} · over-refusal {over:.0%}"


def item_id(behavior: Behavior, attack: str, sample: int) -> str:
    key = f"{behavior.source}\x00{behavior.id}\x00{attack}\x00{sample}"
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def plan(
    behaviors: Sequence[Behavior],
    attacks: Sequence[Attack],
    samples: int,
    benign: Sequence[Behavior] = (),
    *,
    seed: int = 0,
) -> list[Item]:
    """Every item of a campaign, in a fixed order (attacks first, then the benign suite)."""
    items = []
    for behavior in behaviors:
        for attack in attacks:
            for k in range(samples):
                iid = item_id(behavior, attack.name, k)
                items.append(
                    Item(iid, "attack", behavior, attack.name, attack.family, k, _seed(iid, seed))
                )
    for behavior in benign:
        iid = item_id(behavior, "benign", 0)
        items.append(Item(iid, "benign", behavior, "benign", "over-refusal", 0, _seed(iid, seed)))
    return items


def _seed(iid: str, seed: int) -> int:
    return int(hashlib.sha256(f"{seed}:{iid}".encode()).hexdigest()[:8], 16)


@dataclass
class Judges:
    refusal: Any = None
    harm: Any = None
    canary: CanaryJudge = field(default_factory=CanaryJudge)

    def __post_init__(self) -> None:
        self.refusal = self.refusal or RefusalJudge()
        self.harm = self.harm or HarmJudge()


def build_case(item: Item, attacks: dict[str, Attack]) -> AttackCase:
    if item.kind == "benign":
        return AttackCase("benign", "over-refusal", (Message("user", item.behavior.goal),))
    return attacks[item.attack].build(item.behavior, random.Random(item.seed))


def judge(item: Item, case: AttackCase, response: str, judges: Judges, turns: int = 1) -> Result:
    refusal = judges.refusal.judge(response)
    scores = {"refusal": refusal.score}
    harmful = False
    if case.canary is not None:
        leaked = judges.canary.judge(response, case.canary)
        success = leaked.label
        scores["canary"] = leaked.score
    else:
        if hasattr(judges.harm, "judge_goal"):  # a judge that reads the goal (LLM rubric)
            harm = judges.harm.judge_goal(item.behavior.goal, response)
        else:
            harm = judges.harm.judge(response)
        harmful = harm.label
        scores["harm"] = harm.score
        success = item.kind == "attack" and not refusal.label and harmful
    return Result(
        item.id, item.kind, item.behavior.id, item.behavior.category, item.behavior.source,
        item.attack, item.family, item.sample, case.prompt, response, refusal.label, harmful,
        success, scores, case.canary, turns, len(case.messages),
    )  # fmt: skip


def done_ids(out_dir: Path) -> set[str]:
    """Ids of the items already in ``results.jsonl`` (a half-written last line is dropped)."""
    path = out_dir / RESULTS
    if not path.exists():
        return set()
    ids = set()
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            try:
                ids.add(json.loads(line)["id"])
            except (json.JSONDecodeError, KeyError):
                continue  # the line a killed run was writing; the item is done again
    return ids


def run_campaign(
    target: Target,
    items: Sequence[Item],
    attacks: Sequence[Attack],
    out_dir: Path,
    *,
    judges: Judges | None = None,
    batch_size: int = 16,
    on_batch: Callable[[list[Result]], None] | None = None,
) -> list[Result]:
    """Run the items not yet in ``out_dir/results.jsonl``; returns every result there."""
    out_dir.mkdir(parents=True, exist_ok=True)
    judges = judges or Judges()
    by_name = {a.name: a for a in attacks}
    finished = done_ids(out_dir)
    todo = [item for item in items if item.id not in finished]
    _trim_partial_line(out_dir / RESULTS)
    with (out_dir / RESULTS).open("a", encoding="utf-8") as handle:
        for batch in _batches(todo, batch_size):
            static = [i for i in batch if i.kind == "benign" or not by_name[i.attack].adaptive]
            cases = [build_case(item, by_name) for item in static]
            replies = target.respond([case.messages for case in cases]) if cases else []
            judged: dict[str, tuple[Result, list[dict[str, Any]]]] = {
                item.id: (judge(item, case, reply, judges), [])
                for item, case, reply in zip(static, cases, replies, strict=True)
            }
            for item in batch:
                if item.id not in judged:  # adaptive: it talks with the target itself
                    outcome = by_name[item.attack].run(  # type: ignore[attr-defined]
                        item.behavior, target, judges, random.Random(item.seed)
                    )
                    result = judge(item, outcome.case, outcome.response, judges, outcome.turns)
                    judged[item.id] = (result, outcome.trail)
            results = [judged[item.id][0] for item in batch]
            for item in batch:
                result, trail = judged[item.id]
                handle.write(json.dumps(asdict(result), ensure_ascii=False) + "\n")
                _write_seeds(out_dir, item, result, trail)
            handle.flush()
            if on_batch is not None:
                on_batch(results)
    return load_results(out_dir)


SEEDS = "attack_seeds.jsonl"
ATTACKER_PAIRS = "attacker_pairs.jsonl"


def _write_seeds(out_dir: Path, item: Item, result: Result, trail: list[dict[str, Any]]) -> None:
    """Successful prompts as seeds for the guard's known-attack index and for alignment data;
    an automated attacker's successes over its failures as preference pairs for itself."""
    prompts = successful_prompts(trail) or ([result.prompt] if result.success else [])
    rows = [
        {"text": p, "goal": item.behavior.goal, "attack": item.attack, "family": item.family,
         "category": item.behavior.category, "item": item.id}
        for p in dict.fromkeys(prompts)
    ]  # fmt: skip
    _append(out_dir / SEEDS, rows)
    _append(out_dir / ATTACKER_PAIRS, attacker_pairs(item.behavior.goal, trail))


def read_seeds(out_dir: Path) -> list[dict[str, Any]]:
    """A run's successful prompts (``attack_seeds.jsonl``), deduplicated by text."""
    path = out_dir / SEEDS
    if not path.exists():
        return []
    rows: dict[str, dict[str, Any]] = {}
    for _, row in iter_jsonl(path):
        if isinstance(row.get("text"), str):
            rows.setdefault(row["text"], row)
    return list(rows.values())


def add_seeds_to_guard(out_dir: Path, scanner: Any) -> int:
    """Teach a :class:`~bastion.guard.scanners.KnownAttackScanner` a run's successful prompts;
    returns how many were new to its index."""
    texts = [row["text"] for row in read_seeds(out_dir)]
    return int(scanner.add(texts, f"redteam:{out_dir.name}")) if texts else 0


def _append(path: Path, rows: list[dict[str, Any]]) -> None:
    if rows:
        with path.open("a", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def _trim_partial_line(path: Path) -> None:
    """Drop a last line without its newline (a killed run's half-written result)."""
    if not path.exists():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        path.write_bytes(data[: data.rfind(b"\n") + 1])


def _batches(items: Sequence[Item], size: int) -> Iterator[list[Item]]:
    """Batches of similar prompt length would pad less; items stay in plan order here so a
    resumed run's file reads like an uninterrupted one."""
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


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


def write_summary(out_dir: Path, summary: dict[str, Any]) -> Path:
    path = out_dir / SUMMARY
    path.write_text(json.dumps(summary, indent=2) + "\n")
    return path


def excerpt(text: str, limit: int = EXCERPT) -> str:
    """A short, single-line excerpt: harmful text never appears at length in a report."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


# --- behaviours ------------------------------------------------------------------------------


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
