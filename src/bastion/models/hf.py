"""A local Hugging Face transformers model as a :class:`~bastion.models.base.ChatModel`.

Loads a folder of safetensors or a GGUF file (``gguf_file=``), optionally with a LoRA adapter
folder (peft). Generation uses the tokenizer's chat template, left padding, and batches of
prompts sorted by length so that little compute is spent on padding; replies come back in the
caller's order. Greedy decoding (``temperature=0``) is deterministic; sampling is repeatable
under a ``seed`` for the same inputs and batch size.
"""

from __future__ import annotations

import struct
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from bastion.errors import ModelError
from bastion.models.base import CompletionLogprobs, truncate_at_stop
from bastion.models.prefill import cache_keyword, ragged_prefill, supports_ragged_prefill
from bastion.models.scoring import (
    completion_logps,
    left_pad,
    render_ids,
    split_prompt_completion,
)
from bastion.types import Conversation, ConversationLike, as_conversation


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def default_dtype(device: torch.device) -> torch.dtype:
    """bf16 on a GPU that supports it; fp32 elsewhere (most CPUs lack fast bf16 matmuls)."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


class HFChatModel:
    """A causal LM with a chat template; see the module docstring."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        name: str = "hf",
        batch_size: int = 16,
        chat_template: str | None = None,
    ) -> None:
        if chat_template is not None:
            tokenizer.chat_template = chat_template
        if not getattr(tokenizer, "chat_template", None):
            raise ModelError(
                f"{name}: the tokenizer has no chat template; pass chat_template= "
                "(a Jinja template) or use an instruction-tuned model"
            )
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        pad_id = tokenizer.pad_token_id
        if pad_id is None:
            pad_id = tokenizer.eos_token_id  # any id will do: the attention mask hides padding
        if pad_id is None:
            raise ModelError(f"{name}: the tokenizer has neither a pad nor an eos token")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.pad_id: int = pad_id
        self.eos_ids = end_of_turn_ids(model, tokenizer)
        self.name = name
        self.batch_size = batch_size
        self.device = next(model.parameters()).device
        self.ragged_prefill = True  # a switch; whether the model allows it is checked per call

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        *,
        gguf_file: str | None = None,
        adapter: str | Path | None = None,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        batch_size: int = 16,
        chat_template: str | None = None,
        name: str | None = None,
    ) -> HFChatModel:
        """Load a model folder, a ``.gguf`` file, or (for real users online) a hub id."""
        model, tokenizer = load_causal_lm(path, gguf_file=gguf_file, device=device, dtype=dtype)
        if adapter is not None:
            model = attach_adapter(model, adapter)
        return cls(
            model,
            tokenizer,
            name=name or Path(str(path)).name,
            batch_size=batch_size,
            chat_template=chat_template,
        )

    def prompt_ids(self, conversation: ConversationLike) -> list[int]:
        """Token ids of a conversation rendered with the chat template, ready for a reply."""
        return self._render(as_conversation(conversation), add_generation_prompt=True)

    @torch.inference_mode()
    def generate(
        self,
        conversations: Sequence[ConversationLike],
        *,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int | None = None,
        stop: Sequence[str] | None = None,
    ) -> list[str]:
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
        stop = [s for s in stop or () if s]
        prompts = [self.prompt_ids(c) for c in conversations]
        if seed is not None:
            torch.manual_seed(seed)
        options = self.generation_options(max_new_tokens, temperature, top_p, stop)
        replies: list[str] = [""] * len(prompts)
        # per call: the generation config may have changed since construction
        ragged = self.ragged_prefill and supports_ragged_prefill(self.model)
        for batch in length_sorted_batches([len(p) for p in prompts], self.batch_size):
            rows = [prompts[i] for i in batch]
            input_ids, attention_mask = left_pad(rows, self.pad_id, self.device)
            cache = {}
            if ragged and len(rows) > 1 and min(map(len, rows)) > 1:
                cache[cache_keyword(self.model)] = ragged_prefill(self.model, rows, self.pad_id)
            output = self.model.generate(
                input_ids=input_ids, attention_mask=attention_mask, **options, **cache
            )
            new_tokens = output[:, input_ids.shape[1] :]
            texts = self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
            for index, text in zip(batch, texts, strict=True):
                replies[index] = truncate_at_stop(text, stop)
        return replies

    @torch.inference_mode()
    def logprobs(
        self, conversations: Sequence[ConversationLike], completions: Sequence[str]
    ) -> list[CompletionLogprobs]:
        """Per-token log-probs of each completion as the assistant's next turn.

        The completion's tokens are what the chat template renders for that assistant turn,
        up to and including its end-of-turn token; prompt tokens are excluded.
        """
        if len(conversations) != len(completions):
            raise ValueError("conversations and completions must have the same length")
        pieces = [
            self.split_prompt_completion(as_conversation(c), text)
            for c, text in zip(conversations, completions, strict=True)
        ]
        results: list[CompletionLogprobs] = [CompletionLogprobs((), ())] * len(pieces)
        for batch in length_sorted_batches([len(p) + len(c) for p, c in pieces], self.batch_size):
            logps, mask = completion_logps(
                self.model,
                [pieces[i][0] for i in batch],
                [pieces[i][1] for i in batch],
                self.pad_id,
            )
            for row, index in enumerate(batch):
                completion = pieces[index][1]
                values = logps[row][mask[row]].tolist()
                results[index] = CompletionLogprobs(tuple(completion), tuple(values))
        return results

    def split_prompt_completion(
        self, conversation: Conversation, completion: str
    ) -> tuple[list[int], list[int]]:
        """Token ids of the prompt and of the completion rendered as the next assistant turn."""
        reply = Conversation(()).append("assistant", completion)
        return split_prompt_completion(self.tokenizer, conversation, reply, self.eos_ids)

    def _render(self, conversation: Conversation, *, add_generation_prompt: bool) -> list[int]:
        try:
            return render_ids(
                self.tokenizer, conversation, add_generation_prompt=add_generation_prompt
            )
        except ModelError as exc:
            raise ModelError(f"{self.name}: {exc}") from None

    def generation_options(
        self, max_new_tokens: int, temperature: float, top_p: float, stop: Sequence[str] | None
    ) -> dict[str, Any]:
        """The keyword arguments :meth:`generate` passes to ``model.generate`` (greedy at
        temperature 0, stop strings); the gateway streams with the same ones."""
        options: dict[str, Any] = {
            "max_new_tokens": max_new_tokens,
            "pad_token_id": self.pad_id,
            "eos_token_id": list(self.eos_ids),
            "do_sample": temperature > 0,
        }
        if temperature > 0:
            options.update(temperature=temperature, top_p=top_p, top_k=0)
        else:  # say so explicitly, or a model's generation_config may switch sampling on
            options.update(temperature=None, top_p=None, top_k=None)
        if stop:
            options.update(stop_strings=list(stop), tokenizer=self.tokenizer)
        return options


