"""RLHF with PPO and a KL penalty (Ziegler et al. 2019; Ouyang et al. 2022; Huang et al. 2024,
"The N+ implementation details of RLHF with PPO").

One iteration: draw a batch of prompts → sample a response for each from the policy → score the
responses (:mod:`bastion.align.rewards`) → per-token reward ``−β·KL(policy ‖ reference)``, plus
the score on the last token → advantages by GAE from the value head → a few epochs of clipped
PPO updates over mini-batches → the KL controller adapts β → the reward-hacking watch looks at
the trend.

**Value head on the policy's trunk.** The critic is a linear head on the policy's last hidden
state, not a second model: one forward pass gives both the token log-probs and the values, and a
135M model on two CPU cores cannot afford a second trunk's forward and backward passes (TRL's
separate critic costs exactly that). The price is that value-loss gradients reach the shared
trunk; ``vf_coef`` (0.1) keeps them small. Under LoRA the head reads the adapted trunk.

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
import json
import random
import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from bastion.align.cai import CaiPrompt
from bastion.align.precision import lean_passes, resolve_precision
from bastion.align.sampled import sampled_logps
from bastion.align.train import (
    TrainingError,
    _mean_over_processes,
    _progress,
    _tensorboard,
    load_checkpoint,
    save_checkpoint,
)
from bastion.errors import BastionError
from bastion.models.packing import base_model, final_hidden, hidden_pass
from bastion.models.prefill import (
    MIN_PREFIX,
    forward_after_prefix,
    keeps_plain_cache,
    shared_columns,
)
from bastion.types import as_conversation

KL_ESTIMATORS = ("k1", "k2", "k3")


# --- the arithmetic, each piece testable by hand ----------------------------------------------


def masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    return (values * mask).sum() / mask.sum().clamp(min=1)


def whiten(values: Tensor, mask: Tensor, *, shift_mean: bool = True) -> Tensor:
    """Scale to unit variance over the masked entries (and centre, unless ``shift_mean`` is
    off: rewards keep their sign). The variance is the unbiased one, as in TRL."""
    mean = masked_mean(values, mask)
    count = mask.sum()
    variance = ((values - mean) ** 2 * mask).sum() / (count - 1).clamp(min=1)
    out = (values - mean) * torch.rsqrt(variance + 1e-8)
    if not shift_mean:
        out = out + mean
    return out * mask


def kl_per_token(logps: Tensor, ref_logps: Tensor, estimator: str) -> Tensor:
    """Schulman's estimators of KL(policy ‖ reference) at each sampled token, r = ref/policy:
    k1 = −log r (unbiased, can be negative), k2 = ½(log r)², k3 = (r − 1) − log r (unbiased,
    never negative, lower variance)."""
    log_ratio = ref_logps - logps
    if estimator == "k1":
        return -log_ratio
    if estimator == "k2":
        return 0.5 * log_ratio**2
    if estimator == "k3":
        return torch.expm1(log_ratio) - log_ratio
    raise ValueError(f"kl_estimator must be one of {KL_ESTIMATORS}, got {estimator!r}")


def token_rewards(scores: Tensor, kl: Tensor, mask: Tensor, beta: float) -> Tensor:
    """Per-token rewards: ``−β·kl`` everywhere, plus the sequence's score on its last token."""
    rewards = -beta * kl * mask
    last = (mask.sum(-1) - 1).clamp(min=0).long()
    rows = torch.arange(rewards.shape[0], device=rewards.device)
    rewards[rows, last] += scores.to(rewards.dtype)
    return rewards


def gae(
    rewards: Tensor, values: Tensor, mask: Tensor, gamma: float, lam: float
) -> tuple[Tensor, Tensor]:
    """Generalized advantage estimation (Schulman et al. 2016) over right-padded responses:
    ``δₜ = rₜ + γVₜ₊₁ − Vₜ``, ``Aₜ = δₜ + γλAₜ₊₁``, with V = 0 after the last token. Returns
    the advantages and the returns ``A + V``."""
    values, rewards = values * mask, rewards * mask
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[:, 0])
    length = rewards.shape[1]
    for t in reversed(range(length)):
        next_value = values[:, t + 1] if t + 1 < length else torch.zeros_like(running)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = delta + gamma * lam * running
        advantages[:, t] = running
    advantages = advantages * mask
    return advantages, (advantages + values) * mask


@dataclass(frozen=True)
class PpoLosses:
    loss: Tensor
    policy: Tensor
    value: Tensor
    clipfrac: Tensor
    approxkl: Tensor
    value_clipfrac: Tensor
    ratio: Tensor


