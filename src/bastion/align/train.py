"""The one training loop every trainer shares: short, readable, resumable.

A trainer supplies examples and a ``step(model, examples) -> (loss, metrics)`` function; this
loop does the rest over ``accelerate``: one process on CPU or GPU, or several under ``torchrun``
(DDP, gloo on CPU); gradient accumulation (the update equals the big batch's); AdamW with linear
warm-up and decay; gradient clipping; checkpoints of model, optimizer, scheduler, RNG and data
position, from which a killed run resumes to the same result; a stop with the step and batch
named when the loss is not finite; metrics to JSONL (and TensorBoard when installed); a Rich
progress bar with the live loss.
"""

from __future__ import annotations

import abc
import json
import math
import random
import shutil
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import torch
from torch import Tensor

from bastion.align.precision import released, resolve_precision
from bastion.align.progress import MetricsLog, jsonable_config, mean_over_processes, progress_bar
from bastion.errors import BastionError
from bastion.models.packing import base_model, can_pack, packed_attention_on

T = TypeVar("T")
Step = Callable[[Any, Sequence[T]], tuple[Tensor, dict[str, float]]]


def shutdown_distributed() -> None:
    """Wait for every process, then tear the process group down (under torchrun). Without it
    gloo's threads can still be alive when the interpreter exits, and a rank aborts
    ("terminate called without an active exception") after its work is done."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


class TrainingError(BastionError):
    """Training cannot go on (a non-finite loss, a checkpoint that does not match)."""


@dataclass
class TrainConfig:
    """How to train; every trainer's recipe has these keys (see ``recipes/``)."""

    output_dir: Path = Path("runs/train")
    epochs: int = 1
    max_steps: int | None = None  # optimizer steps; overrides epochs when set
    batch_size: int = 4  # examples per micro-batch, per process
    grad_accum: int = 1  # micro-batches per optimizer step
    lr: float = 5e-6
    weight_decay: float = 0.0
    warmup_ratio: float = 0.0
    max_grad_norm: float = 1.0
    seed: int = 0
    log_every: int = 1
    save_every: int | None = None  # optimizer steps between checkpoints
    mixed_precision: str = "auto"  # "auto": bf16 on a GPU that has it, else fp32; or "no"
    gradient_checkpointing: bool = False  # recompute activations in backward: less memory

    def __post_init__(self) -> None:
        self.output_dir = Path(self.output_dir)
        for key in ("epochs", "batch_size", "grad_accum", "log_every"):
            if getattr(self, key) < 1:
                raise BastionError(f"{key} must be at least 1, got {getattr(self, key)}")
        if self.lr <= 0 or not 0 <= self.warmup_ratio < 1:
            raise BastionError("lr must be > 0 and warmup_ratio in [0, 1)")


@dataclass
class TrainResult:
    steps: int
    last_loss: float
    history: list[dict[str, float]] = field(default_factory=list)


@dataclass
class _State:
    step: int = 0  # optimizer steps done
    micro: int = 0  # micro-batches consumed, over all epochs


