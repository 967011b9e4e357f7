"""What the input classifiers learn from: the pinned corpora, the written sets, screened ShareGPT.

Every example keeps its source (the corpus, or the written file) so that the evaluation can
hold each one out (:mod:`bastion.guard.training.loso`), and its group (a template with all its
fillings, a written topic with its benign twins, one text) so that a split never cuts one.

**Injection/jailbreak** (label 1: an attempt to override the model's instructions).
Positives: every jailbreak template filled with harmful goals (five per template, a seeded
draw), the complete attack prompts, the injection prompts, and the written injections of
every family the red team knows. Negatives: everyday requests (instructions, assistant tasks,
chit-chat, health questions, screened ShareGPT first turns), the harmful requests *as plain
requests* (topics are the harmful rail's job), over-refusal prompts, labelled answers and
toxicity texts, the injection goals that are plain requests until embedded in a tool's output,
the written benign look-alikes, and benign requests that sound like overrides.

**Harmful request** (label 1: asks for harm). Positives: the harmful behaviours of the pinned
corpora (not HarmBench's copyright ones), the harmful half of the contrast pairs, and the
written harmful requests in instruction, question, statement and past-tense form across eleven
risk areas. Negatives: the same everyday requests, the over-refusal prompts, the benign half of
the contrast pairs, the written benign twins (same topic, another intent) and the written
benign look-alikes of injections.

**ShareGPT** is unfiltered real traffic: some first turns are jailbreaks or harmful asks. It is
screened before it serves as negatives (:func:`screened_sharegpt`): a first turn is dropped
when it names a jailbreak persona or mode (:data:`JAILBREAK_MARKERS`), or when either rail's
*first-pass* classifier — trained on everything but ShareGPT — scores it above that
classifier's threshold for 2% false positives on the other benign sources. Dropped turns are
used as neither class.
"""

from __future__ import annotations

import functools
import hashlib
import json
import random
import re
from collections.abc import Iterator, Sequence
from importlib import resources
from pathlib import Path

from bastion.cache import cache_dir
from bastion.data.jsonl import iter_jsonl
from bastion.data.registry import CORPORA, fill_template, load_corpus
from bastion.errors import DataError
from bastion.guard.injection import Example, benign_overrides, text_digest

Task = str  # "injection" or "harmful"
TASKS = ("injection", "harmful", "toxicity")
INPUT_TASKS = ("injection", "harmful")

WRITTEN_HARMFUL = ("harmful_a", "harmful_b")
WRITTEN_INJECTIONS = ("injections",)
WRITTEN_SHORT = ("short_everyday",)  # short harmless messages: negatives for both rails
SHAREGPT = "sharegpt"
GOAL_CORPORA = ("advbench", "harmbench-val", "harmbench-test")
# Injection goals and attacker instructions are ordinary requests ("send the security code to
# …") until they sit in a tool's output, which these corpora do not show.
PLAIN_REQUESTS = ("asb-attack-tools", "agentdojo-injections")
INJECTION_POSITIVE_KINDS = ("attack-prompt", "injection")
INJECTION_NEGATIVE_KINDS = (
    "benign-prompt",
    "harmful-request",
    "over-refusal",
    "contrast-pair",
    "harm-label",
    "toxicity",
)
HARMFUL_NEGATIVE_KINDS = ("benign-prompt", "over-refusal")
# the same 521 behaviours as psfuzz-harmful under other column names
DUPLICATES = ("psfuzz-custom",)
SCREEN_FPR = 0.02
# bump when the screen's learner or calibration changes: the cached verdicts are keyed by it
# (a stale cache once trained shipped weights that a clean machine could not reproduce)
SCREEN_VERSION = 2
JAILBREAK_MARKERS = re.compile(
    r"\b(DAN|jailbr[eo]ak\w*|developer mode|do anything now|dev mode|god mode|"
    r"(ignore|disregard|forget) (all |any |the )?(previous|prior|above|your) "
    r"(instructions|rules|guidelines|prompts?)|no (restrictions|filters|limitations|"
    r"guidelines|ethics)|unfiltered|uncensored|amoral|stay in character|opposite mode|"
    r"without (any )?(restrictions|censorship|filters))\b",
    re.IGNORECASE,
)
# each source's own labels onto the harmful rail's risk areas
CATEGORY_OF = {
    # HarmBench
    "chemical_biological": "weapons",
    "cybercrime_intrusion": "cyber",
    "illegal": "crime",
    "misinformation_disinformation": "misinformation",
    "harassment_bullying": "hate",
    "harmful": "violence",
    # StrongREJECT
    "Non-violent crimes": "crime",
    "Violence": "violence",
    "Disinformation and deception": "misinformation",
    "Hate, harassment and discrimination": "hate",
    "Illegal goods and services": "crime",
    "Sexual content": "sexual",
    # JailbreakBench
    "Harassment/Discrimination": "hate",
    "Malware/Hacking": "cyber",
    "Physical harm": "violence",
    "Economic harm": "fraud",
    "Fraud/Deception": "fraud",
    "Disinformation": "misinformation",
    "Sexual/Adult content": "sexual",
    "Privacy": "privacy",
}


