"""Format validation: JSON parse and schema, Python syntax, the hook for other languages."""

import pytest

import bastion.guard.scanners.format as format_module
from bastion.guard.scanners.format import (
    CODE_VALIDATORS,
    CodeScanner,
    JsonScanner,
    register_code_validator,
)

SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
    "required": ["name"],
}


@pytest.mark.parametrize(
    ("answer", "flagged", "reason"),
    [
        ('{"name": "Ann", "age": 3}', False, ""),
        ('Here you go:\n```json\n{"name": "Ann"}\n```\nAnything else?', False, ""),
        ('{"name": "Ann",}', True, "invalid JSON"),
        ('{"age": 3}', True, "'name' is a required property"),
        ('{"name": "Ann", "age": -1}', True, "schema: age:"),
        ("[" * 5000 + "]" * 5000, True, "nested deeper than 100"),
        ("", True, "no JSON"),
    ],
)
def test_json_parse_and_schema(answer: str, flagged: bool, reason: str) -> None:
    result = JsonScanner(schema=SCHEMA).scan(answer)
    assert result.flagged == flagged and reason in result.reason


def test_an_invalid_schema_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="schema is invalid"):
        JsonScanner(schema={"type": "nonsense"})


@pytest.mark.parametrize(
    ("answer", "flagged"),
    [
        ("```python\ndef f(x):\n    return x + 1\n```", False),
        ("```py\ndef f(x)\n    return x\n```", True),
        ("print('hi')", False),
        ("(" * 10000, True),
        ("x = 1\x00", True),
    ],
)
def test_python_syntax(answer: str, flagged: bool) -> None:
    result = CodeScanner().scan(answer)
    assert result.flagged == flagged
    if flagged:
        assert result.reason.startswith("invalid python")


def test_other_languages_plug_in(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(format_module, "CODE_VALIDATORS", dict(CODE_VALIDATORS))
    register_code_validator("csv", lambda code: None if "," in code else "no commas")
    assert not CodeScanner(language="csv").scan("a,b\n1,2").flagged
    assert CodeScanner(language="csv").scan("```csv\nab\n```").reason == "invalid csv: no commas"
    with pytest.raises(ValueError, match="no validator for 'cobol'"):
        CodeScanner(language="cobol")
