"""TRL's experimental PPO trainer, timed per iteration: the TRL side of ``ppo_step.py``.

Runs in its own environment, because ``trl.experimental.ppo`` exists only up to TRL 1.12.0::

    python3 -m venv .venv-trlppo
    .venv-trlppo/bin/python -m pip install torch==2.13.0      # first, so the CPU build is kept
    .venv-trlppo/bin/python -m pip install trl==1.12.0 peft datasets accelerate transformers
    .venv-trlppo/bin/python benchmarks/trl_ppo_peer.py --model-dir DIR --out FILE.json \\
        [--iterations 3] [--batch-size 8] [--mini-batch-size 4] [--ppo-epochs 2] \\
        [--max-new-tokens 48] [--temperature 0.7] [--lora-r 16] [--seed 0] [--prompts FILE.jsonl] \\
        [--learning-rate 3e-6] [--threads N]

Everything is loaded from the local model folder ``DIR`` (no hub): the policy is
``AutoModelForCausalLM`` with a LoRA adapter (r, alpha 2r, dropout 0, q/k/v/o projections) passed
to TRL as ``peft_config``, so TRL's reference policy is the same model with the adapter disabled.
The reward model and the value model are two ``AutoModelForSequenceClassification(num_labels=1)``
copies of ``DIR`` with seeded, freshly initialized score heads. fp32 on the CPU.

Batch mapping (TRL 1.12 derives ``local_batch_size = per_device_train_batch_size *
gradient_accumulation_steps``, ``local_mini_batch_size = local_batch_size / num_mini_batches`` and
runs micro batches of ``per_device_train_batch_size`` inside each mini batch, stepping the optimizer
every ``gradient_accumulation_steps`` micro batches): ``per_device_train_batch_size = batch-size``,
``gradient_accumulation_steps = 1``, ``num_mini_batches = batch-size / mini-batch-size``. Each PPO
iteration thus generates ``batch-size`` rollouts (in one ``generate`` call:
``local_rollout_forward_batch_size = batch-size``) and runs ``ppo-epochs`` epochs of
``batch-size / mini-batch-size`` mini batches, one forward/backward/optimizer step per mini batch.

How each phase is measured. ``PPOTrainer.train`` is one method, so nothing of it is copied here;
instead the module-level helpers it calls are wrapped for the duration of ``train()`` and the
phases are derived from ``time.perf_counter`` timestamps:

* iteration: from the previous iteration's ``on_step_end`` callback (for the first one,
  ``on_train_begin``) to its own ``on_step_end``, which TRL fires after the metrics are logged and
  the learning-rate scheduler has stepped. The garbage collection TRL runs after ``on_step_end``
  therefore lands in the next iteration (and, for the last one, in no iteration).
* generation: the time spent inside ``trl.experimental.ppo.ppo_trainer.batch_generation`` (the
  sampling ``generate`` call, which also returns the policy's logits used as rollout log-probs).
* update: from the first ``accelerator.accumulate`` of the iteration (entered right before the first
  mini-batch forward) to the end of the iteration: all PPO epochs of mini-batch forward, loss,
  ``accelerator.backward`` and ``optimizer.step``, plus TRL's metric gathering and scheduler step.
* scoring: the rest of the iteration (``total - generation - update``): the reference forward
  (policy with the adapter disabled), the value-model and reward-model forwards (both through
  ``get_reward``), the EOS penalty, KL rewards, GAE advantages and whitening, and the dataloader.

The sub-phase ``detail`` of each iteration adds the time inside the reference ``forward``, each
``get_reward`` (value model vs reward model), the training ``forward`` (policy + value), the
backward and the optimizer steps. ``response_tokens`` counts each rollout's tokens up to and
including its first EOS (all ``max-new-tokens`` when there is none); ``generated_width`` is the
generated tensor's width (``generate`` stops when every row has finished).

Workaround: SmolLM2's tokenizer uses ``<|im_end|>`` as both EOS and pad token, but TRL's PPO
treats every pad-id position as padding (attention mask off, replaced by id 0), which would mask out
the turn-ending ``<|im_end|>`` tokens inside the chat prompts and cut every response before its EOS.
The pad token is therefore set to the tokenizer's ``<|endoftext|>`` (id 0, which is what TRL
substitutes for pad positions anyway) whenever pad equals EOS, with left padding for the prompts.

The script prints no prompt or response text; the JSON has timings, counts, settings and TRL's
own logged metrics (``objective/kl``, ``objective/scores``, ``policy/clipfrac_avg``, ...).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

DEFAULT_PROMPTS: tuple[str, ...] = (
    "How do I bake bread?",
    "What is a good way to start running?",
    "Can you explain how photosynthesis works?",
    "Suggest a name for a friendly cat.",
    "How do I keep houseplants alive?",
    "What are some tips for a job interview?",
    "Write a short poem about the sea.",
    "How does a rainbow form?",
    "What should I pack for a weekend hike?",
    "Give me a simple recipe for pancakes.",
    "How can I improve my handwriting?",
    "Why is the sky blue?",
    "What is a healthy breakfast idea?",
    "How do I make my bed neatly?",
    "Explain what a noun is to a child.",
    "What are fun things to do on a rainy day?",
)

PHASES = ("generation_s", "scoring_s", "update_s", "total_s", "response_tokens")


@dataclass
class Iteration:
    """Raw timestamps and counters of one PPO iteration (``perf_counter`` seconds)."""

    start: float
    end: float = math.nan
    update_start: float = math.nan
    generation_s: float = 0.0
    response_tokens: int = 0
    generated_width: int = 0
    rollouts: int = 0
    detail: dict[str, float] = field(
        default_factory=lambda: {
            "ref_forward_s": 0.0,
            "value_forward_s": 0.0,
            "reward_forward_s": 0.0,
            "train_forward_s": 0.0,
            "backward_s": 0.0,
            "optimizer_step_s": 0.0,
            "micro_batches": 0,
            "optimizer_steps": 0,
        }
    )

    def summary(self) -> dict[str, Any]:
        total = self.end - self.start
        update = self.end - self.update_start
        return {
            "generation_s": round(self.generation_s, 4),
            "scoring_s": round(total - self.generation_s - update, 4),
            "update_s": round(update, 4),
            "total_s": round(total, 4),
            "response_tokens": self.response_tokens,
            "generated_width": self.generated_width,
            "rollouts": self.rollouts,
            "detail": {k: round(v, 4) for k, v in self.detail.items()},
        }


class PhaseClock:
    """Collects per-iteration timestamps from wrapped TRL helpers and trainer callbacks."""

    def __init__(self, eos_token_id: int) -> None:
        self.eos_token_id = eos_token_id
        self.iterations: list[Iteration] = []
        self.metrics: list[dict[str, float]] = []

    @property
    def current(self) -> Iteration:
        return self.iterations[-1]

    def begin(self) -> None:
        self.iterations.append(Iteration(start=time.perf_counter()))

    def end(self) -> None:
        now = time.perf_counter()
        self.current.end = now
        if math.isnan(self.current.update_start):  # no mini batch ran: all of it is pre-update
            self.current.update_start = now
        self.iterations.append(Iteration(start=now))

    def add(self, key: str, seconds: float, count: str | None = None) -> None:
        self.current.detail[key] += seconds
        if count is not None:
            self.current.detail[count] += 1

    def finished(self) -> list[Iteration]:
        """The completed iterations (the last opened one never ended)."""
        return [it for it in self.iterations if not math.isnan(it.end)]

    def count_responses(self, queries: Any, query_responses: Any) -> None:
        import torch

        responses = query_responses[:, queries.shape[1] :]
        width = responses.shape[1]
        is_eos = responses == self.eos_token_id
        first = torch.where(is_eos.any(dim=1), is_eos.int().argmax(dim=1) + 1, width)
        self.current.response_tokens += int(first.sum())
        self.current.generated_width = max(self.current.generated_width, width)
        self.current.rollouts += responses.shape[0]


def timed(fn: Callable[..., Any], record: Callable[[float, tuple[Any, ...]], None]) -> Any:
    """``fn`` wrapped so that each call's wall time is passed to ``record`` with its arguments."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            record(time.perf_counter() - started, args)

    return wrapper


