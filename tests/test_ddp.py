"""Two processes on CPU (DDP over gloo, launched by torchrun) train like one with the big batch."""

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


def test_two_processes_end_identical_and_equal_the_big_batch(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "BASTION_CACHE": str(tmp_path / "cache")}
    ddp = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_addr",
            "127.0.0.1",
            "--master_port",
            str(free_port()),
            WORKER,
            str(tmp_path / "ddp"),
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        check=False,
    )
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    single = subprocess.run(
        [sys.executable, WORKER, str(tmp_path / "single"), "4"],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        check=False,
    )
    assert single.returncode == 0, single.stderr[-3000:]
    rank0, rank1 = (torch.load(tmp_path / "ddp" / f"rank{r}.pt") for r in (0, 1))
    assert torch.equal(rank0, rank1)
    assert torch.allclose(rank0, torch.load(tmp_path / "single" / "rank0.pt"), atol=1e-5)
