"""``bastion doctor``: versions, device, cache and the packaged models."""

from __future__ import annotations

import platform
import time
from typing import Annotated

import typer
from rich.table import Table

from bastion import __version__
from bastion.cache import cache_dir, dir_size
from bastion.cli.common import (
    console,
)


def doctor(
    load: Annotated[bool, typer.Option(help="Load each packaged model to prove it works.")] = True,
) -> None:
    """Versions, device, cache folder, and whether each packaged model is present and loads."""
    import torch
    import transformers

    from bastion.models.packaged import PACKAGED, is_present, load_embedder
    from bastion.models.packaged import load as load_chat

    table = Table(show_header=False, box=None)
    table.add_row("bastion", __version__)
    table.add_row("python", platform.python_version())
    table.add_row("torch", torch.__version__)
    table.add_row("transformers", transformers.__version__)
    if torch.cuda.is_available():
        table.add_row("device", f"cuda: {torch.cuda.get_device_name(0)}")
    else:
        table.add_row("device", f"cpu ({torch.get_num_threads()} threads)")
    cache = cache_dir()
    table.add_row("cache", f"{cache} ({dir_size(cache) / 2**20:.0f} MiB)")
    console.print(table)
    models = Table("packaged model", "kind", "was cached", "loads", "load time")
    for name, packaged in PACKAGED.items():
        present = is_present(name)  # before this load fetched it, if it did
        loads, elapsed = "-", "-"
        if load:
            start = time.perf_counter()
            try:
                (load_chat if packaged.kind == "chat" else load_embedder)(name)
                loads = "[green]yes[/]"
            except Exception as exc:  # doctor diagnoses: any failure is a finding, not a crash
                loads = f"[red]no[/]: {type(exc).__name__}: {exc}"
            elapsed = f"{time.perf_counter() - start:.2f} s"
        models.add_row(name, packaged.kind, "yes" if present else "no", loads, elapsed)
    console.print(models)
