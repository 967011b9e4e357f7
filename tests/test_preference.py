"""The preference trainer and the shared loop, on a tiny Llama built in code."""

import json
from pathlib import Path

import pytest
import torch

from bastion import Conversation, DataError, PreferencePair, UnpairedExample
from bastion.align import reference as reference_module
from bastion.align.precision import released
from bastion.align.preference import PreferenceConfig, PreferenceTrainer, kl_partners
from bastion.align.train import Loop, TrainConfig, TrainingError
from helpers import TOKENIZER, tiny_lm


def pairs(n: int = 8) -> list[PreferencePair]:
    topics = ["bread", "Paris", "Rome", "flour", "yeast", "salt", "water", "hello"]
    return [
        PreferencePair(
            Conversation.user(f"tell me about {topics[i % 8]} {i}"),
            Conversation(()).append("assistant", f"Sure, {topics[i % 8]} is nice."),
            Conversation(()).append("assistant", "I'm sorry, I can't help."),
            id=str(i),
        )
        for i in range(n)
    ]


def trainer(
    tmp_path: Path, model=None, data=None, loss: str = "dpo", eval_data=(), **train
) -> PreferenceTrainer:
    config = TrainConfig(output_dir=tmp_path / "run", **{"lr": 1e-3, "batch_size": 4, **train})
    return PreferenceTrainer(
        model or tiny_lm(),
        TOKENIZER,
        data or pairs(),
        PreferenceConfig(loss=loss, beta=0.5),
        config,
        eval_data=eval_data,
    )


