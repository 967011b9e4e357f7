import pytest
import torch

from bastion import Conversation, DataError
from bastion.align.logprobs import aggregate, concatenated_logps, encode, sequence_logps
from bastion.models import HFChatModel
from bastion.models.scoring import completion_logps


def naive_logps(model, prompt: list[int], completion: list[int]) -> list[float]:
    """Full logits over the whole unpadded sequence: the obviously-correct computation."""
    ids = torch.tensor([prompt + completion])
    logp = torch.log_softmax(model(ids).logits[0].double(), -1)
    return [logp[len(prompt) - 1 + i, t].item() for i, t in enumerate(completion)]


def test_multi_turn_masking_matches_the_tokenizer(tiny_chat: HFChatModel) -> None:
    tok = tiny_chat.tokenizer
    prompt = Conversation.user("hi", system="s").append("assistant", "a").append("user", "q")
    encoded = encode(tok, prompt, "Paris", eos_ids=tiny_chat.eos_ids)
    expected_prompt = tok.apply_chat_template(
        prompt.to_dicts(), tokenize=False, add_generation_prompt=True
    )
    assert tok.decode(list(encoded.prompt)) == expected_prompt
    assert tok.decode(list(encoded.completion)) == "Paris<|im_end|>"


def test_template_suffix_is_kept_only_on_request(tiny_chat: HFChatModel) -> None:
    prompt = Conversation.user("hi")
    trimmed = encode(tiny_chat.tokenizer, prompt, "Paris", eos_ids=tiny_chat.eos_ids)
    kept = encode(
        tiny_chat.tokenizer, prompt, "Paris", eos_ids=tiny_chat.eos_ids, keep_template_suffix=True
    )
    assert tiny_chat.tokenizer.decode(list(kept.completion)) == "Paris<|im_end|>\n"
    assert kept.completion[: len(trimmed.completion)] == trimmed.completion


def test_text_format_appends_eos(tiny_chat: HFChatModel) -> None:
    encoded = encode(tiny_chat.tokenizer, "2+2=", "4", eos_ids=tiny_chat.eos_ids)
    assert encoded.completion[-1] == tiny_chat.tokenizer.eos_token_id
    assert tiny_chat.tokenizer.decode(list(encoded.completion)) == "4<|im_end|>"


def test_truncation_keeps_the_end_of_the_prompt(tiny_chat: HFChatModel) -> None:
    tok, eos = tiny_chat.tokenizer, tiny_chat.eos_ids
    full = encode(tok, "one two three four five six seven", "bread", eos_ids=eos)
    cut = encode(
        tok,
        "one two three four five six seven",
        "bread",
        eos_ids=eos,
        max_length=len(full.completion) + 3,
    )
    assert cut.completion == full.completion and cut.prompt == full.prompt[-3:]
    long = encode(tok, "one two", "bread and more bread", eos_ids=eos)
    tiny = encode(tok, "one two", "bread and more bread", eos_ids=eos, max_length=3)
    assert tiny.prompt == long.prompt[-1:] and tiny.completion == long.completion[:2]


def test_conversations_need_a_chat_template(tiny_chat: HFChatModel) -> None:
    from bastion import ModelError

    template = tiny_chat.tokenizer.chat_template
    try:
        tiny_chat.tokenizer.chat_template = None
        with pytest.raises(ModelError, match="no chat template: use text"):
            encode(tiny_chat.tokenizer, Conversation.user("hi"), "Paris", eos_ids=tiny_chat.eos_ids)
        assert encode(tiny_chat.tokenizer, "hi", "Paris", eos_ids=tiny_chat.eos_ids).completion
    finally:
        tiny_chat.tokenizer.chat_template = template


def test_empty_completion_is_an_error(tiny_chat: HFChatModel) -> None:
    with pytest.raises(DataError, match="completion is empty"):
        encode(tiny_chat.tokenizer, "p", " ", eos_ids=tiny_chat.eos_ids)


def test_last_positions_only_equal_full_logits(tiny_chat: HFChatModel) -> None:
    """Left padding plus logits_to_keep gives exactly the full-logits answer, row by row."""
    tok, eos = tiny_chat.tokenizer, tiny_chat.eos_ids
    pairs = [
        encode(tok, Conversation.user(p), c, eos_ids=eos)
        for p, c in [
            ("hi", "Paris is nice"),
            ("a much longer question about bread", "no"),
            ("bread", "flour water salt yeast"),
        ]
    ]
    with torch.no_grad():
        logps, mask = completion_logps(
            tiny_chat.model,
            [e.prompt for e in pairs],
            [e.completion for e in pairs],
            tiny_chat.pad_id,
        )
        for row, e in enumerate(pairs):
            expected = naive_logps(tiny_chat.model, list(e.prompt), list(e.completion))
            assert logps[row][mask[row]].tolist() == pytest.approx(expected, abs=1e-5)
            assert int(mask[row].sum()) == len(e.completion)


def test_concatenated_pass_equals_separate_passes(tiny_chat: HFChatModel) -> None:
    tok, eos = tiny_chat.tokenizer, tiny_chat.eos_ids
    prompts = [Conversation.user("hi"), Conversation.user("tell me about bread please")]
    chosen = [
        encode(tok, p, c, eos_ids=eos) for p, c in zip(prompts, ["Paris", "flour"], strict=True)
    ]
    rejected = [
        encode(tok, p, c, eos_ids=eos) for p, c in zip(prompts, ["no", "I'm sorry no"], strict=True)
    ]
    with torch.no_grad():
        pair = concatenated_logps(tiny_chat.model, chosen, rejected, tiny_chat.pad_id, "sum")
        alone_c = sequence_logps(tiny_chat.model, chosen, tiny_chat.pad_id, "sum")
        alone_r = sequence_logps(tiny_chat.model, rejected, tiny_chat.pad_id, "sum")
    # float32 sums of ~100 nats: a different batch shape changes the summation order, so
    # the two agree to about 1e-7 of their size (a wrong token would move them by ≥ 0.1)
    assert pair.chosen.tolist() == pytest.approx(alone_c.tolist(), rel=1e-6, abs=1e-5)
    assert pair.rejected.tolist() == pytest.approx(alone_r.tolist(), rel=1e-6, abs=1e-5)
    assert pair.chosen_tokens.tolist() == [len(e.completion) for e in chosen]


def test_gradients_reach_the_weights(tiny_chat: HFChatModel) -> None:
    encoded = [encode(tiny_chat.tokenizer, "hi", "Paris", eos_ids=tiny_chat.eos_ids)]
    tiny_chat.model.zero_grad()
    with torch.enable_grad():
        sequence_logps(tiny_chat.model, encoded, tiny_chat.pad_id, "mean").sum().backward()
    grads = [p.grad for p in tiny_chat.model.parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)
    tiny_chat.model.zero_grad(set_to_none=True)


def test_aggregate_sum_and_mean() -> None:
    logps = torch.tensor([[0.0, -1.0, -2.0], [-4.0, -1.0, -1.0]])
    mask = torch.tensor([[False, True, True], [True, True, True]])
    assert aggregate(logps, mask, "sum").tolist() == [-3.0, -6.0]
    assert aggregate(logps, mask, "mean").tolist() == [-1.5, -2.0]
    with pytest.raises(ValueError, match="aggregation"):
        aggregate(logps, mask, "max")
