"""Generation throughput: Bastion's HFChatModel beside a plain ``model.generate`` loop.

Same packaged model (SmolLM2-135M-Instruct, fp32), same prompts, same batch size, greedy, same
``max_new_tokens``, one process, measured in the same run. Throughput is generated tokens per
second, where generated tokens are counted the same way for both (the replies re-tokenized).
Also printed: two ceilings for this CPU, measured in the same run — the compute-bound rate
(measured fp32 matmul FLOP/s over ~2 FLOPs per parameter per token) and, at batch 1, the
memory-bound rate (measured copy bandwidth over the bytes of weights read per token) — and
variants of the plain loop that isolate what helps (length sorting, a static KV cache).

    python benchmarks/generate.py [--batches 1 8 32] [--max-new-tokens 64] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from functools import partial
from pathlib import Path
from typing import Any

import torch

from bastion.data.registry import load_corpus
from bastion.models import load
from bastion.models.hf import HFChatModel
from bastion.redteam.smoke import pick


def prompts_for(count: int) -> list[str]:
    """Benign prompts of varied length, the same on every machine."""
    pool = load_corpus("rho-overrefusal") + load_corpus("langkit-chats")
    return [item.text for item in pick(pool, count, salt="bench-generate")]


def plain_loop(
    chat: HFChatModel, prompts: list[str], batch: int, max_new: int, **extra: Any
) -> list[str]:
    """What a user writes with transformers alone: chat template, left padding, generate."""
    tok, model = chat.tokenizer, chat.model
    tok.padding_side = "left"
    texts = [
        tok.apply_chat_template(
            [{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True
        )
        for p in prompts
    ]
    replies = []
    for start in range(0, len(texts), batch):
        enc = tok(
            texts[start : start + batch],
            return_tensors="pt",
            padding=True,
            add_special_tokens=False,
        )
        with torch.inference_mode():
            out = model.generate(
                **enc,
                max_new_tokens=max_new,
                do_sample=False,
                pad_token_id=tok.pad_token_id,
                **extra,
            )
        replies += tok.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
    return replies


def count_tokens(chat: HFChatModel, replies: list[str]) -> int:
    # +1 per reply for its end-of-turn token (or the last cut-off token), for both sides alike
    return sum(len(chat.tokenizer(r, add_special_tokens=False)["input_ids"]) + 1 for r in replies)


def timed(fn: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def matmul_flops() -> float:
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    for _ in range(3):
        a @ b
    runs, start = 20, time.perf_counter()
    for _ in range(runs):
        a @ b
    return 2 * 1024**3 * runs / (time.perf_counter() - start)


def copy_bandwidth() -> float:
    src = torch.empty(64 * 2**20 // 4)
    dst = torch.empty_like(src)
    dst.copy_(src)
    runs, start = 10, time.perf_counter()
    for _ in range(runs):
        dst.copy_(src)
    return 2 * src.numel() * 4 * runs / (time.perf_counter() - start)  # read + write


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3, help="best of N runs per variant")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/generate.json"))
    args = parser.parse_args()

    chat = load("smollm2-135m-instruct")
    params = sum(p.numel() for p in chat.model.parameters())
    flops, bandwidth = matmul_flops(), copy_bandwidth()
    chat.generate(prompts_for(4), max_new_tokens=8)  # warm-up: first calls pay one-off costs
    rows = []
    for batch in args.batches:
        prompts = prompts_for(4 if batch == 1 else max(2 * batch, 16) if batch < 32 else batch)
        chat.batch_size = batch
        new = args.max_new_tokens
        runs = {
            "bastion": partial(chat.generate, prompts, max_new_tokens=new),
            "plain": partial(plain_loop, chat, prompts, batch, new),
        }
        if 1 < batch < len(prompts):  # several batches: does grouping by length help?
            ordered = sorted(prompts, key=lambda p: len(chat.prompt_ids(p)), reverse=True)
            runs["plain+sorted"] = partial(plain_loop, chat, ordered, batch, new)
        if batch == 8:
            runs["plain+static-cache"] = partial(
                plain_loop, chat, prompts, batch, new, cache_implementation="static"
            )
        row: dict[str, Any] = {"batch": batch, "prompts": len(prompts)}
        best: dict[str, tuple[float, list[str]]] = {}
        for _ in range(args.repeats):  # interleaved, so drift in machine load hits all alike
            for name, fn in runs.items():
                seconds, replies = timed(fn)
                if name not in best or seconds < best[name][0]:
                    best[name] = (seconds, replies)
        for name, (seconds, replies) in best.items():
            tokens = count_tokens(chat, replies)
            row[name] = {
                "seconds": round(seconds, 2),
                "tokens": tokens,
                "tok_per_s": round(tokens / seconds, 1),
            }
        row["bastion_vs_plain"] = round(row["bastion"]["tok_per_s"] / row["plain"]["tok_per_s"], 3)
        row["compute_bound_tok_per_s"] = round(flops / (2 * params), 1)
        if batch == 1:
            row["memory_bound_tok_per_s"] = round(bandwidth / (4 * params), 1)
        rows.append(row)
        print_row(row)

    report = {
        "benchmark": "generate",
        "model": "smollm2-135m-instruct (fp32)",
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "threads": torch.get_num_threads(),
            "matmul_gflops": round(flops / 1e9, 1),
            "copy_gb_per_s": round(bandwidth / 1e9, 1),
        },
        "max_new_tokens": args.max_new_tokens,
        "repeats": args.repeats,
        "parameters": params,
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"machine: {report['machine']}\nwrote {args.out}")


def print_row(row: dict[str, Any]) -> None:
    names = [k for k in row if isinstance(row[k], dict)]
    cells = "  ".join(f"{n} {row[n]['tok_per_s']:>6} tok/s" for n in names)
    bound = f"compute-bound {row['compute_bound_tok_per_s']}"
    if "memory_bound_tok_per_s" in row:
        bound += f", memory-bound {row['memory_bound_tok_per_s']}"
    print(
        f"batch {row['batch']:>2}: {cells}  ratio bastion/plain {row['bastion_vs_plain']:.3f}"
        f"  ({bound} tok/s)",
        flush=True,
    )


if __name__ == "__main__":
    main()
