"""``bastion guard``: scan, evaluate and train the runtime rails."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from bastion.cli.common import (
    console,
    writable_folder,
)
from bastion.errors import BastionError
from bastion.guard.training.tasks import TRAINERS, train

app = typer.Typer(help="Runtime rails: scan texts with a guard policy.", no_args_is_help=True)
TASK_CHOICES = ", ".join(TRAINERS)  # the classifiers Bastion trains, from the trainers' registry


def _check_task(task: str) -> None:
    if task not in TRAINERS:
        raise BastionError(f"--task must be one of {TASK_CHOICES}, got {task!r}")


def _guard_texts(text: str | None, jsonl: Path | None) -> list[str]:
    """The texts to scan: one given inline, or one per JSONL line (a string, or an object
    with a ``text`` key); a bad line is an error naming the file and line."""
    import json

    if (text is None) == (jsonl is None):
        raise BastionError("give one TEXT or --jsonl FILE")
    if text is not None:
        return [text]
    assert jsonl is not None
    try:
        lines = jsonl.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise BastionError(f"{jsonl}: cannot read ({exc.strerror})") from None
    texts = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BastionError(f"{jsonl}:{number}: not JSON ({exc.msg})") from None
        value = row.get("text") if isinstance(row, dict) else row
        if not isinstance(value, str):
            raise BastionError(f"{jsonl}:{number}: expected a string or an object with 'text'")
        texts.append(value)
    return texts


@app.command("scan")
def guard_scan(
    text: Annotated[str | None, typer.Argument(help="The text to scan.")] = None,
    jsonl: Annotated[
        Path | None, typer.Option(help="JSONL file: one string or {'text': …} per line.")
    ] = None,
    policy: Annotated[
        Path | None, typer.Option(help="Policy YAML (default: the shipped policy).")
    ] = None,
    stage: Annotated[str, typer.Option(help="input, output or context.")] = "input",
) -> None:
    """One JSON decision per text on stdout: action, masked text, every scanner's result."""
    import json

    from bastion.guard.pipeline import Guard
    from bastion.guard.policy import STAGES, load_policy

    if stage not in STAGES:
        raise BastionError(f"--stage must be one of {', '.join(STAGES)}, got {stage!r}")
    guard = Guard(load_policy(policy))
    for item in _guard_texts(text, jsonl):
        if stage == "context":
            result = guard.check_context([item])
            row: dict[str, Any] = {
                "stage": "context",
                "flagged": result.flagged,
                "documents": list(result.documents),
                "removed": [
                    {"passage": p, "scanner": r.scanner, "reason": r.reason}
                    for _, p, r in result.removed
                ],
            }
        else:
            row = guard.check(item, stage).to_dict()
        sys.stdout.write(json.dumps(row) + "\n")  # ASCII: lone surrogates stay escaped


@app.command("eval")
def guard_eval(
    data: Annotated[
        Path | None, typer.Option(help="JSONL: {'text', 'label' (1: stop it), 'source'}.")
    ] = None,
    policy: Annotated[
        Path | None, typer.Option(help="Policy YAML (default: the shipped policy).")
    ] = None,
    stage: Annotated[str, typer.Option(help="input, output or context.")] = "input",
    out: Annotated[Path | None, typer.Option(help="Also write the report as JSON here.")] = None,
    by_source: Annotated[
        bool,
        typer.Option(
            "--by-source",
            help="Leave one source out: train a classifier without each training source, "
            "set its thresholds on the others, measure it on the held-out one.",
        ),
    ] = False,
    task: Annotated[
        str, typer.Option(help=f"With --by-source: the classifier ({TASK_CHOICES}).")
    ] = "harmful",
    sources: Annotated[
        str | None, typer.Option(help="With --by-source: only these sources, comma-separated.")
    ] = None,
    encoder: Annotated[
        bool,
        typer.Option(
            help="With --by-source: the harmful rail's two stages (an encoder trained per "
            "fold; sources held out in --folds groups, about an hour on 2 cores)."
        ),
    ] = False,
    folds: Annotated[
        int | None, typer.Option(min=2, help="Hold sources out in this many groups.")
    ] = None,
) -> None:
    """A policy on labelled texts (--data), or a classifier out of source (--by-source)."""
    import json

    if by_source:
        _check_task(task)
        from bastion.guard.training.fit import by_source as leave_sources_out

        names = [s.strip() for s in sources.split(",") if s.strip()] if sources else None
        with console.status("leaving each source out…") as status:
            report = leave_sources_out(
                task,
                sources=names,
                encoder=encoder,
                folds=folds,
                progress=lambda s: status.update(f"holding out {s}…"),
            )
        _print_by_source(task, report)
    else:
        from bastion.guard.evaluate import evaluate_labelled
        from bastion.guard.policy import STAGES

        if data is None:
            raise BastionError("give --data FILE (labelled texts) or --by-source")
        if stage not in STAGES or stage == "context":
            raise BastionError(f"--stage must be input or output, got {stage!r}")
        with console.status("loading the guard…") as status:
            report = evaluate_labelled(data, policy, stage, progress=status.update)
        _print_policy_report(report)
    if out is not None:
        writable_folder(out.parent, "--out")
        out.write_text(json.dumps(report, indent=2) + "\n")