class Loop(Generic[T]):
    """Runs :attr:`step` over :attr:`examples` as the config says; see the module docstring."""

    def __init__(
        self,
        model: Any,
        examples: Sequence[T],
        step: Step[T],
        config: TrainConfig,
        *,
        progress: bool = True,
    ) -> None:
        from accelerate import Accelerator

        precision = resolve_precision(config.mixed_precision)
        self.accelerator = Accelerator(
            cpu=not torch.cuda.is_available(),
            gradient_accumulation_steps=config.grad_accum,
            mixed_precision=precision,
        )
        self.config, self.examples, self.step_fn, self.progress = config, examples, step, progress
        self.world = self.accelerator.num_processes
        if len(examples) < config.batch_size * self.world:
            raise TrainingError(
                f"{len(examples)} examples cannot fill one batch of {config.batch_size} on "
                f"{self.world} process(es)"
            )
        per_step = config.batch_size * config.grad_accum * self.world
        self.steps_per_epoch = max(len(examples) // per_step, 1)
        self.total_steps = config.max_steps or self.steps_per_epoch * config.epochs
        if config.gradient_checkpointing:
            base_model(model).activation_checkpointing_enable({"use_reentrant": False})
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            raise TrainingError("the model has no trainable parameters")
        optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
        warmup = int(config.warmup_ratio * self.total_steps)

        def schedule(step: int) -> float:
            if step < warmup:
                return (step + 1) / (warmup + 1)
            return max(0.0, (self.total_steps - step) / max(self.total_steps - warmup, 1))

        # Not passed to prepare(): accelerate would step it once per process per update.
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        self.model, self.optimizer = self.accelerator.prepare(model, optimizer)
        self.accelerator.register_for_checkpointing(self.scheduler)
        self.state = _State()

    # --- data order: seeded per epoch, sharded across processes, resumable by position ---

    def micro_batches(self) -> list[list[int]]:
        """Every micro-batch of this process for the whole run, as example indices."""
        cfg, rank = self.config, self.accelerator.process_index
        per_micro = cfg.batch_size * self.world
        out: list[list[int]] = []
        epoch = 0
        while len(out) < self.total_steps * cfg.grad_accum:
            order = list(range(len(self.examples)))
            random.Random(cfg.seed + epoch).shuffle(order)
            for start in range(0, len(order) // per_micro * per_micro, per_micro):
                chunk = order[start : start + per_micro]  # one micro-batch for every process
                out.append(chunk[rank * cfg.batch_size : (rank + 1) * cfg.batch_size])
            epoch += 1
        return out[: self.total_steps * cfg.grad_accum]

    def run(self, *, resume: bool = False) -> TrainResult:
        cfg, acc = self.config, self.accelerator
        if resume:
            self.load_checkpoint()
        batches = self.micro_batches()
        history: list[dict[str, float]] = []
        last = math.nan
        cfg.output_dir.mkdir(parents=True, exist_ok=True)
        log = MetricsLog(cfg.output_dir, enabled=acc.is_main_process)
        torch.manual_seed(cfg.seed + self.state.micro)
        self.model.train()
        # packed attention stays on for the backward pass's recomputation (see packing)
        packed = packed_attention_on(self.model) if can_pack(self.model) else nullcontext()
        bar_on = self.progress and acc.is_main_process
        with packed, progress_bar(bar_on, self.total_steps) as bar:
            bar.advance(self.state.step)
            sums: dict[str, float] = {}
            for index in range(self.state.micro, len(batches)):
                examples = [self.examples[i] for i in batches[index]]
                with acc.accumulate(self.model):
                    loss, metrics = self.step_fn(self.model, examples)
                    if not torch.isfinite(loss.detach()).all():
                        raise TrainingError(
                            f"loss is {loss.item()} at step {self.state.step + 1}, micro-batch "
                            f"{index} (examples {batches[index]}); lower lr or check the data"
                        )
                    acc.backward(loss)
                    if acc.sync_gradients and cfg.max_grad_norm:
                        acc.clip_grad_norm_(self.model.parameters(), cfg.max_grad_norm)
                    self.optimizer.step()  # accelerate skips it until gradients sync
                    if acc.sync_gradients:
                        self.scheduler.step()
                    self.optimizer.zero_grad()
                for key, value in {"loss": loss.item(), **metrics}.items():
                    sums[key] = sums.get(key, 0.0) + value / cfg.grad_accum
                self.state.micro = index + 1
                if not acc.sync_gradients:
                    continue
                self.state.step += 1
                row = {k: mean_over_processes(acc, v) for k, v in sums.items()}
                row.update(step=self.state.step, lr=float(self.scheduler.get_last_lr()[0]))
                sums, last = {}, row["loss"]
                history.append(row)
                if self.state.step % cfg.log_every == 0:
                    log.write(row, self.state.step)
                bar.update(row["loss"])
                if cfg.save_every and self.state.step % cfg.save_every == 0:
                    self.save_checkpoint()
        log.close()
        return TrainResult(self.state.step, last, history)

    # --- checkpoints ----------------------------------------------------------------------

    @property
    def checkpoint_dir(self) -> Path:
        return self.config.output_dir / "checkpoint"

    def save_checkpoint(self) -> None:
        """Model, optimizer, scheduler, RNG states and data position, written atomically."""
        state = {**asdict(self.state), "config": jsonable_config(self.config)}
        save_checkpoint(self.accelerator, self.checkpoint_dir, state)

    def load_checkpoint(self) -> None:
        keys = ("batch_size", "grad_accum", "seed", "epochs", "max_steps", "lr")
        saved = load_checkpoint(
            self.accelerator, self.checkpoint_dir, jsonable_config(self.config), keys
        )
        self.state = _State(step=saved["step"], micro=saved["micro"])


MARKER = "bastion_state.json"


def save_checkpoint(accelerator: Any, folder: Path, state: dict[str, Any]) -> None:
    """Accelerate's state (model, optimizer, registered objects, RNG) plus ``state`` as JSON,
    written beside ``folder`` and renamed into place: a kill leaves the old checkpoint whole."""
    staging = folder.with_name(folder.name + ".partial")
    accelerator.wait_for_everyone()
    accelerator.save_state(str(staging))
    if accelerator.is_main_process:
        (staging / MARKER).write_text(json.dumps(state, indent=2))
        if folder.exists():
            shutil.rmtree(folder)
        staging.rename(folder)
    accelerator.wait_for_everyone()


def load_checkpoint(
    accelerator: Any, folder: Path, config: dict[str, Any], keys: Sequence[str]
) -> dict[str, Any]:
    """Restore what :func:`save_checkpoint` wrote and return its JSON state; refuse when any
    of ``keys`` differs between the saved config and ``config`` (the data order would not)."""
    marker = folder / MARKER
    if not marker.is_file():
        raise TrainingError(f"nothing to resume: no checkpoint in {folder}")
    saved: dict[str, Any] = json.loads(marker.read_text())
    changed = [k for k in keys if saved["config"].get(k) != config.get(k)]
    if changed:
        raise TrainingError(f"cannot resume: the recipe changed ({', '.join(changed)})")
    accelerator.load_state(str(folder))
    return saved


class LoopTrainer(abc.ABC):
    """A trainer: a model, a config, and a step over example indices; :meth:`fit` runs the loop."""

    model: Any
    train_config: TrainConfig
    is_main_process: bool = True

    @abc.abstractmethod
    def example_count(self) -> int:
        """How many training examples there are (the loop passes their indices to step)."""

    @abc.abstractmethod
    def step(self, model: Any, batch: Sequence[int]) -> tuple[Tensor, dict[str, float]]:
        """The loss of a micro-batch of example indices, and metrics to log."""

    def fit(self, *, resume: bool = False, progress: bool = True) -> TrainResult:
        loop = Loop(
            self.model,
            list(range(self.example_count())),
            self.step,
            self.train_config,
            progress=progress,
        )
        result = loop.run(resume=resume)
        self.model = released(loop.accelerator.unwrap_model(loop.model))
        self.is_main_process = loop.accelerator.is_main_process
        return result
