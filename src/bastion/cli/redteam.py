"""``bastion redteam``: probe a model with harmful and benign prompts."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich import progress as bars
from rich.table import Table

from bastion.cli.common import console, percent, writable_folder
from bastion.errors import BastionError

if TYPE_CHECKING:
    from bastion.redteam.smoke import SmokeRow

app = typer.Typer(help="Probe a model with harmful and benign prompts.", no_args_is_help=True)


@app.command("smoke")
def redteam_smoke(
    model: Annotated[
        str, typer.Option(help="Packaged model name or model folder.")
    ] = "smollm2-135m-instruct",
    harmful: Annotated[int, typer.Option(help="Harmful prompts (HarmBench val).")] = 6,
    benign: Annotated[int, typer.Option(help="Benign-but-sensitive prompts.")] = 6,
    max_new_tokens: Annotated[int, typer.Option(help="Tokens per reply.")] = 96,
    out: Annotated[Path, typer.Option(help="Folder for results.jsonl.")] = Path("runs/smoke"),
) -> None:
    """Harmful and benign prompts through a real model; a table of replies with refusal yes/no."""
    from bastion.models.packaged import load as load_chat
    from bastion.redteam import smoke

    smoke.check_smoke(harmful, benign, max_new_tokens)
    writable_folder(out, "--out")  # before minutes of generation, not after
    with console.status("loading the model and the prompts…"):
        chat = load_chat(model)
        prompts = smoke.smoke_prompts(harmful, benign)
    with _progress() as progress:
        task = progress.add_task(f"generating with {chat.name}", total=len(prompts))
        advance = functools.partial(progress.advance, task)
        rows = smoke.run_smoke(chat, prompts, max_new_tokens=max_new_tokens, on_batch=advance)
    console.print(_smoke_table(chat.name, rows))
    console.print(smoke.SmokeSummary.of(rows).line())
    console.print(f"results: {smoke.save_rows(rows, out)}")


def _progress(*extra: bars.ProgressColumn) -> bars.Progress:
    columns = (bars.TextColumn("{task.description}"), bars.BarColumn(), bars.MofNCompleteColumn())
    return bars.Progress(*columns, bars.TimeElapsedColumn(), *extra, console=console)


def _smoke_table(model: str, rows: list[SmokeRow]) -> Table:
    from bastion.text import excerpt

    table = Table(title=f"{model}: refusal on harmful and benign prompts")
    for column in ("id", "kind", "category"):
        table.add_column(column, no_wrap=True, overflow="ellipsis", max_width=16)
    table.add_column("prompt (excerpt)", no_wrap=True, overflow="ellipsis", ratio=1)
    table.add_column("response (excerpt)", no_wrap=True, overflow="ellipsis", ratio=1)
    table.add_column("refused", no_wrap=True)
    for row in rows:
        good = "green" if row.correct else "red"
        refused = f"[{good}]{'yes' if row.refused else 'no'}[/]"
        prompt, response = excerpt(row.prompt, 40), excerpt(row.response, 60)
        table.add_row(row.id, row.kind, row.category, prompt, response, refused)
    return table


@app.command("attacks")
def redteam_attacks() -> None:
    """Every registered attack with its family and a one-line description."""
    from bastion.redteam.attacks import ATTACKS

    table = Table(title=f"{len(ATTACKS)} attacks")
    for column in ("attack", "family", "what it does"):
        table.add_column(column)
    for name, cls in ATTACKS.items():
        table.add_row(name, cls.family, cls.description)
    console.print(table)


@app.command("run")
def redteam_run(
    target: Annotated[
        str,
        typer.Option(help="packaged, a model name/folder/GGUF, or openai:MODEL@URL."),
    ] = "packaged",
    behaviors: Annotated[
        str, typer.Option(help="A harmful-request corpus name or a JSONL/text file.")
    ] = "harmbench-val",
    attacks: Annotated[
        str, typer.Option(help="Comma-separated attacks or families; 'all' for every one.")
    ] = "direct,base64,rot13,persona,fiction,past_tense,few_shot,indirect_injection",
    samples: Annotated[int, typer.Option(help="Samples per behaviour and attack.")] = 1,
    limit: Annotated[
        int | None, typer.Option(help="Behaviours to use (a stable-hash choice).")
    ] = 8,
    benign: Annotated[int, typer.Option(help="Over-refusal prompts (0: none).")] = 16,
    guard: Annotated[bool, typer.Option(help="Put the default guard in front.")] = False,
    policy: Annotated[Path | None, typer.Option(help="A guard policy to put in front.")] = None,
    attacker: Annotated[
        str | None,
        typer.Option(help="Attacker model for crescendo and pair (same forms as --target)."),
    ] = None,
    judge: Annotated[
        str | None,
        typer.Option(help="An LLM harm judge, openai:MODEL@URL (default: Bastion's classifier)."),
    ] = None,
    max_new_tokens: Annotated[int, typer.Option(help="Tokens per reply.")] = 96,
    batch_size: Annotated[int, typer.Option(help="Items sent to the target at once.")] = 64,
    seed: Annotated[int, typer.Option(help="Seed of every attack's choices.")] = 0,
    out: Annotated[Path, typer.Option(help="Run folder (resumes if results are there).")] = Path(
        "runs/redteam"
    ),
) -> None:
    """Behaviours × attacks × samples against a target; results.jsonl, summary.json,
    report.html. A run folder with results in it is resumed: finished items are not redone."""
    from bastion.redteam.campaign import Campaign, CampaignSpec

    spec = CampaignSpec(
        target=target, behaviors=behaviors, samples=samples, limit=limit, benign=benign,
        attacks=tuple(a.strip() for a in attacks.split(",") if a.strip()),
        guarded=guard, policy=policy, attacker=attacker, judge=judge,
        max_new_tokens=max_new_tokens, batch_size=batch_size, seed=seed,
    )  # fmt: skip
    writable_folder(out, "--out")
    with console.status("loading the target, behaviours and judges…"):
        campaign = Campaign.load(spec)
    with _progress(bars.TextColumn("{task.fields[live]}")) as progress:
        bar = _CampaignBar(progress, f"red-teaming {campaign.target.name}")
        done = campaign.run(out, bar)
    _print_summary(done.summary)
    console.print(
        f"results: {out / 'results.jsonl'} · summary: {done.summary_path} · "
        f"report: {done.report_path}"
    )


class _CampaignBar:
    """A :class:`~bastion.redteam.campaign.CampaignProgress`: a bar with the running rates."""

    def __init__(self, progress: bars.Progress, description: str) -> None:
        self.progress, self.description = progress, description
        self.task: bars.TaskID | None = None

    def start(self, total: int, done: int, rates: str) -> None:
        self.task = self.progress.add_task(
            self.description, total=total, completed=done, live=rates
        )

    def advance(self, n: int, rates: str) -> None:
        if self.task is not None:
            self.progress.update(self.task, advance=n, live=rates)


def _print_summary(summary: dict[str, Any]) -> None:
    from bastion.redteam.stats import Rate

    table = Table(title="attack success rate by family (Wilson 95%)")
    for column in ("family", "ASR", "interval", "n"):
        table.add_column(column)
    for family, r in summary["by_family"].items():
        rate = Rate(r["hits"], r["n"])
        low, high = rate.interval
        table.add_row(family, f"{rate.value:.1%}", f"{low:.1%} – {high:.1%}", str(r["n"]))
    console.print(table)
    asr, over = summary["asr"], summary["over_refusal"]
    console.print(
        f"ASR {Rate(asr['hits'], asr['n'])} · over-refusal {Rate(over['hits'], over['n'])}"
    )


@app.command("chat")
def redteam_chat(
    target: Annotated[
        str, typer.Option(help="packaged, a model name/folder/GGUF, or openai:MODEL@URL.")
    ] = "packaged",
    guard: Annotated[bool, typer.Option(help="Put the default guard in front.")] = False,
    system: Annotated[str | None, typer.Option(help="The target's system prompt.")] = None,
    max_new_tokens: Annotated[int, typer.Option(help="Tokens per reply.")] = 256,
    out: Annotated[Path, typer.Option(help="Folder for the session's results.")] = Path(
        "runs/redteam-manual"
    ),
) -> None:
    """Talk with a target by hand; helpers encode or frame the next message, /finding marks
    an exchange. Saved in the campaign format (results.jsonl, summary.json, report.html)."""
    from bastion.redteam.manual import HELP, Session
    from bastion.redteam.targets import make_target

    if max_new_tokens < 1:
        raise BastionError(f"--max-new-tokens must be at least 1, got {max_new_tokens}")
    writable_folder(out, "--out")
    with console.status("loading the target…"):
        the_target = make_target(
            target, max_new_tokens=max_new_tokens, system=system, guarded=guard
        )
    session = Session(the_target, out, say=lambda text: console.print(text, markup=False))
    console.print(f"talking with {the_target.name}; {HELP}", markup=False)
    while True:
        try:
            line = input("you> ")
        except EOFError:
            break
        if not session.handle(line):
            break
    summary = session.close()
    if summary:
        manual = summary["manual"]
        console.print(
            f"{manual['exchanges']} exchanges, {manual['findings']} findings · "
            f"results: {out / 'results.jsonl'} · report: {out / 'report.html'}"
        )


@app.command("report")
def redteam_report(run: Annotated[Path, typer.Argument(help="A red-team run folder.")]) -> None:
    """Summarize a run folder's results again and rewrite summary.json and report.html."""
    from bastion.redteam.campaign import write_outputs
    from bastion.redteam.report import read_summary
    from bastion.redteam.results import SUMMARY, load_results

    results = load_results(run)
    previous = read_summary(run) if (run / SUMMARY).exists() else {}
    keep = ("target", "behaviors", "attacks", "samples", "seed", "max_new_tokens", "guarded")
    done = write_outputs(run, results, {k: previous[k] for k in keep if k in previous})
    _print_summary(done.summary)
    console.print(f"report: {done.report_path}")


