"""Slow tests on the real packaged models (fetched as pinned wheels, cached across runs)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bastion.models import load, load_embedder
from bastion.models.packaged import converted_dir, is_present

pytestmark = pytest.mark.slow


def test_chat_model_answers_paris() -> None:
    model = load("smollm2-135m-instruct")
    [reply] = model.generate(["What is the capital of France?"], max_new_tokens=20)
    assert "Paris" in reply
    assert is_present("smollm2-135m-instruct")
    folder = converted_dir("smollm2-135m-instruct")
    assert "quantization_config" not in json.loads((folder / "config.json").read_text())


def test_chat_model_prefers_the_true_answer() -> None:
    model = load("smollm2-135m-instruct")
    question = "What is the capital of France?"
    right, wrong = model.logprobs(
        [question, question],
        ["The capital of France is Paris.", "The capital of France is Berlin."],
    )
    assert right.total > wrong.total + 2.0


def test_embedder_ranks_a_paraphrase_above_an_unrelated_sentence() -> None:
    embedder = load_embedder("all-minilm-l6-v2")
    vectors = embedder.embed(
        [
            "How do I bake bread at home?",
            "What is a simple recipe for homemade bread?",
            "The central bank raised interest rates today.",
        ]
    )
    assert vectors.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert vectors[0] @ vectors[1] > 0.6 > 0.2 > vectors[0] @ vectors[2]


def test_smoke_command_end_to_end(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bastion",
            "redteam",
            "smoke",
            "--harmful",
            "2",
            "--benign",
            "2",
            "--max-new-tokens",
            "24",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=dict(os.environ),
        check=False,
    )
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert [r["kind"] for r in rows] == ["harmful", "harmful", "benign", "benign"]
    assert all(r["response"].strip() for r in rows)
    assert "harmful refused:" in result.stdout and "benign refused" in result.stdout
