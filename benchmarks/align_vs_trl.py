"""DPO training: Bastion's PreferenceTrainer beside TRL's DPOTrainer, same model, data, machine.

Each variant runs in its own child processes, on the same pairs (safety pairs from the pinned
corpora), batch size, one epoch, learning rate, fp32 (TRL's default of bf16 autocast is turned
off: this comparison is at equal precision), ``max_length`` = the data's longest sequence (so
neither library truncates), one after another in one run of this script:

* ``bastion``: full fine-tuning, reference log-probs precomputed once (no reference copy);
* ``trl``: TRL's defaults (a frozen reference copy in memory);
* ``trl-precompute``: TRL with ``precompute_ref_log_probs=True``;
* ``bastion-gc`` and ``trl-precompute-gc``: the same with gradient checkpointing on both sides
  (asked for with ``--variants``).

Reported per variant: training tokens/s (prompt + chosen + rejected tokens of every pair,
counted with the same tokenizer, over the whole run from the trainer's construction, reference
log-probs included), the peak RSS of the training process, and — from a separate process —
the DPO loss each library computes on the same first batch for a policy that differs from its
reference (seeded noise on every weight; the reference is the unperturbed model), which must
agree to 1e-4. Ratios are Bastion's figure over TRL's.

TRL is needed only here: ``make bench-align`` installs it into ``.venv-bench``.

    python benchmarks/align_vs_trl.py [--loss dpo|kto] [--models tiny smollm2] [--pairs 128]
        [--batch-size 4] [--variants bastion trl trl-precompute bastion-gc trl-precompute-gc]

With ``--loss kto`` each pair gives a desirable and an undesirable example and TRL's
``KTOTrainer`` is the peer; the KL reference point's mismatched pairs are built the same way by
both (completions rotated by one within consecutive batch-sized chunks).
"""

from __future__ import annotations

import argparse
import copy
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

VARIANTS = ("bastion", "trl", "trl-precompute")
# with gradient checkpointing on both sides (``--variants bastion-gc trl-precompute-gc``)
CHECKPOINTING = ("bastion-gc", "trl-precompute-gc")
# (ours, peer) pairs whose ratios are reported
RATIOS = (
    ("bastion", "trl"),
    ("bastion", "trl-precompute"),
    ("bastion-gc", "trl-precompute-gc"),
)
BETA, LR, SEED = 0.1, 1e-6, 0


