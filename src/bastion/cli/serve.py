"""``bastion serve``: the guarded OpenAI-compatible gateway."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bastion.cli.common import (
    JournalOption,
    console,
)


def serve(
    config: Annotated[
        Path | None, typer.Option(help="Gateway YAML: keys, upstream, store, tracing.")
    ] = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on [127.0.0.1].")] = None,
    port: Annotated[
        int | None, typer.Option(min=0, max=65535, help="Port to listen on [8000].")
    ] = None,
    upstream: Annotated[
        str | None,
        typer.Option(help="An OpenAI-compatible base URL [the packaged model, in process]."),
    ] = None,
    policy: Annotated[
        Path | None, typer.Option(help="Guard policy YAML [the shipped policy].")
    ] = None,
    journal: JournalOption = None,
) -> None:
    """The guarded OpenAI-compatible gateway: rails on every request, every exchange recorded."""
    from bastion.serve.main import run

    run(
        config, host=host, port=port, upstream=upstream, policy=policy, journal=journal,
        echo=console.print,
    )  # fmt: skip
