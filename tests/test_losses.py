"""Each loss against numbers worked out by hand, then against an independent re-implementation
of the published formula (plain Python floats, no torch) on random inputs."""

import math
import random

import pytest
import torch

from bastion.align.losses import (
    LOSSES,
    dpo_loss,
    hinge_loss,
    ipo_loss,
    kto_loss,
    orpo_loss,
    reward_loss,
    simpo_loss,
)


def t(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def nls(x: float) -> float:  # -log σ(x)
    return math.log1p(math.exp(-x)) if x > -30 else -x


# Two pairs: margins h = (π_c − ref_c) − (π_r − ref_r) = 1.0 and −0.5.
PAIRS = dict(
    policy_chosen_logps=t(-1.0, -2.0),
    policy_rejected_logps=t(-3.0, -1.0),
    ref_chosen_logps=t(-1.5, -2.0),
    ref_rejected_logps=t(-2.5, -1.5),
)


def test_dpo_by_hand() -> None:
    out = dpo_loss(**PAIRS, beta=0.5)
    # βh = 0.5 and −0.25: -log σ(0.5) = log(1 + e^-0.5) = 0.474077; log(1 + e^0.25) = 0.825939
    assert out.losses.tolist() == pytest.approx([0.4740769842, 0.8259394199], abs=1e-9)
    assert out.chosen_rewards.tolist() == pytest.approx([0.25, 0.0])  # β·(π_c − ref_c)
    assert out.rejected_rewards.tolist() == pytest.approx([-0.25, 0.25])


def test_conservative_and_robust_dpo_by_hand() -> None:
    conservative = dpo_loss(**PAIRS, beta=0.5, label_smoothing=0.1).losses[0].item()
    # 0.9·(-log σ(0.5)) + 0.1·(-log σ(-0.5)) = 0.9·0.474077 + 0.1·0.974077
    assert conservative == pytest.approx(0.5240769842, abs=1e-9)
    robust = dpo_loss(**PAIRS, beta=0.5, label_smoothing=0.1, robust=True).losses[0].item()
    # (0.9·0.474077 − 0.1·0.974077) / 0.8
    assert robust == pytest.approx(0.4115769842, abs=1e-9)
    with pytest.raises(ValueError, match="label_smoothing"):
        dpo_loss(**PAIRS, label_smoothing=0.5)


def test_hinge_and_ipo_by_hand() -> None:
    assert hinge_loss(**PAIRS, beta=0.5).losses.tolist() == pytest.approx([0.5, 1.25])
    # target 1/(2β) = 1: (1 − 1)² = 0 and (−0.5 − 1)² = 2.25
    assert ipo_loss(**PAIRS, beta=0.5).losses.tolist() == pytest.approx([0.0, 2.25])


def test_reward_loss_by_hand() -> None:
    out = reward_loss(chosen_rewards=t(2.0, -1.0), rejected_rewards=t(0.0, 0.0), margin=t(0.5, 0.0))
    # -log σ(2 − 0 − 0.5) = 0.201413; -log σ(−1) = 1.313262
    assert out.losses.tolist() == pytest.approx([0.2014132780, 1.3132616875], abs=1e-9)
    centered = reward_loss(chosen_rewards=t(2.0), rejected_rewards=t(0.0), center_coefficient=0.01)
    assert centered.losses.item() == pytest.approx(nls(2.0) + 0.01 * 4.0, abs=1e-12)


def test_kto_by_hand() -> None:
    # r = π − ref = 1.0 (desirable) and 0.5 (undesirable); KL from mismatched pairs:
    # mean(−1.0 − (−1.2), −2.0 − (−2.0)) = 0.1 → z = 0.1
    out = kto_loss(
        policy_logps=t(-1.0, -2.0),
        ref_logps=t(-2.0, -2.5),
        labels=torch.tensor([True, False]),
        policy_kl_logps=t(-1.0, -2.0),
        ref_kl_logps=t(-1.2, -2.0),
        beta=1.0,
        desirable_weight=1.0,
        undesirable_weight=2.0,
    )
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    assert out.losses.tolist() == pytest.approx([1 - sig(0.9), 2 * (1 - sig(-0.4))], abs=1e-12)
    assert out.chosen_rewards.tolist() == [1.0] and out.rejected_rewards.tolist() == [0.5]


def test_kto_reference_point_is_never_negative() -> None:
    out = kto_loss(
        policy_logps=t(-1.0),
        ref_logps=t(-1.0),
        labels=torch.tensor([True]),
        policy_kl_logps=t(-5.0),
        ref_kl_logps=t(-1.0),
        beta=1.0,
    )
    assert out.losses.item() == pytest.approx(0.5)  # z clamped to 0, r = 0: 1 − σ(0)


def test_orpo_by_hand() -> None:
    # mean log-probs log(0.5) and log(0.2): odds 1 and 0.25 → log odds ratio = log 4
    out = orpo_loss(
        policy_chosen_logps=t(math.log(0.5)), policy_rejected_logps=t(math.log(0.2)), lam=0.1
    )
    expected = -math.log(0.5) + 0.1 * nls(math.log(4.0))
    assert out.losses.item() == pytest.approx(expected, abs=1e-12)


def test_simpo_by_hand() -> None:
    out = simpo_loss(
        policy_chosen_logps=t(-0.5), policy_rejected_logps=t(-1.0), beta=2.0, gamma=0.5
    )
    assert out.losses.item() == pytest.approx(nls(2.0 * 0.5 - 0.5), abs=1e-12)  # -log σ(0.5)


# --- independent re-implementations of the published formulas, checked on random inputs ---------


def reference(name: str, row: dict[str, float], beta: float) -> float:
    h = (row["pc"] - row["rc"]) - (row["pr"] - row["rr"])
    if name == "dpo":
        return nls(beta * h)
    if name == "robust":
        eps = 0.2
        return ((1 - eps) * nls(beta * h) - eps * nls(-beta * h)) / (1 - 2 * eps)
    if name == "hinge":
        return max(0.0, 1 - beta * h)
    if name == "ipo":
        return (h - 1 / (2 * beta)) ** 2
    if name == "simpo":
        return nls(beta * (row["pc"] - row["pr"]) - 0.3)
    if name == "orpo":
        pc, pr = math.exp(row["pc"]), math.exp(row["pr"])
        return -row["pc"] + beta * nls(math.log(pc / (1 - pc)) - math.log(pr / (1 - pr)))
    raise KeyError(name)


@pytest.mark.parametrize("name", ["dpo", "robust", "hinge", "ipo", "simpo", "orpo"])
def test_agrees_with_the_published_formula(name: str) -> None:
    rng = random.Random(name)
    rows = [{k: -rng.uniform(0.05, 4.0) for k in ("pc", "pr", "rc", "rr")} for _ in range(64)]
    col = lambda k: torch.tensor([r[k] for r in rows], dtype=torch.float64)  # noqa: E731
    beta = 0.7
    if name in ("simpo",):
        out = simpo_loss(
            policy_chosen_logps=col("pc"), policy_rejected_logps=col("pr"), beta=beta, gamma=0.3
        )
    elif name == "orpo":
        out = orpo_loss(policy_chosen_logps=col("pc"), policy_rejected_logps=col("pr"), lam=beta)
    else:
        fn = LOSSES[name].fn
        extra = {"label_smoothing": 0.2} if name == "robust" else {}
        out = fn(
            policy_chosen_logps=col("pc"),
            policy_rejected_logps=col("pr"),
            ref_chosen_logps=col("rc"),
            ref_rejected_logps=col("rr"),
            beta=beta,
            **dict(LOSSES[name].options),
            **extra,
        )
    expected = [reference(name, r, beta) for r in rows]
    assert out.losses.tolist() == pytest.approx(expected, abs=1e-6)


def test_registry_declares_aggregation_as_the_papers_do() -> None:
    assert {n: (s.aggregation, s.needs_reference) for n, s in LOSSES.items()} == {
        "dpo": ("sum", True),
        "robust": ("sum", True),
        "hinge": ("sum", True),
        "ipo": ("mean", True),
        "kto": ("sum", True),
        "orpo": ("mean", False),
        "simpo": ("mean", False),
    }


def test_losses_have_gradients() -> None:
    pc = t(-1.0, -2.0).requires_grad_()
    dpo_loss(
        policy_chosen_logps=pc,
        policy_rejected_logps=t(-3.0, -1.0),
        ref_chosen_logps=t(-1.5, -2.0),
        ref_rejected_logps=t(-2.5, -1.5),
    ).losses.sum().backward()
    assert pc.grad is not None and (pc.grad < 0).all()  # raising the chosen log-prob lowers loss
