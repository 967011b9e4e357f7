"""Alignment: losses as pure functions, log-prob gathering, and short training loops.

What the align guide uses is here: the losses (:mod:`bastion.align.losses`), each trainer and
the function that runs it from a recipe (:mod:`bastion.align.run`), recipe loading,
Constitutional-AI data, unlearning and the reward model. The modules hold the rest.
"""

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