def ppo_losses(
    logps: Tensor,
    old_logps: Tensor,
    advantages: Tensor,
    values: Tensor,
    old_values: Tensor,
    returns: Tensor,
    mask: Tensor,
    *,
    cliprange: float,
    cliprange_value: float,
    vf_coef: float,
) -> PpoLosses:
    """The clipped surrogate ``max(−A·ρ, −A·clip(ρ, 1±ε))`` and the clipped value loss
    ``½·max((V − R)², (clip(V, V_old ± ε_v) − R)²)``, each a masked token mean."""
    log_ratio = logps - old_logps
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1 - cliprange, 1 + cliprange)
    policy = masked_mean(torch.maximum(unclipped, clipped), mask)
    moved = torch.clamp(values - old_values, -cliprange_value, cliprange_value)
    values_clipped = old_values + moved
    value_losses = (values - returns) ** 2
    value_losses_clipped = (values_clipped - returns) ** 2
    value = 0.5 * masked_mean(torch.maximum(value_losses, value_losses_clipped), mask)
    return PpoLosses(
        loss=policy + vf_coef * value,
        policy=policy,
        value=value,
        clipfrac=masked_mean((clipped > unclipped).float(), mask),
        approxkl=0.5 * masked_mean(log_ratio**2, mask),
        value_clipfrac=masked_mean((value_losses_clipped > value_losses).float(), mask),
        ratio=masked_mean(ratio, mask),
    )


class FixedKL:
    def __init__(self, beta: float) -> None:
        self.value = beta

    def update(self, current: float, n_steps: int) -> None:
        return None


class AdaptiveKL:
    """Ziegler et al.'s controller: ``β ← β·(1 + clip(KL/target − 1, ±0.2)·n/horizon)``, with
    ``n`` the episodes since the last update, so β rises while KL is above target."""

    def __init__(self, beta: float, target: float, horizon: int) -> None:
        if target <= 0 or horizon < 1:
            raise BastionError("target_kl must be > 0 and kl_horizon at least 1")
        self.value, self.target, self.horizon = beta, target, horizon

    def update(self, current: float, n_steps: int) -> None:
        error = min(max(current / self.target - 1, -0.2), 0.2)
        self.value *= 1 + error * n_steps / self.horizon


# --- the reward-hacking watch ------------------------------------------------------------------


def repetition(tokens: Sequence[int], n: int = 3) -> float:
    """The share of a response's token n-grams that repeat an earlier one (0: none; near 1: one
    phrase over and over). Responses under ``2n`` tokens count as 0."""
    if len(tokens) < 2 * n:
        return 0.0
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    return 1 - len(set(grams)) / len(grams)


@dataclass
class WatchSettings:
    window: int = 5  # iterations over which the score trend is measured
    kl_limit: float = 10.0  # nats per sequence: KL above it has "run away"
    length_factor: float = 2.0  # mean length above this × the first iteration's has run away
    repetition_limit: float = 0.5  # a response repeating more than this share of its n-grams…
    repetition_share: float = 0.5  # …in more than this share of the batch: degenerate
    stop: bool = False  # end training at the first flag


@dataclass
class RewardHackingWatch:
    """Flags the classic failure: the score keeps rising (least-squares slope over the last
    ``window`` iterations > 0) while the KL to the reference exceeds ``kl_limit`` or the mean
    response length exceeds ``length_factor`` × the first iteration's (by 8 tokens at least);
    and, whatever the score does, degenerate repetition in much of the batch."""

    settings: WatchSettings = field(default_factory=WatchSettings)
    scores: list[float] = field(default_factory=list)
    first_length: float | None = None
    flags: list[dict[str, Any]] = field(default_factory=list)

    def observe(
        self, iteration: int, score: float, kl: float, length: float, repeats: Sequence[float]
    ) -> list[str]:
        s = self.settings
        self.scores.append(score)
        if self.first_length is None:
            self.first_length = length
        reasons = []
        recent = self.scores[-s.window :]
        if len(recent) >= min(3, s.window) and _slope(recent) > 0:
            if kl > s.kl_limit:
                reasons.append(
                    f"score rising while KL runs away ({kl:.2f} nats > limit {s.kl_limit})"
                )
            if length > max(s.length_factor * self.first_length, self.first_length + 8):
                reasons.append(
                    f"score rising while responses grow ({length:.1f} tokens, "
                    f"{length / max(self.first_length, 1e-9):.1f}× the start)"
                )
        degenerate = sum(r > s.repetition_limit for r in repeats) / max(len(repeats), 1)
        if degenerate > s.repetition_share:
            reasons.append(f"degenerate repetition in {degenerate:.0%} of the responses")
        if reasons:
            self.flags.append({"iteration": iteration, "reasons": reasons})
        return reasons


