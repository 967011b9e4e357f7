"""`bastion guard train`'s registry: every trainer writes the files it reports, with the
thresholds of the classifiers it trained (the training itself replaced by tiny fakes; the
real runs are the slow reproduction tests); the guard's public names resolve, and listing the
trainers loads neither a scanner nor torch."""

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

import bastion.guard
from bastion.errors import BastionError
from bastion.guard.toxicity import Lexicon, LexiconClassifier
from bastion.guard.training import fit
from bastion.guard.training.tasks import TRAINERS, train, trainer
from bastion.text.ngrams import DIM, NgramClassifier
from test_cli import assert_user_error, run


def tiny(threshold: float) -> NgramClassifier:
    return NgramClassifier(torch.zeros(DIM), 0.0, threshold, {"train_sha256": "x"})


@dataclass
class FakeEncoder:
    """What the trainer reads of a trained encoder stage."""

    gate: float = 0.2
    threshold: float = 0.7
    calls: list[Path] = field(default_factory=list)


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> FakeEncoder:
    encoder = FakeEncoder()
    report = {"calib": []}
    monkeypatch.setattr(fit, "train_injection", lambda fpr: (tiny(0.91), report))
    centroids = {"categories": {"crime": {"3": 1.0}}}
    monkeypatch.setattr(fit, "train_harmful", lambda fpr: (tiny(0.92), centroids, report))
    lexicon = Lexicon.build([("blorp", ["x"])])
    monkeypatch.setattr(
        fit, "train_toxicity", lambda fpr: (LexiconClassifier(tiny(0.93), lexicon), report)
    )
    monkeypatch.setattr(fit, "train_second_stage", lambda task, model, fpr: (encoder, report))

    def save(classifier: FakeEncoder, path: Path, extra: dict[str, str]) -> None:
        path.write_bytes(b"adapters")
        classifier.calls.append(path)

    monkeypatch.setattr("bastion.guard.training.encoder.save", save)
    return encoder


def test_the_registry_holds_the_shipped_classifiers() -> None:
    assert list(TRAINERS) == ["injection", "harmful", "toxicity"]
    with pytest.raises(ValueError, match="twice"):
        trainer("injection")(TRAINERS["injection"])
    with pytest.raises(BastionError, match="known: injection, harmful, toxicity"):
        train("nope", Path("x.safetensors"), target_fpr=0.01)


@pytest.mark.parametrize("task", list(TRAINERS))
def test_every_trainer_writes_what_it_reports(
    task: str, tmp_path: Path, fakes: FakeEncoder
) -> None:
    out = tmp_path / f"{task}.safetensors"
    said: list[str] = []
    trained = train(task, out, target_fpr=0.01, encoder=False, progress=said.append)
    assert trained.task == task and said
    assert {p.name for p in tmp_path.iterdir()} == {p.name for p in trained.written}
    (stage,) = trained.stages
    assert stage.weights == out and stage.gate is None
    assert stage.threshold == NgramClassifier.load(out).threshold
    assert json.loads(out.with_suffix(".report.json").read_text()) == {"calib": []}


def test_the_harmful_trainer_adds_the_encoder_stage(tmp_path: Path, fakes: FakeEncoder) -> None:
    out = tmp_path / "harmful.safetensors"
    trained = train("harmful", out, target_fpr=0.01)
    first, second = trained.stages
    assert (first.name, first.threshold) == ("n-grams", pytest.approx(0.92))
    assert (second.name, second.gate, second.threshold) == ("encoder", 0.2, 0.7)
    assert fakes.calls == [second.weights] == [out.with_suffix(".encoder.safetensors")]
    assert json.loads(out.with_suffix(".categories.json").read_text()) == {
        "categories": {"crime": {"3": 1.0}}
    }
    assert {p.name for p in tmp_path.iterdir()} == {p.name for p in trained.written}


def test_unknown_tasks_are_one_line_errors_naming_the_registry() -> None:
    for args in (("train",), ("eval", "--by-source")):
        result = run("guard", *args, "--task", "nope")
        assert_user_error(result, "--task must be one of injection, harmful, toxicity")


def test_the_public_names_resolve() -> None:
    for name in bastion.guard.__all__:
        assert getattr(bastion.guard, name) is not None, name
    from bastion.guard import Guard
    from bastion.guard.pipeline import Guard as Same

    assert Guard is Same
    with pytest.raises(AttributeError):
        bastion.guard.Nope  # noqa: B018


def test_listing_the_trainers_loads_no_scanner() -> None:
    """The command lists the tasks at start-up: that must not load the guard's models."""
    code = (
        "import json, sys, bastion.guard.training.tasks; "
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith(('torch', 'bastion.g')))))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(loaded) == [
        "bastion.guard",
        "bastion.guard.training",
        "bastion.guard.training.tasks",
    ]