def written_path(name: str) -> Path:
    return Path(str(resources.files("bastion.guard.training") / "written" / f"{name}.jsonl"))


def read_written(path: Path) -> list[Example]:
    """A written file's rows as examples (source ``written-<stem>``, grouped by topic); a bad
    row is an error naming the file, line and key."""
    source = "written-" + path.stem.replace("_", "-")
    examples = []
    for number, row in iter_jsonl(path):
        for key in ("text", "group", "category"):
            if not isinstance(row.get(key), str) or not row[key].strip():
                raise DataError("expected a non-empty string").at(str(path), number, key)
        if row.get("label") not in (0, 1):
            raise DataError(f"expected 0 or 1, got {row.get('label')!r}").at(
                str(path), number, "label"
            )
        group = f"written:{path.stem}:{row['group']}"
        examples.append(Example(row["text"], row["label"], source, group, row["category"]))
    return examples


def written(names: Sequence[str]) -> list[Example]:
    return [e for name in names for e in read_written(written_path(name))]


def _corpus_examples(name: str, label: int) -> Iterator[Example]:
    for item in load_corpus(name):
        if item.label == "copyright" or item.category == "copyright":
            continue
        category = CATEGORY_OF.get(item.category or "") if label else None
        yield Example(item.text, label, name, "text:" + text_digest(item.text), category)


def _templates(goals_per_template: int = 5) -> Iterator[Example]:
    goals = [item.text for name in GOAL_CORPORA for item in load_corpus(name)]
    for name, corpus in CORPORA.items():
        if corpus.kind != "jailbreak-template":
            continue
        for item in load_corpus(name):
            group = "template:" + text_digest(item.text)  # a template shared by corpora
            if not item.meta.get("slot"):
                yield Example(item.text, 1, name, group)
                continue
            for goal in random.Random(group).sample(goals, goals_per_template):
                yield Example(fill_template(item, goal), 1, name, group)


def _contrast(harmful_label: int) -> Iterator[Example]:
    """The contrast pairs, both halves in one group; the harmful half labelled as given."""
    from bastion.guard.harmful import contrast_category

    for item in load_corpus("rho-contrast"):
        harmful = item.label == "harmful"
        category = contrast_category(item.category or "") if harmful else None
        group = "pair:" + str(item.meta.get("pair", item.id))
        yield Example(item.text, harmful_label if harmful else 0, "rho-contrast", group, category)


def _kinds(kinds: Sequence[str], skip: Sequence[str] = ()) -> list[str]:
    return [
        n
        for n, c in CORPORA.items()
        if c.kind in kinds and n not in skip and n != SHAREGPT and n not in DUPLICATES
    ]


