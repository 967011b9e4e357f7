"""A model in the gateway's own process as an :class:`~bastion.serve.upstream.Upstream`.

The default upstream of ``bastion serve`` is the packaged chat model, so the gateway works with
nothing else running. Generation is one request at a time: a single worker thread runs it
(requests queue in order; a CPU has no spare cores for a second generation, and a queued
request whose client leaves is dropped before it starts). For a transformers model
(:class:`~bastion.models.HFChatModel`) streaming is true token streaming: a
``transformers`` streamer hands each decoded piece to the event loop as it is produced, and a
client that goes away stops the generation at the next token. Any other
:class:`~bastion.models.ChatModel` (the fakes) streams its finished answer as a few chunks of
words. Token counts come from the model's tokenizer; without one, words are counted. Messages
longer than a transformers model's context are a 400 (``context_length_exceeded``, as OpenAI
answers), and an answer stops where the context ends.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import re
import threading
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Any, cast

from bastion.errors import DataError
from bastion.models.base import ChatModel, truncate_at_stop
from bastion.serve.upstream import (
    Choice,
    Completion,
    Delta,
    UpstreamFailure,
    UpstreamRequest,
)
from bastion.types import Conversation

if TYPE_CHECKING:
    from bastion.models.hf import HFChatModel

WORDS_PER_CHUNK = 4
GREEDY_BELOW = 1e-6  # a temperature this close to 0 samples as greedy decoding does
_END = object()


class ModelUpstream:
    """A :class:`~bastion.models.ChatModel` served in process; see the module docstring."""

    def __init__(
        self, model: ChatModel, *, max_tokens: int = 256, provider: str | None = None
    ) -> None:
        self.model = model
        self.max_tokens = max_tokens
        self.tokenizer: Any = getattr(model, "tokenizer", None)
        self.provider = provider or ("transformers" if self.tokenizer is not None else "bastion")
        self.context = _context_length(model)
        self._worker = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="generate")

    @property
    def circuit_state(self) -> str:
        return "closed"

    async def aclose(self) -> None:
        self._worker.shutdown(wait=False, cancel_futures=True)

    async def complete(self, request: UpstreamRequest) -> Completion:
        conversation = _conversation(request)
        loop = asyncio.get_running_loop()
        max_tokens = request.max_tokens or self.max_tokens
        if self.context is not None:  # in the worker: a long prompt takes a while to tokenize
            max_tokens = await loop.run_in_executor(
                self._worker, self._room, conversation, max_tokens
            )

        def generate(index: int) -> str:
            return self.model.generate(
                [conversation],
                max_new_tokens=max_tokens,
                temperature=_temperature(request),
                top_p=request.top_p if request.top_p is not None else 1.0,
                seed=None if request.seed is None else request.seed + index,
                stop=request.stop,
            )[0]

        texts = [  # n > 1: one generation after another (see the module docstring)
            await loop.run_in_executor(self._worker, generate, index)
            for index in range(int(request.extra.get("n") or 1))
        ]
        first = self._completion(conversation, texts[0], max_tokens)
        more = [self._completion(conversation, text, max_tokens) for text in texts[1:]]
        if not more:
            return first
        return Completion(
            first.text,
            first.finish_reason,
            first.prompt_tokens,
            sum(c.completion_tokens or 0 for c in (first, *more)),
            more=tuple(Choice(c.text, c.finish_reason) for c in more),
        )

    def _room(self, conversation: Conversation, max_tokens: int) -> int:
        """``max_tokens``, cut to the room the model's context leaves after the prompt; a 400
        when the prompt alone fills it (OpenAI's ``context_length_exceeded``), rather than a
        model run past its positions for minutes while every other request waits."""
        model = cast("HFChatModel", self.model)  # a context: a transformers model
        return self._room_after(len(model.prompt_ids(conversation)), max_tokens)

    def _room_after(self, prompt: int, max_tokens: int) -> int:
        if self.context is None:
            return max_tokens
        if prompt >= self.context:
            raise UpstreamFailure(
                f"messages: the model's context is {self.context} tokens, and the messages are "
                f"{prompt}",
                status=400,
                code="context_length_exceeded",
            )
        return min(max_tokens, self.context - prompt)

    async def stream(self, request: UpstreamRequest) -> AsyncGenerator[Delta, None]:
        if self.tokenizer is None or not hasattr(self.model, "prompt_ids"):
            completion = await self.complete(request)
            for piece in word_chunks(completion.text):
                yield Delta(piece)
            yield Delta(
                finish_reason=completion.finish_reason,
                prompt_tokens=completion.prompt_tokens,
                completion_tokens=completion.completion_tokens,
            )
            return
        async for delta in self._token_stream(request):
            yield delta

    async def _token_stream(self, request: UpstreamRequest) -> AsyncGenerator[Delta, None]:
        """Pieces from a transformers streamer, passed to this loop as they are decoded."""
        from transformers import StoppingCriteria, StoppingCriteriaList, TextStreamer

        loop = asyncio.get_running_loop()
        pieces: asyncio.Queue[Any] = asyncio.Queue()
        cancelled = threading.Event()
        conversation = _conversation(request)
        max_tokens = request.max_tokens or self.max_tokens  # cut to the room left, in generate()
        model = cast("HFChatModel", self.model)  # a tokenizer and prompt_ids: see stream()

        class ToLoop(TextStreamer):  # type: ignore[misc]
            def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
                if text:
                    loop.call_soon_threadsafe(pieces.put_nowait, text)

        class Cancelled(StoppingCriteria):  # type: ignore[misc]
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                import torch

                return torch.full((input_ids.shape[0],), cancelled.is_set(), dtype=torch.bool)

        def generate() -> None:
            import torch

            nonlocal max_tokens
            try:
                prompt = model.prompt_ids(conversation)
                max_tokens = self._room_after(len(prompt), max_tokens)
                ids = torch.tensor([prompt], device=model.device)
                options = model.generation_options(  # the same options as generate()
                    max_tokens, _temperature(request), request.top_p or 1.0, request.stop
                )
                if request.seed is not None:
                    torch.manual_seed(request.seed)
                with torch.inference_mode():
                    model.model.generate(
                        input_ids=ids,
                        attention_mask=torch.ones_like(ids),
                        streamer=ToLoop(self.tokenizer, skip_prompt=True, skip_special_tokens=True),
                        stopping_criteria=StoppingCriteriaList([Cancelled()]),
                        **options,
                    )
            except BaseException as exc:  # handed to the awaiting request, which raises it
                loop.call_soon_threadsafe(pieces.put_nowait, exc)
            finally:
                loop.call_soon_threadsafe(pieces.put_nowait, _END)

        job = loop.run_in_executor(self._worker, generate)
        text, sent = "", 0
        hold = max((len(s) for s in request.stop), default=1) - 1  # a stop string may be split
        try:
            while (piece := await pieces.get()) is not _END:
                if isinstance(piece, BaseException):
                    raise piece
                text += piece
                cut = truncate_at_stop(text, request.stop)
                if len(cut) < len(text):  # a stop string: the answer ends before it
                    text = cut
                    cancelled.set()
                    break
                if len(text) - hold > sent:
                    yield Delta(text[sent : len(text) - hold])
                    sent = len(text) - hold
            if len(text) > sent:
                yield Delta(text[sent:])
            yield self._final(conversation, text, max_tokens)
        finally:
            cancelled.set()  # a client that went away stops the generation
            job.cancel()  # or drops it from the queue if it had not started

    def _completion(self, conversation: Conversation, text: str, max_tokens: int) -> Completion:
        final = self._final(conversation, text, max_tokens)
        assert final.finish_reason is not None
        return Completion(text, final.finish_reason, final.prompt_tokens, final.completion_tokens)

    def _final(self, conversation: Conversation, text: str, max_tokens: int) -> Delta:
        if self.tokenizer is not None and hasattr(self.model, "prompt_ids"):
            prompt = len(self.model.prompt_ids(conversation))
            completion = len(self.tokenizer.encode(text, add_special_tokens=False))
        else:
            prompt = sum(len(m.content.split()) for m in conversation)
            completion = len(text.split())
        reason = "length" if completion >= max_tokens else "stop"
        return Delta(finish_reason=reason, prompt_tokens=prompt, completion_tokens=completion)


def _conversation(request: UpstreamRequest) -> Conversation:
    """The messages as a chat template takes them ("developer" is the newer name of
    "system"); a 400 for messages a local model cannot take."""
    turns = [
        {"role": "system" if m.get("role") == "developer" else m.get("role"),
         "content": _text(m.get("content"))}
        for m in request.messages
    ]  # fmt: skip
    try:
        return Conversation.from_dicts(turns)
    except DataError as exc:
        raise UpstreamFailure(f"messages: {exc}", status=400, code="invalid_messages") from None


def _context_length(model: ChatModel) -> int | None:
    """A transformers model's context in tokens (its positions); None for other models."""
    config = getattr(getattr(model, "model", None), "config", None)
    size = getattr(config, "max_position_embeddings", None)
    return size if hasattr(model, "prompt_ids") and isinstance(size, int) and size > 0 else None


def _temperature(request: UpstreamRequest) -> float:
    """The request's temperature, 0 (greedy decoding) when it is next to 0: logits divided by
    1e-300 overflow to inf, and a sampler cannot draw from those (transformers raises), while
    a client may ask for any temperature in [0, 2]."""
    temperature = request.temperature or 0.0
    return temperature if temperature >= GREEDY_BELOW else 0.0


def _text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


def word_chunks(text: str) -> list[str]:
    """The text cut after every :data:`WORDS_PER_CHUNK` words, whitespace kept (the pieces join
    to the text): how an answer that was not generated token by token is streamed."""
    words = re.findall(r"\S+\s*|\s+", text)
    return ["".join(words[i : i + WORDS_PER_CHUNK]) for i in range(0, len(words), WORDS_PER_CHUNK)]