def build(model_name: str) -> tuple[Any, Any]:
    from bastion.models import load
    from bastion.models.tiny import build_tiny_llama, build_tiny_tokenizer

    if model_name == "tiny":
        tokenizer = build_tiny_tokenizer()
        model = build_tiny_llama(
            len(tokenizer),
            seed=SEED,
            layers=4,
            hidden=64,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
        return model.train(), tokenizer
    chat = load("smollm2-135m-instruct")
    return chat.model.train(), chat.tokenizer


LOSS = "dpo"  # or "kto" (set by --loss): TRL's DPOTrainer or KTOTrainer


def data(pairs: int) -> list[Any]:
    """The safety pairs; for KTO each pair gives a desirable and an undesirable example."""
    from bastion.align.safety_pairs import safety_pairs
    from bastion.types import UnpairedExample

    preference = safety_pairs(pairs // 2, pairs - pairs // 2)
    if LOSS == "dpo":
        return preference
    return [
        UnpairedExample(p.prompt, completion, label)
        for p in preference
        for completion, label in ((p.chosen, True), (p.rejected, False))
    ]


def rows(pairs: list[Any]) -> list[dict[str, Any]]:
    if LOSS == "kto":
        return [
            {
                "prompt": e.prompt.to_dicts(),
                "completion": e.completion.to_dicts(),
                "label": e.label,
            }
            for e in pairs
        ]
    return [
        {
            "prompt": p.prompt.to_dicts(),
            "chosen": p.chosen.to_dicts(),
            "rejected": p.rejected.to_dicts(),
        }
        for p in pairs
    ]


def perturb(model: Any) -> None:
    """Seeded noise on every weight, so a policy differs from its reference (the DPO loss is
    then not trivially log 2) in the same way for both libraries."""
    generator = torch.Generator().manual_seed(123)
    with torch.no_grad():
        for param in model.parameters():
            noise = torch.randn(param.shape, generator=generator)
            param.add_(noise * 0.02 * param.std().clamp(min=1e-3))


def longest(model: Any, tokenizer: Any, pairs: list[Any]) -> int:
    """The longest prompt + completion: both libraries get it as ``max_length``, so neither
    truncates (their truncation policies differ: Bastion cuts the prompt's start, TRL the
    sequence's end)."""
    return max(sum(lengths) for lengths in sequence_lengths(model, tokenizer, pairs))


def sequence_lengths(model: Any, tokenizer: Any, pairs: list[Any]) -> list[tuple[int, int]]:
    """``(prompt, completion)`` token counts of every chosen and rejected sequence."""
    from bastion.align.logprobs import encode
    from bastion.models.hf import end_of_turn_ids

    eos = end_of_turn_ids(model, tokenizer)
    out = []
    for pair in pairs:
        completions = (pair.completion,) if LOSS == "kto" else (pair.chosen, pair.rejected)
        for completion in completions:
            e = encode(tokenizer, pair.prompt, completion, eos_ids=eos, keep_template_suffix=True)
            out.append((len(e.prompt), len(e.completion)))
    return out


def bastion_trainer(
    model: Any,
    tokenizer: Any,
    pairs: list[Any],
    batch: int,
    out: Path,
    checkpointing: bool = False,
) -> Any:
    from bastion.align.preference import PreferenceConfig, PreferenceTrainer
    from bastion.align.train import TrainConfig

    return PreferenceTrainer(
        model,
        tokenizer,
        pairs,
        # TRL scores the template's text after the end-of-turn token; so does Bastion here.
        PreferenceConfig(
            loss=LOSS,
            beta=BETA,
            keep_template_suffix=True,
            max_length=longest(model, tokenizer, pairs),
            cache_reference=False,
        ),
        TrainConfig(
            output_dir=out,
            batch_size=batch,
            lr=LR,
            seed=SEED,
            gradient_checkpointing=checkpointing,
        ),
    )


def child_loss(variant: str, model_name: str, n_pairs: int, batch: int, out: Path) -> None:
    """The loss each library computes on the same first batch, policy ≠ reference."""
    pairs = data(n_pairs)[:batch]
    model, tokenizer = build(model_name)
    with torch.no_grad():
        if variant.startswith("bastion"):
            trainer = bastion_trainer(model, tokenizer, pairs, batch, out / "loss")  # ref = base
            perturb(model)
            loss, _ = trainer.step(model, range(batch))
        else:
            reference = copy.deepcopy(model).eval()
            perturb(model)
            trainer = trl_trainer(model, tokenizer, pairs, batch, out / "loss", False, reference)
            collated = trainer.data_collator([trainer.train_dataset[i] for i in range(batch)])
            loss = trainer.compute_loss(trainer.model, collated)
    print(json.dumps({"first_batch_loss": float(loss)}))


def child_train(variant: str, model_name: str, n_pairs: int, batch: int, out: Path) -> None:
    """One epoch of training, timed from the trainer's construction (reference included)."""
    pairs = data(n_pairs)
    model, tokenizer = build(model_name)
    start = time.perf_counter()
    checkpointing = variant.endswith("-gc")
    if variant.startswith("bastion"):
        trainer = bastion_trainer(model, tokenizer, pairs, batch, out / variant, checkpointing)
        trainer.fit(progress=False)
    else:
        precompute = variant.startswith("trl-precompute")
        trl_trainer(model, tokenizer, pairs, batch, out, precompute, None, checkpointing).train()
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    print(json.dumps({"seconds": seconds, "peak_rss_gib": peak}))


def trl_trainer(
    model: Any,
    tokenizer: Any,
    pairs: list[Any],
    batch: int,
    out: Path,
    precompute: bool,
    ref_model: Any = None,
    checkpointing: bool = False,
) -> Any:
    """TRL's DPOTrainer. Without precomputation TRL keeps a frozen reference copy; it would
    load it from the model's path, which an in-code model lacks, so the copy is made here."""
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer, KTOConfig, KTOTrainer

    config, trainer = (KTOConfig, KTOTrainer) if LOSS == "kto" else (DPOConfig, DPOTrainer)
    args = config(
        output_dir=str(out / "trl"),
        per_device_train_batch_size=batch,
        learning_rate=LR,
        num_train_epochs=1,
        beta=BETA,
        seed=SEED,
        precompute_ref_log_probs=precompute,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=not torch.cuda.is_available(),
        disable_tqdm=True,
        lr_scheduler_type="linear",
        warmup_steps=0,
        max_grad_norm=1.0,
        max_length=longest(model, tokenizer, pairs),
        bf16=False,  # TRL's default turns on bf16 autocast, even on a CPU without bf16 units
        gradient_checkpointing=checkpointing,
    )
    if ref_model is None and not precompute:
        ref_model = copy.deepcopy(model).eval()
    return trainer(
        model=model,
        ref_model=ref_model,
        args=args,
        train_dataset=Dataset.from_list(rows(pairs)),
        processing_class=tokenizer,
    )


def count_tokens(model_name: str, n_pairs: int) -> int:
    model, tokenizer = build(model_name)
    return sum(p + c for p, c in sequence_lengths(model, tokenizer, data(n_pairs)))


def run_child(kind: str, variant: str, model_name: str, args: argparse.Namespace) -> dict[str, Any]:
    """One child process (its peak RSS is its own); its last stdout line is JSON."""
    proc = subprocess.run(
        [
            sys.executable,
            __file__,
            f"--{kind}",
            variant,
            "--model",
            model_name,
            "--pairs",
            str(args.pairs),
            "--batch-size",
            str(args.batch_size),
            "--loss",
            LOSS,
            "--out",
            str(args.out),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        print(f"{model_name} {variant} {kind}: failed:\n{proc.stderr[-3000:]}", flush=True)
        return {"error": proc.stderr.strip().splitlines()[-1:]}
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["tiny", "smollm2"])
    parser.add_argument("--pairs", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--loss", choices=("dpo", "kto"), default="dpo")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    parser.add_argument("--out", type=Path, help="JSON out; default per loss")
    parser.add_argument("--append", action="store_true", help="add to an existing --out file")
    parser.add_argument("--child-loss", help=argparse.SUPPRESS)
    parser.add_argument("--child-train", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args = parser.parse_args()
    global LOSS
    LOSS = args.loss
    args.out = args.out or Path(f"benchmarks/results/align_vs_trl_{LOSS}.json")
    work = args.out.parent / "align_vs_trl_work"
    if args.child_loss:
        child_loss(args.child_loss, args.model, args.pairs, args.batch_size, work / args.model)
        return
    if args.child_train:
        child_train(args.child_train, args.model, args.pairs, args.batch_size, work / args.model)
        return
    report: dict[str, Any] = {
        "benchmark": "align_vs_trl",
        "pairs": args.pairs,
        "batch_size": args.batch_size,
        "loss": args.loss,
        "dtype": "fp32",
        "torch_threads": torch.get_num_threads(),
        "models": {},
    }
    if args.append and args.out.is_file():
        report = json.loads(args.out.read_text())
    for model_name in args.models:
        tokens = count_tokens(model_name, args.pairs)
        results: dict[str, Any] = report["models"].get(model_name, {})
        results["training_tokens"] = tokens
        for variant in args.variants:
            row = {
                **run_child("child-loss", variant, model_name, args),
                **run_child("child-train", variant, model_name, args),
            }
            results[variant] = row
            if "seconds" not in row or "first_batch_loss" not in row:
                continue
            row["tok_per_s"] = tokens / row["seconds"]
            print(
                f"{model_name:8} {variant:15} {row['tok_per_s']:8.1f} tok/s  "
                f"peak {row['peak_rss_gib']:.2f} GiB  first-batch loss "
                f"{row['first_batch_loss']:.6f}",
                flush=True,
            )
        for mine, peer in RATIOS:
            ours, theirs = results.get(mine, {}), results.get(peer, {})
            if "tok_per_s" in ours and "tok_per_s" in theirs:
                results[f"speed_vs_{peer}"] = ours["tok_per_s"] / theirs["tok_per_s"]
                results[f"memory_vs_{peer}"] = ours["peak_rss_gib"] / theirs["peak_rss_gib"]
                results[f"loss_diff_vs_{peer}"] = abs(
                    ours["first_batch_loss"] - theirs["first_batch_loss"]
                )
                print(
                    f"{model_name:8} {mine} vs {peer:18} speed x{results[f'speed_vs_{peer}']:.2f}"
                    f"  memory x{results[f'memory_vs_{peer}']:.2f}  first-batch loss diff "
                    f"{results[f'loss_diff_vs_{peer}']:.2e}",
                    flush=True,
                )
        report["models"][model_name] = results
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
