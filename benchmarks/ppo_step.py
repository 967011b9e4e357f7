"""One PPO iteration, split into generation, scoring and update: Bastion beside TRL's PPO.

Same machine, same run, same settings on both sides, one after the other, each in its own
process: the packaged SmolLM2-135M-Instruct with a LoRA adapter (r 16, alpha 32, q/k/v/o), the
prompts of ``examples/ppo/prompts.jsonl``, 8 rollouts per iteration, mini-batches of 4, 2 PPO
epochs, at most 48 new tokens sampled at temperature 0.7, β 0.05, missing-EOS penalty 1,
learning rate 3e-6, fp32 weights. The reward on both sides is a reward model of the same size:
the packaged model's trunk with a seeded, untrained scalar head, in fp32 (timing, not quality,
is measured).

``--precision bf16`` runs both trainers with bf16 mixed precision instead of plain fp32
(Bastion: ``mixed_precision: bf16``; TRL: ``PPOConfig(bf16=True)``), for CPUs with native
bf16 arithmetic (AVX512-BF16 or AMX) and for GPUs. On both sides the prepared policy-and-value
module runs under autocast, so the update and the rollout's policy pass do; sampling runs the
unwrapped policy in fp32 on both; the reward model stays fp32 on both. Bastion also runs its
reference pass (the adapter-free policy) under the same autocast, as the KL needs; TRL 1.12
runs its reference in fp32. On a CPU, Bastion runs the rollout and update as lean passes
(``bastion.align.precision.lean_passes``: frozen weights cast to bf16 once an iteration
instead of by autocast on every call, and attention in fp32, whose backward is faster there
than bf16's).

The designs differ where they differ on purpose: Bastion's value head sits on the policy's
trunk (one forward pass gives log-probs and values; the critic trains through the LoRA
adapters); TRL 1.12's PPO trains a separate full value model beside the policy. TRL's PPO
lives in ``trl.experimental.ppo`` only up to TRL 1.12.0, so the peer runs in its own
environment (``make bench-ppo`` builds ``.venv-trlppo``); ``benchmarks/trl_ppo_peer.py`` says
exactly how its phases are timed. Bastion's phases are its own ``time/*`` metrics: generation
(sampling), scoring (the reward model, then the rollout's forward passes: old log-probs,
values, reference log-probs) and update (the PPO epochs).

The first iteration is a warm-up; figures are means over the rest. Ratios are TRL's seconds
over Bastion's (above 1: Bastion is faster). Bastion also runs a second time in the same run
with one speed-up turned off, so its effect is measured on the same machine state: in fp32,
the shared-prefix pass (``PpoTrainer.share_prefix``: the chat template's opening tokens, which
every rollout starts with, run once per pass instead of once per row); in bf16, the lean
passes (``PpoTrainer.lean``). ``--skip-ablation`` leaves that run out.

    python benchmarks/ppo_step.py [--iterations 4] [--ppo-epochs 2] [--threads N] [--skip-trl]
                                  [--skip-ablation] [--precision fp32|bf16]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = ROOT / "examples" / "ppo" / "prompts.jsonl"
PEER = ROOT / ".venv-trlppo" / "bin" / "python"
SETTINGS = {
    "batch_size": 8,
    "mini_batch_size": 4,
    "ppo_epochs": 2,
    "max_new_tokens": 48,
    "temperature": 0.7,
    "kl_coef": 0.05,
    "missing_eos_penalty": 1.0,
}
LR, LORA_R, SEED = 3e-6, 16, 0
PHASES = ("generation_s", "scoring_s", "update_s", "total_s")
# the second Bastion run of a benchmark, with one speed-up turned off (see the docstring)
ABLATION = {
    "fp32": ("bastion_unshared_prefix", ["--no-share-prefix"]),
    "bf16": ("bastion_plain_autocast", ["--no-lean"]),
}


class ModelReward:
    """A reward model of the policy's size: the packaged trunk and a seeded scalar head."""

    name = "reward_model"

    def __init__(self) -> None:
        import torch

        from bastion.align.reward import RewardModel
        from bastion.models import load

        chat = load("smollm2-135m-instruct")
        torch.manual_seed(SEED)
        self.model = RewardModel(chat.model).eval().requires_grad_(False)
        self.chat = chat

    def __call__(self, prompts: list[Any], responses: list[str]) -> list[float]:
        import torch

        from bastion.align.logprobs import encode
        from bastion.types import as_conversation

        encoded = [
            encode(
                self.chat.tokenizer, as_conversation(p.prompt), r or " ", eos_ids=self.chat.eos_ids
            )
            for p, r in zip(prompts, responses, strict=True)
        ]
        with torch.no_grad():
            scores: list[float] = self.model.score(encoded, self.chat.pad_id).tolist()
        return scores


