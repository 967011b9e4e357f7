"""The ``bastion`` command: one sub-command per verb.

A user mistake (any :class:`~bastion.errors.BastionError`) prints one line on stderr and exits
with code 2; only a bug in Bastion shows a traceback.
"""

from __future__ import annotations

import os
import sys

import typer

from bastion.cli import align, data, guard, monitor, redteam
from bastion.cli.doctor import doctor
from bastion.cli.loop import loop
from bastion.cli.serve import serve
from bastion.errors import BastionError

__all__ = ["app", "main"]

app = typer.Typer(
    help="Bastion: align, attack, guard, watch and learn.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(data.app, name="data")
app.add_typer(guard.app, name="guard")
app.add_typer(align.app, name="align")
app.add_typer(redteam.app, name="redteam")
app.add_typer(monitor.app, name="monitor")
app.command()(doctor)
app.command()(serve)
app.command()(loop)


def main() -> None:
    """Entry point: user mistakes become one line on stderr and exit code 2."""
    # Our own progress bars say what is happening; the libraries' per-file bars are noise here.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    try:
        app()
    except BastionError as exc:
        message = " ".join(str(exc).split())  # one line, whatever the message held
        sys.stderr.write(f"error: {message}\n")
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
