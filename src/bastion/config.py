"""Reading what users write (policies, recipes, gateway and monitor configs): one error style.

Every section a user writes is a :class:`StrictModel` (an unknown key is an error, not ignored),
validated with :func:`validate`, whose :class:`ConfigError` names the file, the key path and
what was expected in one line.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from bastion.errors import ConfigError

__all__ = ["StrictModel", "error_where", "read_yaml", "validate"]

M = TypeVar("M", bound=BaseModel)


class StrictModel(BaseModel):
    """A section users write: a key it does not know is an error (a typo never passes)."""

    model_config = ConfigDict(extra="forbid")


def error_where(
    exc: ValidationError,
    *,
    brackets: bool = True,
    prefix: Sequence[str | int] = (),
    rename: Callable[[list[str | int]], list[str | int]] | None = None,
) -> tuple[str, str]:
    """The first error of ``exc`` as (where, message): the key path joined with dots, list
    indices as ``[0]`` when ``brackets`` (else ``.0``), after ``prefix``; ``rename`` may
    rewrite the path first (to hide a secret key, say)."""
    error = exc.errors()[0]
    loc: list[str | int] = [*prefix, *error["loc"]]
    if rename is not None:
        loc = rename(loc)
    if brackets:
        where = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in loc)
        where = where.replace(".[", "[")
    else:
        where = ".".join(str(p) for p in loc)
    return where, str(error["msg"])


def validate(
    kind: type[M],
    data: Any,
    source: str,
    *,
    brackets: bool = True,
    rename: Callable[[list[str | int]], list[str | int]] | None = None,
) -> M:
    """``data`` as ``kind``; a one-line :class:`ConfigError` ``"{source}: {where}: {msg}"``."""
    try:
        return kind.model_validate(data)
    except ValidationError as exc:
        where, message = error_where(exc, brackets=brackets, rename=rename)
        raise ConfigError(f"{source}: {where}: {message}") from None


def read_yaml(path: Path, what: str) -> Any:
    """The parsed file; a one-line :class:`ConfigError` naming the file when it cannot be read
    or is not YAML (``what``: "the policy", "the constitution" …)."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read {what} ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
