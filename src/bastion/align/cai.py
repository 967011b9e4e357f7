"""Constitutional AI data: answer → critique against a principle → revision, by any chat model.

For every prompt the model (a local model or an OpenAI-compatible server: any
:class:`~bastion.models.base.ChatModel`) answers; then, for each principle chosen from the
constitution (all of them, or ``principles`` of them drawn with a seed per prompt), it is shown
its answer and asked for a critique, then for a revision; the revision becomes the answer the
next principle works on. Out come:

* ``sft.jsonl`` — ``messages`` rows: the prompt and the final revision (``bastion align sft``);
* ``preferences.jsonl`` — ``prompt``/``chosen``/``rejected`` rows: the final revision over the
  initial answer (``bastion align dpo``);
* ``provenance.jsonl`` — for each prompt every step: the answer, each principle's critique
  request, critique, revision request and revision, the judge's verdicts, kept or not and why;
* ``report.json`` — how many were kept, and why the others were not.

**The judge filter** keeps a revision only if it improves on the initial answer in the way
the prompt calls for: for a harmful request, the revision must refuse (and the initial answer
must not have — otherwise there is nothing to learn), for a benign one it must answer (not
refuse). Whether a request is harmful comes from the prompts file (``"harmful": true/false``)
or, when the file does not say, from the ``is_harmful`` classifier the caller passes (the
command passes the guard's harmful-request scanner: alignment does not import the guard).
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from bastion.config import read_yaml
from bastion.data.jsonl import iter_jsonl, json_line
from bastion.errors import ConfigError, DataError
from bastion.models.base import ChatModel
from bastion.types import Conversation, Message


@dataclass(frozen=True)
class Principle:
    name: str
    critique: str
    revision: str


def default_constitution_path() -> Path:
    return Path(str(resources.files("bastion.align") / "constitution.yaml"))


def load_constitution(path: str | Path | None = None) -> list[Principle]:
    """Principles from a YAML file (``principles:`` a list of ``name``, ``critique``,
    ``revision``); the shipped one by default. Errors name the file and the key."""
    path = Path(path) if path is not None else default_constitution_path()
    data = read_yaml(path, "the constitution")
    if not isinstance(data, dict) or not isinstance(data.get("principles"), list):
        raise ConfigError(f"{path}: expected a mapping with a 'principles' list")
    principles = []
    for index, item in enumerate(data["principles"]):
        where = f"{path}: principles[{index}]"
        if not isinstance(item, dict):
            raise ConfigError(f"{where}: expected a mapping with name, critique, revision")
        unknown = set(item) - {"name", "critique", "revision"}
        if unknown:
            raise ConfigError(f"{where}.{sorted(unknown)[0]}: unknown key")
        for key in ("name", "critique", "revision"):
            if not isinstance(item.get(key), str) or not item[key].strip():
                raise ConfigError(f"{where}.{key}: expected a non-empty string")
        principles.append(
            Principle(item["name"], item["critique"].strip(), item["revision"].strip())
        )
    if not principles:
        raise ConfigError(f"{path}: principles: the list is empty")
    return principles


@dataclass(frozen=True)
class CaiPrompt:
    id: str
    prompt: str
    harmful: bool | None  # None: the ``is_harmful`` classifier given to run_cai decides


def read_prompts(path: Path) -> list[CaiPrompt]:
    """JSONL rows with ``prompt`` (or ``text``/``goal``), optional ``id`` and ``harmful``; or a
    text file, one prompt per line."""
    if not path.is_file():
        raise DataError("file not found", path=path)
    prompts: list[CaiPrompt] = []
    if path.suffix == ".jsonl":
        for number, row in iter_jsonl(path):
            text = next((row[k] for k in ("prompt", "text", "goal") if k in row), None)
            if not isinstance(text, str) or not text.strip():
                raise DataError(f"{path}:{number}: expected a 'prompt' string")
            harmful = row.get("harmful")
            if harmful is not None and not isinstance(harmful, bool):
                raise DataError(f"{path}:{number}: 'harmful' must be true or false")
            prompts.append(CaiPrompt(str(row.get("id", number)), text, harmful))
    else:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                prompts.append(CaiPrompt(str(number), line.strip(), None))
    if not prompts:
        raise DataError(f"{path}: no prompts in the file")
    return prompts


@dataclass
class CaiResult:
    prompt: CaiPrompt
    initial: str
    final: str
    steps: list[dict[str, str]]
    harmful: bool
    initial_refused: bool
    final_refused: bool
    kept: bool
    why: str


def run_cai(
    model: ChatModel,
    prompts: list[CaiPrompt],
    principles: list[Principle],
    *,
    per_prompt: int | None = None,
    max_new_tokens: int = 256,
    seed: int = 0,
    refusal_judge: Any = None,
    is_harmful: Callable[[str], bool] | None = None,
) -> list[CaiResult]:
    """Answer, critique and revise every prompt; judge whether each revision improves.

    Prompts advance together, one step at a time, so a local model generates a batch per step
    and a server receives each step's requests concurrently. ``is_harmful`` labels the prompts
    whose ``harmful`` is None; without it such prompts are a :class:`DataError`, raised before
    any generation."""
    from bastion.judges import RefusalJudge

    harmful = _harmfulness(prompts, is_harmful)
    judge = refusal_judge or RefusalJudge()
    chosen = [
        _choose(principles, per_prompt, seed, p.id) for p in prompts
    ]  # the principles for each prompt, drawn with a seed per prompt
    histories = [[Message("user", p.prompt)] for p in prompts]
    answers = _generate(model, histories, max_new_tokens)
    initial = list(answers)
    steps: list[list[dict[str, str]]] = [[] for _ in prompts]
    for round_ in range(max(len(c) for c in chosen)):
        active = [i for i, c in enumerate(chosen) if round_ < len(c)]
        critique_turns = []
        for i in active:
            principle = chosen[i][round_]
            histories[i] = [*histories[i][:1], Message("assistant", answers[i])]
            critique_turns.append([*histories[i], Message("user", principle.critique)])
        critiques = _generate(model, critique_turns, max_new_tokens)
        revision_turns = []
        for i, turns, critique in zip(active, critique_turns, critiques, strict=True):
            principle = chosen[i][round_]
            revision_turns.append(
                [*turns, Message("assistant", critique), Message("user", principle.revision)]
            )
        revisions = _generate(model, revision_turns, max_new_tokens)
        for i, critique, revision in zip(active, critiques, revisions, strict=True):
            principle = chosen[i][round_]
            steps[i].append(
                {"principle": principle.name, "answer": answers[i],
                 "critique_request": principle.critique, "critique": critique,
                 "revision_request": principle.revision, "revision": revision}
            )  # fmt: skip
            answers[i] = revision
    results = []
    for i, p in enumerate(prompts):
        before, after = judge.judge(initial[i]).label, judge.judge(answers[i]).label
        kept, why = _improves(harmful[i], before, after, initial[i], answers[i])
        results.append(
            CaiResult(p, initial[i], answers[i], steps[i], harmful[i], before, after, kept, why)
        )
    return results


def _choose(
    principles: list[Principle], per_prompt: int | None, seed: int, key: str
) -> list[Principle]:
    if per_prompt is None or per_prompt >= len(principles):
        return list(principles)
    digest = hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()
    return random.Random(int(digest[:8], 16)).sample(principles, per_prompt)


def _generate(model: ChatModel, turns: list[list[Message]], max_new_tokens: int) -> list[str]:
    if not turns:
        return []
    replies = model.generate([Conversation(tuple(t)) for t in turns], max_new_tokens=max_new_tokens)
    return [r.strip() for r in replies]


def _harmfulness(prompts: list[CaiPrompt], is_harmful: Callable[[str], bool] | None) -> list[bool]:
    """Each prompt's label from the file, else from ``is_harmful``."""
    if is_harmful is None:
        unknown = sum(p.harmful is None for p in prompts)
        if unknown:
            raise DataError(
                f"{unknown} of {len(prompts)} prompts have no 'harmful' label and no is_harmful "
                'classifier was given: label them ("harmful": true/false) or pass one'
            )
        return [bool(p.harmful) for p in prompts]
    return [p.harmful if p.harmful is not None else bool(is_harmful(p.prompt)) for p in prompts]


