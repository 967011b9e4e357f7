"""The preference trainer for the whole DPO family: one short step function, loss by name.

Paired data (``PreferencePair``) trains DPO, robust DPO, hinge, IPO, ORPO and SimPO; unpaired
data (``UnpairedExample``) trains KTO. The loss comes from :data:`bastion.align.losses.LOSSES`,
which also says how token log-probs aggregate and whether a reference is needed. Reference
log-probs are computed once before training (see :mod:`bastion.align.reference`).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from bastion.align.logprobs import Encoded, concatenated_logps, encode, sequence_logps
from bastion.align.losses import LOSSES, LossOutput, PreferenceLoss
from bastion.align.precision import autocast_for, resolve_precision
from bastion.align.reference import reference_logps
from bastion.align.train import LoopTrainer, TrainConfig
from bastion.errors import ConfigError, DataError
from bastion.models.hf import end_of_turn_ids
from bastion.types import PreferencePair, UnpairedExample


@dataclass
class PreferenceConfig:
    """The loss and its hyper-parameters (only those the chosen loss takes are used)."""

    loss: str = "dpo"
    beta: float = 0.1
    label_smoothing: float = 0.0
    gamma: float = 0.5  # SimPO's target margin
    lam: float = 0.1  # ORPO's weight on the odds-ratio term
    desirable_weight: float = 1.0  # KTO
    undesirable_weight: float = 1.0  # KTO
    max_length: int = 512
    keep_template_suffix: bool = False  # True scores the template's text after end-of-turn (TRL)
    cache_reference: bool = True  # reuse reference log-probs cached on disk for this model + data

    @property
    def spec(self) -> PreferenceLoss:
        try:
            return LOSSES[self.loss]
        except KeyError:
            raise ConfigError(
                f"loss must be one of {', '.join(LOSSES)}, got {self.loss!r}"
            ) from None

    def loss_kwargs(self) -> dict[str, Any]:
        accepted = inspect.signature(self.spec.fn).parameters
        values = {k: getattr(self, k) for k in accepted if hasattr(self, k)}
        return {**values, **dict(self.spec.options)}


class PreferenceTrainer(LoopTrainer):
    """Encodes the data, precomputes the reference, and runs the shared loop."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        data: Sequence[PreferencePair] | Sequence[UnpairedExample],
        config: PreferenceConfig,
        train: TrainConfig,
        *,
        eval_data: Sequence[PreferencePair] = (),
    ) -> None:
        self.spec = config.spec
        self.model, self.tokenizer, self.config, self.train_config = model, tokenizer, config, train
        # reference passes in the precision the policy's passes will run in (see autocast_for)
        self.precision = resolve_precision(train.mixed_precision)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.eos_ids = end_of_turn_ids(model, tokenizer)
        if self.spec.paired:
            self.chosen, self.rejected = self._encode_pairs(data)
        else:
            self.chosen, self.rejected = self._encode_unpaired(data)
        self.ref_chosen: Tensor | None = None
        self.ref_rejected: Tensor | None = None
        if self.spec.needs_reference:
            self.ref_chosen, self.ref_rejected = self._reference(self.chosen, self.rejected)
        # Held-out pairs get their reference log-probs now, while the policy is the reference.
        self.eval_chosen, self.eval_rejected = (
            self._encode_pairs(eval_data) if eval_data else ([], [])
        )
        self.eval_ref_margin = torch.zeros(len(self.eval_chosen))
        if eval_data and self.spec.needs_reference:
            ref_c, ref_r = self._reference(self.eval_chosen, self.eval_rejected)
            self.eval_ref_margin = ref_c - ref_r

    def _reference(self, chosen: list[Encoded], rejected: list[Encoded]) -> tuple[Tensor, Tensor]:
        """Reference log-probs of both sides, each pair's two completions side by side so
        that a packed pass computes their shared prompt once."""
        both = [e for pair in zip(chosen, rejected, strict=True) for e in pair]
        values = reference_logps(
            self.model,
            both,
            self.pad_id,
            self.spec.aggregation,
            use_cache=self.config.cache_reference,
            precision=self.precision,
        )
        return values[0::2].contiguous(), values[1::2].contiguous()

    def example_count(self) -> int:
        return len(self.chosen)

    def step(self, model: Any, batch: Sequence[int]) -> tuple[Tensor, dict[str, float]]:
        out, policy_c, policy_r = self.losses(model, batch)
        metrics = {
            "rewards/chosen": out.chosen_rewards.mean().item()
            if out.chosen_rewards.numel()
            else 0.0,
            "rewards/rejected": (
                out.rejected_rewards.mean().item() if out.rejected_rewards.numel() else 0.0
            ),
            "logps/chosen": policy_c.detach().mean().item(),
            "logps/rejected": policy_r.detach().mean().item(),
        }
        if self.spec.paired:
            margin = out.chosen_rewards - out.rejected_rewards
            metrics["rewards/accuracies"] = (margin > 0).float().mean().item()
            metrics["rewards/margins"] = margin.mean().item()
        if self.ref_chosen is not None:
            # k1 estimate of KL(π‖ref) on the data's completions (not on policy samples)
            ref = self.ref_chosen[list(batch)].to(policy_c.device)
            metrics["kl_to_ref"] = (policy_c.detach() - ref).mean().item()
        return out.losses.mean(), metrics

    def losses(self, model: Any, batch: Sequence[int]) -> tuple[LossOutput, Tensor, Tensor]:
        """The loss output and the policy's chosen/rejected sequence log-probs for a batch."""
        idx = list(batch)
        agg = self.spec.aggregation
        kwargs = self.config.loss_kwargs()
        if not self.spec.paired:
            own = sequence_logps(model, [self.chosen[i] for i in idx], self.pad_id, agg)
            with torch.no_grad():  # the KL reference point is detached: no backward through it
                kl = sequence_logps(model, [self.rejected[i] for i in idx], self.pad_id, agg)
            return self._kto(model, idx, own, kl, kwargs)
        pair = concatenated_logps(
            model,
            [self.chosen[i] for i in idx],
            [self.rejected[i] for i in idx],
            self.pad_id,
            agg,
        )
        if self.spec.needs_reference:
            assert self.ref_chosen is not None and self.ref_rejected is not None
            device = pair.chosen.device
            kwargs.update(
                ref_chosen_logps=self.ref_chosen[idx].to(device),
                ref_rejected_logps=self.ref_rejected[idx].to(device),
            )
        out = self.spec.fn(
            policy_chosen_logps=pair.chosen, policy_rejected_logps=pair.rejected, **kwargs
        )
        return out, pair.chosen, pair.rejected

    def _kto(
        self,
        model: Any,
        idx: list[int],
        completion: Tensor,
        mismatched: Tensor,
        kwargs: dict[str, Any],
    ) -> tuple[LossOutput, Tensor, Tensor]:
        """KTO: ``chosen`` holds each example's completion, ``rejected`` a mismatched one."""
        assert self.ref_chosen is not None and self.ref_rejected is not None
        device = completion.device
        labels = torch.tensor([self.labels[i] for i in idx], device=device)
        out = self.spec.fn(
            policy_logps=completion,
            ref_logps=self.ref_chosen[idx].to(device),
            labels=labels,
            policy_kl_logps=mismatched,
            ref_kl_logps=self.ref_rejected[idx].to(device),
            **kwargs,
        )
        return out, completion, mismatched

    def evaluate(self) -> dict[str, float]:
        """Implicit-reward accuracy and mean reward margin on the held-out pairs."""
        if not self.eval_chosen:
            raise ConfigError("no eval_data was given to the trainer")
        agg, model = self.spec.aggregation, self.model
        was_training = model.training
        model.eval()
        with torch.no_grad(), autocast_for(model, self.precision):  # as the reference margin
            margin = sequence_logps(model, self.eval_chosen, self.pad_id, agg) - sequence_logps(
                model, self.eval_rejected, self.pad_id, agg
            )
            # does the model itself prefer the chosen answer (per-token, so length is fair)?
            per_token = sequence_logps(
                model, self.eval_chosen, self.pad_id, "mean"
            ) - sequence_logps(model, self.eval_rejected, self.pad_id, "mean")
        model.train(was_training)
        margin = margin.cpu() - self.eval_ref_margin
        return {
            "accuracy": (margin > 0).float().mean().item(),
            "margin": margin.mean().item(),
            "preference_accuracy": (per_token > 0).float().mean().item(),
        }

    # --- encoding -------------------------------------------------------------------------

    def _encode(self, prompt: Any, completion: Any, where: str) -> Encoded:
        try:
            return encode(
                self.tokenizer,
                prompt,
                completion,
                eos_ids=self.eos_ids,
                max_length=self.config.max_length,
                keep_template_suffix=self.config.keep_template_suffix,
            )
        except DataError as exc:
            raise exc.at(where) from None

    def _encode_pairs(self, data: Sequence[Any]) -> tuple[list[Encoded], list[Encoded]]:
        if not data or not all(isinstance(p, PreferencePair) for p in data):
            raise DataError(f"loss {self.config.loss!r} needs prompt/chosen/rejected pairs")
        chosen, rejected = [], []
        for i, pair in enumerate(data):
            where = f"pair {pair.id or i}"
            chosen.append(self._encode(pair.prompt, pair.chosen, where))
            rejected.append(self._encode(pair.prompt, pair.rejected, where))
        return chosen, rejected

    def _encode_unpaired(self, data: Sequence[Any]) -> tuple[list[Encoded], list[Encoded]]:
        if not data or not all(isinstance(e, UnpairedExample) for e in data):
            raise DataError("loss 'kto' needs prompt/completion/label examples")
        self.labels = [e.label for e in data]
        if len(set(self.labels)) < 2:
            kind = "desirable" if self.labels[0] else "undesirable"
            raise DataError(f"KTO data has only {kind} examples; it needs both labels")
        own = [
            self._encode(e.prompt, e.completion, f"example {e.id or i}") for i, e in enumerate(data)
        ]
        mismatched = [
            self._encode(data[i].prompt, data[j].completion, f"example {i} (KL pair)")
            for i, j in enumerate(kl_partners(len(data), self.train_config.batch_size))
        ]
        return own, mismatched


def kl_partners(n: int, batch_size: int) -> list[int]:
    """Whose completion each example's prompt is paired with for KTO's KL reference point.

    The data is cut into consecutive chunks of ``batch_size`` and completions rotate by one
    within each chunk (example ``i`` takes ``i − 1``'s, the first takes the last's), so the
    mismatched completions are the chunk's own completions under other prompts, as the KTO
    paper advises and as TRL's ``KTOTrainer`` pairs them. A chunk of one borrows the previous
    example's completion.
    """
    partners = []
    for start in range(0, n, batch_size):
        size = min(batch_size, n - start)
        if size == 1:
            partners.append((start - 1) % n)
            continue
        partners += [start + (k - 1) % size for k in range(size)]
    return partners