def _slope(values: Sequence[float]) -> float:
    n = len(values)
    mean_x, mean_y = (n - 1) / 2, sum(values) / n
    num = sum((i - mean_x) * (v - mean_y) for i, v in enumerate(values))
    return num / sum((i - mean_x) ** 2 for i in range(n))


# --- the model: policy and value head on one trunk ----------------------------------------------


class PolicyWithValue(nn.Module):
    """A causal LM (plain or with LoRA adapters) and a scalar value head on its last hidden
    state."""

    def __init__(self, policy: Any) -> None:
        super().__init__()
        self.policy = policy
        hidden = int(policy.config.hidden_size)
        self.value_head = nn.Linear(hidden, 1)
        nn.init.normal_(self.value_head.weight, std=1 / (hidden + 1) ** 0.5)
        nn.init.zeros_(self.value_head.bias)

    def forward(
        self, input_ids: Tensor, attention_mask: Tensor, index: Tensor, *, share_prefix: bool = True
    ) -> tuple[Tensor, Tensor]:
        """Logits and values at the positions in ``index`` (batch × response length): the
        positions whose next token is a response token."""
        logits, hidden = picked_logits(
            self.policy, input_ids, attention_mask, index, share_prefix=share_prefix
        )
        with torch.autocast(hidden.device.type, enabled=False):  # the critic in fp32
            values: Tensor = self.value_head(hidden.float()).squeeze(-1)
        return logits, values


def picked_logits(
    model: Any,
    input_ids: Tensor,
    attention_mask: Tensor,
    index: Tensor,
    *,
    share_prefix: bool = True,
) -> tuple[Tensor, Tensor]:
    """Logits and last hidden states at ``index`` only. The trunk runs on every token, the LM
    head only where a response token is predicted: with a 49k vocabulary, the logits of prompt
    positions would be most of the pass's memory and time (see :mod:`bastion.models.scoring`).

    With ``share_prefix``, the tokens every row starts with (the chat template's system turn:
    24 of the ~93 tokens of a row in ``benchmarks/ppo_step.py``) run once for the batch, not
    once per row (:func:`~bastion.models.prefill.forward_after_prefix`); the results are the
    same up to rounding, gradients included."""
    shared = shared_prefix(model, input_ids, attention_mask, index) if share_prefix else 0
    body, extra = hidden_pass(model)  # the trunk: no output layer on positions not picked
    if shared:
        out = forward_after_prefix(body, input_ids, attention_mask, shared, **extra)
        index = index - shared
    else:
        out = body(input_ids=input_ids, attention_mask=attention_mask, **extra)
    hidden = final_hidden(out)
    picked = hidden.gather(1, index[..., None].expand(-1, -1, hidden.shape[-1]))
    logits: Tensor = base_model(model).get_output_embeddings()(picked)
    return logits, picked


def shared_prefix(model: Any, input_ids: Tensor, attention_mask: Tensor, index: Tensor) -> int:
    """How many leading tokens of a right-padded batch to run once for all its rows: 0 unless
    there are several rows sharing at least :data:`~bastion.models.prefill.MIN_PREFIX`, the
    model keeps a plain cache, and no activation checkpointing or dropout is active; never past
    a picked position."""
    if input_ids.shape[0] < 2:
        return 0
    shared = min(shared_columns(input_ids, attention_mask), int(index.min()))
    if shared < MIN_PREFIX or not keeps_plain_cache(model):
        return 0
    if model.training and (_checkpointing(model) or _has_dropout(model)):
        return 0
    return shared


def _checkpointing(model: Any) -> bool:
    base = base_model(model)
    name = (
        "is_activation_checkpointing"  # transformers 5; the older name warns there
        if hasattr(type(base), "is_activation_checkpointing")
        else "is_gradient_checkpointing"
    )
    return bool(getattr(base, name, False))


