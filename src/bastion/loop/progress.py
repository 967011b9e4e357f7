"""How the loop shows where it is: one bar per stage (Rich in the terminal, nothing in tests).

A stage gets a :class:`Ticker` to set its total, advance and leave a one-line summary; a stage
whose work has its own bar (training) asks for ``live=False`` and gets a header line instead,
since a terminal holds one live display at a time.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Protocol


class Ticker(Protocol):
    def total(self, n: int) -> None: ...

    def advance(self, n: int = 1, note: str = "") -> None: ...

    def done(self, summary: str) -> None: ...


class LoopProgress(Protocol):
    live: bool  # whether work with a bar of its own (training) should show it

    def stage(self, label: str, *, live: bool = True) -> AbstractContextManager[Ticker]: ...

    def skip(self, label: str, why: str) -> None: ...


class CampaignTicker:
    """A stage's ticker as a red-team campaign's progress
    (:class:`~bastion.redteam.campaign.CampaignProgress`): the plan's size, then each batch
    with the running rates as its note."""

    def __init__(self, ticker: Ticker) -> None:
        self.ticker = ticker

    def start(self, total: int, done: int, rates: str) -> None:
        self.ticker.total(total)
        self.ticker.advance(done)

    def advance(self, n: int, rates: str) -> None:
        self.ticker.advance(n, rates)


class _NullTicker:
    def total(self, n: int) -> None:
        return None

    def advance(self, n: int = 1, note: str = "") -> None:
        return None

    def done(self, summary: str) -> None:
        return None


class NullProgress:
    """Shows nothing (tests, library use)."""

    live = False

    @contextmanager
    def stage(self, label: str, *, live: bool = True) -> Iterator[Ticker]:
        yield _NullTicker()

    def skip(self, label: str, why: str) -> None:
        return None


class _RichTicker:
    def __init__(self, progress: Any, task: Any) -> None:
        self.progress, self.task, self.summary = progress, task, ""

    def total(self, n: int) -> None:
        if self.progress is not None:
            self.progress.update(self.task, total=n)

    def advance(self, n: int = 1, note: str = "") -> None:
        if self.progress is not None:
            self.progress.update(self.task, advance=n, note=note)

    def done(self, summary: str) -> None:
        self.summary = summary


class RichProgress:
    """A Rich bar per stage, and a ✓ line with the stage's time and summary when it ends."""

    live = True

    def __init__(self, console: Any) -> None:
        self.console = console

    @contextmanager
    def stage(self, label: str, *, live: bool = True) -> Iterator[Ticker]:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        started = time.monotonic()
        if not live:
            self.console.print(f"[bold]{label}[/] …")
            ticker = _RichTicker(None, None)
            yield ticker
        else:
            columns = (
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.fields[note]}"),
            )
            with Progress(*columns, console=self.console, transient=True) as bar:
                ticker = _RichTicker(bar, bar.add_task(label, total=None, note=""))
                yield ticker
        seconds = time.monotonic() - started
        summary = f" — {ticker.summary}" if ticker.summary else ""
        self.console.print(f"[green]✓[/] {label} ({_duration(seconds)}){summary}")

    def skip(self, label: str, why: str) -> None:
        self.console.print(f"[dim]↷ {label}: {why}[/]")


def _duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m {rest:02d}s" if minutes else f"{seconds:.1f}s"
