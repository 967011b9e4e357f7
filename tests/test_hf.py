from pathlib import Path

import pytest
import torch

from bastion import Conversation, ModelError
from bastion.models import HFChatModel, ScoringModel, load
from bastion.models.hf import length_sorted_batches
from bastion.models.scoring import left_pad

PROMPTS = ["hello", "What is the capital of France? Tell me more.", "bread", "Paris is nice"]


def test_batched_greedy_equals_one_by_one_in_callers_order(tiny_chat: HFChatModel) -> None:
    batched = tiny_chat.generate(PROMPTS, max_new_tokens=8)
    single = [tiny_chat.generate([p], max_new_tokens=8)[0] for p in PROMPTS]
    assert batched == single
    assert len(set(batched)) > 1  # the tiny model really says different things


def test_sampling_is_repeatable_under_a_seed(tiny_chat: HFChatModel) -> None:
    first = tiny_chat.generate(PROMPTS, max_new_tokens=8, temperature=1.0, seed=7)
    assert tiny_chat.generate(PROMPTS, max_new_tokens=8, temperature=1.0, seed=7) == first
    assert tiny_chat.generate(PROMPTS, max_new_tokens=8, temperature=1.0, seed=8) != first


def test_stop_strings_cut_the_reply(tiny_chat: HFChatModel) -> None:
    full = tiny_chat.generate(["hello"], max_new_tokens=12)[0]
    stop = full[3:5]
    cut = tiny_chat.generate(["hello"], max_new_tokens=12, stop=[stop, ""])[0]
    assert cut == full[: full.index(stop)]
    # generation itself stops at the stop string instead of running to max_new_tokens
    ids = torch.tensor([tiny_chat.prompt_ids("hello")])
    options = tiny_chat.generation_options(12, 0.0, 1.0, [stop])
    generated = tiny_chat.model.generate(input_ids=ids, **options).shape[1] - ids.shape[1]
    assert generated < 12


def test_prompt_ids_follow_the_chat_template(tiny_chat: HFChatModel) -> None:
    conversation = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "bye"},
    ]
    ids = tiny_chat.prompt_ids(conversation)
    expected = (
        "<|im_start|>system\nbe brief<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n"
        "<|im_start|>assistant\nhello<|im_end|>\n<|im_start|>user\nbye<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    assert tiny_chat.tokenizer.decode(ids) == expected


def test_logprobs_cover_exactly_the_completion(tiny_chat: HFChatModel) -> None:
    conversation = Conversation.user("hi", system="s").append("assistant", "a").append("user", "q")
    prompt, completion = tiny_chat.split_prompt_completion(conversation, "Paris")
    assert tiny_chat.tokenizer.decode(completion) == "Paris<|im_end|>"  # no trailing newline
    [scored] = tiny_chat.logprobs([conversation], ["Paris"])
    assert isinstance(tiny_chat, ScoringModel)
    with torch.no_grad():
        logits = tiny_chat.model(torch.tensor([prompt + completion])).logits[0]
    logp = torch.log_softmax(logits.double(), -1)
    expected = [logp[len(prompt) - 1 + i, t].item() for i, t in enumerate(completion)]
    assert scored.token_ids == tuple(completion)
    assert scored.logprobs == pytest.approx(expected, abs=1e-5)
    assert scored.total == pytest.approx(sum(expected), abs=1e-5)
    assert scored.mean == pytest.approx(sum(expected) / len(expected), abs=1e-5)


def test_logprobs_do_not_depend_on_batch_padding(tiny_chat: HFChatModel) -> None:
    prompts = ["hi", "a much longer question about bread and Paris"]
    together = tiny_chat.logprobs(prompts, ["Paris", "bread"])
    alone = [
        tiny_chat.logprobs([p], [c])[0] for p, c in zip(prompts, ["Paris", "bread"], strict=True)
    ]
    for a, b in zip(together, alone, strict=True):
        assert a.logprobs == pytest.approx(b.logprobs, abs=1e-5)


def test_lora_adapter_folder_loads(tiny_model_dir: Path, tmp_path: Path) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    peft_model = get_peft_model(
        base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    )
    peft_model.save_pretrained(tmp_path / "adapter")
    adapted = load(str(tiny_model_dir), adapter=tmp_path / "adapter")
    plain = load(str(tiny_model_dir))
    ids = torch.tensor([plain.prompt_ids("hello")])
    with torch.no_grad():
        expected = peft_model.eval()(ids).logits
        assert torch.allclose(adapted.model(ids).logits, expected, atol=1e-5)
        assert not torch.allclose(plain.model(ids).logits, expected, atol=1e-3)


def test_bad_model_inputs_are_clear(tiny_model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        load(str(tmp_path / "missing"))
    (tmp_path / "x.gguf").write_bytes(b"not a model")
    with pytest.raises(ModelError, match="not a GGUF model file"):
        load(str(tmp_path / "x.gguf"))
    (tmp_path / "not-adapter").mkdir()
    with pytest.raises(ModelError, match="not a LoRA adapter folder"):
        load(str(tiny_model_dir), adapter=tmp_path / "not-adapter")


def test_tokenizer_without_chat_template(tiny_chat: HFChatModel) -> None:
    template = tiny_chat.tokenizer.chat_template
    try:
        tiny_chat.tokenizer.chat_template = None
        with pytest.raises(ModelError, match="no chat template"):
            HFChatModel(tiny_chat.model, tiny_chat.tokenizer, name="base")
    finally:
        tiny_chat.tokenizer.chat_template = template


def test_batching_helpers() -> None:
    assert length_sorted_batches([1, 3, 2], 2) == [[1, 2], [0]]
    # long rows go in smaller batches: 4 rows of 3,000 tokens exceed 2**25 rows × length²
    lengths = [3000] * 4 + [100] * 70
    batches = length_sorted_batches(lengths, 64)
    assert [len(b) for b in batches] == [3, 3, 64, 4]  # the budget caps the long batches
    assert sorted(i for b in batches for i in b) == list(range(74))
    ids, mask = left_pad([[5, 6], [7]], 0, torch.device("cpu"))
    assert ids.tolist() == [[5, 6], [0, 7]] and mask.tolist() == [[1, 1], [0, 1]]
