"""Format validation for answers an application parses: JSON (and a JSON Schema), and code.

The JSON to check is the first fenced block (```json … ``` or plain ```), else the whole answer
trimmed; it must parse and, when a schema is given, validate (JSON Schema 2020-12), the first
error named by its path. Code is checked the same way per language through
:data:`CODE_VALIDATORS` — Python with ``ast.parse`` ships; :func:`register_code_validator`
adds others (a validator returns an error message, or None when the code is valid).

Hostile input stays bounded: nesting deeper than ``max_depth`` is refused before parsing (the
parsers recurse), and a parser's recursion or memory error is a finding, not a crash.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from bastion.errors import ConfigError
from bastion.guard.result import ScanResult
from bastion.guard.scanners.base import Scanner, register
from bastion.text.normalize import Normalized

_FENCE = re.compile(r"```([\w+-]*)[ \t]*\n(.*?)```", re.DOTALL)

CodeValidator = Callable[[str], str | None]
CODE_VALIDATORS: dict[str, CodeValidator] = {}


def register_code_validator(language: str, validator: CodeValidator) -> None:
    """Make ``language`` checkable by :class:`CodeScanner`."""
    CODE_VALIDATORS[language] = validator


def _python(code: str) -> str | None:
    try:
        ast.parse(code)
    except SyntaxError as exc:
        return f"line {exc.lineno}: {exc.msg}"
    except (RecursionError, MemoryError, ValueError) as exc:
        return f"cannot be parsed ({type(exc).__name__})"
    return None


register_code_validator("python", _python)


def fenced(text: str, languages: tuple[str, ...]) -> str | None:
    """The body of the first fenced block in one of ``languages`` (or unlabelled)."""
    for match in _FENCE.finditer(text):
        if match.group(1).lower() in (*languages, ""):
            return match.group(2)
    return None


def nesting_depth(text: str) -> int:
    """The deepest bracket nesting of a JSON text, strings skipped (a linear scan)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


@register
class JsonScanner(Scanner):
    """Flags an answer whose JSON does not parse or does not match the schema."""

    name: ClassVar[str] = "json"
    bounded: ClassVar[bool] = True
    stage: ClassVar[str] = "output"
    reads_original_only: ClassVar[bool] = True  # the answer as written, not normalized

    def __init__(
        self,
        *,
        schema: dict[str, Any] | None = None,
        schema_file: str | Path | None = None,
        max_depth: int = 100,
        threshold: float = 0.5,
    ) -> None:
        super().__init__(threshold=threshold)
        if schema is not None and schema_file is not None:
            raise ValueError("json: give schema or schema_file, not both")
        if schema_file is not None:
            try:
                schema = json.loads(Path(schema_file).read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as exc:
                raise ConfigError(f"{schema_file}: not a readable JSON schema ({exc})") from None
        self.validator = None
        if schema is not None:
            from jsonschema import Draft202012Validator
            from jsonschema.exceptions import SchemaError

            try:
                Draft202012Validator.check_schema(schema)
            except SchemaError as exc:
                raise ValueError(f"json: the schema is invalid: {exc.message}") from None
            self.validator = Draft202012Validator(schema)
        self.max_depth = max_depth

    def scan_normalized(self, text: Normalized) -> ScanResult:
        body = fenced(text.original, ("json",))
        candidate = (body if body is not None else text.original).strip()
        if not candidate:
            return self.result(1.0, "no JSON in the answer")
        if nesting_depth(candidate) > self.max_depth:
            return self.result(1.0, f"JSON nested deeper than {self.max_depth}")
        try:
            value = json.loads(candidate)
        except json.JSONDecodeError as exc:
            return self.result(1.0, f"invalid JSON: {exc.msg} at line {exc.lineno}")
        except RecursionError:
            return self.result(1.0, "JSON nested too deeply to parse")
        if self.validator is not None:
            error = next(iter(self.validator.iter_errors(value)), None)
            if error is not None:
                where = "/".join(str(p) for p in error.absolute_path) or "(root)"
                return self.result(1.0, f"schema: {where}: {error.message}")
        return self.result(0.0)


@register
class CodeScanner(Scanner):
    """Flags an answer whose code (first fenced block, else the whole answer) is invalid."""

    name: ClassVar[str] = "code"
    bounded: ClassVar[bool] = True
    stage: ClassVar[str] = "output"
    reads_original_only: ClassVar[bool] = True

    def __init__(self, *, language: str = "python", threshold: float = 0.5) -> None:
        super().__init__(threshold=threshold)
        if language not in CODE_VALIDATORS:
            known = ", ".join(sorted(CODE_VALIDATORS))
            raise ValueError(f"code: no validator for {language!r} (known: {known})")
        self.language = language
        self.validate = CODE_VALIDATORS[language]

    def scan_normalized(self, text: Normalized) -> ScanResult:
        aliases = {"python": ("python", "py", "python3")}.get(self.language, (self.language,))
        body = fenced(text.original, aliases)
        code = body if body is not None else text.original
        error = self.validate(code)
        if error is None:
            return self.result(0.0)
        return self.result(1.0, f"invalid {self.language}: {error}")
