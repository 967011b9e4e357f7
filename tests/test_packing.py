"""Packed (padding-free, shared-prompt) log-probs equal padded ones, values and gradients."""

import pytest
import torch

from bastion.models.packing import can_pack, pack, packed_attention_on, token_logps
from bastion.models.scoring import completion_logps
from helpers import TOKENIZER, tiny_lm

PROMPTS = [[1, 5, 9, 14], [1, 7], [1, 5, 9, 14], [3, 4, 5, 6, 7, 8]]
COMPLETIONS = [[20, 21, 22], [30], [23, 24, 25, 26, 27, 28], [40, 41]]


def both(model, packed: bool):
    return completion_logps(model, PROMPTS, COMPLETIONS, TOKENIZER.pad_token_id, packed=packed)


def test_layout_shares_identical_prompts_and_restarts_positions() -> None:
    row = pack(PROMPTS, COMPLETIONS, torch.device("cpu"))
    # prompt 0 once, its two completions, then prompt 1 + completion, prompt 3 + completion
    first = [1, 5, 9, 14, 20, 21, 22, 23, 24, 25, 26, 27, 28]
    assert row.ids[0].tolist() == [*first, 1, 7, 30, 3, 4, 5, 6, 7, 8, 40, 41]
    assert row.positions[0, :13].tolist() == [0, 1, 2, 3, 4, 5, 6, 4, 5, 6, 7, 8, 9]
    assert row.order == (0, 2, 1, 3)
    # the second completion of prompt 0 is predicted from the prompt's last token, then itself
    assert row.predictors[3:9].tolist() == [3, 7, 8, 9, 10, 11]
    sibling = row.pieces[1]
    assert sibling.mask is not None and sibling.mask.shape == (6, 10)
    assert sibling.mask[0].tolist() == [True] * 5 + [False] * 5  # prompt + itself, not chosen


def test_packed_values_equal_padded() -> None:
    model = tiny_lm(seed=3).eval()
    assert can_pack(model)
    with torch.no_grad():
        packed, packed_mask = both(model, True)
        padded, padded_mask = both(model, False)
    assert torch.equal(packed_mask, padded_mask)
    assert packed.tolist() == [pytest.approx(row, abs=1e-5) for row in padded.tolist()]


def test_packed_gradients_equal_padded() -> None:
    grads = []
    for packed in (True, False):
        model = tiny_lm(seed=3)
        logps, _ = both(model, packed)
        (logps.sum(-1) * torch.tensor([1.0, -2.0, 0.5, 3.0])).sum().backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    for name, grad in grads[0].items():
        torch.testing.assert_close(grad, grads[1][name], atol=1e-5, rtol=1e-4, msg=name)


def test_the_model_attends_normally_after_a_packed_pass() -> None:
    model = tiny_lm(seed=3).eval()
    ids = torch.tensor([[1, 5, 9, 14, 20]])
    with torch.no_grad():
        before = model(input_ids=ids).logits
        both(model, True)
        after = model(input_ids=ids).logits
    assert model.config._attn_implementation == "sdpa"
    torch.testing.assert_close(before, after)


def test_chunked_head_matches_log_softmax_and_its_gradient() -> None:
    torch.manual_seed(0)
    head = torch.nn.Linear(8, 50, bias=False)
    hidden = torch.randn(7, 8, requires_grad=True)
    targets = torch.randint(0, 50, (7,))
    chunked = token_logps(head, hidden, targets, chunk=3)
    plain = torch.log_softmax(head(hidden), -1).gather(-1, targets[:, None]).squeeze(-1)
    torch.testing.assert_close(chunked, plain)
    (g1,) = torch.autograd.grad(chunked.sum(), hidden)
    (g2,) = torch.autograd.grad(plain.sum(), hidden)
    torch.testing.assert_close(g1, g2)


def test_gradient_checkpointing_recomputes_with_packed_attention() -> None:
    grads = []
    for checkpointing in (True, False):
        model = tiny_lm(seed=3)
        if checkpointing:
            model.activation_checkpointing_enable({"use_reentrant": False})
        with packed_attention_on(model):  # as the training loop holds it, backward included
            logps, _ = both(model, True)
            logps.sum().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    torch.testing.assert_close(grads[0], grads[1], atol=1e-5, rtol=1e-4)


def test_ordinary_calls_under_packed_attention_are_plain_sdpa() -> None:
    model = tiny_lm(seed=3).eval()
    ids = torch.tensor([[0, 0, 1, 5, 9], [1, 5, 9, 14, 20]])
    attention = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    with torch.no_grad():
        plain = model(input_ids=ids, attention_mask=attention).logits
        with packed_attention_on(model):
            switched = model(input_ids=ids, attention_mask=attention).logits
    torch.testing.assert_close(plain[:, 2:], switched[:, 2:])
