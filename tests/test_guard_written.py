"""The written training sets: well-formed, grouped with their twins, and read strictly."""

import json
from collections import Counter
from pathlib import Path

import pytest

from bastion.errors import DataError
from bastion.guard.harmful import CATEGORIES
from bastion.guard.training.data import (
    WRITTEN_HARMFUL,
    WRITTEN_INJECTIONS,
    read_written,
    written_path,
)


@pytest.mark.parametrize("name", WRITTEN_HARMFUL)
def test_each_harmful_topic_has_four_phrasings_and_three_benign_twins(name: str) -> None:
    examples = read_written(written_path(name))
    groups = Counter((e.group, e.label) for e in examples)
    assert {count for (_, label), count in groups.items() if label} == {4}
    assert {count for (_, label), count in groups.items() if not label} == {3}
    assert {e.category for e in examples} <= set(CATEGORIES)
    forms = Counter(
        json.loads(line)["form"]
        for line in written_path(name).read_text().splitlines()
        if json.loads(line)["label"]
    )
    assert set(forms) == {"instruction", "question", "statement", "past"}


def test_injections_cover_every_family_with_benign_look_alikes() -> None:
    examples = read_written(written_path(WRITTEN_INJECTIONS[0]))
    families = Counter((e.category, e.label) for e in examples)
    assert len({family for family, _ in families}) == 12
    assert all(families[family, 0] == families[family, 1] for family, _ in families)


@pytest.mark.parametrize(
    ("line", "where"),
    [
        ('{"text": "x", "group": "g", "category": "c", "label": 2}', "x.jsonl:2: field 'label'"),
        ('{"group": "g", "category": "c", "label": 1}', "x.jsonl:2: field 'text'"),
        ("{oops", "x.jsonl:2"),
    ],
)
def test_a_bad_row_is_named_by_file_line_and_key(tmp_path: Path, line: str, where: str) -> None:
    path = tmp_path / "x.jsonl"
    good = '{"text": "hi", "group": "g", "category": "c", "label": 0}'
    path.write_text(good + "\n" + line + "\n")
    with pytest.raises(DataError, match=where):
        read_written(path)
