"""JSONL datasets in the formats TRL users already have.

* ``{"messages": [...]}`` — a conversation (SFT data).
* ``{"prompt", "chosen", "rejected"}`` — preference pairs, each field a string (standard) or a
  list of messages (conversational). Without ``prompt``, chosen and rejected are whole
  conversations and their longest shared prefix is the prompt (TRL's "implicit prompt").
* ``{"prompt", "completion", "label"}`` — unpaired examples (KTO).

Every error names the file, the line and the field.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from bastion.errors import DataError
from bastion.types import Conversation, PreferencePair, Text, UnpairedExample


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, object) for each non-blank line; blank lines are skipped."""
    path = Path(path)
    if not path.is_file():
        raise DataError("file not found", path=path)
    try:
        handle = path.open("r", encoding="utf-8", errors="strict")
    except OSError as exc:
        raise DataError(f"cannot read ({exc.strerror})", path=path) from None
    with handle:
        try:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(f"not valid JSON ({exc.msg})", path=path, line=number) from None
                if not isinstance(row, dict):
                    raise DataError("expected a JSON object per line", path=path, line=number)
                yield number, row
        except UnicodeDecodeError as exc:
            raise DataError(f"not UTF-8 text ({exc.reason})", path=path) from None


def write_jsonl(path: str | Path, rows: Iterable[Mapping[str, Any]]) -> int:
    """Write rows atomically (temporary file, then rename); returns the count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with tempfile.NamedTemporaryFile(
        "w", encoding="utf-8", dir=path.parent, prefix=f".{path.name}.", delete=False
    ) as handle:
        try:
            for row in rows:
                handle.write(json_line(row))
                count += 1
            handle.flush()
            os.fsync(handle.fileno())
        except BaseException:
            os.unlink(handle.name)
            raise
    os.replace(handle.name, path)
    return count


def json_line(row: Mapping[str, Any]) -> str:
    """One JSON Lines line: the row as UTF-8 JSON (not ASCII-escaped) and a newline."""
    return json.dumps(row, ensure_ascii=False) + "\n"


def append_jsonl(target: str | Path | IO[str], rows: Iterable[Mapping[str, Any]]) -> int:
    """Append rows to an open text handle, or to a file (created with its folder if missing);
    returns the count. For logs that grow as a job runs: a crash keeps every line written."""
    if isinstance(target, (str, Path)):
        path = Path(target)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as handle:
            return append_jsonl(handle, rows)
    count = 0
    for row in rows:
        target.write(json_line(row))
        count += 1
    return count


def detect_format(path: str | Path) -> str:
    """ "preferences", "conversations" or "unpaired", from the keys of the first row."""
    for number, row in iter_jsonl(path):
        if "chosen" in row or "rejected" in row:
            return "preferences"
        if "messages" in row:
            return "conversations"
        if "completion" in row or "label" in row:
            return "unpaired"
        raise DataError(
            "unknown row format; expected messages, prompt/chosen/rejected or "
            "prompt/completion/label keys",
            path=path,
            line=number,
        )
    raise DataError("the file has no rows", path=path)


def read_conversations(path: str | Path) -> list[Conversation]:
    return [_conversation(row, "messages", path, n) for n, row in iter_jsonl(path)]


def read_preferences(path: str | Path) -> list[PreferencePair]:
    pairs = []
    for n, row in iter_jsonl(path):
        for key in ("chosen", "rejected"):
            if key not in row:
                raise DataError(
                    "missing; expected prompt/chosen/rejected", path=path, line=n, field=key
                )
        if "prompt" in row:
            prompt = _text(row, "prompt", path, n)
            chosen, rejected = _text(row, "chosen", path, n), _text(row, "rejected", path, n)
        else:
            prompt, chosen, rejected = _split_implicit_prompt(row, path, n)
        pairs.append(
            _build(
                PreferencePair,
                path,
                n,
                prompt=prompt,
                chosen=chosen,
                rejected=rejected,
                id=_id(row),
                meta=row.get("meta") or {},
            )
        )
    return pairs


def read_unpaired(path: str | Path) -> list[UnpairedExample]:
    examples = []
    for n, row in iter_jsonl(path):
        for key in ("prompt", "completion", "label"):
            if key not in row:
                raise DataError(
                    "missing; expected prompt/completion/label", path=path, line=n, field=key
                )
        if not isinstance(row["label"], bool):
            raise DataError(
                f"expected true or false, got {row['label']!r}", path=path, line=n, field="label"
            )
        examples.append(
            _build(
                UnpairedExample,
                path,
                n,
                prompt=_text(row, "prompt", path, n),
                completion=_text(row, "completion", path, n),
                label=row["label"],
                id=_id(row),
                meta=row.get("meta") or {},
            )
        )
    return examples


def preference_to_dict(pair: PreferencePair) -> dict[str, Any]:
    row: dict[str, Any] = {k: _dump(getattr(pair, k)) for k in ("prompt", "chosen", "rejected")}
    return _with_id_meta(row, pair.id, pair.meta)


def unpaired_to_dict(example: UnpairedExample) -> dict[str, Any]:
    row = {
        "prompt": _dump(example.prompt),
        "completion": _dump(example.completion),
        "label": example.label,
    }
    return _with_id_meta(row, example.id, example.meta)


def conversation_to_dict(conversation: Conversation) -> dict[str, Any]:
    return {"messages": conversation.to_dicts()}


def _with_id_meta(row: dict[str, Any], id_: str | None, meta: Mapping[str, Any]) -> dict[str, Any]:
    if id_ is not None:
        row["id"] = id_
    if meta:
        row["meta"] = dict(meta)
    return row


def _dump(value: Text) -> str | list[dict[str, str]]:
    return value if isinstance(value, str) else value.to_dicts()


def _id(row: Mapping[str, Any]) -> str | None:
    value = row.get("id")
    return None if value is None else str(value)


def _text(row: Mapping[str, Any], key: str, path: str | Path, line: int) -> Text:
    value = row.get(key)
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return _conversation(row, key, path, line)
    raise DataError(
        f"expected a string or a list of messages, got {type(value).__name__}",
        path=path,
        line=line,
        field=key,
    )


def _conversation(row: Mapping[str, Any], key: str, path: str | Path, line: int) -> Conversation:
    value = row.get(key)
    if not isinstance(value, list):
        raise DataError(
            "expected a list of {role, content} messages", path=path, line=line, field=key
        )
    try:
        return Conversation.from_dicts(value)
    except DataError as exc:
        raise exc.at(path, line, key) from None


def _split_implicit_prompt(
    row: Mapping[str, Any], path: str | Path, line: int
) -> tuple[Conversation, Conversation, Conversation]:
    chosen = _conversation(row, "chosen", path, line)
    rejected = _conversation(row, "rejected", path, line)
    shared = 0
    while shared < min(len(chosen), len(rejected)) and chosen[shared] == rejected[shared]:
        shared += 1
    if shared == 0:
        raise DataError(
            "no prompt field and chosen/rejected share no prefix",
            path=path,
            line=line,
            field="prompt",
        )
    prompt = Conversation(chosen.messages[:shared])
    return prompt, Conversation(chosen.messages[shared:]), Conversation(rejected.messages[shared:])


def _build(kind: Any, path: str | Path, line: int, **fields: Any) -> Any:
    try:
        return kind(**fields)
    except DataError as exc:
        raise exc.at(path, line) from None