@app.command("compare")
def redteam_compare(
    run_a: Annotated[Path, typer.Argument(help="The baseline run folder.")],
    run_b: Annotated[Path, typer.Argument(help="The run to compare with it.")],
    fail_above: Annotated[
        float | None, typer.Option(help="Exit 1 when run B's overall ASR is above this rate.")
    ] = None,
) -> None:
    """Per-family ASR of two runs, the difference and its significance (two-proportion test)."""
    from bastion.redteam.report import compare, read_summary

    if fail_above is not None and not 0 <= fail_above <= 1:
        raise BastionError(f"--fail-above must be a rate in [0, 1], got {fail_above}")
    a, b = read_summary(run_a), read_summary(run_b)
    table = Table(title=f"{run_a} → {run_b}")
    for column in ("group", "A", "B", "B − A", "p", ""):
        table.add_column(column)
    for row in compare(a, b):
        p = "-" if row["p_value"] != row["p_value"] else f"{row['p_value']:.3f}"
        mark = "significant" if row["significant"] else ""
        cells = (percent(row["a"]), percent(row["b"]), percent(row["difference"]))
        table.add_row(row["group"], *cells, p, mark)
    console.print(table)
    if fail_above is not None and b["asr"]["rate"] > fail_above:
        console.print(f"[red]ASR {b['asr']['rate']:.1%} is above {fail_above:.1%}[/]")
        raise typer.Exit(1)


