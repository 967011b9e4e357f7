"""``bastion guard train``: one trainer per task, found by name in :data:`TRAINERS`.

A trainer trains a shipped classifier, writes its files beside ``out`` (the weights, a report,
and what the scanner reads besides: the category centroids, the lexicon, the encoder stage) and
returns one :class:`Trained`: every file written and each stage's thresholds. Trainers are
registered with :func:`trainer`, so the command's ``--task`` choices are this registry's names
and none can be forgotten by a hand-kept list. The training stack is imported only when a
trainer runs: listing the tasks costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

from bastion.errors import BastionError

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Stage:
    """One trained classifier file and the thresholds set on it."""

    name: str  # "n-grams" or "encoder"
    weights: Path
    threshold: float
    gate: float | None = None  # the first stage's score from which a text reaches this one


@dataclass(frozen=True)
class Trained:
    """What a trainer did: its stages, first to last, and every file it wrote."""

    task: str
    stages: tuple[Stage, ...]
    written: tuple[Path, ...]


class Trainer(Protocol):
    def __call__(
        self, out: Path, *, target_fpr: float, encoder: bool, progress: Progress
    ) -> Trained: ...


TRAINERS: dict[str, Trainer] = {}
T = TypeVar("T", bound=Trainer)


def trainer(task: str) -> Callable[[T], T]:
    """Register a trainer under ``task``."""

    def register(function: T) -> T:
        if task in TRAINERS:
            raise ValueError(f"trainer {task!r} is registered twice")
        TRAINERS[task] = function
        return function

    return register


def train(
    task: str,
    out: Path,
    *,
    target_fpr: float,
    encoder: bool = True,
    progress: Progress | None = None,
) -> Trained:
    """Train ``task``'s classifier and write its files beside ``out`` (the weights' path)."""
    found = TRAINERS.get(task)
    if found is None:
        raise BastionError(f"no guard trainer {task!r} (known: {', '.join(TRAINERS)})")
    return found(out, target_fpr=target_fpr, encoder=encoder, progress=progress or _quiet)


def _quiet(_: str) -> None:
    pass


@trainer("injection")
def train_injection_files(
    out: Path, *, target_fpr: float, encoder: bool, progress: Progress
) -> Trained:
    """The n-gram classifier and its report (``encoder`` does not apply)."""
    from bastion.guard.training.fit import train_injection
    from bastion.text.ngrams import write_report

    progress("training the injection classifier…")
    model, report = train_injection(target_fpr)
    model.save(out)
    write_report(out.with_suffix(".report.json"), report)
    stage = Stage("n-grams", out, model.threshold)
    return Trained("injection", (stage,), (out, out.with_suffix(".report.json")))


@trainer("harmful")
def train_harmful_files(
    out: Path, *, target_fpr: float, encoder: bool, progress: Progress
) -> Trained:
    """The n-gram stage, its category centroids and report; with ``encoder``, the encoder
    stage behind it (5-20 minutes on 2 cores) and its report."""
    from bastion.guard.training.encoder import save
    from bastion.guard.training.fit import save_centroids, train_harmful, train_second_stage
    from bastion.text.ngrams import write_report

    progress("training the harmful classifier…")
    model, centroids, report = train_harmful(target_fpr)
    files = [out, out.with_suffix(".categories.json"), out.with_suffix(".report.json")]
    save_centroids(files[1], centroids)
    model.save(out)
    write_report(files[2], report)
    stages = [Stage("n-grams", out, model.threshold)]
    if encoder:
        progress("training the encoder stage…")
        second, second_report = train_second_stage("harmful", model, target_fpr)
        path = out.with_suffix(".encoder.safetensors")
        save(second, path, {})
        write_report(out.with_suffix(".encoder.report.json"), second_report)
        stages.append(Stage("encoder", path, second.threshold, gate=second.gate))
        files += [path, out.with_suffix(".encoder.report.json")]
    return Trained("harmful", tuple(stages), tuple(files))


@trainer("toxicity")
def train_toxicity_files(
    out: Path, *, target_fpr: float, encoder: bool, progress: Progress
) -> Trained:
    """The n-gram + lexicon classifier, its hashed lexicon and report (``encoder`` does not
    apply)."""
    from bastion.guard.toxicity import lexicon_path
    from bastion.guard.training.fit import train_toxicity
    from bastion.text.ngrams import write_report

    progress("training the toxicity classifier…")
    scorer, report = train_toxicity(target_fpr)
    scorer.lexicon.save(lexicon_path(out))
    scorer.model.save(out)
    write_report(out.with_suffix(".report.json"), report)
    stage = Stage("n-grams", out, scorer.model.threshold)
    return Trained("toxicity", (stage,), (out, lexicon_path(out), out.with_suffix(".report.json")))
