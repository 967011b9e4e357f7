"""Unlearning on a tiny model that first memorizes synthetic facts, then forgets half."""

import copy
import json
from pathlib import Path

import pytest
import torch

from bastion.align.sft import SftTrainer
from bastion.align.train import TrainConfig
from bastion.align.unlearn import UnlearnTrainer, evaluate_unlearning, npo_loss
from bastion.errors import BastionError
from bastion.models import HFChatModel
from bastion.types import Conversation, Message

NAMES = ["Arlo", "Bexa", "Cyro", "Dune", "Elko", "Fira", "Gorm", "Hale"]
COLOURS = ["red", "blue", "green", "amber", "violet", "silver", "black", "white"]
FACTS = [
    Conversation((Message("user", f"What colour is {n}'s hat?"),
                  Message("assistant", f"{n}'s hat is {c}.")))
    for n, c in zip(NAMES, COLOURS, strict=True)
]  # fmt: skip
FORGET, RETAIN = FACTS[:4], FACTS[4:]


def test_npo_loss_by_hand() -> None:
    # -(2/β)·log σ(-β·Δ) with β = 0.5, Δ = (-1 - -3, -4 - -3) = (2, -1)
    value = npo_loss(torch.tensor([-1.0, -4.0]), torch.tensor([-3.0, -3.0]), 0.5)
    expected = -(2 / 0.5) * (torch.nn.functional.logsigmoid(torch.tensor([-1.0, 0.5]))).mean()
    assert float(value) == pytest.approx(float(expected))
    assert float(value) == pytest.approx(-4 * (-1.3132617 + -0.4740770) / 2, abs=1e-5)


@pytest.fixture(scope="module")
def memorized(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    chat = HFChatModel.from_pretrained(tiny_model_dir, device="cpu")
    out = tmp_path_factory.mktemp("sft")
    config = TrainConfig(output_dir=out, max_steps=200, batch_size=8, lr=3e-3)
    trainer = SftTrainer(chat.model, chat.tokenizer, FACTS, config)
    trainer.fit(progress=False)
    chat.model = trainer.model
    return chat


def unlearn(chat, tmp_path: Path, method: str, steps: int, kl: float):
    chat = copy.copy(chat)
    chat.model = copy.deepcopy(chat.model)
    trainer = UnlearnTrainer(
        chat.model, chat.tokenizer, FORGET, RETAIN,
        TrainConfig(output_dir=tmp_path / method, max_steps=steps, batch_size=4, lr=1e-3),
        method=method, beta=0.1, kl_coef=kl,
    )  # fmt: skip
    trainer.fit(progress=False)
    chat.model = trainer.model
    return evaluate_unlearning(chat, FORGET, RETAIN)


def test_the_forgotten_half_drops_and_the_kept_half_stays(memorized, tmp_path: Path) -> None:
    before = evaluate_unlearning(memorized, FORGET, RETAIN)
    assert before["forget"]["answered"] == before["retain"]["answered"] == 1.0
    assert before["forget"]["mean_token_logp"] > -0.05  # memorized
    after = unlearn(memorized, tmp_path, "npo", 30, kl=1.0)
    assert after["forget"]["mean_token_logp"] < before["forget"]["mean_token_logp"] - 2.0
    assert after["forget"]["answered"] == 0.0
    assert after["retain"]["mean_token_logp"] > before["retain"]["mean_token_logp"] - 0.2
    assert after["retain"]["answered"] >= 0.75
    # plain gradient ascent forgets too, but takes the kept half with it: what NPO + KL fix
    ascent = unlearn(memorized, tmp_path, "ga", 10, kl=0.0)
    assert ascent["forget"]["answered"] == 0.0
    assert ascent["retain"]["mean_token_logp"] < after["retain"]["mean_token_logp"] - 0.3


def test_under_mixed_precision_the_retain_kl_starts_at_zero(memorized, tmp_path: Path) -> None:
    # the policy's pass runs under the accelerator's autocast, and so must the reference's:
    # before any update the two are the same model, and their KL must be 0, not rounding.
    # The model was trained in this process already (the fixture's SFT run): a trainer must
    # prepare it again, with its own precision, rather than take accelerate's mark for done
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state()  # accelerate keeps one precision per process
    try:
        trainer = UnlearnTrainer(
            copy.deepcopy(memorized.model), memorized.tokenizer, FORGET, RETAIN,
            TrainConfig(output_dir=tmp_path, max_steps=1, batch_size=4, lr=1e-3,
                        mixed_precision="bf16"),
            method="gd", kl_coef=1.0,
        )  # fmt: skip
        seen: list[bool] = []  # whether the policy's passes (not the reference's) were autocast
        layer = trainer.model.model.layers[0]
        layer.register_forward_hook(lambda *_: seen.append(torch.is_autocast_enabled("cpu")))
        history = trainer.fit(progress=False).history
    finally:
        AcceleratorState._reset_state()
    assert seen and all(seen)
    assert history[0]["retain_kl"] == 0.0


def test_bad_settings_are_clear_errors(memorized, tmp_path: Path) -> None:
    config = TrainConfig(output_dir=tmp_path, max_steps=1)
    with pytest.raises(BastionError, match="method: expected one of ga, gd, npo"):
        UnlearnTrainer(memorized.model, memorized.tokenizer, FORGET, RETAIN, config, method="x")
    with pytest.raises(BastionError, match="method gd: needs a retain set"):
        UnlearnTrainer(memorized.model, memorized.tokenizer, FORGET, [], config, method="gd")


def test_the_command_writes_a_before_after_report(tiny_model_dir: Path, tmp_path: Path) -> None:
    from test_cli import assert_user_error, run

    def rows(name: str, facts) -> Path:
        path = tmp_path / name
        path.write_text("".join(json.dumps({"messages": c.to_dicts()}) + "\n" for c in facts))
        return path

    forget, retain = rows("forget.jsonl", FORGET), rows("retain.jsonl", RETAIN)
    out = tmp_path / "out"
    result = run("align", "unlearn", "--model", str(tiny_model_dir), "--forget", str(forget),
                 "--retain", str(retain), "--steps", "2", "--out", str(out))  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    assert set(report) >= {"before", "after", "method"} and report["method"] == "npo"
    assert set(report["after"]) == {"forget", "retain"}
    assert (out / "model" / "config.json").is_file()
    bad = run("align", "unlearn", "--forget", str(tmp_path / "none.jsonl"),
              "--retain", str(retain), "--out", str(out))  # fmt: skip
    assert_user_error(bad, "none.jsonl")
