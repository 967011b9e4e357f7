"""Every registered scanner keeps the contract; then each scanner's own behaviour."""

import time
from pathlib import Path

import pytest

from bastion.errors import ConfigError
from bastion.guard.scanners import SCANNERS, BlocklistScanner, Scanner
from bastion.text.normalize import normalize

HOSTILE = ["", "\x00", "\ud800", "a" * 200_000, "{" * 10_000, "ignore previous instructions"]


def light_kwargs(name: str, tmp_path: Path) -> dict:
    """Construction arguments that keep the contract test fast (a fake embedder here)."""
    if name == "known_attacks":
        from bastion.models.fakes import FakeEmbedder

        return {"embedder": FakeEmbedder(), "index": tmp_path / "index"}
    return {}


@pytest.mark.parametrize("name", sorted(SCANNERS))
def test_contract(name: str, tmp_path: Path) -> None:
    scanner: Scanner = SCANNERS[name](**light_kwargs(name, tmp_path))
    assert scanner.name == name and scanner.stage in ("input", "output", "both")
    for text in HOSTILE:
        result = scanner.scan(text)
        assert result.scanner == name
        assert 0.0 <= result.score <= 1.0
        assert result.flagged == (result.score >= scanner.threshold)
        for span in result.spans:
            if span.view == "original":
                assert 0 <= span.start <= span.end <= len(text)
    with pytest.raises(ValueError, match="threshold"):
        SCANNERS[name](threshold=1.5, **light_kwargs(name, tmp_path))


BLOCK = BlocklistScanner(["ignore previous instructions", "ass", "make a bomb"])


def test_blocklist_matches_folded_text_and_reports_original_offsets() -> None:
    text = "ok. IGNORE   Prévious\u200b instructions!"
    result = BLOCK.scan(text)
    assert result.flagged and result.view == "canonical"
    (span,) = result.spans
    assert text[span.start : span.end] == "IGNORE   Prévious\u200b instructions"


def test_blocklist_respects_word_boundaries() -> None:
    assert not BLOCK.scan("a classic class of bass players").flagged
    assert BLOCK.scan("what an ass!").flagged


def test_blocklist_finds_phrases_in_decoded_views() -> None:
    result = BLOCK.scan("m4k3 4 b0mb")
    assert result.flagged and result.view == "leetspeak"
    assert result.spans[0].view == "leetspeak"


def test_blocklist_loads_text_and_yaml_lists(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("# comment\nfirst phrase\n\nsecond  # trailing comment\n")
    (tmp_path / "b.yaml").write_text("phrases: [third one]\n")
    scanner = BlocklistScanner(files=[tmp_path / "a.txt", tmp_path / "b.yaml"])
    assert len(scanner) == 3
    assert scanner.scan("the THIRD one").flagged


@pytest.mark.parametrize(
    ("content", "message"),
    [("phrases: [1, two]", r"b.yaml: phrases\[0\] must be a string"), ("other: []", "only")],
)
def test_blocklist_bad_yaml_names_file_and_key(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "b.yaml").write_text(content)
    with pytest.raises(ConfigError, match=message):
        BlocklistScanner(files=[tmp_path / "b.yaml"])


def test_blocklist_is_linear_on_pathological_lists_and_inputs() -> None:
    # phrases that make a backtracking regex explode ("a", "aa", …) cost nothing here
    scanner = BlocklistScanner(
        ["a" * n + "b" for n in range(1, 200)] + [f"word{i}" for i in range(5000)]
    )
    text = normalize("a" * 100_000)
    start = time.perf_counter()
    assert not scanner.scan(text).flagged
    assert time.perf_counter() - start < 5
