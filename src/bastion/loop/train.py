"""The loop's models and its default aligner.

A model in the loop is the base model plus a chain of LoRA adapters, applied in order (each
was trained on the base with the ones before it merged in). Iteration N trains a fresh adapter
on top of iteration N−1's promoted chain, so the DPO reference is always the model being
improved, and a promoted model is a few megabytes of adapters, not a copy of the weights.

The aligner is a plain function ``AlignJob -> AlignOutcome``; :func:`train_adapters` is the
default (DPO-family loss with LoRA; SFT first then DPO; or PPO with the safety judge as the
reward), and tests pass their own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bastion.errors import BastionError
from bastion.loop.config import AlignSection


@dataclass(frozen=True)
class AlignJob:
    """What to train: the current model (base + adapters), the data, where to write."""

    model: str
    adapters: tuple[Path, ...]
    pairs: Path  # prompt/chosen/rejected JSONL
    sft: Path  # messages JSONL
    out_dir: Path
    settings: AlignSection
    progress: bool = False


@dataclass(frozen=True)
class AlignOutcome:
    """The adapters to add to the chain, in order, and what training reported."""

    adapters: tuple[Path, ...]
    summary: dict[str, Any] = field(default_factory=dict)


Aligner = Callable[[AlignJob], AlignOutcome]


def load_chain(model: str, adapters: Sequence[Path], *, batch_size: int = 64) -> Any:
    """A chat model: the base (a packaged name, folder or GGUF file) with ``adapters`` merged
    in, in order."""
    from bastion.models.packaged import load

    chat = load(model, batch_size=batch_size)
    if adapters:
        chat.model = merge_adapters(chat.model, adapters).eval()
    return chat


def merge_adapters(model: Any, adapters: Sequence[Path]) -> Any:
    from bastion.models.hf import attach_adapter

    for adapter in adapters:
        model = attach_adapter(model, adapter).merge_and_unload()
    return model


def train_adapters(job: AlignJob) -> AlignOutcome:
    """The default aligner: see the module docstring and ``align.method``."""
    from bastion.align.lora import LoraSettings, add_lora

    settings = job.settings
    chat = load_chain(job.model, job.adapters)
    lora = LoraSettings(**settings.lora.model_dump())
    model, adapters, summary = chat.model, [], {}
    if settings.method == "sft-dpo":
        folder = job.out_dir / "sft"
        trainer = _sft_trainer(add_lora(model.train(), lora), chat.tokenizer, job, folder)
        summary["sft"] = _fit(trainer, folder, job.progress)
        adapters.append(_save(trainer.model, folder))
        model = trainer.model.merge_and_unload()
    folder = job.out_dir / ("ppo" if settings.method == "ppo" else settings.loss)
    if settings.method == "ppo":
        trainer = _ppo_trainer(add_lora(model.train(), lora), chat, job, folder)
        summary["ppo"] = _fit(trainer, folder, job.progress)
        trainer.save(folder / "adapter")
        adapters.append(folder / "adapter")
    else:
        trainer = _preference_trainer(add_lora(model.train(), lora), chat.tokenizer, job, folder)
        summary[settings.loss] = _fit(trainer, folder, job.progress)
        adapters.append(_save(trainer.model, folder))
    return AlignOutcome(tuple(adapters), summary)


def _train_config(job: AlignJob, folder: Path, examples: int) -> Any:
    from bastion.align.train import TrainConfig

    values = job.settings.train.model_dump()
    values.update(output_dir=folder, batch_size=min(values["batch_size"], examples))
    return TrainConfig(**values)


def _sft_trainer(model: Any, tokenizer: Any, job: AlignJob, folder: Path) -> Any:
    from bastion.align.sft import SftTrainer
    from bastion.data.jsonl import read_conversations

    conversations = read_conversations(job.sft)
    train = _train_config(job, folder, len(conversations))
    return SftTrainer(model, tokenizer, conversations, train, max_length=job.settings.max_length)


def _preference_trainer(model: Any, tokenizer: Any, job: AlignJob, folder: Path) -> Any:
    from bastion.align.preference import PreferenceConfig, PreferenceTrainer
    from bastion.data.jsonl import read_preferences
    from bastion.types import UnpairedExample

    s = job.settings
    pairs = read_preferences(job.pairs)
    data: Sequence[Any] = pairs
    if s.loss == "kto":  # each pair gives a desirable and an undesirable example
        data = [
            UnpairedExample(p.prompt, answer, label, id=f"{p.id}:{label}")
            for p in pairs
            for answer, label in ((p.chosen, True), (p.rejected, False))
        ]
    config = PreferenceConfig(
        loss=s.loss, beta=s.beta, label_smoothing=s.label_smoothing, gamma=s.gamma, lam=s.lam,
        max_length=s.max_length,
    )  # fmt: skip
    return PreferenceTrainer(model, tokenizer, data, config, _train_config(job, folder, len(data)))


def _ppo_trainer(model: Any, chat: Any, job: AlignJob, folder: Path) -> Any:
    """PPO on the pairs' prompts; the reward is the safety judge (refuse the harmful ones,
    answer the benign ones: :class:`~bastion.align.rewards.SafetyReward`)."""
    from bastion.align.cai import CaiPrompt
    from bastion.align.ppo import PpoConfig, PpoTrainer, PpoTrainSettings
    from bastion.align.rewards import SafetyReward
    from bastion.align.watch import WatchSettings
    from bastion.data.jsonl import read_preferences
    from bastion.types import as_conversation

    prompts = [
        CaiPrompt(
            p.id or str(i),
            as_conversation(p.prompt).last_user,
            p.meta.get("kind") == "harmful",
        )
        for i, p in enumerate(read_preferences(job.pairs))
    ]
    settings = job.settings.ppo.model_dump()
    settings["watch"] = WatchSettings(**settings["watch"])
    t = job.settings.train
    train = PpoTrainSettings(
        output_dir=folder, lr=t.lr, weight_decay=t.weight_decay, max_grad_norm=t.max_grad_norm,
        seed=t.seed, save_every=t.save_every, mixed_precision=t.mixed_precision,
    )  # fmt: skip
    return PpoTrainer(
        model, chat.tokenizer, prompts, SafetyReward(), PpoConfig(**settings), train,
        eos_ids=chat.eos_ids,
    )  # fmt: skip


def _fit(trainer: Any, folder: Path, progress: bool) -> dict[str, Any]:
    """Train, resuming from a checkpoint a crashed run left in ``folder``."""
    resume = (folder / "checkpoint").is_dir()
    result = trainer.fit(resume=resume, progress=progress)
    history = list(getattr(result, "history", []))
    steps = getattr(result, "steps", None) or getattr(result, "iterations", None)
    if not history:
        raise BastionError(f"{folder}: training ran no steps (too little data?)")
    return {"steps": steps, "first": history[0], "last": history[-1], "resumed": resume}


def _save(model: Any, folder: Path) -> Path:
    target = folder / "adapter"
    model.save_pretrained(str(target))
    return target