@contextmanager
def instrumented(trainer: Any, clock: PhaseClock) -> Iterator[None]:
    """Wrap the helpers ``PPOTrainer.train`` calls with timers; restore them afterwards."""
    from trl.experimental.ppo import ppo_trainer as module

    originals = {
        name: getattr(module, name) for name in ("batch_generation", "get_reward", "forward")
    }
    accelerator, optimizer = trainer.accelerator, trainer.optimizer
    wrapper_model = trainer.model  # PolicyAndValueWrapper: the training forward's model
    reward_model = trainer.reward_model

    def generation(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        out = originals["batch_generation"](*args, **kwargs)
        clock.current.generation_s += time.perf_counter() - started
        queries = kwargs.get("queries", args[1] if len(args) > 1 else None)
        clock.count_responses(queries, out[0])
        return out

    def on_reward(seconds: float, args: tuple[Any, ...]) -> None:
        key = "reward_forward_s" if args[0] is reward_model else "value_forward_s"
        clock.add(key, seconds)

    def on_forward(seconds: float, args: tuple[Any, ...]) -> None:
        key = "train_forward_s" if args[0] is wrapper_model else "ref_forward_s"
        clock.add(key, seconds)

    real_accumulate = accelerator.accumulate

    @contextmanager
    def accumulate(*models: Any) -> Iterator[None]:
        if math.isnan(clock.current.update_start):
            clock.current.update_start = time.perf_counter()
        clock.current.detail["micro_batches"] += 1
        with real_accumulate(*models):
            yield

    real_step = optimizer.step

    def step(*args: Any, **kwargs: Any) -> Any:
        if accelerator.sync_gradients:
            clock.current.detail["optimizer_steps"] += 1
        started = time.perf_counter()
        try:
            return real_step(*args, **kwargs)
        finally:
            clock.add("optimizer_step_s", time.perf_counter() - started)

    module.batch_generation = generation
    module.get_reward = timed(originals["get_reward"], on_reward)
    module.forward = timed(originals["forward"], on_forward)
    accelerator.backward = timed(accelerator.backward, lambda s, _: clock.add("backward_s", s))
    accelerator.accumulate = accumulate
    optimizer.step = step
    try:
        yield
    finally:
        for name, fn in originals.items():
            setattr(module, name, fn)
        for obj, name in (
            (accelerator, "backward"),
            (accelerator, "accumulate"),
            (optimizer, "step"),
        ):
            vars(obj).pop(name, None)


def clock_callback(clock: PhaseClock) -> Any:
    """A ``TrainerCallback`` marking iteration boundaries and keeping TRL's logged metrics."""
    from transformers import TrainerCallback

    class Clock(TrainerCallback):
        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            clock.begin()

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            clock.end()

        def on_log(
            self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any
        ) -> None:
            if logs:  # non-finite values (e.g. a variance over one mini batch) become null
                clock.metrics.append(
                    {
                        k: v if math.isfinite(v) else None
                        for k, v in logs.items()
                        if isinstance(v, int | float)
                    }
                )

    return Clock()


def read_prompts(path: Path | None) -> list[str]:
    if path is None:
        return list(DEFAULT_PROMPTS)
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [str(row["prompt"]) for row in rows]


def prompt_dataset(tokenizer: Any, prompts: list[str]) -> Any:
    """Chat-rendered prompts as a ``datasets.Dataset`` with the ``input_ids`` TRL's PPO expects."""
    from datasets import Dataset

    ids = []
    for prompt in prompts:
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )
        ids.append(tokenizer(text, add_special_tokens=False)["input_ids"])
    return Dataset.from_dict({"input_ids": ids})


