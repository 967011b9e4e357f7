"""Unlearning: make a model lose a body of knowledge (the forget set) and keep the rest.

Both sets are conversations (``messages`` rows); what is learned or unlearned is the assistant
turns. Three methods, each a loss on a micro-batch of forget examples paired with as many
retain examples (cycled):

* ``ga`` — gradient ascent: minimize ``-NLL(forget)`` (Jang et al., 2023);
* ``gd`` — gradient difference: ``-NLL(forget) + NLL(retain)`` (Liu et al., 2022);
* ``npo`` — negative preference optimization (Zhang et al., 2024): on each forget sequence,
  ``-(2/β)·log σ(-β·(log πθ(y|x) − log πref(y|x)))`` — DPO with only a rejected answer, which
  stops pushing once the sequence is already unlikely, so it does not collapse the model as
  plain ascent does — plus ``NLL(retain)``.

Every method can add ``kl_coef ·`` the token-level KL from the original model to the current
one on the retain tokens (the original is a frozen copy, or the model with its LoRA adapters
off). :func:`evaluate_unlearning` reports the forget and retain sets' mean token
log-likelihood, whether greedy decoding still produces each answer, and — given rephrased
prompts — whether the forgotten answers can still be elicited another way.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from bastion.align.precision import autocast_for, resolve_precision
from bastion.align.sft import SftExample, encode_conversation, padded_forward
from bastion.align.train import LoopTrainer, TrainConfig
from bastion.errors import BastionError, DataError
from bastion.models.hf import HFChatModel, end_of_turn_ids
from bastion.types import Conversation

METHODS = ("ga", "gd", "npo")


def _token_logps(
    model: Any, examples: Sequence[SftExample], pad_id: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Per target token: log-probs (rows × positions), the target mask, and the logits."""
    ids, mask, logits = padded_forward(model, examples, pad_id)
    logits = logits[:, :-1].float()
    targets, target_mask = ids[:, 1:], mask[:, 1:]
    logps = torch.log_softmax(logits, -1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return logps * target_mask, target_mask, logits


def sequence_logps(model: Any, examples: Sequence[SftExample], pad_id: int) -> Tensor:
    """Summed log-probability of each example's assistant tokens."""
    logps, _, _ = _token_logps(model, examples, pad_id)
    return logps.sum(-1)


def npo_loss(policy_logps: Tensor, reference_logps: Tensor, beta: float) -> Tensor:
    """NPO on forget sequences: ``-(2/β)·mean(log σ(-β·(log πθ − log πref)))``."""
    return -(2.0 / beta) * F.logsigmoid(-beta * (policy_logps - reference_logps)).mean()


def nll(model: Any, examples: Sequence[SftExample], pad_id: int) -> Tensor:
    logps, mask, _ = _token_logps(model, examples, pad_id)
    return -logps.sum() / mask.sum().clamp(min=1)


class UnlearnTrainer(LoopTrainer):
    """Steps over the forget set; each micro-batch is paired with as many retain examples."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        forget: Sequence[Conversation],
        retain: Sequence[Conversation],
        train: TrainConfig,
        *,
        method: str = "npo",
        beta: float = 0.1,
        kl_coef: float = 0.0,
        max_length: int = 512,
        reference: Any = None,
    ) -> None:
        if method not in METHODS:
            raise BastionError(f"method: expected one of {', '.join(METHODS)}, got {method!r}")
        if method != "ga" and not retain:
            raise BastionError(f"method {method}: needs a retain set")
        if beta <= 0 or kl_coef < 0:
            raise BastionError("beta must be > 0 and kl_coef >= 0")
        self.model, self.tokenizer, self.train_config = model, tokenizer, train
        self.method, self.beta, self.kl_coef = method, beta, kl_coef
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        eos = end_of_turn_ids(model, tokenizer)
        self.forget = _encode(tokenizer, forget, eos, max_length, "forget")
        self.retain = _encode(tokenizer, retain, eos, max_length, "retain")
        needs_reference = method == "npo" or kl_coef > 0
        self.reference = reference
        if needs_reference and reference is None:
            self.reference = copy.deepcopy(model).eval()  # the original, frozen
            for p in self.reference.parameters():
                p.requires_grad_(False)
        # reference passes in the precision the policy's passes will run in (see autocast_for)
        self.precision = resolve_precision(train.mixed_precision)
        self.forget_reference: Tensor | None = None
        if method == "npo":
            with torch.no_grad(), autocast_for(self.reference, self.precision):
                self.forget_reference = torch.cat(
                    [sequence_logps(self.reference, [e], self.pad_id) for e in self.forget]
                )

    def example_count(self) -> int:
        return len(self.forget)

    def step(self, model: Any, batch: Sequence[int]) -> tuple[Tensor, dict[str, float]]:
        forget = [self.forget[i] for i in batch]
        retain = [self.retain[i % len(self.retain)] for i in batch] if self.retain else []
        metrics: dict[str, float] = {}
        if self.method == "npo":
            assert self.forget_reference is not None
            policy = sequence_logps(model, forget, self.pad_id)
            reference = self.forget_reference[list(batch)].to(policy.device)
            loss = npo_loss(policy, reference, self.beta)
            metrics["forget_logp"] = float(policy.detach().mean())
        else:
            forget_nll = nll(model, forget, self.pad_id)
            loss = -forget_nll
            metrics["forget_nll"] = float(forget_nll.detach())
        if self.method in ("gd", "npo") and retain:
            retain_nll = nll(model, retain, self.pad_id)
            loss = loss + retain_nll
            metrics["retain_nll"] = float(retain_nll.detach())
        if self.kl_coef > 0 and retain:
            kl = retain_kl(model, self.reference, retain, self.pad_id, self.precision)
            loss = loss + self.kl_coef * kl
            metrics["retain_kl"] = float(kl.detach())
        return loss, metrics


def retain_kl(
    model: Any, reference: Any, examples: Sequence[SftExample], pad_id: int, precision: str = "no"
) -> Tensor:
    """Mean over retain target tokens of KL(π_ref ‖ π_θ) of the next-token distributions;
    the reference runs under the autocast of ``precision``, as the prepared policy does."""
    _, mask, logits = _token_logps(model, examples, pad_id)
    with torch.no_grad(), autocast_for(reference, precision):
        _, _, ref_logits = _token_logps(reference, examples, pad_id)
    logp = torch.log_softmax(logits, -1)[mask]
    ref_logp = torch.log_softmax(ref_logits, -1)[mask]
    return (ref_logp.exp() * (ref_logp - logp)).sum(-1).mean()


def _encode(
    tokenizer: Any, conversations: Sequence[Conversation], eos: Any, max_length: int, name: str
) -> list[SftExample]:
    out = []
    for i, conversation in enumerate(conversations):
        try:
            out.append(encode_conversation(tokenizer, conversation, eos, max_length))
        except DataError as exc:
            raise exc.at(f"{name} conversation {i}") from None
    return out


@dataclass
class SetReport:
    mean_token_logp: float
    answered: float  # share of examples whose answer greedy decoding still produces

    def to_dict(self) -> dict[str, float]:
        return {"mean_token_logp": self.mean_token_logp, "answered": self.answered}


@torch.no_grad()
def evaluate_set(chat: HFChatModel, conversations: Sequence[Conversation]) -> SetReport:
    """Mean token log-likelihood of the assistant turns, and how often greedy decoding of the
    prompt reproduces the answer (it contains the answer's text, case-insensitively)."""
    prompts = [Conversation(c.messages[:-1]) for c in conversations]
    answers = [c.messages[-1].content for c in conversations]
    scored = chat.logprobs(prompts, answers)
    total = sum(s.total for s in scored)
    tokens = sum(len(s.logprobs) for s in scored)
    width = max(len(chat.tokenizer(a)["input_ids"]) for a in answers) + 4
    replies = chat.generate(prompts, max_new_tokens=width)
    hits = sum(a.strip().lower() in r.lower() for a, r in zip(answers, replies, strict=True))
    return SetReport(total / max(tokens, 1), hits / max(len(conversations), 1))


def evaluate_unlearning(
    chat: HFChatModel,
    forget: Sequence[Conversation],
    retain: Sequence[Conversation],
    rephrased: Sequence[Conversation] = (),
) -> dict[str, Any]:
    """The report of one model: forget, retain and (optionally) rephrased-forget sets."""
    report = {
        "forget": evaluate_set(chat, forget).to_dict(),
        "retain": evaluate_set(chat, retain).to_dict(),
    }
    if rephrased:
        report["rephrased_forget"] = evaluate_set(chat, rephrased).to_dict()
    return report
