"""Mixed-precision passes and the PPO log-prob kernel: the same results as the plain ops,
for less work."""

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from bastion.align import sampled
from bastion.align.lora import LoraSettings, add_lora
from bastion.align.policy_value import PolicyWithValue, picked_logits
from bastion.align.precision import ATTENTION_NAME, fp32_sdpa, lean_passes
from bastion.align.sampled import sampled_logps
from bastion.models.packing import final_hidden, hidden_pass
from helpers import tiny_lm

IDS = torch.tensor([[5, 6, 7, 8, 9, 10], [11, 12, 13, 14, 15, 16]])

# --- sampled_logps ------------------------------------------------------------------------


def _plain(logits: torch.Tensor, tokens: torch.Tensor, t: float) -> tuple[torch.Tensor, ...]:
    logps_all = torch.log_softmax(logits.float() / t, dim=-1)
    entropy = -(logps_all.exp() * logps_all).sum(-1)
    return logps_all.gather(-1, tokens[..., None]).squeeze(-1), entropy


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_sampled_logps_equal_the_log_softmax_and_its_gradient(
    monkeypatch: pytest.MonkeyPatch, dtype: torch.dtype
) -> None:
    monkeypatch.setattr(sampled, "SCRATCH", 3 * 50)  # 3 positions a block: 7 blocks, one short
    torch.manual_seed(0)
    logits = (torch.randn(4, 5, 50) * 3).to(dtype)
    tokens, weights = torch.randint(0, 50, (4, 5)), torch.randn(4, 5)
    kept = logits.clone()
    ours, theirs = logits.clone().requires_grad_(), logits.clone().requires_grad_()
    logps, entropy = sampled_logps(ours, tokens, 0.7)
    want_logps, want_entropy = _plain(theirs, tokens, 0.7)
    assert logps.dtype == entropy.dtype == torch.float32
    assert torch.allclose(logps, want_logps, atol=1e-5)
    assert torch.allclose(entropy, want_entropy.detach(), atol=1e-5)
    assert not entropy.requires_grad
    (logps * weights).sum().backward()
    (want_logps * weights).sum().backward()
    assert ours.grad is not None and theirs.grad is not None and ours.grad.dtype == dtype
    tolerance = 1e-6 if dtype == torch.float32 else 1e-2
    assert torch.allclose(ours.grad.float(), theirs.grad.float(), atol=tolerance)
    assert torch.equal(logits, kept)  # the input is never written to, fp32 included


def test_sampled_logps_gradient_passes_gradcheck(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sampled, "SCRATCH", 2 * 11)
    torch.manual_seed(1)
    logits = torch.randn(3, 2, 11, dtype=torch.float64, requires_grad=True)
    tokens = torch.randint(0, 11, (3, 2))
    assert torch.autograd.gradcheck(lambda x: sampled_logps(x, tokens, 0.6)[0], (logits,))


# --- lean_passes --------------------------------------------------------------------------


def _lora_lm(attention: str) -> nn.Module:
    model = add_lora(tiny_lm(0), LoraSettings(r=4, alpha=8))
    model.get_base_model().config._attn_implementation = attention
    with torch.no_grad():  # adapters that change the output, so their gradients are not 0
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.1)
    return model


def _pass(model: nn.Module) -> tuple[torch.Tensor, list[torch.Tensor]]:
    model.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(input_ids=IDS).logits
    logits.float().square().mean().backward()
    return logits.detach(), [p.grad.clone() for p in model.parameters() if p.requires_grad]


def test_frozen_weights_are_cast_once_with_the_same_bits_and_put_back() -> None:
    model = _lora_lm("eager")  # eager attention: only the weights change, nothing else
    frozen = {n: p for n, p in model.named_parameters() if not p.requires_grad}
    plain_logits, plain_grads = _pass(model)
    with lean_passes([model], "bf16"):
        linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
        assert all(m.weight.dtype == torch.bfloat16 for m in linears if not m.weight.requires_grad)
        assert all(m.weight.dtype == torch.float32 for m in linears if m.weight.requires_grad)
        lean_logits, lean_grads = _pass(model)
    assert torch.equal(lean_logits, plain_logits)
    assert all(torch.equal(a, b) for a, b in zip(lean_grads, plain_grads, strict=True))
    after = dict(model.named_parameters())
    assert all(after[n] is p and p.dtype == torch.float32 for n, p in frozen.items())


def test_the_weights_come_back_after_an_error_and_nothing_changes_without_autocast() -> None:
    model = _lora_lm("eager")
    before = [p for p in model.parameters()]
    with pytest.raises(RuntimeError, match="boom"), lean_passes([model], "bf16"):
        raise RuntimeError("boom")
    assert all(a is b for a, b in zip(model.parameters(), before, strict=True))
    for precision in ("no", "fp16"):  # fp16: accelerate runs no autocast on a CPU
        with lean_passes([model], precision):
            assert all(p.dtype == torch.float32 for p in model.parameters())


