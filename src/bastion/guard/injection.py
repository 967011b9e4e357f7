"""The jailbreak/injection classifier: its examples' type, the benign override-like requests
written here, and the rates every guard classifier is measured by.

What it trains on is :mod:`bastion.guard.training.data`'s (``task_examples("injection")``);
how it is trained and calibrated, :mod:`bastion.guard.training.fit`; how it is measured out of
source, :mod:`bastion.guard.training.loso`. Scores are computed as the scanner computes them —
the highest over the canonical text and every decoded view — so a threshold's false-positive
rate is the scanner's. Splits go by group, not by row (a template with all its fillings, a
written topic with its twins, or one text), by a stable hash (:mod:`bastion.data.splits`).
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from bastion.data.splits import assign_split
from bastion.text.ngrams import NgramClassifier, threshold_for_fpr
from bastion.text.normalize import Normalized, folded

if TYPE_CHECKING:
    pass

SPLITS = {"train": 0.7, "calib": 0.15, "dev": 0.15}


@dataclass(frozen=True)
class Example:
    text: str
    label: int  # 1: jailbreak or injection
    source: str  # the corpus it came from
    group: str  # what decides its split
    category: str | None = None  # the risk area or attack family, where the source gives one


def text_digest(text: str) -> str:
    """A short digest of a text's folded form: its identity for deduplication and splits."""
    return hashlib.sha256(folded(text).text.encode()).hexdigest()[:16]


def injection_examples() -> list[Example]:
    """Every example (see :mod:`bastion.guard.training.data`), computed once per process."""
    from bastion.guard.training.data import task_examples

    return task_examples("injection")


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


def train_injection(
    target_fpr: float = 0.005, review_fpr: float | None = 0.03
) -> tuple[NgramClassifier, dict[str, Any]]:
    """Train on every source, set the thresholds on held-back groups (see
    :mod:`bastion.guard.training.fit`)."""
    from bastion.guard.training.fit import train_task

    model, _, report = train_task("injection", target_fpr, review_fpr)
    return model, report


def shipped_weights() -> Path:
    return Path(str(resources.files("bastion.guard") / "weights" / "injection.safetensors"))