def run_ours(
    iterations: int,
    threads: int,
    out: Path,
    *,
    share_prefix: bool = True,
    precision: str = "fp32",
    lean: bool = True,
) -> None:
    import torch

    from bastion.align.cai import read_prompts
    from bastion.align.lora import LoraSettings, add_lora
    from bastion.align.ppo import PpoConfig, PpoTrainer, PpoTrainSettings
    from bastion.models import load

    if threads:
        torch.set_num_threads(threads)
    chat = load("smollm2-135m-instruct")
    model = add_lora(chat.model.train(), LoraSettings(r=LORA_R, alpha=2 * LORA_R))
    config = PpoConfig(iterations=iterations, **SETTINGS)  # type: ignore[arg-type]
    with tempfile.TemporaryDirectory() as folder:
        mixed = "bf16" if precision == "bf16" else "no"
        train = PpoTrainSettings(output_dir=Path(folder), lr=LR, seed=SEED, mixed_precision=mixed)
        trainer = PpoTrainer(
            model, chat.tokenizer, read_prompts(PROMPTS), ModelReward(), config, train,
            eos_ids=chat.eos_ids,
        )  # fmt: skip
        trainer.share_prefix, trainer.lean = share_prefix, lean
        history = trainer.fit(progress=False).history
    rows = []
    for row in history:
        phases = {k: row[f"time/{k}"] for k in PHASES[:3]}
        phases["total_s"] = sum(phases.values())
        phases["response_tokens"] = row["response/length"] * SETTINGS["batch_size"]
        rows.append(phases)
    result = {
        "library": "bastion",
        "settings": {
            **SETTINGS,
            "iterations": iterations,
            "lr": LR,
            "lora_r": LORA_R,
            "torch_threads": torch.get_num_threads(),
            "share_prefix": share_prefix,
            "lean_passes": lean,
            "mixed_precision": "bf16" if precision == "bf16" else "no",
        },
        "iterations": rows,
        "mean_after_warmup": _mean(rows[1:] or rows),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "metrics": history,
    }
    out.write_text(json.dumps(result, indent=2) + "\n")