@app.command("seeds")
def redteam_seeds(
    run: Annotated[Path, typer.Argument(help="A red-team run folder.")],
    index: Annotated[
        Path | None, typer.Option(help="The known-attack index folder (default: the cache's).")
    ] = None,
) -> None:
    """Add a run's successful attack prompts to the guard's known-attack index."""
    from bastion.guard.scanners import KnownAttackScanner
    from bastion.redteam.seeds import add_seeds_to_guard, read_seeds

    seeds = read_seeds(run)
    if not seeds:
        console.print(f"{run}: no successful attacks to add")
        return
    with console.status("loading the known-attack index…"):
        scanner = KnownAttackScanner(index=index)
    added = add_seeds_to_guard(run, scanner)
    console.print(f"{added} of {len(seeds)} prompts were new to {scanner.folder}")


@app.command("judges")
def redteam_judges() -> None:
    """How each judge agrees with the held-out human labels (accuracy, precision, recall, κ)."""
    from bastion.judges import judge_agreement

    table = Table(title="judges against held-out human labels")
    for column in ("judge", "n", "accuracy", "precision", "recall", "Cohen's κ"):
        table.add_column(column)
    for name, m in judge_agreement().items():
        table.add_row(
            name, str(m["n"]), f"{m['accuracy']:.3f}", f"{m['precision']:.3f}",
            f"{m['recall']:.3f}", f"{m['kappa']:.3f}",
        )  # fmt: skip
    console.print(table)
