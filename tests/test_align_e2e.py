"""DPO with LoRA on the packaged model, on safety pairs from the pinned corpora (slow)."""

import json
from pathlib import Path

import pytest

from bastion.align.recipe import PreferenceRecipe
from bastion.align.run import run_preference
from bastion.align.safety_pairs import safety_pairs
from bastion.data.jsonl import preference_to_dict, write_jsonl
from bastion.models import load

pytestmark = pytest.mark.slow


def test_dpo_lora_on_safety_pairs(tmp_path: Path) -> None:
    train, test = safety_pairs(32, 32), safety_pairs(8, 8, split="test")
    assert len(train) == 64 and len(test) == 16
    assert not {p.prompt for p in train} & {p.prompt for p in test}
    write_jsonl(tmp_path / "train.jsonl", map(preference_to_dict, train))
    write_jsonl(tmp_path / "test.jsonl", map(preference_to_dict, test))
    recipe = PreferenceRecipe.model_validate(
        {
            "data": tmp_path / "train.jsonl",
            "eval_data": tmp_path / "test.jsonl",
            "loss": "dpo",
            "beta": 0.1,
            "max_length": 256,
            "train": {
                "output_dir": tmp_path / "run",
                "epochs": 1,
                "batch_size": 4,
                "lr": 2e-4,
                "seed": 0,
            },
        }
    )
    summary = run_preference(recipe, progress=False)
    assert summary["steps"] == 16
    rows = [json.loads(line) for line in (tmp_path / "run/metrics.jsonl").read_text().splitlines()]
    second_half = [r["rewards/accuracies"] for r in rows[len(rows) // 2 :]]
    assert sum(second_half) / len(second_half) > 0.9  # 32 training pairs seen in the 2nd half
    before, after = summary["eval_before"], summary["eval_after"]
    assert after["accuracy"] > before["accuracy"]
    assert after["preference_accuracy"] > before["preference_accuracy"]
    adapted = load("smollm2-135m-instruct", adapter=Path(summary["saved"]))
    [reply] = adapted.generate(["What is the capital of France?"], max_new_tokens=16)
    assert reply.strip()