@dataclass
class Batch:
    """Prompt + response sequences, right-padded, and where each response token sits."""

    input_ids: Tensor
    attention_mask: Tensor
    index: Tensor  # (B, R): position predicting response token t
    responses: Tensor  # (B, R) token ids, padded
    mask: Tensor  # (B, R) float: 1 on response tokens (through the end-of-turn token)

    def rows(self, selection: Tensor) -> Batch:
        """The selected rows, cut to their own longest sequence: right padding beyond it
        changes no earlier position under causal attention, and a mini-batch of short rows
        should not pay for the batch's longest."""
        ids, attention = self.input_ids[selection], self.attention_mask[selection]
        width = max(int(attention.sum(1).max()), 1)
        return Batch(
            ids[:, :width],
            attention[:, :width],
            self.index[selection].clamp(max=width - 1),
            self.responses[selection],
            self.mask[selection],
        )


def build_batch(
    prompts: Sequence[Sequence[int]], responses: Sequence[Sequence[int]], pad_id: int, device: Any
) -> Batch:
    lengths = [len(p) + len(r) for p, r in zip(prompts, responses, strict=True)]
    width, span = max(lengths), max(max(len(r) for r in responses), 1)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    attention = torch.zeros_like(ids)
    index = torch.zeros((len(prompts), span), dtype=torch.long)
    tokens = torch.full((len(prompts), span), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), span))
    for row, (prompt, response) in enumerate(zip(prompts, responses, strict=True)):
        sequence = list(prompt) + list(response)
        ids[row, : len(sequence)] = torch.tensor(sequence)
        attention[row, : len(sequence)] = 1
        index[row] = (len(prompt) - 1 + torch.arange(span)).clamp(max=width - 1)
        tokens[row, : len(response)] = torch.tensor(response, dtype=torch.long)
        mask[row, : len(response)] = 1
    return Batch(*(t.to(device) for t in (ids, attention, index, tokens, mask)))


def response_logps(logits: Tensor, tokens: Tensor, temperature: float) -> tuple[Tensor, Tensor]:
    """Log-probs of the sampled tokens and the entropy of each step's distribution (a metric:
    no gradient), at the sampling temperature (:mod:`bastion.align.sampled`)."""
    return sampled_logps(logits, tokens, temperature)


