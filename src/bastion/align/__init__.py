"""Alignment: losses as pure functions, log-prob gathering, and short training loops.

What the align guide uses is here: the losses (:mod:`bastion.align.losses`), each trainer and
the function that runs it from a recipe (:mod:`bastion.align.run`), recipe loading,
Constitutional-AI data, unlearning and the reward model. The modules hold the rest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bastion.exports import lazy_exports

if TYPE_CHECKING:
    from bastion.align.cai import CaiPrompt, Principle, load_constitution, read_prompts, run_cai
    from bastion.align.lora import LoraSettings, add_lora
    from bastion.align.losses import (
        LOSSES,
        LossOutput,
        dpo_loss,
        gae,
        hinge_loss,
        ipo_loss,
        kl_per_token,
        kto_loss,
        orpo_loss,
        ppo_losses,
        reward_loss,
        simpo_loss,
        whiten,
    )
    from bastion.align.ppo import PpoConfig, PpoTrainer, PpoTrainSettings
    from bastion.align.preference import PreferenceConfig, PreferenceTrainer
    from bastion.align.recipe import (
        CaiRecipe,
        PpoRecipe,
        PreferenceRecipe,
        RewardRecipe,
        SftRecipe,
        UnlearnRecipe,
        load_recipe,
    )
    from bastion.align.reward import RewardModel, RewardTrainer, length_bias
    from bastion.align.rewards import build_rewards
    from bastion.align.run import (
        run_cai_recipe,
        run_ppo,
        run_preference,
        run_rm,
        run_sft,
        run_unlearn,
    )
    from bastion.align.sft import SftTrainer, sft_loss
    from bastion.align.train import TrainConfig, TrainingError, TrainResult
    from bastion.align.unlearn import UnlearnTrainer, evaluate_unlearning, npo_loss
    from bastion.align.watch import WatchSettings

# each public name and the module it comes from, imported on first use (importing one module
# of the package does not load every part of it)
_HOMES = {
    "CaiPrompt": "bastion.align.cai",
    "CaiRecipe": "bastion.align.recipe",
    "LOSSES": "bastion.align.losses",
    "LoraSettings": "bastion.align.lora",
    "LossOutput": "bastion.align.losses",
    "PpoConfig": "bastion.align.ppo",
    "PpoRecipe": "bastion.align.recipe",
    "PpoTrainSettings": "bastion.align.ppo",
    "PpoTrainer": "bastion.align.ppo",
    "PreferenceConfig": "bastion.align.preference",
    "PreferenceRecipe": "bastion.align.recipe",
    "PreferenceTrainer": "bastion.align.preference",
    "Principle": "bastion.align.cai",
    "RewardModel": "bastion.align.reward",
    "RewardRecipe": "bastion.align.recipe",
    "RewardTrainer": "bastion.align.reward",
    "SftRecipe": "bastion.align.recipe",
    "SftTrainer": "bastion.align.sft",
    "TrainConfig": "bastion.align.train",
    "TrainResult": "bastion.align.train",
    "TrainingError": "bastion.align.train",
    "UnlearnRecipe": "bastion.align.recipe",
    "UnlearnTrainer": "bastion.align.unlearn",
    "WatchSettings": "bastion.align.watch",
    "add_lora": "bastion.align.lora",
    "build_rewards": "bastion.align.rewards",
    "dpo_loss": "bastion.align.losses",
    "evaluate_unlearning": "bastion.align.unlearn",
    "gae": "bastion.align.losses",
    "hinge_loss": "bastion.align.losses",
    "ipo_loss": "bastion.align.losses",
    "kl_per_token": "bastion.align.losses",
    "kto_loss": "bastion.align.losses",
    "length_bias": "bastion.align.reward",
    "load_constitution": "bastion.align.cai",
    "load_recipe": "bastion.align.recipe",
    "npo_loss": "bastion.align.unlearn",
    "orpo_loss": "bastion.align.losses",
    "ppo_losses": "bastion.align.losses",
    "read_prompts": "bastion.align.cai",
    "reward_loss": "bastion.align.losses",
    "run_cai": "bastion.align.cai",
    "run_cai_recipe": "bastion.align.run",
    "run_ppo": "bastion.align.run",
    "run_preference": "bastion.align.run",
    "run_rm": "bastion.align.run",
    "run_sft": "bastion.align.run",
    "run_unlearn": "bastion.align.run",
    "sft_loss": "bastion.align.sft",
    "simpo_loss": "bastion.align.losses",
    "whiten": "bastion.align.losses",
}

__all__ = [
    "LOSSES",
    "CaiPrompt",
    "CaiRecipe",
    "LoraSettings",
    "LossOutput",
    "PpoConfig",
    "PpoRecipe",
    "PpoTrainSettings",
    "PpoTrainer",
    "PreferenceConfig",
    "PreferenceRecipe",
    "PreferenceTrainer",
    "Principle",
    "RewardModel",
    "RewardRecipe",
    "RewardTrainer",
    "SftRecipe",
    "SftTrainer",
    "TrainConfig",
    "TrainResult",
    "TrainingError",
    "UnlearnRecipe",
    "UnlearnTrainer",
    "WatchSettings",
    "add_lora",
    "build_rewards",
    "dpo_loss",
    "evaluate_unlearning",
    "gae",
    "hinge_loss",
    "ipo_loss",
    "kl_per_token",
    "kto_loss",
    "length_bias",
    "load_constitution",
    "load_recipe",
    "npo_loss",
    "orpo_loss",
    "ppo_losses",
    "read_prompts",
    "reward_loss",
    "run_cai",
    "run_cai_recipe",
    "run_ppo",
    "run_preference",
    "run_rm",
    "run_sft",
    "run_unlearn",
    "sft_loss",
    "simpo_loss",
    "whiten",
]

__getattr__, __dir__ = lazy_exports(__name__, _HOMES, __all__)