def params(model) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_dpo_learns_the_preference(tmp_path: Path) -> None:
    held_out = pairs(12)[8:]
    t = trainer(tmp_path, epochs=6, eval_data=held_out)
    before = t.evaluate()
    result = t.fit(progress=False)
    after = t.evaluate()
    assert before["margin"] == pytest.approx(0.0, abs=1e-5)  # the policy starts as the reference
    assert result.steps == 12
    assert after["accuracy"] == 1.0 and after["margin"] > before["margin"] + 1.0
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    rows = [json.loads(line) for line in (tmp_path / "run/metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 12
    assert {
        "loss",
        "rewards/chosen",
        "rewards/rejected",
        "rewards/accuracies",
        "rewards/margins",
        "logps/chosen",
        "logps/rejected",
        "kl_to_ref",
        "lr",
    } <= set(rows[0])


@pytest.mark.parametrize("loss", ["ipo", "hinge", "robust", "orpo", "simpo"])
def test_every_paired_loss_trains(tmp_path: Path, loss: str) -> None:
    t = trainer(tmp_path, loss=loss, epochs=2)
    result = t.fit(progress=False)
    assert result.steps == 4 and all(
        torch.isfinite(torch.tensor(r["loss"])) for r in result.history
    )
    assert (t.ref_chosen is None) == (loss in ("orpo", "simpo"))


def test_kto_trains_on_unpaired_data_and_needs_both_labels(tmp_path: Path) -> None:
    data = [
        UnpairedExample(p.prompt, p.chosen if i % 2 else p.rejected, bool(i % 2), id=str(i))
        for i, p in enumerate(pairs())
    ]
    result = trainer(tmp_path, data=data, loss="kto", epochs=2).fit(progress=False)
    assert result.steps == 4
    one_class = [UnpairedExample(p.prompt, p.chosen, True) for p in pairs()]
    with pytest.raises(DataError, match="only desirable examples"):
        trainer(tmp_path, data=one_class, loss="kto")
    with pytest.raises(DataError, match="needs prompt/chosen/rejected pairs"):
        trainer(tmp_path, data=data, loss="dpo")


def test_gradient_accumulation_equals_the_big_batch(tmp_path: Path) -> None:
    big = trainer(tmp_path / "a", model=tiny_lm(1), batch_size=4, grad_accum=1, max_steps=1)
    small = trainer(tmp_path / "b", model=tiny_lm(1), batch_size=2, grad_accum=2, max_steps=1)
    big.fit(progress=False)
    small.fit(progress=False)
    assert torch.allclose(params(big.model), params(small.model), atol=1e-6)
    assert not torch.allclose(params(big.model), params(tiny_lm(1)), atol=1e-4)


def test_a_killed_run_resumes_to_the_same_result(tmp_path: Path) -> None:
    whole = trainer(tmp_path / "whole", model=tiny_lm(2), epochs=2)
    expected = whole.fit(progress=False)

    crashy = trainer(tmp_path / "crash", model=tiny_lm(2), epochs=2, save_every=2)
    calls = {"n": 0}
    real_step = crashy.step

    def dies_after_two_steps(model, batch):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # killed mid-run, after the checkpoint at step 2
        return real_step(model, batch)

    loop = Loop(
        crashy.model, list(range(8)), dies_after_two_steps, crashy.train_config, progress=False
    )
    with pytest.raises(KeyboardInterrupt):
        loop.run()
    resumed = trainer(tmp_path / "crash", model=tiny_lm(2), epochs=2, save_every=2)
    result = resumed.fit(resume=True, progress=False)
    assert result.steps == expected.steps == 4
    assert result.last_loss == pytest.approx(expected.last_loss, abs=1e-6)
    assert torch.allclose(params(resumed.model), params(whole.model), atol=1e-6)


def test_resume_refuses_a_changed_recipe(tmp_path: Path) -> None:
    trainer(tmp_path, save_every=1, max_steps=1).fit(progress=False)
    with pytest.raises(TrainingError, match=r"recipe changed \(batch_size\)"):
        trainer(tmp_path, save_every=1, max_steps=1, batch_size=2).fit(resume=True, progress=False)


def test_non_finite_loss_stops_with_step_and_batch(tmp_path: Path) -> None:
    config = TrainConfig(output_dir=tmp_path, batch_size=2, max_steps=2)

    def nan_step(model, batch):
        return (params(model).sum() * float("nan")), {}

    with pytest.raises(TrainingError, match=r"loss is nan at step 1, micro-batch 0"):
        Loop(tiny_lm(), list(range(4)), nan_step, config, progress=False).run()


def test_reference_logps_are_cached_on_disk(tmp_path: Path, monkeypatch) -> None:
    t = trainer(tmp_path)
    assert t.ref_chosen is not None

    def no_recompute(*args, **kwargs):
        raise AssertionError("reference log-probs must come from the cache")

    monkeypatch.setattr(reference_module, "sequence_logps", no_recompute)
    again = trainer(tmp_path, model=t.model)
    assert again.ref_chosen is not None and again.ref_rejected is not None
    assert torch.equal(again.ref_chosen, t.ref_chosen)
    assert torch.equal(again.ref_rejected, t.ref_rejected)
    with pytest.raises(AssertionError, match="must come from the cache"):
        PreferenceTrainer(
            t.model,
            TOKENIZER,
            pairs(),
            PreferenceConfig(beta=0.5, cache_reference=False),
            TrainConfig(output_dir=tmp_path / "again"),
        )


def test_the_reference_runs_in_the_training_precision(tmp_path: Path) -> None:
    # under bf16 mixed precision the policy's log-probs are autocast: the reference's must be
    # too, or a policy still equal to its reference shows a margin made of rounding
    model = tiny_lm(5)
    mixed = trainer(tmp_path / "bf16", model=model, mixed_precision="bf16")
    plain = trainer(tmp_path / "fp32", model=model)
    both = [e for pair in zip(mixed.chosen, mixed.rejected, strict=True) for e in pair]
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        expected = reference_module.sequence_logps(model, both, TOKENIZER.pad_token_id, "sum")
    assert torch.equal(mixed.ref_chosen, expected.float()[0::2])
    assert torch.equal(mixed.ref_rejected, expected.float()[1::2])
    assert not torch.equal(plain.ref_chosen, mixed.ref_chosen)  # each precision its own cache


def test_a_trained_model_comes_back_without_accelerates_marks() -> None:
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    model, ids = tiny_lm(6), torch.randint(0, 100, (2, 12))
    with torch.no_grad():
        plain = model(input_ids=ids).logits
    AcceleratorState._reset_state()  # accelerate keeps one precision per process
    try:
        accelerator = Accelerator(cpu=True, mixed_precision="bf16")
        prepared = accelerator.prepare(model)
        with torch.no_grad():
            mixed = prepared(input_ids=ids).logits
        back = released(accelerator.unwrap_model(prepared))
    finally:
        AcceleratorState._reset_state()
    assert not torch.equal(mixed, plain)  # prepared, it ran in bf16
    with torch.no_grad():
        assert torch.equal(back(input_ids=ids).logits, plain)  # and now in fp32 again
    assert "_is_accelerate_prepared" not in vars(back)  # a later trainer prepares it anew


def test_lora_reference_is_the_model_with_adapters_off(tmp_path: Path) -> None:
    from peft import LoraConfig, get_peft_model

    base = tiny_lm(3)
    expected = reference_module.reference_logps(
        base, trainer(tmp_path, model=base).chosen, TOKENIZER.pad_token_id, "sum", use_cache=False
    )
    lora = get_peft_model(
        base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    )
    t = trainer(tmp_path, model=lora)
    assert torch.allclose(t.ref_chosen, expected, atol=1e-5)


def test_kto_kl_pairs_rotate_within_each_batch_sized_chunk() -> None:
    assert kl_partners(7, 3) == [2, 0, 1, 5, 3, 4, 5]  # the lone last example borrows #5
    assert kl_partners(4, 4) == [3, 0, 1, 2]
    assert all(i != j for i, j in enumerate(kl_partners(10, 4)))
