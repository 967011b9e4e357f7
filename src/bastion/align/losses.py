"""Every alignment loss as a pure function on log-prob tensors.

No model, no trainer: each function takes per-sequence log-probabilities (shape ``(batch,)``)
and its hyper-parameters by keyword, and returns a :class:`LossOutput` with the per-example
losses and the implicit rewards. Trainers gather log-probs and call these; which aggregation of
token log-probs each loss expects (sum or mean over completion tokens) is in :data:`LOSSES`.

Sum vs mean, where papers and tools disagree:

* DPO, robust DPO, hinge and KTO use **summed** token log-probs, as their papers define the
  sequence likelihood.
* IPO: the paper writes the loss on sequence log-likelihood ratios, but with sums the target
  margin ``1/(2β)`` is tiny next to ratios that grow with length, so the regression target is
  dominated by length. We follow the issue and TRL and use **length-normalized (mean)**
  log-probs, which makes ``β`` comparable across data sets.
* ORPO and SimPO use **mean** log-probs, as both papers specify.

PPO's arithmetic (the last section) works per token instead, on ``(batch, response length)``
tensors with a mask of the response tokens: the KL estimators, the per-token rewards, GAE,
whitening, and the clipped policy and value losses — each checked by hand in the tests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class LossOutput:
    """Per-example losses, and the implicit rewards of the chosen and rejected completions."""

    losses: Tensor
    chosen_rewards: Tensor
    rejected_rewards: Tensor


def reward_loss(
    *,
    chosen_rewards: Tensor,
    rejected_rewards: Tensor,
    margin: Tensor | None = None,
    center_coefficient: float = 0.0,
) -> LossOutput:
    """Bradley-Terry reward-model loss: ``-log σ(r_w − r_l − m) + c·(r_w + r_l)²``.

    Bradley & Terry 1952; as used for RLHF reward models by Ouyang et al. 2022 (InstructGPT).
    The optional margin ``m`` is Llama 2's (Touvron et al. 2023); the centering term (Eisenstein
    et al. 2023) keeps rewards near zero, and its batch mean equals ``c·mean((r_w + r_l)²)``.
    """
    difference = chosen_rewards - rejected_rewards
    if margin is not None:
        difference = difference - margin
    losses = -F.logsigmoid(difference)
    if center_coefficient:
        losses = losses + center_coefficient * (chosen_rewards + rejected_rewards) ** 2
    return LossOutput(losses, chosen_rewards.detach(), rejected_rewards.detach())


def _dpo_margin(
    policy_chosen_logps: Tensor,
    policy_rejected_logps: Tensor,
    ref_chosen_logps: Tensor,
    ref_rejected_logps: Tensor,
    beta: float,
) -> tuple[Tensor, Tensor, Tensor]:
    """``h = (π_c − ref_c) − (π_r − ref_r)`` and the implicit rewards ``β·(π − ref)``."""
    chosen = policy_chosen_logps - ref_chosen_logps
    rejected = policy_rejected_logps - ref_rejected_logps
    return chosen - rejected, beta * chosen.detach(), beta * rejected.detach()


def dpo_loss(
    *,
    policy_chosen_logps: Tensor,
    policy_rejected_logps: Tensor,
    ref_chosen_logps: Tensor,
    ref_rejected_logps: Tensor,
    beta: float = 0.1,
    label_smoothing: float = 0.0,
    robust: bool = False,
) -> LossOutput:
    """DPO (Rafailov et al. 2023): ``-log σ(β·h)`` with ``h`` the log-ratio margin.

    ``label_smoothing = ε`` assumes a fraction ε of labels are flipped. Conservative DPO
    (Mitchell 2023): ``-(1−ε)·log σ(βh) − ε·log σ(−βh)``. Robust DPO (Chowdhury et al. 2024),
    an unbiased estimate under flipped labels: ``(-(1−ε)·log σ(βh) + ε·log σ(−βh)) / (1−2ε)``.
    """
    if not 0.0 <= label_smoothing < 0.5:
        raise ValueError(f"label_smoothing must be in [0, 0.5), got {label_smoothing}")
    h, chosen, rejected = _dpo_margin(
        policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta
    )
    eps = label_smoothing
    if robust:
        losses = (-(1 - eps) * F.logsigmoid(beta * h) + eps * F.logsigmoid(-beta * h)) / (
            1 - 2 * eps
        )
    else:
        losses = -(1 - eps) * F.logsigmoid(beta * h) - eps * F.logsigmoid(-beta * h)
    return LossOutput(losses, chosen, rejected)


def hinge_loss(
    *,
    policy_chosen_logps: Tensor,
    policy_rejected_logps: Tensor,
    ref_chosen_logps: Tensor,
    ref_rejected_logps: Tensor,
    beta: float = 0.1,
) -> LossOutput:
    """SLiC-HF's hinge on the DPO margin (Zhao et al. 2023): ``max(0, 1 − β·h)``."""
    h, chosen, rejected = _dpo_margin(
        policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta
    )
    return LossOutput(torch.relu(1 - beta * h), chosen, rejected)