def _mean(rows: list[dict[str, float]]) -> dict[str, float]:
    keys = (*PHASES, "response_tokens")
    return {k: round(sum(r[k] for r in rows) / len(rows), 4) for k in keys}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=4)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--ppo-epochs", type=int, default=SETTINGS["ppo_epochs"])
    parser.add_argument("--skip-trl", action="store_true")
    parser.add_argument(
        "--skip-ablation", action="store_true",
        help="do not also time Bastion with the shared-prefix pass turned off",
    )  # fmt: skip
    parser.add_argument(
        "--precision", choices=("fp32", "bf16"), default="fp32",
        help="fp32, or bf16 mixed precision on both sides (see above)",
    )  # fmt: skip
    parser.add_argument("--no-share-prefix", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--no-lean", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/ppo_step.json")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    SETTINGS["ppo_epochs"] = args.ppo_epochs
    if args.worker:
        run_ours(
            args.iterations, args.threads, args.out,
            share_prefix=not args.no_share_prefix, precision=args.precision,
            lean=not args.no_lean,
        )  # fmt: skip
        return
    from bastion.models.packaged import converted_dir, load

    load("smollm2-135m-instruct")  # fetched and converted once, before anything is timed
    args.out.parent.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"machine": _machine()}
    with tempfile.TemporaryDirectory() as folder:
        ours_json, peer_json = Path(folder) / "ours.json", Path(folder) / "trl.json"
        variants = [("bastion", [])]
        if not args.skip_ablation:
            variants.append(ABLATION[args.precision])
        for name, extra in variants:
            started = time.perf_counter()
            subprocess.run(
                [sys.executable, __file__, "--worker", "--iterations", str(args.iterations),
                 "--ppo-epochs", str(args.ppo_epochs),
                 "--threads", str(args.threads), "--out", str(ours_json),
                 "--precision", args.precision, *extra],
                check=True,
            )  # fmt: skip
            results[name] = json.loads(ours_json.read_text())
            results[name]["wall_s"] = time.perf_counter() - started
        if not args.skip_trl:
            if not PEER.is_file():
                sys.exit("error: .venv-trlppo is missing; run make bench-ppo")
            started = time.perf_counter()
            subprocess.run(
                [str(PEER), str(ROOT / "benchmarks" / "trl_ppo_peer.py"),
                 "--model-dir", str(converted_dir("smollm2-135m-instruct")),
                 "--out", str(peer_json), "--iterations", str(args.iterations),
                 "--prompts", str(PROMPTS), "--learning-rate", str(LR),
                 "--lora-r", str(LORA_R), "--seed", str(SEED), "--threads", str(args.threads),
                 "--batch-size", str(SETTINGS["batch_size"]),
                 "--mini-batch-size", str(SETTINGS["mini_batch_size"]),
                 "--ppo-epochs", str(SETTINGS["ppo_epochs"]),
                 "--max-new-tokens", str(SETTINGS["max_new_tokens"]),
                 "--temperature", str(SETTINGS["temperature"]),
                 *(["--bf16"] if args.precision == "bf16" else [])],
                check=True,
            )  # fmt: skip
            results["trl"] = json.loads(peer_json.read_text())
            results["trl"]["wall_s"] = time.perf_counter() - started
    ours = results["bastion"]["mean_after_warmup"]
    print(f"PPO iteration, mean of iterations 2..{args.iterations} (seconds)")
    print(f"{'phase':<16}{'bastion':>10}{'trl':>10}{'trl/bastion':>13}")
    ratios = {}
    for phase in (*PHASES, "response_tokens"):
        line = f"{phase:<16}{ours[phase]:>10.2f}"
        if "trl" in results:
            theirs = results["trl"]["mean_after_warmup"][phase]
            ratios[phase] = theirs / ours[phase] if ours[phase] else float("nan")
            line += f"{theirs:>10.2f}{ratios[phase]:>12.2f}×"
        print(line)
    share = ours["generation_s"] / ours["total_s"]
    print(f"bastion: generation is {share:.0%} of an iteration")
    for name, without in (
        ("bastion_unshared_prefix", "the shared-prefix pass"),
        ("bastion_plain_autocast", "lean passes"),
    ):
        if name in results:
            plain = results[name]["mean_after_warmup"]
            print(
                f"bastion without {without}: scoring {plain['scoring_s']:.2f} s, "
                f"update {plain['update_s']:.2f} s "
                f"({plain['update_s'] / ours['update_s']:.2f}× the update with it)"
            )
    results["ratios_trl_over_bastion"] = ratios
    results["bastion_generation_share"] = share
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


def _machine() -> dict[str, Any]:
    import os
    import platform

    import torch

    return {"cpus": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__}


if __name__ == "__main__":
    main()
