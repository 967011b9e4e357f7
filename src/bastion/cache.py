"""Where Bastion keeps what it fetches and builds: ``$BASTION_CACHE`` or ``~/.cache/bastion``."""

from __future__ import annotations

import os
from pathlib import Path

from bastion.errors import BastionError


def cache_dir() -> Path:
    root = os.environ.get("BASTION_CACHE") or Path.home() / ".cache" / "bastion"
    path = Path(root).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BastionError(
            f"cache folder {path} cannot be created ({exc.strerror}); "
            "set BASTION_CACHE to a writable folder"
        ) from None
    return path


def dir_size(path: Path) -> int:
    """Bytes used under a folder (0 if it does not exist)."""
    if not path.exists():
        return 0
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