def ipo_loss(
    *,
    policy_chosen_logps: Tensor,
    policy_rejected_logps: Tensor,
    ref_chosen_logps: Tensor,
    ref_rejected_logps: Tensor,
    beta: float = 0.1,
) -> LossOutput:
    """IPO (Azar et al. 2023): ``(h − 1/(2β))²``, regressing the margin to a fixed target.

    Expects length-normalized (mean) log-probs; see the module docstring.
    """
    h, chosen, rejected = _dpo_margin(
        policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta
    )
    return LossOutput((h - 1 / (2 * beta)) ** 2, chosen, rejected)


def kto_loss(
    *,
    policy_logps: Tensor,
    ref_logps: Tensor,
    labels: Tensor,
    policy_kl_logps: Tensor,
    ref_kl_logps: Tensor,
    beta: float = 0.1,
    desirable_weight: float = 1.0,
    undesirable_weight: float = 1.0,
) -> LossOutput:
    """KTO (Ethayarajh et al. 2024) on unpaired examples.

    With ``r = π − ref`` for each completion and the reference point
    ``z = max(0, mean(π_KL − ref_KL))`` estimated from *mismatched* prompt/completion pairs
    (detached, as in the paper), a desirable example costs ``λ_D·(1 − σ(β·(r − z)))`` and an
    undesirable one ``λ_U·(1 − σ(β·(z − r)))``. ``labels`` is a bool tensor (True =
    desirable). The chosen/rejected rewards are ``β·r`` of the desirable/undesirable rows.
    """
    labels = labels.bool()
    z = (policy_kl_logps - ref_kl_logps).mean().clamp(min=0).detach()
    r = policy_logps - ref_logps
    desirable = desirable_weight * (1 - torch.sigmoid(beta * (r - z)))
    undesirable = undesirable_weight * (1 - torch.sigmoid(beta * (z - r)))
    losses = torch.where(labels, desirable, undesirable)
    rewards = beta * r.detach()
    return LossOutput(losses, rewards[labels], rewards[~labels])


def orpo_loss(
    *,
    policy_chosen_logps: Tensor,
    policy_rejected_logps: Tensor,
    lam: float = 0.1,
) -> LossOutput:
    """ORPO (Hong et al. 2024): ``NLL(y_w) − λ·log σ(log odds(y_w) − log odds(y_l))``.

    Takes **mean** per-token log-probs ``p``; ``odds = p / (1 − p)`` on the probability scale,
    so ``log odds = log p − log(1 − exp(log p))`` (computed as ``log(−expm1(log p))`` for
    stability). No reference model. Rewards are ``λ·log p`` as TRL reports them.
    """
    log_odds = (policy_chosen_logps - torch.log(-torch.expm1(policy_chosen_logps))) - (
        policy_rejected_logps - torch.log(-torch.expm1(policy_rejected_logps))
    )
    losses = -policy_chosen_logps - lam * F.logsigmoid(log_odds)
    return LossOutput(
        losses, lam * policy_chosen_logps.detach(), lam * policy_rejected_logps.detach()
    )


def simpo_loss(
    *,
    policy_chosen_logps: Tensor,
    policy_rejected_logps: Tensor,
    beta: float = 2.0,
    gamma: float = 0.5,
    label_smoothing: float = 0.0,
) -> LossOutput:
    """SimPO (Meng et al. 2024): ``-log σ(β·(p̄_w − p̄_l) − γ)`` on **mean** log-probs.

    No reference model; ``γ`` is the target reward margin. Optional label smoothing as in DPO.
    """
    logits = beta * (policy_chosen_logps - policy_rejected_logps) - gamma
    eps = label_smoothing
    losses = -(1 - eps) * F.logsigmoid(logits) - eps * F.logsigmoid(-logits)
    return LossOutput(
        losses, beta * policy_chosen_logps.detach(), beta * policy_rejected_logps.detach()
    )


Aggregation = Literal["sum", "mean"]


@dataclass(frozen=True)
class PreferenceLoss:
    """A preference loss as the trainer needs to know it."""

    name: str
    fn: Callable[..., LossOutput]
    aggregation: Aggregation  # how token log-probs become a sequence log-prob
    needs_reference: bool
    paired: bool = True  # False: unpaired prompt/completion/label data (KTO)
    options: tuple[tuple[str, object], ...] = ()  # fixed keyword arguments


LOSSES: dict[str, PreferenceLoss] = {
    loss.name: loss
    for loss in (
        PreferenceLoss("dpo", dpo_loss, "sum", True),
        PreferenceLoss("robust", dpo_loss, "sum", True, options=(("robust", True),)),
        PreferenceLoss("hinge", hinge_loss, "sum", True),
        PreferenceLoss("ipo", ipo_loss, "mean", True),
        PreferenceLoss("kto", kto_loss, "sum", True, paired=False),
        PreferenceLoss("orpo", orpo_loss, "mean", False),
        PreferenceLoss("simpo", simpo_loss, "mean", False),
    )
}


# --- PPO (Schulman et al. 2017) on per-token tensors: batch × response length, with a mask ------


KL_ESTIMATORS = ("k1", "k2", "k3")


def masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """The mean over the entries where ``mask`` is 1 (0 when there are none)."""
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
    """The loss to minimize (``policy + vf_coef·value``), its two parts, and the statistics
    logged under TRL's names (clip fractions, approximate KL, mean ratio)."""

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
    """PPO (Schulman et al. 2017) with ``ρ = exp(logps − old_logps)``: the clipped surrogate
    ``max(−A·ρ, −A·clip(ρ, 1±ε))`` and the clipped value loss
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