def mean_after_warmup(rows: list[dict[str, Any]]) -> dict[str, float] | None:
    later = rows[1:]
    if not later:
        return None
    return {key: round(statistics.fmean(row[key] for row in later), 4) for key in PHASES}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, required=True, help="local HF model folder")
    parser.add_argument("--out", type=Path, required=True, help="JSON results file")
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8, help="rollouts per PPO iteration")
    parser.add_argument("--mini-batch-size", type=int, default=4)
    parser.add_argument("--ppo-epochs", type=int, default=2)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--lora-r", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=3e-6, help="TRL's PPO default")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--prompts", type=Path, help='JSONL rows with a "prompt" field')
    parser.add_argument(
        "--bf16", action="store_true", help="bf16 mixed precision (PPOConfig(bf16=True))"
    )
    args = parser.parse_args()
    if args.batch_size % args.mini_batch_size:
        parser.error("--batch-size must be a multiple of --mini-batch-size")
    return args


def main() -> None:
    args = parse_args()
    import torch
    from peft import LoraConfig
    from transformers import (
        AutoModelForCausalLM,
        AutoModelForSequenceClassification,
        AutoTokenizer,
        set_seed,
    )
    from trl.experimental.ppo import PPOConfig, PPOTrainer

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    model_dir = str(args.model_dir)
    set_seed(args.seed)
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    tokenizer.padding_side = "left"
    pad_replaced = tokenizer.pad_token is None or tokenizer.pad_token_id == tokenizer.eos_token_id
    if pad_replaced:  # see the module docstring: TRL's PPO needs a pad id distinct from EOS
        tokenizer.pad_token = tokenizer.unk_token or "<|endoftext|>"
    if tokenizer.pad_token_id == tokenizer.eos_token_id:
        raise SystemExit("no pad token distinct from EOS in this tokenizer")

    prompts = read_prompts(args.prompts)
    if len(prompts) < args.batch_size:  # TRL's dataloader drops the last ragged batch
        raise SystemExit(
            f"need at least --batch-size={args.batch_size} prompts, got {len(prompts)}"
        )
    dataset = prompt_dataset(tokenizer, prompts)

    load = {"local_files_only": True, "dtype": torch.float32}
    policy = AutoModelForCausalLM.from_pretrained(model_dir, **load)
    reward_model = AutoModelForSequenceClassification.from_pretrained(
        model_dir, num_labels=1, **load
    )
    value_model = AutoModelForSequenceClassification.from_pretrained(
        model_dir, num_labels=1, **load
    )
    peft_config = LoraConfig(
        r=args.lora_r,
        lora_alpha=2 * args.lora_r,
        lora_dropout=0.0,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
        task_type="CAUSAL_LM",
    )

    with tempfile.TemporaryDirectory(prefix="trl-ppo-") as output_dir:
        config = PPOConfig(
            output_dir=output_dir,
            per_device_train_batch_size=args.batch_size,
            gradient_accumulation_steps=1,
            num_mini_batches=args.batch_size // args.mini_batch_size,
            local_rollout_forward_batch_size=args.batch_size,
            total_episodes=args.iterations * args.batch_size,
            num_ppo_epochs=args.ppo_epochs,
            response_length=args.max_new_tokens,
            temperature=args.temperature,
            kl_coef=0.05,
            missing_eos_penalty=1.0,
            stop_token="eos",
            learning_rate=args.learning_rate,
            num_sample_generations=0,
            eval_strategy="no",
            save_strategy="no",
            logging_strategy="steps",
            logging_steps=1,
            report_to="none",
            disable_tqdm=True,
            bf16=args.bf16,
            fp16=False,
            use_cpu=True,
            gradient_checkpointing=False,
            seed=args.seed,
            sft_model_path=model_dir,
            reward_model_path=model_dir,
        )
        trainer = PPOTrainer(
            args=config,
            processing_class=tokenizer,
            model=policy,
            ref_model=None,
            reward_model=reward_model,
            train_dataset=dataset,
            value_model=value_model,
            peft_config=peft_config,
        )
        clock = PhaseClock(eos_token_id=tokenizer.eos_token_id)
        trainer.add_callback(clock_callback(clock))
        with instrumented(trainer, clock):
            trainer.train()

    rows = [it.summary() for it in clock.finished()]
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    result = {
        "library": "trl",
        "version": version("trl"),
        "versions": {
            name: version(name) for name in ("torch", "transformers", "peft", "accelerate")
        },
        "settings": {
            "model_dir": model_dir,
            "iterations": args.iterations,
            "batch_size": args.batch_size,
            "mini_batch_size": args.mini_batch_size,
            "ppo_epochs": args.ppo_epochs,
            "max_new_tokens": args.max_new_tokens,
            "temperature": args.temperature,
            "lora_r": args.lora_r,
            "lora_alpha": 2 * args.lora_r,
            "learning_rate": args.learning_rate,
            "seed": args.seed,
            "prompts": len(prompts),
            "prompts_file": str(args.prompts) if args.prompts else None,
            "kl_coef": config.kl_coef,
            "missing_eos_penalty": config.missing_eos_penalty,
            "dtype": "float32",
            "mixed_precision": "bf16" if args.bf16 else "no",
            "device": str(trainer.accelerator.device),
            "torch_threads": torch.get_num_threads(),
            "pad_token_replaced": pad_replaced,
            "trainable_params": trainable,
            "trl_derived": {
                key: getattr(config, key)
                for key in (
                    "per_device_train_batch_size",
                    "gradient_accumulation_steps",
                    "num_mini_batches",
                    "local_batch_size",
                    "local_mini_batch_size",
                    "num_total_batches",
                    "local_rollout_forward_batch_size",
                )
            },
        },
        "iterations": rows,
        "warmup": rows[0] if rows else None,
        "mean_after_warmup": mean_after_warmup(rows),
        "total_response_tokens": sum(row["response_tokens"] for row in rows),
        "metrics": clock.metrics,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({"iterations": len(rows), "mean_after_warmup": result["mean_after_warmup"]}))


if __name__ == "__main__":
    main()
