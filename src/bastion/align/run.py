"""Recipes to results: what each ``bastion align`` command does (load the data and the model,
run, write the outputs), callable from Python too."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bastion.align.lora import LoraSettings, add_lora
from bastion.align.preference import PreferenceConfig, PreferenceTrainer
from bastion.align.recipe import (
    CaiRecipe,
    PpoRecipe,
    PreferenceRecipe,
    RewardRecipe,
    SftRecipe,
    UnlearnRecipe,
)
from bastion.align.reward import RewardTrainer
from bastion.align.sft import SftTrainer
from bastion.align.train import TrainConfig
from bastion.data.jsonl import read_conversations, read_preferences, read_unpaired
from bastion.models.packaged import load


def run_preference(
    recipe: PreferenceRecipe, *, resume: bool = False, progress: bool = True
) -> dict[str, Any]:
    """Train with a preference loss and save the adapter (or model) to ``output_dir/final``."""
    data: Any = (
        read_unpaired(recipe.data) if recipe.loss == "kto" else read_preferences(recipe.data)
    )
    eval_data = read_preferences(recipe.eval_data) if recipe.eval_data else []
    chat = load(recipe.model)
    model = chat.model.train()
    if recipe.lora is not None:
        model = add_lora(model, LoraSettings(**recipe.lora.model_dump()))
    loss_settings = recipe.model_dump(
        include={
            "loss",
            "beta",
            "label_smoothing",
            "gamma",
            "lam",
            "desirable_weight",
            "undesirable_weight",
            "max_length",
        }
    )
    train = TrainConfig(**recipe.train.model_dump())
    trainer = PreferenceTrainer(
        model, chat.tokenizer, data, PreferenceConfig(**loss_settings), train, eval_data=eval_data
    )
    before = trainer.evaluate() if eval_data else None
    result = trainer.fit(resume=resume, progress=progress)
    final = Path(train.output_dir) / "final"
    summary = {
        "steps": result.steps,
        "last": result.history[-1] if result.history else {},
        "eval_before": before,
        "eval_after": trainer.evaluate() if eval_data else None,
        "saved": str(final),
        "recipe": json.loads(recipe.model_dump_json()),
        "train_config": {k: str(v) for k, v in asdict(train).items()},
    }
    if trainer.is_main_process:  # under torchrun, one process writes
        trainer.model.save_pretrained(str(final))
        chat.tokenizer.save_pretrained(str(final))
        _write_summary(train, summary)
    return summary


def run_sft(recipe: SftRecipe, *, resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Supervised fine-tuning on conversations; saves to ``output_dir/final``."""
    conversations = read_conversations(recipe.data)
    chat = load(recipe.model)
    model = chat.model.train()
    if recipe.lora is not None:
        model = add_lora(model, LoraSettings(**recipe.lora.model_dump()))
    train = TrainConfig(**recipe.train.model_dump())
    trainer = SftTrainer(
        model,
        chat.tokenizer,
        conversations,
        train,
        max_length=recipe.max_length,
        packing=recipe.packing,
    )
    result = trainer.fit(resume=resume, progress=progress)
    final = Path(train.output_dir) / "final"
    summary = {
        "steps": result.steps,
        "last": result.history[-1] if result.history else {},
        "saved": str(final),
    }
    if trainer.is_main_process:
        trainer.model.save_pretrained(str(final))
        chat.tokenizer.save_pretrained(str(final))
        _write_summary(train, summary)
    return summary