def raw_examples(task: Task) -> list[Example]:
    """Every example of a task but ShareGPT's, positives first (the first of equal texts is
    kept, so a harmful text that is also in a benign corpus stays harmful)."""
    rows: list[Example] = []
    if task == "injection":
        rows += _templates()
        for name in _kinds(INJECTION_POSITIVE_KINDS, skip=PLAIN_REQUESTS):
            rows += (Example(e.text, 1, name, e.group) for e in _corpus_examples(name, 1))
        rows += written(WRITTEN_INJECTIONS)
        rows += [Example(e.text, 0, e.source, e.group) for e in written(WRITTEN_HARMFUL)]
        rows += benign_overrides()
        rows += written(WRITTEN_SHORT)
        for name in (*PLAIN_REQUESTS, *_kinds(INJECTION_NEGATIVE_KINDS)):
            if name in CORPORA and name != "rho-contrast":
                rows += _corpus_examples(name, 0)
        rows += _contrast(harmful_label=0)
    elif task == "harmful":
        for name in _kinds(("harmful-request",)):
            rows += _corpus_examples(name, 1)
        rows += _contrast(harmful_label=1)
        rows += written(WRITTEN_HARMFUL)
        rows += [e for e in written(WRITTEN_INJECTIONS) if not e.label]
        rows += written(WRITTEN_SHORT)
        for name in _kinds(HARMFUL_NEGATIVE_KINDS):
            rows += _corpus_examples(name, 0)
    else:
        raise DataError(f"unknown task {task!r} (known: {', '.join(TASKS)})")
    return list(unique(rows))


def unique(examples: Sequence[Example]) -> Iterator[Example]:
    """The first example of each folded text; blank ones dropped."""
    seen: set[str] = set()
    for example in examples:
        key = text_digest(example.text)
        if key not in seen and example.text.strip():
            seen.add(key)
            yield example


def task_examples(task: Task) -> list[Example]:
    """A task's training examples: :func:`raw_examples` and the screened ShareGPT turns."""
    return _task_examples(task)


@functools.lru_cache(maxsize=2)
def _task_examples(task: Task) -> list[Example]:
    rows = raw_examples(task)
    kept = screened_sharegpt()
    known = {text_digest(e.text) for e in rows}
    rows += [e for e in kept if text_digest(e.text) not in known]
    return rows


def sharegpt_examples() -> list[Example]:
    return list(unique(list(_corpus_examples(SHAREGPT, 0))))


def screened_sharegpt() -> list[Example]:
    """ShareGPT's first turns less those screened out (see the module's docstring); the
    screen's verdicts are cached by the digest of everything that decides them."""
    turns = sharegpt_examples()
    raw = {task: raw_examples(task) for task in INPUT_TASKS}
    key = hashlib.sha256(
        json.dumps(
            {t: [(e.label, e.text) for e in rows] for t, rows in raw.items()}, sort_keys=True
        ).encode()
        + JAILBREAK_MARKERS.pattern.encode()
        + f"fpr={SCREEN_FPR} version={SCREEN_VERSION}".encode()
    ).hexdigest()[:16]
    path = cache_dir() / "guard" / f"sharegpt-screen-{key}.json"
    if path.is_file():
        dropped = set(json.loads(path.read_text())["dropped"])
    else:
        dropped = set(_screen(turns, raw))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"dropped": sorted(dropped), "of": len(turns)}) + "\n")
    return [e for e in turns if text_digest(e.text) not in dropped]


def _screen(turns: list[Example], raw: dict[Task, list[Example]]) -> list[str]:
    from bastion.guard.training.learners import NgramLearner
    from bastion.guard.training.loso import calibrate, calibration_split

    dropped = {text_digest(e.text) for e in turns if JAILBREAK_MARKERS.search(e.text)}
    for task, rows in raw.items():
        fit, calib = calibration_split(rows, salt="sharegpt-screen")
        scorer = NgramLearner(task).fit(fit)
        threshold = calibrate(scorer, calib, SCREEN_FPR, None).block
        scores = scorer.scores(turns)
        dropped |= {
            text_digest(e.text) for e, s in zip(turns, scores, strict=True) if s >= threshold
        }
    return sorted(dropped)
