"""Stages cached on disk: ``OUT/iter-N/<stage>/`` with a ``done.json`` marker written last.

A stage is a function of its folder that returns its outputs (:mod:`bastion.loop.outputs`: a
small dataclass that reads and writes itself as JSON). The marker holds them with the stage's
time; it is written through a temporary file and a rename, so a
crash leaves a stage either done (marker and outputs complete) or not done (run again, from
whatever partial files it knows how to resume). A run folder belongs to one recipe: resuming
it with another is refused, naming the keys that changed.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from bastion.errors import BastionError
from bastion.loop.outputs import StageOutputs
from bastion.loop.progress import LoopProgress, Ticker

Out = TypeVar("Out", bound=StageOutputs)

DONE = "done.json"
CONFIG = "config.json"


class StageRunner:
    def __init__(self, root: Path, stages: Sequence[str], progress: LoopProgress) -> None:
        self.root, self.stages, self.progress = root, tuple(stages), progress

    def folder(self, n: int, stage: str) -> Path:
        return self.root / f"iter-{n}" / stage

    def is_done(self, n: int, stage: str) -> bool:
        return (self.folder(n, stage) / DONE).is_file()

    def record(self, n: int, stage: str) -> dict[str, Any]:
        """A finished stage's marker: its outputs, time and when it finished."""
        data: dict[str, Any] = json.loads((self.folder(n, stage) / DONE).read_text())
        return data

    def outputs(self, n: int, stage: str, kind: type[Out]) -> Out:
        """A finished stage's outputs, read back."""
        return kind.from_dict(self.record(n, stage)["outputs"])

    def run(
        self,
        n: int,
        stage: str,
        kind: type[Out],
        work: Callable[[Path, Ticker], Out],
        *,
        live: bool = True,
    ) -> Out:
        """The stage's outputs: read back when it is done already, else from running it."""
        label = f"iteration {n} · {self.stages.index(stage) + 1}/{len(self.stages)} {stage}"
        if self.is_done(n, stage):
            self.progress.skip(label, "done already (resumed)")
            return self.outputs(n, stage, kind)
        folder = self.folder(n, stage)
        folder.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        with self.progress.stage(label, live=live) as ticker:
            outputs = work(folder, ticker)
        record = {
            "stage": stage,
            "iteration": n,
            "seconds": round(time.monotonic() - started, 3),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "outputs": outputs.to_dict(),
        }
        atomic_json(folder / DONE, record)
        return outputs

    def claim(self, fingerprint: dict[str, Any], *, resume: bool) -> None:
        """A fresh folder takes the recipe; a used one only with ``resume`` and the same
        recipe."""
        stored = self.root / CONFIG
        if not stored.is_file():
            self.root.mkdir(parents=True, exist_ok=True)
            atomic_json(stored, fingerprint)
            return
        if not resume:
            raise BastionError(
                f"{self.root} holds a loop run already: pass --resume to continue it, "
                "or choose another --out"
            )
        saved = json.loads(stored.read_text())
        changed = sorted(
            k for k in set(saved) | set(fingerprint) if saved.get(k) != fingerprint.get(k)
        )
        if changed:
            raise BastionError(
                f"cannot resume {self.root}: the recipe changed ({', '.join(changed)}); "
                "use the same recipe or another --out"
            )


def atomic_json(path: Path, data: Any) -> None:
    """Write JSON through a temporary file and a rename: a crash leaves the old file or none."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(
        "w", encoding="utf-8", dir=path.parent, prefix=f".{path.name}.", delete=False
    ) as handle:
        handle.write(json.dumps(data, indent=2, default=str) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(handle.name, path)