def _print_policy_report(report: dict[str, Any]) -> None:
    table = Table("metric", "value")
    for key in ("rows", "positives", "negatives", "tpr", "fpr", "review_rate", "precision"):
        value = report[key]
        table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    table.add_row("roc_auc", f"{report['roc_auc']:.4f}")
    table.add_row("tpr_at_1pct_fpr", f"{report['tpr_at_1pct_fpr']:.4f}")
    lat = report["latency_ms"]
    table.add_row(
        "latency p50/p95/p99", f"{lat['p50']:.2f} / {lat['p95']:.2f} / {lat['p99']:.2f} ms"
    )
    console.print(table)
    per_source = Table("source", "rows", "positives", "blocked", "reviewed")
    for name, entry in sorted(report["by_source"].items()):
        per_source.add_row(
            name,
            str(entry["n"]),
            str(entry["positives"]),
            f"{entry['block_rate']:.3f}",
            f"{entry['review_rate']:.3f}",
        )
    console.print(per_source)


def _print_by_source(task: str, report: dict[str, Any]) -> None:
    def pct(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.1f}%"

    for title, key in (("out of source", "out_of_source"), ("in source", "in_source")):
        summary = report[key]
        table = Table(
            "source", "positives", "caught", "negatives", "blocked", "reviewed",
            title=f"{task}: {title} (block at {summary['target_fpr']:.1%} FPR on other sources)",
        )  # fmt: skip
        for row in summary["sources"]:
            table.add_row(
                row["source"],
                str(row["positives"]),
                pct(row["tpr"]),
                str(row["negatives"]),
                pct(row["fpr"]),
                pct(row["reviewed"] / row["negatives"] if row["negatives"] else None),
            )
        pooled, spread = summary["pooled"], summary["spread"]
        table.add_row(
            "pooled", "", pct(pooled["tpr"]), "", pct(pooled["fpr"]), pct(pooled["review_rate"])
        )
        if spread["tpr"] and spread["fpr"]:
            table.add_row(
                "worst source", "", pct(spread["tpr"]["worst"]), "", pct(spread["fpr"]["worst"]), ""
            )
        console.print(table)


@app.command("train")
def guard_train(
    task: Annotated[str, typer.Option(help=f"The classifier: {TASK_CHOICES}.")] = "injection",
    out: Annotated[
        Path | None, typer.Option(help="Where to write the weights (default: runs/guard/TASK).")
    ] = None,
    target_fpr: Annotated[
        float, typer.Option(help="False-positive rate the block threshold is set for.")
    ] = 0.005,
    encoder: Annotated[
        bool, typer.Option(help="harmful: also train the encoder stage (5-20 min on 2 cores).")
    ] = True,
) -> None:
    """Train a guard classifier on the pinned corpora and the written sets; weights + report.

    The shipped weights are this command's output with its defaults, e.g.
    ``bastion guard train --task harmful --out src/bastion/guard/weights/harmful.safetensors``.
    """
    _check_task(task)
    if not 0 < target_fpr < 1:
        raise BastionError(f"--target-fpr must be in (0, 1), got {target_fpr}")
    out = out or Path("runs/guard") / f"{task}.safetensors"
    writable_folder(out.parent, "--out")
    with console.status(f"training the {task} classifier…") as status:
        trained = train(task, out, target_fpr=target_fpr, encoder=encoder, progress=status.update)
    first, *later = trained.stages
    console.print(f"threshold {first.threshold:.4f} · weights: {first.weights}")
    for stage in later:
        gate = f"gate {stage.gate:.4f}, " if stage.gate is not None else ""
        console.print(f"{stage.name} stage: {gate}threshold {stage.threshold:.4f}")
        console.print(f"weights: {stage.weights}")