# --- the trainer -----------------------------------------------------------------------------


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
        self.kl_control: FixedKL | AdaptiveKL = (
            AdaptiveKL(config.kl_coef, config.target_kl, config.kl_horizon)
            if config.target_kl is not None
            else FixedKL(config.kl_coef)
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
            and not _has_dropout(module)
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

    @torch.no_grad()
    def generate(self, chosen: Sequence[int], seed: int) -> list[list[int]]:
        from bastion.models.scoring import left_pad

        cfg, device = self.config, self.accelerator.device
        policy = self.model
        was_training = policy.training
        policy.eval()
        ids, attention = left_pad([self._prompt_ids[i] for i in chosen], self.pad_id, device)
        torch.manual_seed(seed)
        output = policy.generate(
            input_ids=ids,
            attention_mask=attention,
            max_new_tokens=cfg.max_new_tokens,
            do_sample=True,
            temperature=cfg.temperature,
            top_p=cfg.top_p,
            top_k=0,
            eos_token_id=list(self.eos_ids),
            pad_token_id=self.pad_id,
        )
        policy.train(was_training)
        responses = []
        for row in output[:, ids.shape[1] :].tolist():
            ends = [i for i, t in enumerate(row) if t in self.eos_ids]
            responses.append(row[: ends[0] + 1] if ends else row)
        return responses

    def fit(self, *, resume: bool = False, progress: bool = True) -> PpoResult:
        cfg, settings, acc = self.config, self.train_settings, self.accelerator
        out = Path(settings.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        if resume:
            self.load_checkpoint()
        history: list[dict[str, float]] = []
        stopped = None
        board = _tensorboard(out / "tensorboard") if acc.is_main_process else None
        bar_on = progress and acc.is_main_process
        with _progress(bar_on, cfg.iterations, label="score") as bar:
            bar.advance(self.iteration)
            while self.iteration < cfg.iterations:
                row, reasons = self.step(self.iteration)
                self.iteration += 1
                history.append(row)
                if acc.is_main_process:
                    with (out / "metrics.jsonl").open("a") as handle:
                        handle.write(json.dumps(row) + "\n")
                    if board is not None:
                        for key, value in row.items():
                            board.add_scalar(key, value, self.iteration)
                bar.update(row["objective/scores"])
                if settings.save_every and self.iteration % settings.save_every == 0:
                    self.save_checkpoint()
                if reasons and cfg.watch.stop:
                    stopped = f"iteration {self.iteration}: " + "; ".join(reasons)
                    break
        if board is not None:
            board.close()
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
        kl_seq = rollout["kl"].sum(-1).mean().item()
        episodes = cfg.batch_size * acc.num_processes
        self.kl_control.update(_mean_over_processes(acc, kl_seq), episodes)
        lengths = batch.mask.sum(-1)
        non_score = (-beta * rollout["kl"]).sum(-1)
        row = {
            "iteration": float(iteration + 1),
            "objective/kl": kl_seq,
            "objective/entropy": masked_mean(rollout["entropy"], batch.mask).item(),
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
        row = {k: _mean_over_processes(acc, v) for k, v in row.items()}
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
            write_jsonl_append(Path(self.train_settings.output_dir) / "samples.jsonl", samples)
        return row, reasons

    @torch.no_grad()
    def _rollout(
        self, batch: Batch, scores: Tensor, first: Tensor | None = None
    ) -> tuple[dict[str, Tensor], _Pass | None]:
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
                kept = _Pass(logps, entropies, values)
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
        rollout = {
            "logps": logp,
            "values": value * batch.mask,
            "kl": kl,
            "entropy": entropy,
            "advantages": advantages,
            "returns": returns,
        }
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
        rollout: dict[str, Tensor],
        orders: Sequence[Tensor],
        kept: _Pass | None = None,
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
                    rollout["logps"][rows],
                    rollout["advantages"][rows],
                    values,
                    rollout["values"][rows],
                    rollout["returns"][rows],
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
            "watch": {
                "scores": self.watch.scores,
                "first_length": self.watch.first_length,
                "flags": self.watch.flags,
            },
            "config": _jsonable(self.config),
        }
        save_checkpoint(self.accelerator, self.checkpoint_dir, state)

    def load_checkpoint(self) -> None:
        keys = ("batch_size", "mini_batch_size", "ppo_epochs", "max_new_tokens", "kl_estimator")
        saved = load_checkpoint(self.accelerator, self.checkpoint_dir, _jsonable(self.config), keys)
        self.iteration = saved["iteration"]
        self.kl_control.value = saved["beta"]
        watch = saved["watch"]
        self.watch.scores, self.watch.first_length = watch["scores"], watch["first_length"]
        self.watch.flags = watch["flags"]

    def save(self, folder: Path) -> None:
        """The policy (adapter or full model), the tokenizer and the value head."""
        folder.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(str(folder))
        self.tokenizer.save_pretrained(str(folder))
        head = self.accelerator.unwrap_model(self.module).value_head
        torch.save(head.state_dict(), folder / "value_head.pt")


@dataclass
class _Pass:
    """One mini-batch's forward pass, graph attached: response log-probs, entropy, values."""

    logps: Tensor
    entropy: Tensor
    values: Tensor


def _has_dropout(module: nn.Module) -> bool:
    """Whether a training-mode pass can differ from an eval-mode one: a dropout module, or
    any positive number under a config key naming dropout, layer drop or router jitter
    (applied functionally by many architectures). Wide on purpose: a false alarm only costs
    the reused pass and the shared prefix."""
    configs: dict[int, Any] = {}  # the submodules of a model mostly share one config
    for sub in module.modules():
        if isinstance(sub, nn.Dropout) and sub.p > 0:
            return True
        config = getattr(sub, "config", None)
        if config is not None and hasattr(config, "to_dict"):
            configs[id(config)] = config
    return any(_random_in_training(config.to_dict()) for config in configs.values())


def _random_in_training(settings: dict[str, Any]) -> bool:
    for key, value in settings.items():
        if isinstance(value, dict) and _random_in_training(value):
            return True
        named = any(word in str(key).lower() for word in ("drop", "jitter", "noise"))
        if named and isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
            return True
    return False


def _jsonable(config: Any) -> dict[str, Any]:
    return dict(json.loads(json.dumps(asdict(config), default=str)))


def write_jsonl_append(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def policy_divergence(policy: Any, reference: Any, batch: Batch, temperature: float = 1.0) -> float:
    """Mean per-sequence KL(policy ‖ reference) over a fixed set of responses, computed
    exactly over the vocabulary at every response position (for comparing runs)."""
    args = (batch.input_ids, batch.attention_mask, batch.index)
    with torch.no_grad():
        a = torch.log_softmax(picked_logits(policy, *args)[0].float() / temperature, -1)
        b = torch.log_softmax(picked_logits(reference, *args)[0].float() / temperature, -1)
        kl = (a.exp() * (a - b)).sum(-1) * batch.mask
    return float(kl.sum(-1).mean())
