import pytest
import torch

from bastion import Conversation
from bastion.models import HFChatModel, prefill
from bastion.models.prefill import (
    cache_keyword,
    common_prefix_length,
    forward_after_prefix,
    groups_by_tokens,
    keeps_plain_cache,
    ragged_prefill,
    shared_columns,
    supports_ragged_prefill,
)
from bastion.models.scoring import left_pad

SYSTEM = "You are a careful assistant. Answer briefly and say so when you are unsure."
QUESTIONS = [
    "hello",
    "What is the capital of France? Tell me more.",
    "bread",
    "Paris is nice",
    "0123",
]


def test_common_prefix_length() -> None:
    assert common_prefix_length([[1, 2, 3], [1, 2, 4], [1, 2]]) == 2
    assert common_prefix_length([[7, 8], [7, 8]]) == 2
    assert common_prefix_length([[5, 1], [6, 1]]) == 0


def test_groups_are_cut_at_the_token_budget() -> None:
    # rows × longest: (10, 9) = 20 fits, adding 8 makes 30; (8, 3) = 16, adding 3 makes 24
    assert groups_by_tokens([10, 9, 8, 3, 3, 2], 20) == [range(0, 2), range(2, 4), range(4, 6)]
    assert groups_by_tokens([50, 1], 20) == [range(0, 1), range(1, 2)]  # one row always fits
    assert groups_by_tokens([2, 3, 5], 100) == [range(0, 3)]  # ascending order works too


def _rows(model: HFChatModel) -> list[list[int]]:
    rows = [model.prompt_ids(Conversation.user(q, system=SYSTEM)) for q in QUESTIONS]
    return sorted(rows, key=len, reverse=True)


@pytest.mark.parametrize("rows_per_group", [2, 1])
def test_the_ragged_cache_is_what_a_padded_forward_stores(
    tiny_chat: HFChatModel, rows_per_group: int
) -> None:
    from transformers import DynamicCache

    rows = _rows(tiny_chat)
    shared = common_prefix_length(rows)
    assert shared >= 8  # the system turn: a prefix worth sharing
    model = tiny_chat.model
    # groups of about two rows, so that several groups and one prefix reused by them are
    # merged; or groups of one (prompts longer than the budget), which share the batch's prefix
    budget = rows_per_group * len(rows[0])
    ragged = ragged_prefill(model, rows, tiny_chat.pad_id, group_tokens=budget, min_prefix=4)

    bodies = [r[:-1] for r in rows]
    ids, mask = left_pad(bodies, tiny_chat.pad_id, tiny_chat.device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)  # as ``generate`` numbers a padded batch
    plain = DynamicCache(config=model.config)
    with torch.inference_mode():
        model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            use_cache=True,
            **{cache_keyword(model): plain},
        )
    width = ids.shape[1]
    assert ragged.get_seq_length() == width
    for mine, theirs in zip(ragged.layers, plain.layers, strict=True):
        assert mine.keys.shape == theirs.keys.shape
        assert torch.isfinite(mine.keys).all() and torch.isfinite(mine.values).all()
        for row, body in enumerate(bodies):
            real = slice(width - len(body), width)
            torch.testing.assert_close(mine.keys[row, :, real], theirs.keys[row, :, real])
            torch.testing.assert_close(mine.values[row, :, real], theirs.values[row, :, real])


def test_generation_from_a_ragged_prefill_equals_plain_padding(
    tiny_chat: HFChatModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert supports_ragged_prefill(tiny_chat.model)
    conversations = [Conversation.user(q, system=SYSTEM) for q in QUESTIONS]
    longest = len(_rows(tiny_chat)[0])
    monkeypatch.setattr(prefill, "GROUP_TOKENS", 2 * longest)  # groups of two: a shared prefix
    monkeypatch.setattr(prefill, "MIN_PREFIX", 4)
    calls: list[int] = []
    original = prefill.ragged_prefill

    def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(len(args[1]))
        return original(*args, **kwargs)

    monkeypatch.setattr("bastion.models.hf.ragged_prefill", counted)
    widths: list[int] = []
    hook = tiny_chat.model.model.register_forward_hook(
        lambda module, args, kwargs, out: widths.append(kwargs["input_ids"].shape[1]),
        with_kwargs=True,
    )
    try:
        ragged = tiny_chat.generate(conversations, max_new_tokens=10)
    finally:
        hook.remove()
    assert sum(calls) == len(conversations)  # every batch went through it
    # generate continued from the cache: after the groups' passes, one token per step
    longest = len(_rows(tiny_chat)[0])
    assert max(widths) < longest
    assert widths.count(1) == 10 * len(calls)
    monkeypatch.setattr(tiny_chat, "ragged_prefill", False)
    plain = tiny_chat.generate(conversations, max_new_tokens=10)
    assert ragged == plain
    assert len(set(plain)) > 1


def test_prompts_of_one_token_and_sliding_window_models_are_refused() -> None:
    from transformers import LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM

    small = dict(
        vocab_size=64,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
    )
    assert supports_ragged_prefill(LlamaForCausalLM(LlamaConfig(**small)))
    assert not supports_ragged_prefill(MistralForCausalLM(MistralConfig(**small, sliding_window=4)))
    from peft import PrefixTuningConfig, get_peft_model

    prefixed = get_peft_model(
        LlamaForCausalLM(LlamaConfig(**small)),
        PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=4),
    )
    assert not supports_ragged_prefill(prefixed)  # its virtual tokens are a cache of its own
    with pytest.raises(ValueError, match="at least two tokens"):
        ragged_prefill(LlamaForCausalLM(LlamaConfig(**small)), [[3, 4], [5]], 0)


