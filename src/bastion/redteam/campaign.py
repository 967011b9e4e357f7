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

Three levels: :func:`run_campaign` runs items; :func:`run_plan` runs a plan and tells a
:class:`CampaignProgress` how it goes (what ``bastion redteam run`` and the loop's campaigns
share); :class:`Campaign` is the whole command — load what a :class:`CampaignSpec` names, run,
and write ``summary.json`` and ``report.html`` (:mod:`bastion.redteam.results`,
:mod:`bastion.redteam.report`).
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from bastion.data.jsonl import json_line
from bastion.errors import BastionError
from bastion.judges import CanaryJudge, HarmJudge, LlmJudge, RefusalJudge
from bastion.redteam.attacks import get_attacks
from bastion.redteam.attacks.adaptive import AdaptiveAttack
from bastion.redteam.attacks.base import Attack, AttackCase, Behavior
from bastion.redteam.behaviors import benign_suite, load_behaviors
from bastion.redteam.report import write_report
from bastion.redteam.results import RESULTS, Result, load_results, summarize, write_summary
from bastion.redteam.seeds import write_seeds
from bastion.redteam.targets import Target, make_target
from bastion.types import Message


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
    adaptive = {a.name: a for a in attacks if isinstance(a, AdaptiveAttack)}
    finished = done_ids(out_dir)
    todo = [item for item in items if item.id not in finished]
    _trim_partial_line(out_dir / RESULTS)
    with (out_dir / RESULTS).open("a", encoding="utf-8") as handle:
        for batch in _batches(todo, batch_size):
            static = [i for i in batch if i.kind == "benign" or i.attack not in adaptive]
            cases = [build_case(item, by_name) for item in static]
            replies = target.respond([case.messages for case in cases]) if cases else []
            judged: dict[str, tuple[Result, list[dict[str, Any]]]] = {
                item.id: (judge(item, case, reply, judges), [])
                for item, case, reply in zip(static, cases, replies, strict=True)
            }
            for item in batch:
                if item.id not in judged:  # adaptive: it talks with the target itself
                    outcome = adaptive[item.attack].run(
                        item.behavior, target, judges, random.Random(item.seed)
                    )
                    result = judge(item, outcome.case, outcome.response, judges, outcome.turns)
                    judged[item.id] = (result, outcome.trail)
            results = [judged[item.id][0] for item in batch]
            for item in batch:
                result, trail = judged[item.id]
                handle.write(json_line(asdict(result)))
                write_seeds(out_dir, result, item.behavior.goal, trail)
            handle.flush()
            if on_batch is not None:
                on_batch(results)
    return load_results(out_dir)


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


# --- a plan, with progress; the whole command ----------------------------------------------


class CampaignProgress(Protocol):
    """Where a running plan is: its size and what an earlier run finished (``start``), then
    each judged batch; ``rates`` is the attack success and over-refusal so far."""

    def start(self, total: int, done: int, rates: str) -> None: ...

    def advance(self, n: int, rates: str) -> None: ...


def run_plan(
    target: Target,
    items: Sequence[Item],
    attacks: Sequence[Attack],
    out_dir: Path,
    *,
    judges: Judges | None = None,
    batch_size: int = 16,
    progress: CampaignProgress | None = None,
) -> list[Result]:
    """Run (or resume) a plan in ``out_dir``; the results of its items only (the folder may
    hold others: the loop's baseline keeps an earlier model's)."""
    ids = {item.id for item in items}
    on_batch: Callable[[list[Result]], None] | None = None
    if progress is not None:
        shown, rates = progress, RunningRates()
        shown.start(len(items), len(done_ids(out_dir) & ids), rates.line())

        def on_batch(results: list[Result]) -> None:
            rates.add(results)
            shown.advance(len(results), rates.line())

    results = run_campaign(
        target, items, attacks, out_dir, judges=judges, batch_size=batch_size, on_batch=on_batch
    )
    return [r for r in results if r.id in ids]


DEFAULT_ATTACKS = (
    "direct", "base64", "rot13", "persona", "fiction", "past_tense", "few_shot",
    "indirect_injection",
)  # fmt: skip


