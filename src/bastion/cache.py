"""Where Bastion keeps what it fetches and builds: ``$BASTION_CACHE`` or ``~/.cache/bastion``."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    root = os.environ.get("BASTION_CACHE") or Path.home() / ".cache" / "bastion"
    path = Path(root).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def dir_size(path: Path) -> int:
    """Bytes used under a folder (0 if it does not exist)."""
    if not path.exists():
        return 0
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
