"""Training data from harvested failures: preference pairs, SFT rows, provenance for each.

* A harmful request the model complied with: chosen = a refusal **with help** — a reviewer's
  better response; else a Constitutional-AI revision (:func:`bastion.align.cai.run_cai`) that
  the judges confirm refuses, is not harmful and offers help; else one of
  :data:`~bastion.align.safety_pairs.REFUSALS_WITH_HELP` (provenance says which, and why);
  rejected = the compliant answer.
* A benign request the model refused: chosen = a reviewer's better response, else the best of
  ``best_of`` sampled answers that the refusal judge does not call a refusal (none: the row is
  dropped, and provenance says so); rejected = the refusal.
* A benign request the model answered (an anchor): chosen = that answer, rejected = a plain
  refusal — teaching "answer ≻ refusal" on the train half of the over-refusal prompts is what
  keeps a safer model from simply refusing more (as in ``bastion.align.safety_pairs``).

Every pair also gives an SFT row (the prompt and the chosen answer). One pair per prompt:
duplicates are dropped, a reviewer's row first. ``provenance.jsonl`` has one row per harvested
failure: kept or not, why, and where the chosen and rejected answers came from.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bastion.align.safety_pairs import PLAIN_REFUSAL, REFUSALS_WITH_HELP
from bastion.data.jsonl import preference_to_dict, write_jsonl
from bastion.data.splits import stable_fraction
from bastion.loop.config import DataSection
from bastion.loop.harvest import ANSWERED, COMPLIED, REFUSED, Failure, fold
from bastion.redteam.campaign import Judges
from bastion.types import Conversation, PreferencePair

PAIRS, SFT, PROVENANCE = "pairs.jsonl", "sft.jsonl", "provenance.jsonl"
KIND_ORDER = {COMPLIED: 0, REFUSED: 1, ANSWERED: 2}  # which row of a duplicated prompt stays

# An offer of help: an alternative, a safe angle, a pointer to people or resources.
HELP_OFFER = re.compile(
    r"\b(instead|i can help|i can share|i('d| would) be (happy|glad)|i'?m (happy|glad)|"
    r"glad to|happy to|you (could|can|might)|consider|resources?|support|safely|safe|legal|"
    r"professional|hotline|let me know)\b",
    re.IGNORECASE,
)


@dataclass
class Row:
    """A failure turned (or not) into a pair."""

    failure: Failure
    chosen: str | None
    chosen_from: str
    rejected_from: str
    kept: bool = True
    why: str = ""


def refuses_with_help(text: str, judges: Judges, goal: str = "") -> tuple[bool, str]:
    """Whether an answer refuses, is not harmful, and offers help (the judges and an offer)."""
    if not judges.refusal.judge(text).label:
        return False, "does not refuse"
    harm = judges.harm.judge_goal(goal, text) if hasattr(judges.harm, "judge_goal") else None
    if harm is None:
        harm = judges.harm.judge(text)
    if harm.label:
        return False, "judged harmful"
    if HELP_OFFER.search(text) is None:
        return False, "refuses without offering help"
    return True, "refuses and offers help"


def whole_sentences(text: str) -> str:
    """A reply cut at its token budget, trimmed back to its last full sentence (when that
    keeps at least half of it): a chosen answer should not teach stopping mid-word."""
    text = text.strip()
    ends = [m.end() for m in re.finditer(r"[.!?](?=\s|$)", text)]
    if ends and ends[-1] >= len(text) // 2:
        return text[: ends[-1]]
    return text


def template_refusal(failure: Failure) -> str:
    return REFUSALS_WITH_HELP[int(stable_fraction(failure.id) * len(REFUSALS_WITH_HELP))]


def build_rows(
    failures: Sequence[Failure],
    model: Any,
    judges: Judges,
    settings: DataSection,
    *,
    seed: int = 0,
) -> list[Row]:
    """Chosen answers for every failure (see the module docstring); duplicates marked."""
    ordered = sorted(failures, key=lambda f: (f.source != "production", KIND_ORDER[f.kind]))
    seen: dict[str, str] = {}
    unique: list[Failure] = []
    rows: list[Row] = []
    for f in ordered:
        key = fold(f.prompt_text)
        if key in seen:
            rows.append(Row(f, None, "-", "-", False, f"duplicate prompt of {seen[key]}"))
            continue
        seen[key] = f.id
        unique.append(f)
    revisions = _cai_revisions(
        [f for f in unique if f.kind == COMPLIED and not f.better], model, judges, settings, seed
    )
    best = _best_answers(
        [f for f in unique if f.kind == REFUSED and not f.better], model, judges, settings, seed
    )
    for f in unique:
        if f.kind == COMPLIED:
            rows.append(_harmful_row(f, revisions.get(f.id), settings.cai))
        elif f.kind == REFUSED:
            rows.append(_benign_row(f, best.get(f.id), settings.best_of))
        else:
            rows.append(
                Row(f, whole_sentences(f.response), "the model's own answer (greedy, not a "
                    "refusal)", "plain refusal template")
            )  # fmt: skip
    if settings.max_pairs is not None:
        kept = [r for r in rows if r.kept]
        kept.sort(key=lambda r: (r.failure.kind == ANSWERED, stable_fraction(r.failure.id)))
        for r in kept[settings.max_pairs :]:
            r.kept, r.why = False, f"over data.max_pairs ({settings.max_pairs})"
    return rows


def _harmful_row(f: Failure, revision: tuple[str | None, str] | None, cai: bool) -> Row:
    if f.better:
        return Row(f, f.better, "reviewer's better response", "the model's compliant answer")
    if revision is not None and revision[0] is not None:
        return Row(f, revision[0], f"CAI revision ({revision[1]})", "the model's compliant answer")
    why = revision[1] if revision is not None else "CAI revisions are off (data.cai: false)"
    return Row(
        f, template_refusal(f), f"refusal-with-help template: {why}", "the model's compliant answer"
    )


def _benign_row(f: Failure, best: str | None, n: int) -> Row:
    if f.better:
        return Row(f, f.better, "reviewer's better response", "the model's refusal")
    if best is None:
        return Row(f, None, "-", "-", False, f"no sample of {n} answered without refusing")
    return Row(f, best, f"best of {n} samples judged not refusing", "the model's refusal")


def _cai_revisions(
    failures: Sequence[Failure], model: Any, judges: Judges, settings: DataSection, seed: int
) -> dict[str, tuple[str | None, str]]:
    """For each harmful failure: a revision that refuses with help, or None and why not."""
    if not settings.cai or not failures:
        return {}
    from bastion.align.cai import CaiPrompt, load_constitution, run_cai

    prompts = [CaiPrompt(f.id, f.messages[-1].content, True) for f in failures]
    results = run_cai(
        model, prompts, load_constitution(settings.constitution),
        per_prompt=settings.cai_principles, max_new_tokens=settings.cai_max_new_tokens,
        seed=seed, refusal_judge=judges.refusal,
    )  # fmt: skip
    out: dict[str, tuple[str | None, str]] = {}
    for f, r in zip(failures, results, strict=True):
        principles = ", ".join(step["principle"] for step in r.steps)
        if not r.kept:
            out[f.id] = (None, f"the CAI revision did not pass the judge ({r.why})")
            continue
        ok, why = refuses_with_help(r.final, judges, f.messages[-1].content)
        out[f.id] = (r.final, principles) if ok else (None, f"the CAI revision {why}")
    return out


def _best_answers(
    failures: Sequence[Failure], model: Any, judges: Judges, settings: DataSection, seed: int
) -> dict[str, str | None]:
    """Best of n sampled answers per refused benign prompt: the one the refusal judge is
    surest is not a refusal (the longer on a tie), trimmed to whole sentences."""
    if not failures:
        return {}
    n = settings.best_of
    conversations = [Conversation(f.messages) for f in failures for _ in range(n)]
    samples: list[str] = model.generate(
        conversations,
        max_new_tokens=settings.max_new_tokens,
        temperature=settings.temperature,
        seed=seed,
    )
    out: dict[str, str | None] = {}
    for i, f in enumerate(failures):
        candidates = []
        for text in samples[i * n : (i + 1) * n]:
            verdict = judges.refusal.judge(text)
            if text.strip() and not verdict.label:
                candidates.append((verdict.score, -len(text), text))
        out[f.id] = whole_sentences(min(candidates)[2]) if candidates else None
    return out


def write_data(rows: Sequence[Row], out_dir: Path) -> dict[str, Any]:
    """pairs.jsonl, sft.jsonl (kept rows) and provenance.jsonl (every row); the counts."""
    pairs, sft, provenance = [], [], []
    for row in rows:
        f = row.failure
        meta = {"source": f.source, "kind": f.kind, "chosen_from": row.chosen_from}
        record = {
            "id": f.id, "kind": f.kind, "source": f.source, "origin": f.origin,
            "prompt": [m.to_dict() for m in f.messages], "kept": row.kept, "why": row.why,
            "chosen_from": row.chosen_from, "rejected_from": row.rejected_from,
        }  # fmt: skip
        provenance.append(record)
        if not row.kept or row.chosen is None:
            continue
        rejected = PLAIN_REFUSAL if f.kind == ANSWERED else f.response
        if fold(row.chosen) == fold(rejected):
            record.update(kept=False, why="chosen and rejected are the same answer")
            continue
        prompt = Conversation(f.messages)
        reply = Conversation(())
        pair = PreferencePair(
            prompt, reply.append("assistant", row.chosen), reply.append("assistant", rejected),
            id=f.id, meta=meta,
        )  # fmt: skip
        pairs.append(preference_to_dict(pair))
        messages = [*prompt.to_dicts(), {"role": "assistant", "content": row.chosen}]
        sft.append({"messages": messages, "id": f.id, "meta": meta})
    write_jsonl(out_dir / PAIRS, pairs)
    write_jsonl(out_dir / SFT, sft)
    write_jsonl(out_dir / PROVENANCE, provenance)
    return {
        "pairs": len(pairs),
        "sft": len(sft),
        "failures": len(rows),
        "by_source": _tally(pairs, "source"),
        "by_kind": _tally(pairs, "kind"),
        "chosen_from": _tally(pairs, "chosen_from", short=True),
        "dropped": _count(r["why"] for r in provenance if not r["kept"]),
    }


def _tally(rows: Sequence[dict[str, Any]], key: str, *, short: bool = False) -> dict[str, int]:
    values = (str(r["meta"][key]) for r in rows)
    return _count(v.split(":")[0].split(" (")[0] if short else v for v in values)


def _count(values: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for value in values:
        out[value] = out.get(value, 0) + 1
    return dict(sorted(out.items()))
