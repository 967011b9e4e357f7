"""RLHF with PPO and a KL penalty (Ziegler et al. 2019; Ouyang et al. 2022; Huang et al. 2024,
"The N+ implementation details of RLHF with PPO").

One iteration: draw a batch of prompts → sample a response for each from the policy → score the
responses (:mod:`bastion.align.rewards`) → per-token reward ``−β·KL(policy ‖ reference)``, plus
the score on the last token → advantages by GAE from the value head → a few epochs of clipped
PPO updates over mini-batches → the KL controller adapts β → the reward-hacking watch looks at
the trend.

The pieces live beside this trainer, each testable alone: the arithmetic in
:mod:`bastion.align.losses`, the policy with its value head on one trunk in
:mod:`bastion.align.policy_value`, the rollout's types in :mod:`bastion.align.rollout`, the
KL controllers in :mod:`bastion.align.kl_control` and the watch in :mod:`bastion.align.watch`.

**Reference.** Under LoRA, the same model with its adapters switched off — no second copy of
the weights; otherwise a frozen copy made before the first update.

Conventions (TRL's, so metrics compare): a response ends at its first end-of-turn token, which
counts as a response token; the log-probs are of the logits divided by the sampling
temperature; ``objective/kl`` is the per-sequence sum of the chosen estimator; a response that
never ends gets ``missing_eos_penalty`` subtracted from its score. Time is logged in three
phases: ``generation`` (sampling), ``scoring`` (the reward sources and the rollout's forward
passes: old log-probs, values, reference log-probs) and ``update`` (the PPO epochs).
"""

from __future__ import annotations

import copy
import random
import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from bastion.align.cai import CaiPrompt
from bastion.align.kl_control import KLController, kl_controller
from bastion.align.losses import (
    KL_ESTIMATORS,
    gae,
    kl_per_token,
    masked_mean,
    ppo_losses,
    token_rewards,
    whiten,
)
from bastion.align.policy_value import PolicyWithValue, has_dropout, picked_logits
from bastion.align.precision import lean_passes, resolve_precision
from bastion.align.progress import (
    MetricsLog,
    jsonable_config,
    mean_over_processes,
    progress_bar,
)
from bastion.align.rollout import (
    Batch,
    PolicyPass,
    Rollout,
    build_batch,
    response_logps,
    sample_responses,
)
from bastion.align.train import TrainingError, load_checkpoint, save_checkpoint
from bastion.align.watch import RewardHackingWatch, WatchSettings, repetition
from bastion.data.jsonl import append_jsonl
from bastion.errors import BastionError
from bastion.models.packing import base_model
from bastion.types import as_conversation

__all__ = ["PpoConfig", "PpoResult", "PpoTrainSettings", "PpoTrainer"]


@dataclass
class PpoConfig:
    """How to run PPO; the recipe's ``ppo:`` section (see ``recipes/ppo.yaml``)."""

    iterations: int = 20
    batch_size: int = 8  # rollouts per iteration, per process
    mini_batch_size: int = 4  # rollouts per optimizer step
    ppo_epochs: int = 2  # passes over each batch of rollouts
    max_new_tokens: int = 48
    temperature: float = 0.7
    top_p: float = 1.0
    gamma: float = 1.0
    lam: float = 0.95
    cliprange: float = 0.2
    cliprange_value: float = 0.2
    vf_coef: float = 0.1
    kl_coef: float = 0.05  # β, or its starting value under the adaptive controller
    kl_estimator: str = "k1"
    target_kl: float | None = None  # set: adapt β towards this per-sequence KL (nats)
    kl_horizon: int = 10_000
    whiten_rewards: bool = False
    missing_eos_penalty: float | None = 1.0
    watch: WatchSettings = field(default_factory=WatchSettings)

    def __post_init__(self) -> None:
        if self.kl_estimator not in KL_ESTIMATORS:
            raise BastionError(f"kl_estimator must be one of {KL_ESTIMATORS}")
        if self.batch_size % self.mini_batch_size:
            raise BastionError("batch_size must be a multiple of mini_batch_size")
        if self.temperature <= 0:
            raise BastionError("temperature must be > 0: PPO needs sampled responses")


