"""Reading the YAML files users write (policies, constitutions): one error style for all."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from bastion.errors import ConfigError


def read_yaml(path: Path, what: str) -> Any:
    """The parsed file; a one-line :class:`ConfigError` naming the file when it cannot be read
    or is not YAML (``what``: "the policy", "the constitution" …)."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read {what} ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
