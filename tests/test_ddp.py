"""Two processes on CPU (DDP over gloo, launched by torchrun) train like one with the big batch."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import torch

WORKER = str(Path(__file__).with_name("ddp_worker.py"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """A child process with one thread per rank and a private cache; it must succeed."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "BASTION_CACHE": str(tmp_path / "cache")}
    result = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=600, env=env, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def torchrun() -> list[str]:
    return [
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(free_port()),
    ]


def test_two_processes_end_identical_and_equal_the_big_batch(tmp_path: Path) -> None:
    run(tmp_path, *torchrun(), WORKER, str(tmp_path / "ddp"), "2")
    run(tmp_path, WORKER, str(tmp_path / "single"), "4")
    rank0, rank1 = (torch.load(tmp_path / "ddp" / f"rank{r}.pt") for r in (0, 1))
    assert torch.equal(rank0, rank1)
    assert torch.allclose(rank0, torch.load(tmp_path / "single" / "rank0.pt"), atol=1e-5)


def test_the_cli_runs_under_torchrun(tmp_path: Path, tiny_model_dir: Path) -> None:
    """`torchrun -m bastion align dpo RECIPE`: two ranks train, the first one saves."""
    rows = [
        {
            "prompt": [{"role": "user", "content": f"question {i}"}],
            "chosen": [{"role": "assistant", "content": "Sure, here it is."}],
            "rejected": [{"role": "assistant", "content": "I'm sorry, no."}],
        }
        for i in range(8)
    ]
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        f"model: {tiny_model_dir}\ndata: {tmp_path / 'pairs.jsonl'}\nlora: null\n"
        f"train:\n  output_dir: {tmp_path / 'run'}\n  batch_size: 2\n"
        "  max_steps: 2\n  lr: 1.0e-3\n"
    )
    result = run(tmp_path, *torchrun(), "-m", "bastion", "align", "dpo", str(recipe))
    assert result.stdout.count("saved:") == 1  # one report, from the first rank
    summary = json.loads((tmp_path / "run/summary.json").read_text())
    assert summary["steps"] == 2
    assert (tmp_path / "run/final/model.safetensors").is_file()
