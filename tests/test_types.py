import pytest

from bastion import Conversation, DataError, Message, PreferencePair, UnpairedExample
from bastion.types import Verdict, as_conversation


def test_unknown_role_is_named() -> None:
    with pytest.raises(DataError, match="unknown role 'robot'"):
        Message("robot", "hi")  # type: ignore[arg-type]


def test_as_conversation_accepts_what_users_write() -> None:
    expected = Conversation((Message("user", "hi"),))
    assert as_conversation("hi") == expected
    assert as_conversation([{"role": "user", "content": "hi"}]) == expected
    assert as_conversation(expected) is expected


def test_conversation_from_dicts_names_missing_key() -> None:
    with pytest.raises(DataError, match="message 1 lacks 'content'"):
        Conversation.from_dicts([{"role": "user", "content": "a"}, {"role": "assistant"}])


def test_conversation_helpers() -> None:
    conversation = Conversation.user("q", system="be nice").append("assistant", "a")
    assert conversation.to_dicts() == [
        {"role": "system", "content": "be nice"},
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "a"},
    ]
    assert conversation.last_user == "q"
    assert len(conversation) == 3


def test_preference_pair_rejects_what_teaches_nothing() -> None:
    with pytest.raises(DataError, match="identical"):
        PreferencePair("p", "same", "same")
    with pytest.raises(DataError, match="chosen is empty"):
        PreferencePair("p", "  ", "x")
    with pytest.raises(DataError, match="all be strings or all conversations"):
        PreferencePair(Conversation.user("p"), "a", "b")


def test_unpaired_label_must_be_bool() -> None:
    with pytest.raises(DataError, match="label must be true or false"):
        UnpairedExample("p", "c", 1)  # type: ignore[arg-type]


def test_verdict_score_range() -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        Verdict("j", True, 1.5)
