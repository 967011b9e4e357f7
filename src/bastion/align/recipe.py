"""Training recipes: readable YAML, validated at load with errors that name the key.

A recipe has the model, the data, the loss settings, optional LoRA settings and the training
settings; ``--set key.path=value`` on the command line overrides any of them (values are read as
YAML, so ``--set train.lr=1e-5`` is a number). Samples live in ``recipes/``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field

from bastion.config import StrictModel, validate
from bastion.errors import ConfigError


class LoraRecipe(StrictModel):
    r: int = Field(16, ge=1)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"]
    )


class TrainRecipe(StrictModel):
    output_dir: Path = Path("runs/align")
    epochs: int = Field(1, ge=1)
    max_steps: int | None = Field(None, ge=1)
    batch_size: int = Field(4, ge=1)
    grad_accum: int = Field(1, ge=1)
    lr: float = Field(5e-6, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    warmup_ratio: float = Field(0.0, ge=0, lt=1)
    max_grad_norm: float = Field(1.0, ge=0)
    seed: int = 0
    log_every: int = Field(1, ge=1)
    save_every: int | None = Field(None, ge=1)
    mixed_precision: str = Field("auto", pattern="^(auto|no|bf16|fp16)$")
    gradient_checkpointing: bool = False


class PreferenceLoss(StrictModel):
    """Which loss of the DPO family, and its hyper-parameters (the preference recipe's and the
    closed loop's ``align:`` section share these keys)."""

    loss: str = Field("dpo", pattern="^(dpo|robust|hinge|ipo|kto|orpo|simpo)$")
    beta: float = Field(0.1, gt=0)
    label_smoothing: float = Field(0.0, ge=0, lt=0.5)
    gamma: float = 0.5
    lam: float = Field(0.1, ge=0)


class PreferenceRecipe(PreferenceLoss):
    model: str = "smollm2-135m-instruct"
    data: Path
    eval_data: Path | None = None
    desirable_weight: float = Field(1.0, gt=0)
    undesirable_weight: float = Field(1.0, gt=0)
    max_length: int = Field(512, ge=2)
    lora: LoraRecipe | None = LoraRecipe()
    train: TrainRecipe = TrainRecipe()


class SftRecipe(StrictModel):
    model: str = "smollm2-135m-instruct"
    data: Path  # JSONL of {"messages": [...]}
    max_length: int = Field(1024, ge=2)
    packing: bool = True  # a micro-batch in one row without padding (same loss, less work)
    lora: LoraRecipe | None = LoraRecipe()
    train: TrainRecipe = TrainRecipe()


class RewardRecipe(StrictModel):
    model: str = "smollm2-135m-instruct"  # the trunk: an SFT or policy model
    data: Path  # JSONL of prompt/chosen/rejected (an optional meta.margin per pair)
    eval_data: Path | None = None
    max_length: int = Field(512, ge=2)
    center_coefficient: float = Field(0.0, ge=0)
    train: TrainRecipe = TrainRecipe()


class PpoTrainRecipe(StrictModel):
    output_dir: Path = Path("runs/ppo")
    lr: float = Field(1e-5, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    max_grad_norm: float = Field(1.0, ge=0)
    seed: int = 0
    save_every: int | None = Field(None, ge=1)  # iterations between checkpoints
    mixed_precision: str = Field("auto", pattern="^(auto|no|bf16|fp16)$")
    gradient_checkpointing: bool = False


class RewardSpec(StrictModel):
    kind: str = Field(pattern="^(safety|refusal|harm|reward_model|callable)$")
    weight: float = 1.0
    path: Path | None = None  # reward_model: the folder bastion align rm saved
    base: str = "smollm2-135m-instruct"  # reward_model: the trunk it was trained on
    function: str | None = None  # callable: module:function


class WatchRecipe(StrictModel):
    window: int = Field(5, ge=2)
    kl_limit: float = Field(10.0, gt=0)
    length_factor: float = Field(2.0, gt=1)
    repetition_limit: float = Field(0.5, gt=0, lt=1)
    repetition_share: float = Field(0.5, ge=0, lt=1)
    stop: bool = False


class PpoSettings(StrictModel):
    iterations: int = Field(20, ge=1)
    batch_size: int = Field(8, ge=1)
    mini_batch_size: int = Field(4, ge=1)
    ppo_epochs: int = Field(2, ge=1)
    max_new_tokens: int = Field(48, ge=1)
    temperature: float = Field(0.7, gt=0)
    top_p: float = Field(1.0, gt=0, le=1)
    gamma: float = Field(1.0, ge=0, le=1)
    lam: float = Field(0.95, ge=0, le=1)
    cliprange: float = Field(0.2, gt=0)
    cliprange_value: float = Field(0.2, gt=0)
    vf_coef: float = Field(0.1, ge=0)
    kl_coef: float = Field(0.05, ge=0)
    kl_estimator: str = Field("k1", pattern="^(k1|k2|k3)$")
    target_kl: float | None = Field(None, gt=0)
    kl_horizon: int = Field(10_000, ge=1)
    whiten_rewards: bool = False
    missing_eos_penalty: float | None = 1.0
    watch: WatchRecipe = WatchRecipe()


class PpoRecipe(StrictModel):
    model: str = "smollm2-135m-instruct"
    prompts: Path  # JSONL of prompt (and optional harmful: true/false), or text lines
    rewards: list[RewardSpec] = Field(default_factory=lambda: [RewardSpec(kind="safety")])
    ppo: PpoSettings = PpoSettings()
    lora: LoraRecipe | None = LoraRecipe()
    train: PpoTrainRecipe = PpoTrainRecipe()


class CaiRecipe(StrictModel):
    """``bastion align cai``: Constitutional-AI data (see :mod:`bastion.align.cai`)."""

    prompts: Path  # JSONL of prompt (and optional harmful: true/false), or text lines
    model: str = "packaged"  # packaged, a model name/folder/GGUF, or openai:MODEL@URL
    constitution: Path | None = None  # None: Bastion's
    principles: int | None = Field(None, ge=1)  # drawn per prompt; None: all, in order
    max_new_tokens: int = Field(256, ge=1)
    seed: int = 0  # of the principle draws
    out: Path = Path("runs/cai")


class UnlearnRecipe(StrictModel):
    """``bastion align unlearn``: forget one set of conversations, keep another (see
    :mod:`bastion.align.unlearn`)."""

    forget: Path  # messages JSONL
    retain: Path  # messages JSONL
    model: str = "smollm2-135m-instruct"
    method: str = Field("npo", pattern="^(ga|gd|npo)$")
    steps: int = Field(20, ge=1)  # optimizer steps
    lr: float = Field(5e-5, gt=0)
    beta: float = Field(0.1, gt=0)  # NPO's
    kl_coef: float = Field(1.0, ge=0)  # weight of the KL to the original on retain
    batch_size: int = Field(4, ge=1)  # forget examples per step
    rephrased: Path | None = None  # rephrased forget prompts with their answers
    out: Path = Path("runs/unlearn")


def load_recipe(
    path: Path | None,
    overrides: list[str],
    kind: type[StrictModel],
    values: Mapping[str, Any] | None = None,
) -> Any:
    """Read a recipe file (or start from defaults), apply ``key=value`` overrides, then
    ``values`` (typed values by dotted key, e.g. a command's flags; None means not given),
    validate."""
    name = str(path) if path is not None else "recipe"
    data: dict[str, Any] = {}
    if path is not None:
        if not path.is_file():
            raise ConfigError(f"{name}: file not found")
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{name}: not valid YAML ({exc})") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{name}: expected a mapping of keys to values at the top")
        data = loaded
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected key.path=value")
        _put(data, key, yaml.safe_load(raw))
    for key, value in (values or {}).items():
        if value is not None:
            _put(data, key, value)
    return validate(kind, data, name, brackets=False)


def _put(data: dict[str, Any], key: str, value: Any) -> None:
    """Set ``data[a][b][c] = value`` for the key ``a.b.c``, making the sections on the way."""
    target = data
    *parents, leaf = key.split(".")
    for part in parents:
        target = target.setdefault(part, {})
        if not isinstance(target, dict):
            raise ConfigError(f"--set {key}: {part} is not a section")
    target[leaf] = value
