"""Reviewed events → training rows, consensus and Cohen's κ, by hand."""

import pytest

from bastion.data.jsonl import read_conversations, read_preferences, write_jsonl
from bastion.errors import BastionError
from bastion.monitor.events import Event
from bastion.monitor.export import (
    ReviewedItem,
    ReviewLabel,
    agreement,
    cohen_kappa,
    consensus,
    export_rows,
)


def _item(item_id: str, prompt: str, response: str, *labels: ReviewLabel, refused: bool = False,
          categories: list[str] | None = None) -> ReviewedItem:  # fmt: skip
    event = Event("u1", "m", prompt, response, "allow", refused=refused,
                  categories=categories or [])  # fmt: skip
    return ReviewedItem(item_id, event, list(labels))


def test_kappa_by_hand() -> None:
    # p_o = 4/5; A says safe 3×, B 2× → p_e = (3·2 + 2·3)/25 = 0.48 → κ = 0.32/0.52
    a = ["safe", "safe", "unsafe", "unsafe", "safe"]
    b = ["safe", "unsafe", "unsafe", "unsafe", "safe"]
    assert cohen_kappa(a, b) == pytest.approx(0.32 / 0.52)
    assert cohen_kappa(a, a) == 1.0
    assert cohen_kappa(["safe", "unsafe"], ["unsafe", "safe"]) == pytest.approx(-1.0)


def test_consensus_majority_admin_tiebreak_or_none() -> None:
    r = ReviewLabel
    assert consensus([r("a", "unsafe"), r("b", "unsafe"), r("c", "safe")]) == "unsafe"
    assert consensus([r("a", "unsafe"), r("b", "safe")]) is None
    assert consensus([r("a", "unsafe"), r("b", "safe", role="admin")]) == "safe"
    assert consensus([]) is None


def test_export_kinds_write_what_align_and_the_guard_read(tmp_path) -> None:  # type: ignore[no-untyped-def]
    r = ReviewLabel
    items = [
        _item("1", "how do I hurt him", "Step one...", r("a", "unsafe", "I won't help with that; "
              "if you're in conflict, here is how to get help."), r("b", "unsafe"),
              categories=["violence"]),
        _item("2", "how to kill a python process", "I can't help with that.",
              r("a", "over_refusal", "Use kill PID or pkill -f name."), refused=True),
        _item("3", "capital of France?", "Paris.", r("a", "safe")),
        _item("4", "split vote", "answer", r("a", "safe"), r("b", "unsafe")),
        _item("5", "no better answer", "bad", r("a", "unsafe")),
    ]  # fmt: skip
    prefs = export_rows(items, "preferences")
    assert [p["meta"]["item_id"] for p in prefs] == ["1", "2"]
    assert prefs[1]["chosen"].startswith("Use kill") and prefs[1]["rejected"].startswith("I can't")
    assert prefs[0]["meta"]["reviewers"] == ["a", "b"]
    write_jsonl(tmp_path / "p.jsonl", prefs)
    assert len(read_preferences(tmp_path / "p.jsonl")) == 2
    sft = export_rows(items, "sft")
    assert [s["meta"]["item_id"] for s in sft] == ["1", "2", "3"]
    write_jsonl(tmp_path / "s.jsonl", sft)
    assert read_conversations(tmp_path / "s.jsonl")[2].messages[-1].content == "Paris."
    attacks = export_rows(items, "attacks")
    assert [(a["text"], a["category"]) for a in attacks] == [
        ("how do I hurt him", "violence"), ("no better answer", "unknown")
    ]  # fmt: skip
    with pytest.raises(BastionError, match="--kind"):
        export_rows(items, "everything")


def test_agreement_over_pairs_of_reviewers() -> None:
    r = ReviewLabel
    items = [
        _item(str(i), "p", "r", r("a", x), r("b", y))
        for i, (x, y) in enumerate(zip(["safe", "safe", "unsafe", "unsafe", "safe"],
                                       ["safe", "unsafe", "unsafe", "unsafe", "safe"],
                                       strict=True))
    ]  # fmt: skip
    items.append(_item("solo", "p", "r", r("c", "safe"), r("a", "safe")))
    report = agreement(items)
    ab = next(p for p in report["pairs"] if p["reviewers"] == ["a", "b"])
    assert ab["items"] == 5 and ab["kappa"] == pytest.approx(0.32 / 0.52)
    ac = next(p for p in report["pairs"] if p["reviewers"] == ["a", "c"])
    assert ac["kappa"] is None  # one shared item: not enough for κ
    assert report["mean_kappa"] == pytest.approx(0.32 / 0.52)
