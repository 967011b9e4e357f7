"""What every verb of the ``bastion`` command shares: the console, options and checks."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from bastion.errors import BastionError

console = Console(soft_wrap=True)


RecipeOverrides = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a recipe key, e.g. --set train.lr=1e-5."),
]


Resume = Annotated[bool, typer.Option(help="Continue from the last checkpoint.")]


StoreOption = Annotated[
    str, typer.Option("--store", help="The event store: a SQLite file or a database URL.")
]


JournalOption = Annotated[
    Path | None,
    typer.Option(
        "--journal",
        help="The store's journal folder [beside a SQLite file; for a server, in the cache].",
    ),
]


def writable_folder(path: Path, option: str) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".bastion-write-test"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise BastionError(f"{option} {path}: not a writable folder ({exc.strerror})") from None


def percent(x: float) -> str:
    return "-" if x != x else f"{x:.1%}"