def test_a_cache_the_generation_config_chooses_turns_ragged_prefill_off(
    tiny_chat: HFChatModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    conversations = [Conversation.user(q, system=SYSTEM) for q in QUESTIONS[:3]]
    plain = tiny_chat.generate(conversations, max_new_tokens=6)
    monkeypatch.setattr(tiny_chat.model.generation_config, "cache_implementation", "dynamic")
    assert not supports_ragged_prefill(tiny_chat.model)
    called: list[int] = []
    monkeypatch.setattr("bastion.models.hf.ragged_prefill", lambda *a, **k: called.append(1))
    # transformers refuses a cache passed beside its own choice; plain padding is used instead
    assert tiny_chat.generate(conversations, max_new_tokens=6) == plain
    assert called == []


def test_shared_columns_stop_at_the_first_difference_or_padding() -> None:
    ids = torch.tensor([[1, 2, 3, 4, 5], [1, 2, 3, 9, 5], [1, 2, 3, 4, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 1, 1], [1, 1, 1, 1, 0]])
    assert shared_columns(ids, mask) == 3
    assert shared_columns(ids[[0, 2]], mask[[0, 2]]) == 4  # then row 2's padding
    assert shared_columns(ids[:1], mask[:1]) == 5
    assert shared_columns(torch.tensor([[1, 2], [1, 2]]), torch.tensor([[0, 1], [1, 1]])) == 0


def test_a_pass_after_a_shared_prefix_equals_the_plain_pass_gradients_included() -> None:
    """Right-padded rows sharing their first tokens: the outputs after the prefix and every
    trainable parameter's gradient equal the plain pass's; the prefix runs once, one row."""
    from bastion.align.lora import LoraSettings, add_lora
    from helpers import tiny_lm

    model = add_lora(tiny_lm(3), LoraSettings(r=4, alpha=8))
    torch.manual_seed(0)
    for name, parameter in model.named_parameters():
        if "lora_B" in name:  # not the zero start: the adapters take part
            parameter.data.normal_(0, 0.2)
    shared = 6
    head = [11, 12, 13, 14, 15, 16]
    rows = [[*head, 20, 21, 22, 23, 24], [*head, 30, 31], [*head, 40, 41, 42]]
    width = max(len(r) for r in rows)
    ids = torch.tensor([r + [0] * (width - len(r)) for r in rows])
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
    real = mask[:, shared:, None].float()
    # a fixed random read-out of the last hidden states (their squares would not do: a
    # normalized state's norm barely depends on anything)
    readout = torch.randn(3, width - shared, model.config.hidden_size)
    results = []
    for split in (False, True):
        model.zero_grad()
        widths: list[tuple[int, int]] = []
        hook = model.get_base_model().model.register_forward_hook(
            lambda module, args, kwargs, out, seen=widths: seen.append(
                tuple(kwargs["input_ids"].shape)
            ),
            with_kwargs=True,
        )
        if split:
            out = forward_after_prefix(model, ids, mask, shared, output_hidden_states=True)
            hidden = out.hidden_states[-1]
        else:
            out = model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
            hidden = out.hidden_states[-1][:, shared:]
        hook.remove()
        (hidden * real * readout).sum().backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        results.append((hidden.detach() * real, grads, widths))
    (plain, plain_grads, plain_widths), (split, split_grads, split_widths) = results
    assert plain_widths == [(3, width)]
    assert split_widths == [(1, shared), (3, width - shared)]
    torch.testing.assert_close(split, plain)
    assert plain_grads.keys() == split_grads.keys() and any("lora_A" in n for n in plain_grads)
    for name, grad in plain_grads.items():
        scale = float(grad.abs().max())  # sums of many terms: rounding at the sum's scale
        assert scale > 1e-3
        torch.testing.assert_close(split_grads[name], grad, rtol=1e-3, atol=1e-5 * scale)
    assert keeps_plain_cache(model)
