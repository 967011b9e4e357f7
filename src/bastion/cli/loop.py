"""``bastion loop``: the closed loop (attack, harvest, align, re-attack, gate)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from bastion.cli.common import (
    RecipeOverrides,
    console,
    percent,
    writable_folder,
)


def loop(
    recipe: Annotated[
        Path | None,
        typer.Argument(help="YAML recipe (see recipes/loop.yaml) [the embedded defaults]."),
    ] = None,
    set_: RecipeOverrides = None,
    iterations: Annotated[int | None, typer.Option(min=1, help="Iterations [1].")] = None,
    out: Annotated[Path | None, typer.Option(help="Run folder [runs/loop].")] = None,
    store: Annotated[
        str | None, typer.Option(help="An event store whose reviewed events join the data.")
    ] = None,
    resume: Annotated[
        bool, typer.Option(help="Continue a run in --out: finished stages are not redone.")
    ] = False,
) -> None:
    """Close the loop: red-team, harvest failures, build data, align, re-evaluate, gate,
    refresh the guard, report. A new model is promoted only if it is significantly safer,
    refuses no more than the policy allows and keeps its capability."""
    from bastion.loop import load_loop_config, run_loop
    from bastion.loop.progress import RichProgress

    overrides = list(set_ or [])
    for key, value in (("iterations", iterations), ("out", out), ("store", store)):
        if value is not None:
            overrides.append(f"{key}={value}")
    config = load_loop_config(recipe, overrides)
    writable_folder(config.out, "--out")
    started = time.monotonic()
    result = run_loop(config, resume=resume, progress=RichProgress(console))
    table = Table(title=f"bastion loop · {time.monotonic() - started:.0f} s")
    for column in ("iteration", "", "ASR (test, 95%)", "over-refusal (test)", "benign accuracy"):
        table.add_column(column)
    for it in result.report["iterations"]:
        for when in ("before", "after"):
            measured = it[when]
            if measured is None:
                continue
            table.add_row(
                str(it["iteration"]) if when == "before" else "",
                when,
                _rate_cell(measured["asr"]),
                _rate_cell(measured["over_refusal"]),
                _rate_cell(measured["capability"]["accuracy"]),
            )
    console.print(table)
    for it in result.report["iterations"]:
        gate = it["gate"] or {"decision": "-", "reasons": []}
        console.print(f"iteration {it['iteration']} gate: [bold]{gate['decision'].upper()}[/]")
        for reason in gate["reasons"]:
            console.print(f"  · {reason}", markup=False)
    promoted = result.report["promoted"]
    console.print(f"promoted: {promoted['adapter'] if promoted else 'nothing (the base model)'}")
    console.print(f"report: {result.html} · {result.json}")


def _rate_cell(r: dict[str, Any]) -> str:
    return (
        f"{percent(r['rate'])} [{percent(r['low'])}, {percent(r['high'])}] ({r['hits']}/{r['n']})"
    )
