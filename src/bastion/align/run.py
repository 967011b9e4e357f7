"""Recipes to results: what ``bastion align dpo`` does, callable from Python too."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bastion.align.lora import LoraSettings, add_lora
from bastion.align.preference import PreferenceConfig, PreferenceTrainer
from bastion.align.recipe import PpoRecipe, PreferenceRecipe, RewardRecipe, SftRecipe
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
    from bastion.align.ppo import PpoConfig, PpoTrainer, PpoTrainSettings, WatchSettings
    from bastion.align.rewards import build_rewards

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


def _write_summary(train: TrainConfig, summary: dict[str, Any]) -> None:
    path = Path(train.output_dir) / "summary.json"
    path.write_text(json.dumps(summary, indent=2, default=str) + "\n")
