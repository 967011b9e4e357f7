"""What a training run shows and records while it runs, shared by every trainer: the metrics
log (``metrics.jsonl``, and TensorBoard when installed), a Rich progress bar with the live
loss or score, and the mean of a metric over all processes (under ``torchrun``)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import torch

from bastion.data.jsonl import append_jsonl


def mean_over_processes(accelerator: Any, value: float) -> float:
    """``value`` averaged over every process of the run (itself on one process)."""
    if accelerator.num_processes == 1:
        return value
    tensor = torch.tensor([value], device=accelerator.device)
    return float(accelerator.reduce(tensor, reduction="mean").item())


def tensorboard_writer(folder: Path) -> Any:
    """A TensorBoard ``SummaryWriter`` on ``folder``, or None when TensorBoard is not
    installed (it is optional; the JSONL metrics are always written)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(folder))


class MetricsLog:
    """One row of metrics per step, appended to ``folder/metrics.jsonl`` and given to
    TensorBoard (``folder/tensorboard``) when installed; writes nothing when not ``enabled``
    (the processes other than the first, under ``torchrun``)."""

    def __init__(self, folder: Path, *, enabled: bool = True) -> None:
        self.path = folder / "metrics.jsonl"
        self.enabled = enabled
        self.board = tensorboard_writer(folder / "tensorboard") if enabled else None

    def write(self, row: Mapping[str, float], step: int) -> None:
        if not self.enabled:
            return
        append_jsonl(self.path, [row])
        if self.board is not None:
            for key, value in row.items():
                self.board.add_scalar(key, value, step)

    def close(self) -> None:
        if self.board is not None:
            self.board.close()


class ProgressBar:
    """A progress bar that shows nothing (the base, for processes other than the first or
    when progress is off); :func:`progress_bar` gives the Rich one where it should show."""

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def advance(self, steps: int) -> None:
        return None

    def update(self, value: float) -> None:
        return None


class RichProgressBar(ProgressBar):
    """Steps done of the total, elapsed and remaining time, and the last ``label`` value."""

    def __init__(self, total: int, label: str = "loss") -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("training"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(label + " {task.fields[loss]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        )
        self.task = self.progress.add_task("train", total=total, loss="-")

    def __enter__(self) -> RichProgressBar:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def advance(self, steps: int) -> None:
        self.progress.advance(self.task, steps)

    def update(self, value: float) -> None:
        self.progress.update(self.task, advance=1, loss=f"{value:.4f}")


def progress_bar(enabled: bool, total: int, label: str = "loss") -> ProgressBar:
    """A Rich bar over ``total`` steps showing ``label``'s last value, or one that shows
    nothing when not ``enabled``."""
    return RichProgressBar(total, label) if enabled else ProgressBar()


def jsonable_config(config: Any) -> dict[str, Any]:
    """A trainer's configuration (a dataclass or a dict) as JSON values, for a checkpoint:
    paths and anything else JSON lacks as strings, tuples as lists."""
    data = asdict(config) if is_dataclass(config) and not isinstance(config, type) else config
    return dict(json.loads(json.dumps(data, default=str)))
