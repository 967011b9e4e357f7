"""Exceptions a user can act on.

Every subclass of :class:`BastionError` is a *user* problem (bad input, a missing file, a hash
that does not match): the CLI prints its message on one line and exits with code 2, never a
traceback. Anything else that escapes is a bug in Bastion and keeps its traceback.
"""

from __future__ import annotations

from pathlib import Path


class BastionError(Exception):
    """A problem the user can fix; its message says what was expected."""


class DataError(BastionError):
    """Bad data: the message names the file, the line and the field."""

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.reason = message
        self.path = str(path) if path is not None else None
        self.line = line
        self.field = field
        where = self.path or "<data>"
        if line is not None:
            where += f":{line}"
        if field is not None:
            where += f": field '{field}'"
        super().__init__(f"{where}: {message}")

    def at(self, path: str | Path, line: int | None = None, field: str | None = None) -> DataError:
        """The same error, located in a file (keeps a field it already names)."""
        return DataError(self.reason, path=path, line=line, field=self.field or field)


class ConfigError(BastionError):
    """A bad configuration key or value; the message names the key."""


class ModelError(BastionError):
    """A model that cannot be found or loaded."""


class IntegrityError(BastionError):
    """A fetched file whose sha256 is not the pinned one."""


class UpstreamError(BastionError):
    """A remote model server that failed after all retries."""