@dataclass
class PpoTrainSettings:
    output_dir: Path = Path("runs/ppo")
    lr: float = 1e-5
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    seed: int = 0
    save_every: int | None = None  # iterations between checkpoints
    mixed_precision: str = "auto"
    gradient_checkpointing: bool = False


@dataclass
class PpoResult:
    iterations: int
    history: list[dict[str, float]]
    flags: list[dict[str, Any]]
    stopped: str | None = None


class PpoTrainer:
    """PPO over prompts with a reward function; :meth:`fit` runs the loop (see the module
    docstring). ``rewards(prompts, responses) -> list[float]``."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        prompts: Sequence[CaiPrompt],
        rewards: Any,
        config: PpoConfig,
        train: PpoTrainSettings,
        *,
        eos_ids: Sequence[int] | None = None,
    ) -> None:
        from accelerate import Accelerator

        if not prompts:
            raise TrainingError("PPO needs at least one prompt")
        precision = resolve_precision(train.mixed_precision)
        self.accelerator = Accelerator(cpu=not torch.cuda.is_available(), mixed_precision=precision)
        self.config, self.train_settings, self.rewards = config, train, rewards
        self.tokenizer, self.prompts = tokenizer, list(prompts)
        self.pad_id = tokenizer.pad_token_id
        if self.pad_id is None:
            self.pad_id = tokenizer.eos_token_id
        from bastion.models.hf import end_of_turn_ids

        self.eos_ids = tuple(eos_ids or end_of_turn_ids(model, tokenizer))
        self.lora = hasattr(model, "disable_adapter")
        self.reference = None if self.lora else copy.deepcopy(model).eval().requires_grad_(False)
        if train.gradient_checkpointing:
            base_model(model).activation_checkpointing_enable({"use_reentrant": False})
        module = PolicyWithValue(model).to(self.accelerator.device)
        params = [p for p in module.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=train.lr, weight_decay=train.weight_decay)
        self.module, self.optimizer = self.accelerator.prepare(module, optimizer)
        if self.reference is not None:
            self.reference.to(self.accelerator.device)
        self.kl_control: KLController = kl_controller(
            config.kl_coef, config.target_kl, config.kl_horizon
        )
        self.watch = RewardHackingWatch(config.watch)
        self.iteration = 0
        # The first mini-batch of the first epoch sees the very weights the rollout scored
        # with: when no dropout makes the two passes differ, the rollout's pass for those rows
        # keeps its graph and the update starts from it instead of running it again. Not with
        # activation checkpointing (its point is not to hold activations) nor across processes.
        self.reuse_first_pass = (
            not train.gradient_checkpointing
            and self.accelerator.num_processes == 1
            and not has_dropout(module)
        )
        # The tokens every rollout of a mini-batch starts with run once for all of its rows
        # (see ``picked_logits``); a switch, for comparing with and without.
        self.share_prefix = True
        # Under bf16 on a CPU, the rollout and update run as :func:`lean_passes` (frozen
        # weights cast once, attention in fp32); a switch, likewise.
        self.lean = True
        self._prompt_ids = [self._render(p) for p in self.prompts]

    @property
    def model(self) -> Any:
        """The policy (with its adapters), unwrapped."""
        return self.accelerator.unwrap_model(self.module).policy

    def _render(self, prompt: CaiPrompt) -> list[int]:
        from bastion.models.scoring import render_ids

        if getattr(self.tokenizer, "chat_template", None):
            conversation = as_conversation(prompt.prompt)
            return render_ids(self.tokenizer, conversation, add_generation_prompt=True)
        ids: list[int] = self.tokenizer(prompt.prompt)["input_ids"]
        return ids

    # --- one iteration ---

    def draw(self, iteration: int) -> list[int]:
        """The prompts of an iteration, for this process: seeded by iteration, so a resumed
        run draws the same ones."""
        n = self.config.batch_size
        rank, world = int(self.accelerator.process_index), int(self.accelerator.num_processes)
        order = list(range(len(self.prompts)))
        random.Random(self.train_settings.seed * 100_003 + iteration).shuffle(order)
        order = (order * (n * world // len(order) + 1))[: n * world]
        return order[rank * n : (rank + 1) * n]

    def generate(self, chosen: Sequence[int], seed: int) -> list[list[int]]:
        """A sampled response to each chosen prompt (token ids through the end-of-turn)."""
        return sample_responses(
            self.model,
            [self._prompt_ids[i] for i in chosen],
            pad_id=self.pad_id,
            eos_ids=self.eos_ids,
            max_new_tokens=self.config.max_new_tokens,
            temperature=self.config.temperature,
            top_p=self.config.top_p,
            seed=seed,
            device=self.accelerator.device,
        )

    def fit(self, *, resume: bool = False, progress: bool = True) -> PpoResult:
        cfg, settings, acc = self.config, self.train_settings, self.accelerator
        out = Path(settings.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        if resume:
            self.load_checkpoint()
        history: list[dict[str, float]] = []
        stopped = None
        log = MetricsLog(out, enabled=acc.is_main_process)
        bar_on = progress and acc.is_main_process
        with progress_bar(bar_on, cfg.iterations, label="score") as bar:
            bar.advance(self.iteration)
            while self.iteration < cfg.iterations:
                row, reasons = self.step(self.iteration)
                self.iteration += 1
                history.append(row)
                log.write(row, self.iteration)
                bar.update(row["objective/scores"])
                if settings.save_every and self.iteration % settings.save_every == 0:
                    self.save_checkpoint()
                if reasons and cfg.watch.stop:
                    stopped = f"iteration {self.iteration}: " + "; ".join(reasons)
                    break
        log.close()
        return PpoResult(self.iteration, history, self.watch.flags, stopped)

    def step(self, iteration: int) -> tuple[dict[str, float], list[str]]:
        """One PPO iteration; returns its metrics and any reward-hacking flags."""
        cfg, acc = self.config, self.accelerator
        seed = self.train_settings.seed * 100_003 + iteration * 1_009 + acc.process_index
        chosen = self.draw(iteration)
        started = time.perf_counter()
        responses = self.generate(chosen, seed)
        generation_s = time.perf_counter() - started
        texts = self.tokenizer.batch_decode(responses, skip_special_tokens=True)
        started = time.perf_counter()
        scores = torch.tensor(
            self.rewards([self.prompts[i] for i in chosen], texts), dtype=torch.float32
        )
        scoring_s = time.perf_counter() - started
        ended = torch.tensor([float(bool(r) and r[-1] in self.eos_ids) for r in responses])
        if cfg.missing_eos_penalty is not None:
            scores = scores - cfg.missing_eos_penalty * (1 - ended)
        started = time.perf_counter()
        batch = build_batch(
            [self._prompt_ids[i] for i in chosen],
            [r or [self.eos_ids[0]] for r in responses],
            self.pad_id,
            acc.device,
        )
        orders = self._orders(batch.input_ids.shape[0])
        first = orders[0][: cfg.mini_batch_size] if self.reuse_first_pass and orders else None
        models = [self.module] if self.reference is None else [self.module, self.reference]
        precision = str(acc.mixed_precision) if self.lean else "no"
        with lean_passes(models, precision):  # every pass in here runs under autocast
            # old log-probs, values, reference; for ``first``, the pass the update starts from
            rollout, kept = self._rollout(batch, scores.to(acc.device), first)
            scoring_s += time.perf_counter() - started
            started = time.perf_counter()
            stats = self._update(batch, rollout, orders, kept)
        update_s = time.perf_counter() - started
        beta = self.kl_control.value
        kl_seq = rollout.kl.sum(-1).mean().item()
        episodes = cfg.batch_size * acc.num_processes
        self.kl_control.update(mean_over_processes(acc, kl_seq), episodes)
        lengths = batch.mask.sum(-1)
        non_score = (-beta * rollout.kl).sum(-1)
        row = {
            "iteration": float(iteration + 1),
            "objective/kl": kl_seq,
            "objective/entropy": masked_mean(rollout.entropy, batch.mask).item(),
            "objective/non_score_reward": non_score.mean().item(),
            "objective/rlhf_reward": (scores.to(acc.device) + non_score).mean().item(),
            "objective/scores": scores.mean().item(),
            "objective/beta": beta,
            "response/length": lengths.mean().item(),
            "response/ended": ended.mean().item(),
            "time/generation_s": generation_s,
            "time/scoring_s": scoring_s,
            "time/update_s": update_s,
            "tokens_per_s/generation": lengths.sum().item() / max(generation_s, 1e-9),
            "tokens_per_s/update": batch.attention_mask.sum().item()
            * cfg.ppo_epochs
            / max(update_s, 1e-9),
            **stats,
        }
        for name, value in getattr(self.rewards, "last_parts", {}).items():
            row[f"scores/{name}"] = value
        row = {k: mean_over_processes(acc, v) for k, v in row.items()}
        repeats = [repetition(r) for r in responses]
        row["response/repetition"] = sum(repeats) / len(repeats)
        reasons = self.watch.observe(
            iteration + 1, row["objective/scores"], row["objective/kl"], row["response/length"],
            repeats,
        )  # fmt: skip
        row["watch/flagged"] = float(bool(reasons))
        if acc.is_main_process:  # what was said and how it scored, for reading the run later
            samples = [
                {
                    "iteration": iteration + 1,
                    "prompt_id": self.prompts[i].id,
                    "prompt": self.prompts[i].prompt,
                    "response": text,
                    "score": score,
                    "ended": bool(end),
                }
                for i, text, score, end in zip(
                    chosen, texts, scores.tolist(), ended.tolist(), strict=True
                )
            ]
            append_jsonl(Path(self.train_settings.output_dir) / "samples.jsonl", samples)
        return row, reasons

    @torch.no_grad()
    def _rollout(
        self, batch: Batch, scores: Tensor, first: Tensor | None = None
    ) -> tuple[Rollout, PolicyPass | None]:
        """The rollout's forward passes, mini-batch by mini-batch; the rows in ``first`` run
        with autograd on and their pass is returned for the update's first step."""
        cfg = self.config
        n, span = batch.responses.shape
        chunks = self._chunks(n)
        if first is not None:
            taken = set(first.tolist())
            rest = torch.tensor([i for i in range(n) if i not in taken])
            chunks = [first, *(rest[c] for c in self._chunks(len(rest)))]
        logp, value, entropy, ref = (batch.mask.new_zeros(n, span) for _ in range(4))
        kept = None
        self.module.eval()  # no dropout, as in the update (``reuse_first_pass`` checks)
        for number, rows in enumerate(chunks):
            part = batch.rows(rows)
            with torch.enable_grad() if kept is None and first is not None else nullcontext():
                logits, values = self.module(
                    part.input_ids, part.attention_mask, part.index, share_prefix=self.share_prefix
                )
                logps, entropies = response_logps(logits, part.responses, cfg.temperature)
            if number == 0 and first is not None:
                kept = PolicyPass(logps, entropies, values)
            logp[rows], value[rows] = logps.detach(), values.detach()
            entropy[rows] = entropies
            ref[rows] = self._reference_logps(part)
        self.module.train()
        kl = kl_per_token(logp, ref, cfg.kl_estimator) * batch.mask
        beta = self.kl_control.value
        rewards = token_rewards(scores, kl, batch.mask, beta)
        if cfg.whiten_rewards:
            rewards = whiten(rewards, batch.mask, shift_mean=False)
        advantages, returns = gae(rewards, value, batch.mask, cfg.gamma, cfg.lam)
        advantages = whiten(advantages, batch.mask)
        rollout = Rollout(logp, value * batch.mask, kl, entropy, advantages, returns)
        return rollout, kept

    def _reference_logps(self, part: Batch) -> Tensor:
        """In the precision the policy's pass ran in (the prepared module's autocast): else,
        under mixed precision, the KL would measure rounding, not the policy's drift."""
        args = (part.input_ids, part.attention_mask, part.index)
        share = self.share_prefix
        with self.accelerator.autocast():
            if self.reference is not None:
                logits = picked_logits(self.reference, *args, share_prefix=share)[0]
            else:
                with self.model.disable_adapter():
                    logits = picked_logits(self.model, *args, share_prefix=share)[0]
        return response_logps(logits, part.responses, self.config.temperature)[0]

    def _chunks(self, n: int) -> list[Tensor]:
        size = self.config.mini_batch_size
        return [torch.arange(s, min(s + size, n)) for s in range(0, n, size)]

    def _orders(self, n: int) -> list[Tensor]:
        """Each PPO epoch's shuffle of the rollouts, seeded by iteration."""
        generator = torch.Generator().manual_seed(self.train_settings.seed + self.iteration)
        return [torch.randperm(n, generator=generator) for _ in range(self.config.ppo_epochs)]

    def _update(
        self,
        batch: Batch,
        rollout: Rollout,
        orders: Sequence[Tensor],
        kept: PolicyPass | None = None,
    ) -> dict[str, float]:
        cfg, acc = self.config, self.accelerator
        sums: dict[str, float] = {}
        count = 0
        for order in orders:
            for start in range(0, len(order), cfg.mini_batch_size):
                rows = order[start : start + cfg.mini_batch_size]
                part = batch.rows(rows)
                if kept is not None:  # the rollout's pass over these very rows
                    logps, entropy, values = kept.logps, kept.entropy, kept.values
                    kept = None
                else:
                    logits, values = self.module(
                        part.input_ids, part.attention_mask, part.index,
                        share_prefix=self.share_prefix,
                    )  # fmt: skip
                    logps, entropy = response_logps(logits, part.responses, cfg.temperature)
                losses = ppo_losses(
                    logps,
                    rollout.logps[rows],
                    rollout.advantages[rows],
                    values,
                    rollout.values[rows],
                    rollout.returns[rows],
                    part.mask,
                    cliprange=cfg.cliprange,
                    cliprange_value=cfg.cliprange_value,
                    vf_coef=cfg.vf_coef,
                )
                if not torch.isfinite(losses.loss.detach()):
                    raise TrainingError(
                        f"PPO loss is {losses.loss.item()} at iteration {self.iteration + 1}; "
                        "lower lr or check the rewards"
                    )
                acc.backward(losses.loss)
                if self.train_settings.max_grad_norm:
                    acc.clip_grad_norm_(self.module.parameters(), self.train_settings.max_grad_norm)
                self.optimizer.step()
                self.optimizer.zero_grad()
                count += 1
                for key, value in (
                    ("loss/policy_avg", losses.policy),
                    ("loss/value_avg", losses.value),
                    ("policy/clipfrac_avg", losses.clipfrac),
                    ("policy/approxkl_avg", losses.approxkl),
                    ("policy/entropy_avg", masked_mean(entropy.detach(), part.mask)),
                    ("val/clipfrac_avg", losses.value_clipfrac),
                    ("val/ratio", losses.ratio),
                ):
                    sums[key] = sums.get(key, 0.0) + float(value.detach())
        return {k: v / max(count, 1) for k, v in sums.items()}

    # --- checkpoints and saving ---

    @property
    def checkpoint_dir(self) -> Path:
        return Path(self.train_settings.output_dir) / "checkpoint"

    def save_checkpoint(self) -> None:
        """Policy, value head, optimizer, RNG, the iteration, β and the watch's history."""
        state = {
            "iteration": self.iteration,
            "beta": self.kl_control.value,
            "watch": self.watch.state(),
            "config": jsonable_config(self.config),
        }
        save_checkpoint(self.accelerator, self.checkpoint_dir, state)

    def load_checkpoint(self) -> None:
        keys = ("batch_size", "mini_batch_size", "ppo_epochs", "max_new_tokens", "kl_estimator")
        saved = load_checkpoint(
            self.accelerator, self.checkpoint_dir, jsonable_config(self.config), keys
        )
        self.iteration = saved["iteration"]
        self.kl_control.value = saved["beta"]
        self.watch.restore(saved["watch"])

    def save(self, folder: Path) -> None:
        """The policy (adapter or full model), the tokenizer and the value head."""
        folder.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(str(folder))
        self.tokenizer.save_pretrained(str(folder))
        head = self.accelerator.unwrap_model(self.module).value_head
        torch.save(head.state_dict(), folder / "value_head.pt")