def _improves(
    harmful: bool, initial_refused: bool, final_refused: bool, initial: str, final: str
) -> tuple[bool, str]:
    if not final.strip():
        return False, "the revision is empty"
    if final.strip() == initial.strip():
        return False, "the revision changed nothing"
    if harmful:
        if not final_refused:
            return False, "harmful request: the revision still complies"
        if initial_refused:
            return False, "harmful request: the first answer already refused"
        return True, "harmful request: the revision refuses where the answer complied"
    if final_refused:
        return False, "benign request: the revision refuses"
    return True, "benign request: the revision answers"


def write_outputs(results: list[CaiResult], out_dir: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """sft.jsonl, preferences.jsonl (kept rows only), provenance.jsonl (every row), report."""
    out_dir.mkdir(parents=True, exist_ok=True)
    kept = [r for r in results if r.kept]
    with (
        (out_dir / "sft.jsonl").open("w", encoding="utf-8") as sft,
        (out_dir / "preferences.jsonl").open("w", encoding="utf-8") as prefs,
    ):
        for r in kept:
            source = {"source": "bastion-cai", "id": r.prompt.id}
            messages = [
                {"role": "user", "content": r.prompt.prompt},
                {"role": "assistant", "content": r.final},
            ]
            sft.write(json_line({"messages": messages, **source}))
            pair = {"prompt": r.prompt.prompt, "chosen": r.final, "rejected": r.initial}
            prefs.write(json_line({**pair, **source}))
    with (out_dir / "provenance.jsonl").open("w", encoding="utf-8") as handle:
        for r in results:
            row = {
                "id": r.prompt.id, "prompt": r.prompt.prompt, "harmful": r.harmful,
                "harmful_from": "file" if r.prompt.harmful is not None else "guard classifier",
                "initial": r.initial, "steps": r.steps, "final": r.final,
                "initial_refused": r.initial_refused, "final_refused": r.final_refused,
                "kept": r.kept, "why": r.why,
            }  # fmt: skip
            handle.write(json_line(row))
    reasons: dict[str, int] = {}
    for r in results:
        reasons[r.why] = reasons.get(r.why, 0) + 1
    report = {
        **meta,
        "prompts": len(results),
        "kept": len(kept),
        "harmful_prompts": sum(r.harmful for r in results),
        "reasons": dict(sorted(reasons.items())),
    }
    (out_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report