def run_rm(recipe: RewardRecipe, *, resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Reward-model training with the length-bias diagnostic on held-out pairs."""
    pairs = read_preferences(recipe.data)
    eval_pairs = read_preferences(recipe.eval_data) if recipe.eval_data else []
    chat = load(recipe.model)
    train = TrainConfig(**recipe.train.model_dump())
    trainer = RewardTrainer(
        chat.model.train(),
        chat.tokenizer,
        pairs,
        train,
        max_length=recipe.max_length,
        center_coefficient=recipe.center_coefficient,
    )
    result = trainer.fit(resume=resume, progress=progress)
    final = Path(train.output_dir) / "final"
    summary = {
        "steps": result.steps,
        "last": result.history[-1] if result.history else {},
        "eval": trainer.evaluate(eval_pairs) if eval_pairs else None,
        "saved": str(final),
    }
    if trainer.is_main_process:
        trainer.model.save(final)
        _write_summary(train, summary)
    return summary


def run_ppo(recipe: PpoRecipe, *, resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """RLHF with PPO from a recipe; saves the policy (adapter) and value head to ``final``."""
    from bastion.align.cai import read_prompts
    from bastion.align.ppo import PpoConfig, PpoTrainer, PpoTrainSettings
    from bastion.align.rewards import build_rewards
    from bastion.align.watch import WatchSettings

    prompts = read_prompts(recipe.prompts)
    rewards = build_rewards(recipe.rewards)
    chat = load(recipe.model)
    model = chat.model.train()
    if recipe.lora is not None:
        model = add_lora(model, LoraSettings(**recipe.lora.model_dump()))
    settings = recipe.ppo.model_dump()
    settings["watch"] = WatchSettings(**settings["watch"])
    train = PpoTrainSettings(**recipe.train.model_dump())
    trainer = PpoTrainer(
        model, chat.tokenizer, prompts, rewards, PpoConfig(**settings), train, eos_ids=chat.eos_ids
    )
    result = trainer.fit(resume=resume, progress=progress)
    final = Path(train.output_dir) / "final"
    summary = {
        "iterations": result.iterations,
        "first": result.history[0] if result.history else {},
        "last": result.history[-1] if result.history else {},
        "flags": result.flags,
        "stopped": result.stopped,
        "saved": str(final),
        "recipe": json.loads(recipe.model_dump_json()),
    }
    if trainer.accelerator.is_main_process:
        trainer.save(final)
        path = Path(train.output_dir) / "summary.json"
        path.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return summary


def run_cai_recipe(
    recipe: CaiRecipe, *, is_harmful: Callable[[str], bool] | None = None
) -> dict[str, Any]:
    """Constitutional-AI data from a recipe: ``sft.jsonl``, ``preferences.jsonl``,
    ``provenance.jsonl`` and ``report.json`` in ``out``; returns the report. ``is_harmful``
    labels the prompts the file leaves unlabelled (see :func:`~bastion.align.cai.run_cai`)."""
    from bastion.align.cai import load_constitution, read_prompts, run_cai, write_outputs
    from bastion.errors import DataError
    from bastion.models import load_chat_model

    principles = load_constitution(recipe.constitution)
    prompts = read_prompts(recipe.prompts)
    chat = load_chat_model(recipe.model)
    try:
        results = run_cai(
            chat, prompts, principles, per_prompt=recipe.principles,
            max_new_tokens=recipe.max_new_tokens, seed=recipe.seed, is_harmful=is_harmful,
        )  # fmt: skip
    except DataError as exc:  # prompts without a label: name the file
        raise exc.at(recipe.prompts) from None
    meta = {
        "model": getattr(chat, "name", recipe.model),
        "principles": [p.name for p in principles],
    }
    return write_outputs(results, recipe.out, meta)


def run_unlearn(recipe: UnlearnRecipe, *, progress: bool = True) -> dict[str, Any]:
    """Unlearning from a recipe: the model in ``out/model`` and a before/after report in
    ``out/report.json`` (see :func:`~bastion.align.unlearn.evaluate_unlearning`)."""
    from bastion.align.unlearn import UnlearnTrainer, evaluate_unlearning

    forget, retain = read_conversations(recipe.forget), read_conversations(recipe.retain)
    probes = read_conversations(recipe.rephrased) if recipe.rephrased else []
    chat = load(recipe.model)
    before = evaluate_unlearning(chat, forget, retain, probes)
    train = TrainConfig(
        output_dir=recipe.out / "train", max_steps=recipe.steps, batch_size=recipe.batch_size,
        lr=recipe.lr,
    )  # fmt: skip
    trainer = UnlearnTrainer(
        chat.model, chat.tokenizer, forget, retain, train,
        method=recipe.method, beta=recipe.beta, kl_coef=recipe.kl_coef,
    )  # fmt: skip
    trainer.fit(progress=progress)
    chat.model = trainer.model
    after = evaluate_unlearning(chat, forget, retain, probes)
    chat.model.save_pretrained(str(recipe.out / "model"))
    chat.tokenizer.save_pretrained(str(recipe.out / "model"))
    settings = recipe.model_dump(include={"method", "steps", "lr", "beta", "kl_coef"})
    report = {**settings, "before": before, "after": after}
    (recipe.out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def _write_summary(train: TrainConfig, summary: dict[str, Any]) -> None:
    path = Path(train.output_dir) / "summary.json"
    path.write_text(json.dumps(summary, indent=2, default=str) + "\n")