def test_attention_runs_in_fp32_on_a_cpu_inside_and_as_before_outside(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = _lora_lm("sdpa")
    seen: list[tuple[object, ...]] = []  # (the inputs' dtypes, whether autocast will cast them)
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def spy(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, **kwargs: object) -> torch.Tensor:
        seen.append((q.dtype, k.dtype, v.dtype, torch.is_autocast_enabled("cpu")))
        return sdpa(q, k, v, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
    plain_logits, _ = _pass(model)
    assert all(autocast for *_, autocast in seen)  # plain: autocast runs it in bf16
    seen.clear()
    config = model.get_base_model().config
    with lean_passes([model], "bf16"):
        assert config._attn_implementation == ATTENTION_NAME
        lean_logits, grads = _pass(model)
    assert set(seen) == {(torch.float32,) * 3 + (False,)}
    assert config._attn_implementation == "sdpa"
    assert lean_logits.dtype == torch.bfloat16 and all(g.abs().sum() > 0 for g in grads)
    with torch.no_grad():
        exact = model(input_ids=IDS).logits  # fp32 throughout
    lean_error = (lean_logits.float() - exact).abs().mean()
    plain_error = (plain_logits.float() - exact).abs().mean()
    assert lean_error < 0.05 and lean_error <= plain_error


def test_fp32_sdpa_hands_back_the_low_precision_result_of_fp32_attention() -> None:
    torch.manual_seed(2)
    q, k, v = (torch.randn(2, 4, 6, 8) for _ in range(3))
    module = SimpleNamespace(num_key_value_groups=1, is_causal=True, training=False)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, _ = fp32_sdpa(module, q, k, v.bfloat16(), None, scaling=0.5)
    want = torch.nn.functional.scaled_dot_product_attention(
        q, k, v.bfloat16().float(), is_causal=True, scale=0.5
    )
    assert out.dtype == torch.bfloat16
    assert torch.equal(out, want.transpose(1, 2).to(torch.bfloat16))
    additive = torch.zeros(2, 1, 6, 6).masked_fill(torch.ones(6, 6).triu(1).bool(), -1e4)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # a float mask in bf16 comes up too
        masked, _ = fp32_sdpa(module, q, k, v.bfloat16(), additive.bfloat16(), scaling=0.5)
    assert torch.allclose(masked.float(), out.float(), atol=1e-2)


def test_only_llama_family_attention_is_switched() -> None:
    # other models test for the literal "sdpa" (Falcon would drop its causal mask)
    model = _lora_lm("sdpa")
    config = model.get_base_model().config
    config.model_type = "falcon"
    with lean_passes([model], "bf16"):
        assert config._attn_implementation == "sdpa"


# --- hidden states without the output layer -----------------------------------------------


def test_the_trunk_gives_the_models_own_hidden_states_and_picked_logits() -> None:
    model = _lora_lm("sdpa").eval()
    body, extra = hidden_pass(model)
    assert body is model.get_base_model().model and extra == {}
    calls: list[tuple[int, ...]] = []
    head = model.get_base_model().lm_head
    hook = head.register_forward_hook(lambda m, args, out: calls.append(tuple(args[0].shape)))
    index = torch.tensor([[2, 3, 4], [1, 2, 5]])
    mask = torch.ones_like(IDS)
    with torch.no_grad():
        full = model(input_ids=IDS, attention_mask=mask, output_hidden_states=True)
        calls.clear()
        logits, hidden = picked_logits(model, IDS, mask, index, share_prefix=False)
        trunk_hidden = final_hidden(body(input_ids=IDS, attention_mask=mask))
    hook.remove()
    assert calls == [(2, 3, head.in_features)]  # the output layer: once, on picked positions
    assert torch.equal(trunk_hidden, full.hidden_states[-1])
    rows = torch.arange(2)[:, None]
    assert torch.allclose(logits, full.logits[rows, index], atol=1e-6)
    assert torch.equal(hidden, full.hidden_states[-1][rows, index])


def test_a_prompt_learning_adapter_keeps_the_whole_model() -> None:
    model = SimpleNamespace(active_peft_config=SimpleNamespace(is_prompt_learning=True))
    assert hidden_pass(model) == (model, {"output_hidden_states": True})


def test_a_prepared_or_ddp_model_runs_its_own_forward() -> None:
    # accelerate's autocast lives in a prepared model's forward, DDP's gradient sync in its
    # wrapper's: going straight to the decoder would skip both (tests/test_ddp.py catches
    # the second across two processes)
    model = tiny_lm(0)
    model._original_forward = model.forward  # what accelerate's prepare leaves
    body, extra = hidden_pass(model)
    assert body is model and extra == {"output_hidden_states": True, "logits_to_keep": 1}
    wrapper = SimpleNamespace(module=tiny_lm(0))
    assert hidden_pass(wrapper)[0] is wrapper


def test_the_value_head_computes_in_fp32_under_autocast() -> None:
    module = PolicyWithValue(tiny_lm(0)).eval()
    index = torch.tensor([[2, 3, 4], [1, 2, 5]])
    mask = torch.ones_like(IDS)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        _, values = module(IDS, mask, index, share_prefix=False)
        _, hidden = picked_logits(module.policy, IDS, mask, index, share_prefix=False)
    assert values.dtype == torch.float32
    want = hidden.float() @ module.value_head.weight[0] + module.value_head.bias
    assert torch.allclose(values, want, atol=1e-6)
