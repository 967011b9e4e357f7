"""DPO training: Bastion's PreferenceTrainer beside TRL's DPOTrainer, same model, data, machine.

Each variant runs in its own child process (so peak RSS is its own), on the same pairs (safety
pairs from the pinned corpora), batch size, epoch, learning rate and fp32, one after another in
one run of this script:

* ``bastion``: full fine-tuning, reference log-probs precomputed once (no reference copy);
* ``trl``: TRL's defaults (a frozen reference copy in memory);
* ``trl-precompute``: TRL with ``precompute_ref_log_probs=True``.

Reported: training tokens/s (prompt + chosen + rejected tokens of every pair, counted once with
the same tokenizer, over the whole ``train()`` including reference precomputation), peak RSS,
and the DPO loss on the first batch computed by each library for a policy that differs from
its reference (LoRA adapters with seeded random weights, so the loss is not trivially log 2).

TRL is needed only here: ``make bench-align`` installs it into ``.venv-bench``.

    python benchmarks/align_vs_trl.py [--models tiny smollm2] [--pairs 64] [--batch-size 4]
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
BETA, LR, SEED = 0.1, 1e-6, 0
MAX_LENGTH = 2048  # long enough that neither library truncates these pairs


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


def data(pairs: int) -> list[Any]:
    from bastion.align.safety_pairs import safety_pairs

    return safety_pairs(pairs // 2, pairs - pairs // 2)


def rows(pairs: list[Any]) -> list[dict[str, Any]]:
    return [
        {
            "prompt": p.prompt.to_dicts(),
            "chosen": p.chosen.to_dicts(),
            "rejected": p.rejected.to_dicts(),
        }
        for p in pairs
    ]


def perturbed_lora(model: Any) -> Any:
    """The same seeded non-zero LoRA adapters for both libraries: policy ≠ reference."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(123)
    return get_peft_model(
        model,
        LoraConfig(
            r=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False, task_type="CAUSAL_LM"
        ),
    )


def child(variant: str, model_name: str, n_pairs: int, batch: int, out: Path) -> None:
    pairs = data(n_pairs)
    first_loss = first_batch_loss(variant, model_name, pairs[:batch], out)
    model, tokenizer = build(model_name)
    start = time.perf_counter()
    if variant == "bastion":
        from bastion.align.preference import PreferenceConfig, PreferenceTrainer
        from bastion.align.train import TrainConfig

        config = TrainConfig(output_dir=out / "bastion", batch_size=batch, lr=LR, seed=SEED)
        trainer = PreferenceTrainer(
            model,
            tokenizer,
            pairs,
            PreferenceConfig(beta=BETA, keep_template_suffix=True, max_length=MAX_LENGTH),
            config,
        )
        trainer.fit(progress=False)
    else:
        trainer = trl_trainer(model, tokenizer, pairs, batch, out, variant == "trl-precompute")
        trainer.train()
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    print(
        json.dumps(
            {
                "variant": variant,
                "seconds": seconds,
                "peak_rss_gib": peak,
                "first_batch_loss": first_loss,
            }
        )
    )


def trl_trainer(
    model: Any,
    tokenizer: Any,
    pairs: list[Any],
    batch: int,
    out: Path,
    precompute: bool,
    ref_model: Any = None,
) -> Any:
    """TRL's DPOTrainer. Without precomputation TRL keeps a frozen reference copy; it would
    load it from the model's path, which an in-code model lacks, so the copy is made here."""
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    args = DPOConfig(
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
        max_length=MAX_LENGTH,
    )
    if ref_model is None and not precompute:
        ref_model = copy.deepcopy(model).eval()
    return DPOTrainer(
        model=model,
        ref_model=ref_model,
        args=args,
        train_dataset=Dataset.from_list(rows(pairs)),
        processing_class=tokenizer,
    )


def first_batch_loss(variant: str, model_name: str, pairs: list[Any], out: Path) -> float:
    model, tokenizer = build(model_name)
    model = perturbed_lora(model)
    with torch.no_grad():
        if variant == "bastion":
            from bastion.align.preference import PreferenceConfig, PreferenceTrainer
            from bastion.align.train import TrainConfig

            trainer = PreferenceTrainer(
                model,
                tokenizer,
                pairs,
                PreferenceConfig(beta=BETA, keep_template_suffix=True, max_length=MAX_LENGTH),
                TrainConfig(output_dir=out / "loss", batch_size=len(pairs)),
            )
            loss, _ = trainer.step(model, range(len(pairs)))
            return float(loss)
        # the reference is the base model, as Bastion's adapters-off reference is
        base, _ = build(model_name)
        trainer = trl_trainer(
            model, tokenizer, pairs, len(pairs), out / "loss", False, ref_model=base.eval()
        )
        batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(pairs))])
        return float(trainer.compute_loss(trainer.model, batch))


def count_tokens(model_name: str, n_pairs: int) -> int:
    from bastion.align.logprobs import encode
    from bastion.models.hf import end_of_turn_ids

    model, tokenizer = build(model_name)
    eos = end_of_turn_ids(model, tokenizer)
    total = 0
    for pair in data(n_pairs):
        c = encode(tokenizer, pair.prompt, pair.chosen, eos_ids=eos, keep_template_suffix=True)
        r = encode(tokenizer, pair.prompt, pair.rejected, eos_ids=eos, keep_template_suffix=True)
        total += len(c.prompt) + len(c.completion) + len(r.prompt) + len(r.completion)
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["tiny", "smollm2"])
    parser.add_argument("--pairs", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/align_vs_trl.json"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args = parser.parse_args()
    work = args.out.parent / "align_vs_trl_work"
    if args.child:
        child(args.child, args.model, args.pairs, args.batch_size, work / args.model)
        return
    report: dict[str, Any] = {
        "benchmark": "align_vs_trl",
        "pairs": args.pairs,
        "batch_size": args.batch_size,
        "dtype": "fp32",
        "models": {},
    }
    for model_name in args.models:
        tokens = count_tokens(model_name, args.pairs)
        results: dict[str, Any] = {"training_tokens": tokens}
        for variant in args.variants:
            proc = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    variant,
                    "--model",
                    model_name,
                    "--pairs",
                    str(args.pairs),
                    "--batch-size",
                    str(args.batch_size),
                    "--out",
                    str(args.out),
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            if proc.returncode != 0:
                results[variant] = {"error": proc.stderr.strip().splitlines()[-1:]}
                print(f"{model_name} {variant}: failed: {proc.stderr[-2000:]}", flush=True)
                continue
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            row["tok_per_s"] = tokens / row["seconds"]
            results[variant] = row
            print(
                f"{model_name:8} {variant:15} {row['tok_per_s']:8.1f} tok/s  "
                f"peak {row['peak_rss_gib']:.2f} GiB  first-batch loss "
                f"{row['first_batch_loss']:.6f}",
                flush=True,
            )
        ours = results.get("bastion", {})
        for peer in ("trl", "trl-precompute"):
            theirs = results.get(peer, {})
            if "tok_per_s" in ours and "tok_per_s" in theirs:
                results[f"speed_vs_{peer}"] = ours["tok_per_s"] / theirs["tok_per_s"]
                results[f"memory_vs_{peer}"] = ours["peak_rss_gib"] / theirs["peak_rss_gib"]
                results[f"loss_diff_vs_{peer}"] = abs(
                    ours["first_batch_loss"] - theirs["first_batch_loss"]
                )
                print(
                    f"{model_name:8} bastion vs {peer:15} speed x{results[f'speed_vs_{peer}']:.2f}"
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