def end_of_turn_ids(model: Any, tokenizer: Any) -> tuple[int, ...]:
    """Every token that ends a reply: the generation config's (Gemma's ``<end_of_turn>``, ...)
    and the tokenizer's eos."""
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids = list(configured) if isinstance(configured, list) else [configured]
    ids.append(tokenizer.eos_token_id)
    return tuple(dict.fromkeys(int(i) for i in ids if i is not None))


# A padded batch costs memory in proportion to rows × length (activations, cache) and, where
# attention is materialized (CPU SDPA with a padding mask), rows × length² per head. A fixed
# row count that is right for 100-token prompts asks for tens of GB on 3,000-token ones, so a
# batch is also cut at these budgets (a single row is always allowed).
MAX_BATCH_TOKENS = 16_384
MAX_BATCH_ATTENTION = 2**25  # rows × length²


def length_sorted_batches(
    lengths: Sequence[int],
    batch_size: int,
    *,
    max_tokens: int = MAX_BATCH_TOKENS,
    max_attention: int = MAX_BATCH_ATTENTION,
) -> list[list[int]]:
    """Indices grouped into batches of similar length, longest first (fail fast on memory):
    at most ``batch_size`` rows, and no more rows than keep rows × longest within
    ``max_tokens`` and rows × longest² within ``max_attention``."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i], reverse=True)
    batches: list[list[int]] = []
    for index in order:
        if batches:
            batch = batches[-1]
            longest = max(lengths[batch[0]], 1)  # sorted: the first is the longest
            rows = len(batch) + 1
            if (
                rows <= batch_size
                and rows * longest <= max_tokens
                and rows * longest * longest <= max_attention
            ):
                batch.append(index)
                continue
        batches.append([index])
    return batches


def load_causal_lm(
    path: str | Path,
    *,
    gguf_file: str | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
) -> tuple[Any, Any]:
    """(model, tokenizer) from a folder, a ``.gguf`` file, or a hub id; clear errors otherwise."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = Path(path)
    if source.suffix == ".gguf":
        source, gguf_file = source.parent, source.name
    looks_local = source.is_absolute() or str(path).startswith(".") or source.exists()
    if looks_local and not source.exists():
        raise ModelError(f"model path {path} does not exist")
    if gguf_file is not None:
        check_gguf(source / gguf_file)
    target = torch.device(device) if device is not None else default_device()
    kwargs: dict[str, Any] = {"gguf_file": gguf_file} if gguf_file else {}
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(source), **kwargs)
        model = AutoModelForCausalLM.from_pretrained(
            str(source), dtype=dtype or default_dtype(target), **kwargs
        )
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"cannot load a model from {path}: {first}") from None
    model = model.to(target)
    return model.eval(), tokenizer


def attach_adapter(model: Any, adapter: str | Path) -> Any:
    """Wrap a model with a LoRA adapter folder saved by peft."""
    from peft import PeftModel

    folder = Path(adapter)
    if not (folder / "adapter_config.json").is_file():
        raise ModelError(f"{adapter} is not a LoRA adapter folder (no adapter_config.json)")
    with peft_quietly():
        return PeftModel.from_pretrained(model, str(folder)).eval()


@contextmanager
def peft_quietly() -> Iterator[None]:
    """peft asks transformers a deprecated question on every wrap; the FutureWarning it
    prints is about peft, not about anything a user did."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=".*is_gradient_checkpointing", category=FutureWarning
        )
        yield


def check_gguf(file: Path) -> None:
    """Fail with one clear line unless ``file`` is a GGUF file."""
    if not file.is_file():
        raise ModelError(f"GGUF file {file} does not exist")
    with file.open("rb") as handle:
        magic = handle.read(4)
    if magic != b"GGUF":
        raise ModelError(f"{file} is not a GGUF model file (it does not start with 'GGUF')")
    from gguf import GGUFReader

    try:
        reader = GGUFReader(str(file))
    except (ValueError, struct.error, OSError, IndexError) as exc:
        raise ModelError(f"{file} is not a valid GGUF file: {exc}") from None
    if "general.architecture" not in reader.fields or not reader.tensors:
        raise ModelError(f"{file} is a GGUF file without a model (no architecture or no tensors)")
