"""``bastion align``: train a model to prefer safe and helpful answers."""

from __future__ import annotations

import functools
import operator
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from bastion.cli.common import RecipeOverrides, Resume, console, writable_folder

app = typer.Typer(help="Train a model to prefer safe and helpful answers.", no_args_is_help=True)


def run_recipe(
    recipe: Path | None,
    overrides: list[str],
    kind: type[Any],
    runner: Callable[..., Any],
    flags: dict[str, Any] | None = None,
    *,
    output: str = "train.output_dir",
) -> tuple[Any, dict[str, Any] | None]:
    """Load and check a recipe (``flags`` given override its keys), check that its ``output``
    folder is writable, run it; the summary only on the first process (torchrun)."""
    from bastion.align.recipe import load_recipe
    from bastion.align.train import shutdown_distributed

    parsed = load_recipe(recipe, overrides, kind, flags)
    writable_folder(operator.attrgetter(output)(parsed), output)
    try:
        summary = runner(parsed)
    finally:
        shutdown_distributed()
    return parsed, summary if os.environ.get("RANK", "0") == "0" else None


@app.command("dpo")
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


@app.command("ppo")
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


@app.command("sft")
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


@app.command("cai")
def align_cai(
    recipe: Annotated[
        Path | None, typer.Argument(help="YAML recipe (see recipes/cai.yaml).")
    ] = None,
    set_: RecipeOverrides = None,
    prompts: Annotated[
        Path | None, typer.Option(help="JSONL (prompt, optional harmful) or text.")
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(help="packaged (default), a model name/folder/GGUF, or openai:MODEL@URL."),
    ] = None,
    constitution: Annotated[
        Path | None, typer.Option(help="A constitution YAML (default: Bastion's).")
    ] = None,
    principles: Annotated[
        int | None, typer.Option(help="Principles drawn per prompt (default: all).")
    ] = None,
    max_new_tokens: Annotated[int | None, typer.Option(help="Tokens per answer (256).")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the principle draws (0).")] = None,
    out: Annotated[
        Path | None, typer.Option(help="Folder for sft/preferences/provenance (runs/cai).")
    ] = None,
) -> None:
    """Constitutional AI: answer, critique and revise each prompt; keep the revisions a judge
    confirms improve; write SFT rows, preference pairs and the provenance of every step.
    Options override the recipe's keys of the same name."""
    from bastion.align.recipe import CaiRecipe
    from bastion.align.run import run_cai_recipe

    flags = {"prompts": prompts, "model": model, "constitution": constitution, "seed": seed,
             "principles": principles, "max_new_tokens": max_new_tokens, "out": out}  # fmt: skip
    with console.status("answering, critiquing and revising…"):
        parsed, report = run_recipe(
            recipe, list(set_ or []), CaiRecipe,
            lambda r: run_cai_recipe(r, is_harmful=_is_harmful_request), flags, output="out",
        )  # fmt: skip
    if report is None:
        return
    folder = parsed.out
    console.print(
        f"kept {report['kept']} of {report['prompts']} revisions "
        f"({report['harmful_prompts']} harmful prompts) · {folder / 'sft.jsonl'} · "
        f"{folder / 'preferences.jsonl'} · {folder / 'provenance.jsonl'}"
    )
    for why, count in report["reasons"].items():
        console.print(f"  {count:4d}  {why}")


@app.command("unlearn")
def align_unlearn(
    recipe: Annotated[
        Path | None, typer.Argument(help="YAML recipe (see recipes/unlearn.yaml).")
    ] = None,
    set_: RecipeOverrides = None,
    forget: Annotated[
        Path | None, typer.Option(help="Conversations to forget (messages JSONL).")
    ] = None,
    retain: Annotated[
        Path | None, typer.Option(help="Conversations to keep (messages JSONL).")
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(help="Packaged model name or model folder (smollm2-135m-instruct)."),
    ] = None,
    method: Annotated[str | None, typer.Option(help="ga, gd or npo (npo).")] = None,
    steps: Annotated[int | None, typer.Option(help="Optimizer steps (20).")] = None,
    lr: Annotated[float | None, typer.Option(help="Learning rate (5e-5).")] = None,
    beta: Annotated[float | None, typer.Option(help="NPO's beta (0.1).")] = None,
    kl_coef: Annotated[
        float | None, typer.Option(help="Weight of KL to the original on retain (1.0).")
    ] = None,
    batch_size: Annotated[int | None, typer.Option(help="Forget examples per step (4).")] = None,
    rephrased: Annotated[
        Path | None, typer.Option(help="Rephrased forget prompts with their answers.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Folder for the model and report.json (runs/unlearn).")
    ] = None,
) -> None:
    """Make a model forget a set of conversations and keep another; before/after report.
    Options override the recipe's keys of the same name."""
    from bastion.align.recipe import UnlearnRecipe
    from bastion.align.run import run_unlearn

    flags = {"forget": forget, "retain": retain, "model": model, "method": method,
             "steps": steps, "lr": lr, "beta": beta, "kl_coef": kl_coef,
             "batch_size": batch_size, "rephrased": rephrased, "out": out}  # fmt: skip
    parsed, report = run_recipe(
        recipe, list(set_ or []), UnlearnRecipe, run_unlearn, flags, output="out"
    )
    if report is None:
        return
    before, after = report["before"], report["after"]
    for part in after:
        b, a = before[part], after[part]
        console.print(
            f"{part}: token log-likelihood {b['mean_token_logp']:.3f} → {a['mean_token_logp']:.3f}"
            f" · answered {b['answered']:.0%} → {a['answered']:.0%}"
        )
    console.print(f"model: {parsed.out / 'model'} · report: {parsed.out / 'report.json'}")


def _is_harmful_request(text: str) -> bool:
    """The guard's harmful-request classifier: labels the CAI prompts a file leaves open."""
    return bool(_harmful_request_scanner().scan(text).flagged)


@functools.cache
def _harmful_request_scanner() -> Any:
    from bastion.guard.scanners import HarmfulRequestScanner

    return HarmfulRequestScanner()


@app.command("rm")
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
