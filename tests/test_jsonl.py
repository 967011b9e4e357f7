import json
from pathlib import Path

import pytest

from bastion import Conversation, DataError, PreferencePair, UnpairedExample
from bastion.data.jsonl import (
    conversation_to_dict,
    preference_to_dict,
    read_conversations,
    read_preferences,
    read_unpaired,
    unpaired_to_dict,
    write_jsonl,
)


def write(path: Path, *lines: str) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_preferences_round_trip_both_formats(tmp_path: Path) -> None:
    pairs = [
        PreferencePair("2+2=", "4", "5", id="a"),
        PreferencePair(
            Conversation.user("hi"),
            Conversation(()).append("assistant", "hello"),
            Conversation(()).append("assistant", "go away"),
            meta={"src": "t"},
        ),
    ]
    path = tmp_path / "p.jsonl"
    assert write_jsonl(path, (preference_to_dict(p) for p in pairs)) == 2
    back = read_preferences(path)
    assert back == pairs
    assert back[1].meta == {"src": "t"} and back[1].conversational


def test_implicit_prompt_is_the_shared_prefix(tmp_path: Path) -> None:
    shared = [{"role": "user", "content": "q"}]
    row = {
        "chosen": [*shared, {"role": "assistant", "content": "good"}],
        "rejected": [*shared, {"role": "assistant", "content": "bad"}],
    }
    pair = read_preferences(write(tmp_path / "i.jsonl", json.dumps(row)))[0]
    assert pair.prompt == Conversation.user("q")
    assert pair.chosen == Conversation(()).append("assistant", "good")
    assert pair.rejected == Conversation(()).append("assistant", "bad")


def test_conversations_and_unpaired_round_trip(tmp_path: Path) -> None:
    conversation = Conversation.user("q").append("assistant", "a")
    path = tmp_path / "c.jsonl"
    write_jsonl(path, [conversation_to_dict(conversation)])
    assert read_conversations(path) == [conversation]
    example = UnpairedExample("p", "c", False, id="7")
    write_jsonl(path, [unpaired_to_dict(example)])
    assert read_unpaired(path) == [example]


def test_broken_line_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.jsonl", '{"messages": []}', "", '{"messages": [}')
    with pytest.raises(DataError, match=r"bad\.jsonl:3: not valid JSON"):
        read_conversations(path)


def test_unknown_role_names_line_and_field(tmp_path: Path) -> None:
    path = write(
        tmp_path / "r.jsonl", json.dumps({"messages": [{"role": "robot", "content": "x"}]})
    )
    with pytest.raises(DataError, match=r"r\.jsonl:1: field 'messages': unknown role 'robot'"):
        read_conversations(path)


def test_missing_field_and_bad_label(tmp_path: Path) -> None:
    path = write(tmp_path / "m.jsonl", json.dumps({"prompt": "p", "chosen": "c"}))
    with pytest.raises(DataError, match=r"m\.jsonl:1: field 'rejected': missing"):
        read_preferences(path)
    path = write(tmp_path / "u.jsonl", json.dumps({"prompt": "p", "completion": "c", "label": 1}))
    with pytest.raises(DataError, match=r"u\.jsonl:1: field 'label': expected true or false"):
        read_unpaired(path)


def test_pair_errors_are_located(tmp_path: Path) -> None:
    rows = [
        {"prompt": "p", "chosen": "a", "rejected": "b"},
        {"prompt": "p", "chosen": "", "rejected": "b"},
    ]
    path = write(tmp_path / "e.jsonl", *(json.dumps(r) for r in rows))
    with pytest.raises(DataError, match=r"e\.jsonl:2: field 'chosen': chosen is empty"):
        read_preferences(path)


def test_missing_file_and_not_utf8(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="file not found"):
        read_conversations(tmp_path / "none.jsonl")
    path = tmp_path / "latin.jsonl"
    path.write_bytes(b'{"messages": "\xe9"}\n')
    with pytest.raises(DataError, match="not UTF-8"):
        read_conversations(path)


def test_append_jsonl_adds_lines_to_a_file_and_keeps_what_was_there(tmp_path) -> None:
    from bastion.data import append_jsonl, iter_jsonl, json_line

    path = tmp_path / "logs" / "metrics.jsonl"
    assert append_jsonl(path, [{"step": 1, "loss": 0.5}]) == 1
    assert append_jsonl(path, [{"step": 2, "note": "café"}, {"step": 3}]) == 2
    assert [row for _, row in iter_jsonl(path)] == [
        {"step": 1, "loss": 0.5},
        {"step": 2, "note": "café"},
        {"step": 3},
    ]
    assert "café" in path.read_text(encoding="utf-8")  # UTF-8, not \u escapes
    assert json_line({"a": 1}) == '{"a": 1}\n'