@dataclass(frozen=True)
class CampaignSpec:
    """A campaign as ``bastion redteam run`` names it (its options, with their defaults):
    checked when made, loaded by :meth:`Campaign.load`."""

    target: str = "packaged"  # see make_target
    behaviors: str = "harmbench-val"  # a harmful-request corpus name or a JSONL/text file
    attacks: tuple[str, ...] = DEFAULT_ATTACKS  # attack or family names; "all" for every one
    samples: int = 1  # per behaviour and attack
    limit: int | None = 8  # behaviours used (a stable-hash choice); None: all
    benign: int = 16  # over-refusal prompts (0: none)
    guarded: bool = False  # the default guard in front of the target
    policy: Path | None = None  # a guard policy in front of the target
    attacker: str | None = None  # an attacker model for crescendo and pair (as target)
    judge: str | None = None  # an LLM harm judge, openai:MODEL@URL (default: the classifier)
    max_new_tokens: int = 96
    batch_size: int = 64
    seed: int = 0

    def __post_init__(self) -> None:
        if self.samples < 1 or self.max_new_tokens < 1 or self.batch_size < 1 or self.benign < 0:
            raise BastionError(
                "--samples, --max-new-tokens and --batch-size must be >= 1; --benign >= 0"
            )
        if self.limit is not None and self.limit < 1:
            raise BastionError(f"--limit must be at least 1, got {self.limit}")
        if self.judge is not None and not self.judge.startswith("openai:"):
            raise BastionError(f"--judge {self.judge!r}: expected openai:MODEL@URL")


@dataclass(frozen=True)
class CampaignReport:
    """What a finished run wrote: its results, ``summary.json`` and ``report.html``."""

    results: list[Result]
    summary: dict[str, Any]
    summary_path: Path
    report_path: Path


@dataclass
class Campaign:
    """A campaign loaded and planned: the target, the attacks, the items and the judges, and
    what ``summary.json`` says about the run (``meta``)."""

    target: Target
    attacks: list[Attack]
    items: list[Item]
    judges: Judges = field(default_factory=Judges)
    batch_size: int = 16
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, spec: CampaignSpec) -> Campaign:
        """Load what ``spec`` names: the attacker first (the attacks need it), then the
        behaviours, the target and the judge; a mistake in a name is found before the target
        is loaded."""
        from bastion.models.spec import load_chat_model

        attacker = load_chat_model(spec.attacker) if spec.attacker is not None else None
        attacks = get_attacks(spec.attacks, attacker=attacker)
        if not attacks:
            raise BastionError(
                "--attacks: name at least one attack (see `bastion redteam attacks`)"
            )
        goals = load_behaviors(spec.behaviors, spec.limit)
        suite = benign_suite(spec.benign) if spec.benign else []
        target = make_target(
            spec.target,
            max_new_tokens=spec.max_new_tokens,
            guard_policy=str(spec.policy) if spec.policy else None,
            guarded=spec.guarded,
            batch_size=spec.batch_size,
        )
        judges = Judges()
        if spec.judge is not None:
            judges.harm = LlmJudge(load_chat_model(spec.judge))
        meta = {
            "target": target.name, "behaviors": spec.behaviors,
            "attacks": [a.name for a in attacks], "samples": spec.samples, "seed": spec.seed,
            "max_new_tokens": spec.max_new_tokens, "guarded": bool(spec.guarded or spec.policy),
        }  # fmt: skip
        items = plan(goals, attacks, spec.samples, suite, seed=spec.seed)
        return cls(target, attacks, items, judges, spec.batch_size, meta)

    def run(self, out_dir: Path, progress: CampaignProgress | None = None) -> CampaignReport:
        """Run (or resume) the campaign in ``out_dir``; write its summary and report."""
        results = run_plan(
            self.target, self.items, self.attacks, out_dir, judges=self.judges,
            batch_size=self.batch_size, progress=progress,
        )  # fmt: skip
        return write_outputs(out_dir, results, self.meta)


def write_outputs(
    out_dir: Path, results: Sequence[Result], meta: dict[str, Any] | None = None
) -> CampaignReport:
    """``summary.json`` and ``report.html`` of ``results`` in a run folder (a campaign, a
    manual session, ``bastion redteam report``)."""
    summary = summarize(results, meta)
    summary_path = write_summary(out_dir, summary)
    report_path = write_report(out_dir, summary, results)
    return CampaignReport(list(results), summary, summary_path, report_path)
