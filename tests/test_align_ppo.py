"""PPO: the arithmetic against hand computation, then the loop on a tiny model."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bastion.align.cai import CaiPrompt, read_prompts
from bastion.align.kl_control import AdaptiveKL
from bastion.align.lora import LoraSettings, add_lora
from bastion.align.losses import gae, kl_per_token, ppo_losses, token_rewards, whiten
from bastion.align.policy_value import picked_logits, policy_divergence
from bastion.align.ppo import PpoConfig, PpoTrainer, PpoTrainSettings
from bastion.align.recipe import RewardSpec
from bastion.align.rewards import (
    CallableReward,
    SafetyReward,
    WeightedRewards,
    build_rewards,
    load_callable,
)
from bastion.align.rollout import Batch, build_batch, response_logps
from bastion.align.watch import RewardHackingWatch, WatchSettings, repetition
from bastion.errors import ConfigError
from bastion.models.scoring import completion_logps
from helpers import TOKENIZER, tiny_lm

TEXTS = "hello there|tell me a story|what is the sky|a b c|one two|the cat sat|hi|good day"
PROMPTS = [CaiPrompt(str(i), text, None) for i, text in enumerate(TEXTS.split("|"))]


# --- arithmetic -----------------------------------------------------------------------------


def test_gae_matches_hand_computation() -> None:
    # γ = 0.9, λ = 0.8, so γλ = 0.72. Row 1, backwards:
    #   t2: δ = 2 − 0.1 = 1.9                    A = 1.9
    #   t1: δ = 0 + 0.9·0.1 − 0.2 = −0.11        A = −0.11 + 0.72·1.9 = 1.258
    #   t0: δ = 1 + 0.9·0.2 − 0.5 = 0.68         A = 0.68 + 0.72·1.258 = 1.58576
    # Row 2 ends after two tokens (the third is padding, its 7 and 9 must not leak in):
    #   t1: δ = 1 + 0 − 0.4 = 0.6                A = 0.6
    #   t0: δ = 0.5 + 0.9·0.4 − 0.3 = 0.56       A = 0.56 + 0.72·0.6 = 0.992
    rewards = torch.tensor([[1.0, 0.0, 2.0], [0.5, 1.0, 7.0]])
    values = torch.tensor([[0.5, 0.2, 0.1], [0.3, 0.4, 9.0]])
    mask = torch.tensor([[1.0, 1, 1], [1, 1, 0]])
    advantages, returns = gae(rewards, values, mask, gamma=0.9, lam=0.8)
    expected = torch.tensor([[1.58576, 1.258, 1.9], [0.992, 0.6, 0.0]])
    assert torch.allclose(advantages, expected, atol=1e-6)
    assert torch.allclose(returns, torch.tensor([[2.08576, 1.458, 2.0], [1.292, 1.0, 0.0]]))


def test_clipped_objective_and_value_loss_by_hand() -> None:
    # ratios 1.5, 1.5, 0.5 with advantages 1, −1, 1 and ε = 0.2:
    #   unclipped −Aρ = −1.5, 1.5, −0.5; clipped −A·clip(ρ) = −1.2, 1.2, −0.8
    #   max = −1.2, 1.5, −0.5 → mean −0.2/3; clipped wins only on the first token
    logps = torch.log(torch.tensor([[1.5, 1.5, 0.5]]))
    old = torch.zeros(1, 3)
    advantages = torch.tensor([[1.0, -1.0, 1.0]])
    # values 1, 0, 2 from old 0.5 with ε_v = 0.2 → clipped 0.7, 0.3, 0.7; returns 1, 1, 0:
    #   (V−R)² = 0, 1, 4; (Vclip−R)² = 0.09, 0.49, 0.49; max = 0.09, 1, 4 → ½·5.09/3
    values = torch.tensor([[1.0, 0.0, 2.0]])
    old_values = torch.full((1, 3), 0.5)
    returns = torch.tensor([[1.0, 1.0, 0.0]])
    out = ppo_losses(
        logps, old, advantages, values, old_values, returns, torch.ones(1, 3),
        cliprange=0.2, cliprange_value=0.2, vf_coef=0.1,
    )  # fmt: skip
    assert out.policy.item() == pytest.approx(-0.2 / 3, abs=1e-6)
    assert out.clipfrac.item() == pytest.approx(1 / 3)
    assert out.value.item() == pytest.approx(0.5 * 5.09 / 3, abs=1e-6)
    assert out.value_clipfrac.item() == pytest.approx(1 / 3)
    assert out.loss.item() == pytest.approx(-0.2 / 3 + 0.1 * 0.5 * 5.09 / 3, abs=1e-6)
    approxkl = 0.5 * (2 * math.log(1.5) ** 2 + math.log(0.5) ** 2) / 3
    assert out.approxkl.item() == pytest.approx(approxkl, abs=1e-6)


def test_kl_estimators_by_hand() -> None:
    logps, ref = torch.tensor([-1.0]), torch.tensor([-2.0])  # log r = ref − logp = −1
    assert kl_per_token(logps, ref, "k1").item() == pytest.approx(1.0)
    assert kl_per_token(logps, ref, "k2").item() == pytest.approx(0.5)
    assert kl_per_token(logps, ref, "k3").item() == pytest.approx(math.exp(-1) - 1 + 1)
    with pytest.raises(ValueError, match="kl_estimator"):
        kl_per_token(logps, ref, "k4")


def test_token_rewards_put_the_score_on_the_last_token() -> None:
    kl = torch.tensor([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]])
    mask = torch.tensor([[1.0, 1, 1], [1, 1, 0]])
    rewards = token_rewards(torch.tensor([2.0, -1.0]), kl, mask, beta=0.5)
    expected = torch.tensor([[-0.05, -0.1, 1.85], [-0.2, -1.25, 0.0]])
    assert torch.allclose(rewards, expected)


def test_whiten_over_the_mask_only() -> None:
    values = torch.tensor([[1.0, 2.0, 3.0, 100.0]])
    mask = torch.tensor([[1.0, 1, 1, 0]])
    out = whiten(values, mask)
    assert torch.allclose(out, torch.tensor([[-1.0, 0.0, 1.0, 0.0]]), atol=1e-4)  # sd = 1
    kept = whiten(values, mask, shift_mean=False)
    assert torch.allclose(kept, torch.tensor([[1.0, 2.0, 3.0, 0.0]]), atol=1e-4)


def test_adaptive_kl_controller_steps_by_hand() -> None:
    control = AdaptiveKL(0.1, target=6.0, horizon=100)
    control.update(12.0, n_steps=10)  # error clipped to +0.2 → β·(1 + 0.2·10/100)
    assert control.value == pytest.approx(0.1 * 1.02)
    control.update(5.4, n_steps=10)  # error −0.1 → ×(1 − 0.01)
    assert control.value == pytest.approx(0.1 * 1.02 * 0.99)


# --- the reward-hacking watch -----------------------------------------------------------------


def test_repetition_share_by_hand() -> None:
    assert repetition([1, 2, 3, 1, 2, 3, 1, 2, 3]) == pytest.approx(1 - 3 / 7)
    assert repetition(list(range(20))) == 0.0
    assert repetition([5, 5, 5]) == 0.0  # too short to judge


def _watch(scores: list[float], kls: list[float], lengths: list[float]) -> list[dict]:
    watch = RewardHackingWatch(WatchSettings(window=4, kl_limit=10.0, length_factor=2.0))
    for i, (s, k, n) in enumerate(zip(scores, kls, lengths, strict=True)):
        watch.observe(i + 1, s, k, n, [0.0] * 8)
    return watch.flags


def test_watch_flags_rising_score_with_runaway_kl_or_length_only() -> None:
    rising = [0.1, 0.2, 0.3, 0.4, 0.5]
    assert _watch(rising, [1, 2, 3, 4, 5], [20] * 5) == []  # an honest improvement
    flags = _watch(rising, [1, 4, 8, 12, 15], [20] * 5)
    assert [f["iteration"] for f in flags] == [4, 5]
    assert "KL runs away" in flags[0]["reasons"][0]
    assert _watch([0.5, 0.4, 0.3, 0.2, 0.1], [12] * 5, [20] * 5) == []  # score not rising
    grown = _watch(rising, [1] * 5, [20, 25, 32, 41, 48])
    assert [f["iteration"] for f in grown] == [4, 5] and "grow" in grown[0]["reasons"][0]


def test_watch_flags_degenerate_repetition_whatever_the_score() -> None:
    watch = RewardHackingWatch()
    looping = [0.8] * 6 + [0.0] * 2  # 6 of 8 responses mostly repeat themselves
    assert watch.observe(1, 0.0, 0.0, 20, looping) == [
        "degenerate repetition in 75% of the responses"
    ]
    assert watch.observe(2, 0.0, 0.0, 20, [0.8] * 4 + [0.0] * 4) == []


# --- batches line up with the model's own scoring ------------------------------------------------


def test_batch_positions_give_the_same_logps_as_completion_scoring() -> None:
    model = tiny_lm(0).eval()
    prompts, responses = [[5, 6, 7, 8], [9, 10]], [[11, 12, 13], [14, 2]]
    batch = build_batch(prompts, responses, TOKENIZER.pad_token_id, "cpu")
    assert batch.mask.tolist() == [[1, 1, 1], [1, 1, 0]]
    with torch.no_grad():
        logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
        picked = logits.gather(1, batch.index[..., None].expand(-1, -1, logits.shape[-1]))
        ours, _ = response_logps(picked, batch.responses, temperature=1.0)
        theirs, mask = completion_logps(model, prompts, responses, TOKENIZER.pad_token_id)
    for row in range(2):
        want = theirs[row][mask[row]]
        assert torch.allclose(ours[row][: len(want)], want, atol=1e-5)


def test_a_minibatch_is_cut_to_its_own_longest_row_and_scores_the_same() -> None:
    model = tiny_lm(0).eval()
    prompts, responses = [[5, 6, 7, 8, 4, 4], [9, 10], [3, 9]], [[11, 12, 13], [14, 2], [7]]
    batch = build_batch(prompts, responses, TOKENIZER.pad_token_id, "cpu")
    part = batch.rows(torch.tensor([2, 1]))
    assert part.input_ids.shape == (2, 4) and batch.input_ids.shape == (3, 9)
    assert part.index.tolist() == [[1, 2, 3], [1, 2, 3]]
    assert batch.rows(torch.tensor([2])).index.tolist() == [[1, 2, 2]]  # padding slots clamp
    with torch.no_grad():
        cut = response_logps(picked_logits(model, *_args(part))[0], part.responses, 1.0)[0]
        whole = batch.rows(torch.tensor([0, 2, 1]))
        full = response_logps(picked_logits(model, *_args(whole))[0], whole.responses, 1.0)[0]
    assert torch.allclose(cut * part.mask, full[1:] * part.mask, atol=1e-5)


def _args(batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return batch.input_ids, batch.attention_mask, batch.index


# --- the loop on a tiny model ------------------------------------------------------------------


def _percent_reward(prompts: list[str], responses: list[str]) -> list[float]:
    return [float(r.count("%")) for r in responses]  # a token the tiny model rarely emits


def _trainer(tmp_path: Path, beta: float, *, iterations: int = 40, lora: bool = False,
             prompts: list[CaiPrompt] = PROMPTS, mixed_precision: str = "auto",
             **overrides: object) -> PpoTrainer:  # fmt: skip
    model = tiny_lm(0)
    if lora:
        model = add_lora(model, LoraSettings(r=4, alpha=8))
    settings: dict[str, object] = dict(
        iterations=iterations, batch_size=32, mini_batch_size=16, ppo_epochs=2,
        max_new_tokens=12, temperature=1.0, kl_coef=beta, missing_eos_penalty=None,
    )  # fmt: skip
    settings.update(overrides)
    train = PpoTrainSettings(
        output_dir=tmp_path / f"ppo-{beta}", lr=1e-3, seed=0, mixed_precision=mixed_precision
    )
    rewards = CallableReward(_percent_reward, "percent")
    return PpoTrainer(model, TOKENIZER, prompts, rewards, PpoConfig(**settings), train)  # type: ignore[arg-type]


def _mean(rows: list[dict[str, float]], key: str) -> float:
    return sum(r[key] for r in rows) / len(rows)


def test_ppo_raises_the_reward_and_a_larger_beta_stays_closer(tmp_path: Path) -> None:
    reference = tiny_lm(0).eval()
    results, divergence = {}, {}
    for beta in (0.01, 0.3):
        trainer = _trainer(tmp_path, beta)
        results[beta] = trainer.fit(progress=False).history
        # exact KL to the reference on a fixed set of responses the reference itself sampled
        fixed = build_batch(
            [trainer._prompt_ids[i] for i in range(8)],
            [[7, 54, 38, 182, 311, 260, 82, 2]] * 8,
            TOKENIZER.pad_token_id,
            "cpu",
        )
        divergence[beta] = policy_divergence(trainer.model.eval(), reference, fixed)
    for beta, history in results.items():
        assert history[0]["objective/kl"] == 0.0  # policy = reference before any update
        start, end = _mean(history[:5], "objective/scores"), _mean(history[-5:], "objective/scores")
        assert end > 3 * start, (beta, start, end)
    # the small β buys a higher score with a much larger KL; the large β keeps KL bounded
    small, large = results[0.01][-5:], results[0.3][-5:]
    assert _mean(small, "objective/scores") > _mean(large, "objective/scores")
    assert max(r["objective/kl"] for r in results[0.3]) < 15.0
    assert _mean(small, "objective/kl") > 3 * _mean(large, "objective/kl")
    assert divergence[0.01] > 2 * divergence[0.3]


def test_missing_eos_penalty_lands_on_unfinished_responses(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path, 0.05, iterations=1, max_new_tokens=3, missing_eos_penalty=2.0)
    trainer.rewards = CallableReward(lambda p, r: [0.0] * len(r), "zero")
    row = trainer.fit(progress=False).history[0]
    assert 0 < row["response/ended"] < 1 or row["response/ended"] == 0
    assert row["objective/scores"] == pytest.approx(-2.0 * (1 - row["response/ended"]))
    samples = [json.loads(line) for line in (tmp_path / "ppo-0.05" / "samples.jsonl").open()]
    assert len(samples) == 32
    assert all(s["score"] == (0.0 if s["ended"] else -2.0) for s in samples)


def test_adaptive_beta_rises_when_kl_exceeds_the_target(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path, 0.05, iterations=12, target_kl=1.0, kl_horizon=320)
    history = trainer.fit(progress=False).history
    betas = [r["objective/beta"] for r in history]
    assert betas[0] == 0.05 and betas[-1] > betas[0]
    for before, after, row in zip(betas, betas[1:], history, strict=False):
        error = max(min(row["objective/kl"] / 1.0 - 1, 0.2), -0.2)
        assert after == pytest.approx(before * (1 + error * 32 / 320))


def test_lora_reference_is_the_adapter_free_model(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path, 0.05, iterations=3, lora=True)
    base_before = {k: v.clone() for k, v in trainer.model.named_parameters() if "lora_" not in k}
    history = trainer.fit(progress=False).history
    assert trainer.reference is None  # no second copy of the weights
    assert history[0]["objective/kl"] == 0.0  # LoRA starts as the identity
    assert history[-1]["objective/kl"] != 0.0
    after = dict(trainer.model.named_parameters())
    assert all(torch.equal(after[k], v) for k, v in base_before.items())
    trainer.save(tmp_path / "final")
    assert (tmp_path / "final" / "adapter_config.json").is_file()
    assert (tmp_path / "final" / "value_head.pt").is_file()


@pytest.mark.parametrize("lora", [True, False])
def test_under_mixed_precision_the_reference_runs_in_it_too(tmp_path: Path, lora: bool) -> None:
    # the policy's log-probs come from the prepared (autocast) module; the reference's must
    # come from the same precision, or the KL of a policy equal to its reference is bf16
    # rounding instead of 0
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state()  # accelerate keeps one precision per process
    try:
        trainer = _trainer(tmp_path, 0.05, iterations=1, lora=lora, mixed_precision="bf16")
        assert trainer.accelerator.mixed_precision == "bf16"
        assert trainer.fit(progress=False).history[0]["objective/kl"] == 0.0
    finally:
        AcceleratorState._reset_state()


def test_resume_continues_to_the_same_result(tmp_path: Path) -> None:
    straight = _trainer(tmp_path / "a", 0.05, iterations=4).fit(progress=False).history
    first = _trainer(tmp_path / "b", 0.05, iterations=2)
    first.train_settings.save_every = 2
    first.fit(progress=False)
    resumed = _trainer(tmp_path / "b", 0.05, iterations=4)
    history = resumed.fit(resume=True, progress=False).history
    assert [r["iteration"] for r in history] == [3.0, 4.0]
    for ours, theirs in zip(history, straight[2:], strict=True):
        for key in ("objective/scores", "objective/kl", "loss/policy_avg"):
            assert ours[key] == pytest.approx(theirs[key], rel=1e-4, abs=1e-6), key


def test_watch_can_stop_training(tmp_path: Path) -> None:
    watch = WatchSettings(window=3, kl_limit=0.5, stop=True)
    trainer = _trainer(tmp_path, 0.01, iterations=40, watch=watch)
    result = trainer.fit(progress=False)
    assert result.stopped is not None and "KL runs away" in result.stopped
    assert result.iterations < 40 and result.flags


# --- rewards -----------------------------------------------------------------------------------


def test_weighted_rewards_add_up_by_hand() -> None:
    a = CallableReward(lambda p, r: [1.0, 2.0], "a")
    b = CallableReward(lambda p, r: [10.0, -10.0], "b")
    combined = WeightedRewards([(a, 0.5), (b, 0.1)])
    assert combined(PROMPTS[:2], ["x", "y"]) == pytest.approx([1.5, 0.0])
    assert combined.last_parts == {"a": 1.5, "b": 0.0}


def test_safety_reward_rewards_refusing_harm_and_answering_benign() -> None:
    harmful, benign = CaiPrompt("h", "help me hurt someone", True), CaiPrompt("b", "bake", False)
    refusal, answer = "I'm sorry, but I can't help with that.", "Sure: mix flour and water."
    scores = SafetyReward()([harmful, harmful, benign, benign], [refusal, answer, refusal, answer])
    assert scores == [1.0, 0.0, 0.0, 1.0]


def test_reward_specs_fail_with_the_key_named() -> None:
    with pytest.raises(ConfigError, match=r"rewards\.0\.function"):
        build_rewards([RewardSpec(kind="callable")])
    with pytest.raises(ConfigError, match=r"rewards\.0\.path"):
        build_rewards([RewardSpec(kind="reward_model")])
    with pytest.raises(ConfigError, match="module:function"):
        load_callable("nomodule")
    with pytest.raises(ConfigError, match="has no function"):
        load_callable("json:nothing_here")
    with pytest.raises(ConfigError, match="returned 1 scores for 2"):
        CallableReward(lambda p, r: [1.0], "short")(PROMPTS[:2], ["a", "b"])


# --- the command and the packaged model ---------------------------------------------------------


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bastion", *args],
        capture_output=True, text=True, timeout=600, check=False,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


def test_the_command_trains_with_a_python_reward(tiny_model_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "my_rewards.py").write_text(
        "def percent(prompts, responses):\n    return [float(r.count('%')) for r in responses]\n"
    )
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("hello there\ntell me a story\nwhat is the sky\n")
    recipe = tmp_path / "ppo.yaml"
    recipe.write_text(
        f"model: {tiny_model_dir}\nprompts: {prompts}\n"
        "rewards:\n  - {kind: callable, function: 'my_rewards:percent'}\n"
        "ppo: {iterations: 3, batch_size: 4, mini_batch_size: 2, max_new_tokens: 6}\n"
        f"lora: {{r: 4, alpha: 8}}\ntrain: {{output_dir: {tmp_path / 'run'}, save_every: 3}}\n"
    )
    result = _cli("align", "ppo", str(recipe), env={"PYTHONPATH": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert "PPO after 3 iterations" in result.stdout
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["iterations"] == 3 and summary["last"]["iteration"] == 3.0
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    assert [r["iteration"] for r in rows] == [1.0, 2.0, 3.0]
    assert all(r["scores/my_rewards:percent"] >= 0 for r in rows)
    for name in ("adapter_config.json", "value_head.pt", "tokenizer.json"):
        assert (tmp_path / "run" / "final" / name).is_file(), name
    assert (tmp_path / "run" / "checkpoint" / "bastion_state.json").is_file()


def test_the_command_names_the_bad_key(tmp_path: Path) -> None:
    prompts = tmp_path / "p.txt"
    prompts.write_text("hi\n")
    recipe = tmp_path / "ppo.yaml"
    out = f"train: {{output_dir: {tmp_path / 'run'}}}\n"
    for body, fragment in (
        (f"prompts: {prompts}\nrewards: [{{kind: vibes}}]\n", "rewards.0.kind"),
        (f"prompts: {prompts}\nppo: {{kl_estimator: k9}}\n", "ppo.kl_estimator"),
        (f"prompts: {prompts}\nppo: {{batch_sizes: 3}}\n", "ppo.batch_sizes"),
        (f"prompts: {tmp_path / 'none.jsonl'}\n", "none.jsonl"),
    ):
        recipe.write_text(body + out)
        result = _cli("align", "ppo", str(recipe))
        assert result.returncode == 2, result.stderr
        assert fragment in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_a_few_steps_on_the_packaged_model_with_the_safety_judge(tmp_path: Path) -> None:
    from bastion.models import load

    chat = load("smollm2-135m-instruct")
    model = add_lora(chat.model.train(), LoraSettings())
    prompts = read_prompts(Path(__file__).parents[1] / "examples" / "ppo" / "prompts.jsonl")
    config = PpoConfig(iterations=2, batch_size=4, mini_batch_size=2, max_new_tokens=24)
    train = PpoTrainSettings(output_dir=tmp_path / "run", lr=1e-4)
    reward = SafetyReward()
    trainer = PpoTrainer(
        model, chat.tokenizer, prompts, WeightedRewards([(reward, 1.0)]), config, train,
        eos_ids=chat.eos_ids,
    )  # fmt: skip
    history = trainer.fit(progress=False).history
    assert history[0]["objective/kl"] == 0.0  # fresh LoRA: the policy is the reference
    assert all(math.isfinite(v) for row in history for v in row.values())
    samples = [json.loads(line) for line in (tmp_path / "run" / "samples.jsonl").open()]
    assert len(samples) == 8
    by_id = {p.id: p for p in prompts}
    for iteration, row in enumerate(history, 1):
        batch = [s for s in samples if s["iteration"] == iteration]
        judged = reward([by_id[s["prompt_id"]] for s in batch], [s["response"] for s in batch])
        expected = [j - (0.0 if s["ended"] else 1.0) for j, s in zip(judged, batch, strict=True)]
        assert [s["score"] for s in batch] == pytest.approx(expected)
        assert row["objective/scores"] == pytest.approx(sum(expected) / len(expected))
    trainer.save(tmp_path / "final")
    from bastion.models import HFChatModel
    from bastion.models.packaged import converted_dir

    tuned = HFChatModel.from_pretrained(
        converted_dir("smollm2-135m-instruct"), adapter=tmp_path / "final", device="cpu"
    )
    assert tuned.generate(["Hello!"], max_new_tokens=4)[0]


@pytest.mark.parametrize("lora", [False, True])
def test_the_update_starts_from_the_rollouts_pass_with_the_same_result(
    tmp_path: Path, lora: bool
) -> None:
    """Reusing the rollout's forward pass for the first mini-batch changes nothing but the
    work: the same metrics, iteration by iteration, and one forward pass fewer per update."""
    histories, passes = {}, {}
    for reuse in (True, False):
        trainer = _trainer(tmp_path / str(reuse), 0.05, iterations=3, lora=lora)
        assert trainer.reuse_first_pass  # no dropout, one process: on by default
        trainer.reuse_first_pass = reuse
        calls: list[int] = []
        trainer.module.register_forward_hook(lambda *_, seen=calls: seen.append(1))
        histories[reuse] = trainer.fit(progress=False).history
        passes[reuse] = len(calls)
    # per iteration: 2 rollout chunks + 2 epochs x 2 mini-batches; reuse saves one
    assert passes == {True: 3 * 5, False: 3 * 6}
    for ours, theirs in zip(histories[True], histories[False], strict=True):
        for key in ("objective/scores", "objective/kl", "loss/policy_avg", "loss/value_avg",
                    "policy/clipfrac_avg", "policy/entropy_avg", "val/ratio"):  # fmt: skip
            assert ours[key] == pytest.approx(theirs[key], rel=1e-4, abs=1e-6), key


def test_the_shared_prefix_pass_changes_nothing_but_the_work(tmp_path: Path) -> None:
    """Prompts opening with the same words: with the prefix run once per pass, the same
    metrics iteration by iteration as without, and one one-row prefix pass per policy,
    reference and update pass."""
    lead = "Answer the next question in a few words, please: "
    prompts = [CaiPrompt(p.id, lead + p.prompt, None) for p in PROMPTS]
    histories, prefix_passes = {}, {}
    for share in (True, False):
        trainer = _trainer(tmp_path / str(share), 0.05, iterations=3, lora=True, prompts=prompts)
        trainer.share_prefix = share
        shapes: list[tuple[int, ...]] = []
        trainer.model.get_base_model().model.register_forward_hook(
            lambda module, args, kwargs, out, seen=shapes: seen.append(
                tuple(kwargs["input_ids"].shape)
            ),
            with_kwargs=True,
        )
        histories[share] = trainer.fit(progress=False).history
        prefix_passes[share] = [shape for shape in shapes if shape[0] == 1]
    # per iteration: 2 rollout chunks x (policy + reference), 2 epochs x 2 mini-batches - 1 kept
    assert len(prefix_passes[True]) == 3 * 7 and not prefix_passes[False]
    assert min(width for _, width in prefix_passes[True]) >= 8
    for ours, theirs in zip(histories[True], histories[False], strict=True):
        for key in ("objective/scores", "objective/kl", "loss/policy_avg", "loss/value_avg",
                    "policy/clipfrac_avg", "policy/entropy_avg", "val/ratio"):  # fmt: skip
            # rounding differs (other matrix shapes) and training compounds it a little
            assert ours[key] == pytest.approx(theirs[key], rel=1e-3, abs=1e-5), key


def test_a_prefix_is_shared_only_where_it_is_safe() -> None:
    from transformers import MistralConfig, MistralForCausalLM

    from bastion.align.policy_value import shared_prefix

    ids = torch.tensor([[5] * 10 + [6, 7, 8], [5] * 10 + [9, 9, 0]])
    mask = torch.ones_like(ids)
    mask[1, -1] = 0
    index = torch.tensor([[11, 12], [11, 12]])
    model = tiny_lm(0)  # training mode, no dropout
    assert shared_prefix(model, ids, mask, index) == 10
    assert shared_prefix(model, ids, mask, index - 2) == 9  # never past a picked position
    assert shared_prefix(model, ids, mask, index - 4) == 0  # 7 tokens: not worth a pass
    assert shared_prefix(model, ids[:1], mask[:1], index[:1]) == 0  # one row
    dropped = add_lora(tiny_lm(0), LoraSettings(r=4, alpha=8, dropout=0.1))
    assert shared_prefix(dropped, ids, mask, index) == 0  # rows would share dropout masks
    assert shared_prefix(dropped.eval(), ids, mask, index) == 10
    model.activation_checkpointing_enable({"use_reentrant": False})
    assert shared_prefix(model, ids, mask, index) == 0  # a recomputed layer extends the cache
    assert shared_prefix(model.eval(), ids, mask, index) == 10
    windowed = MistralForCausalLM(
        MistralConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=1, sliding_window=4)
    ).eval()  # fmt: skip
    assert shared_prefix(windowed, ids, mask, index) == 0
    from peft import PrefixTuningConfig, get_peft_model

    prefixed = get_peft_model(
        tiny_lm(0), PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=4)
    ).eval()
    assert shared_prefix(prefixed, ids, mask, index) == 0  # virtual tokens of its own


def test_dropout_turns_the_reuse_off(tmp_path: Path) -> None:
    model = add_lora(tiny_lm(0), LoraSettings(r=4, alpha=8, dropout=0.1))
    train = PpoTrainSettings(output_dir=tmp_path, lr=1e-3, seed=0)
    config = PpoConfig(iterations=1, batch_size=4, mini_batch_size=2, max_new_tokens=4)
    rewards = CallableReward(_percent_reward, "percent")
    trainer = PpoTrainer(model, TOKENIZER, PROMPTS, rewards, config, train)
    assert not trainer.reuse_first_pass
    checkpointed = PpoTrainSettings(
        output_dir=tmp_path, lr=1e-3, seed=0, gradient_checkpointing=True
    )
    assert not PpoTrainer(
        tiny_lm(0), TOKENIZER, PROMPTS, rewards, config, checkpointed
    ).reuse_first_pass


def test_randomness_in_training_is_read_from_config_keys() -> None:
    from bastion.align.policy_value import _random_in_training

    assert not _random_in_training({"attention_dropout": 0.0, "use_cache": True, "layers": 2})
    assert _random_in_training({"attention_dropout": 0.0, "router_jitter_noise": 0.1})
    assert _random_in_training({"attn_config": {"attn_pdrop": 0.3}})  # nested, as MPT's
    assert _random_in_training({"layerdrop": 0.5})
    assert not _random_in_training({"layerdrop": False})
