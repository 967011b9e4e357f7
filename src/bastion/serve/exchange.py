"""One guarded exchange: input rails → upstream → output rails → event.

A request the input rails block never reaches the model; an answer the output rails block is
replaced; either way the client gets an ordinary completion whose message is a refusal, with
``finish_reason: "content_filter"`` and a ``bastion`` object saying why (a guard decision is
not an HTTP error). Masked text (PII, secrets) goes on masked. Streams are checked chunk by
chunk (:class:`~bastion.guard.pipeline.OutputStream`): nothing is released that the rails have
not seen, and a blocking rail cuts the stream and sends the refusal in its place.

Every exchange becomes one :class:`~bastion.monitor.events.Event`, redacted before it is
recorded: the texts stored are the guard's masked texts, masked once more for storage with a
PII + secrets rail set (so PII is never stored even where the policy lets it through; a scan
the policy's rails already made is not repeated, see :class:`Redactor`); raw
text only with ``store_raw``. An exchange goes to human review when a rail's action is
``review``, or, unless a rail blocked it, when a block/review rail's score falls within
``review_band`` below its threshold (:func:`near_threshold`).
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.propagate import inject
from opentelemetry.trace import SpanKind, Tracer

from bastion.guard.pipeline import SEVERITY, Decision, Guard
from bastion.guard.scanners.refusal import refusal_phrase
from bastion.guard.vault import StreamRestorer, Vault
from bastion.monitor.events import Event, new_id
from bastion.serve.auth import Principal
from bastion.serve.config import GatewayConfig
from bastion.serve.record import (
    Redactor,
    Verdict,
    capped,
    category_of,
    estimate_tokens,
    near_threshold,
)
from bastion.serve.schema import ChatRequest, completion_id, conversation_of, now
from bastion.serve.sink import EventSink, ReviewQueue
from bastion.serve.telemetry import Metrics, end_span, trace_id
from bastion.serve.upstream import Completion, Delta, Upstream, UpstreamRequest

logger = logging.getLogger("bastion.serve")
T = TypeVar("T")


@dataclass(eq=False)  # one exchange is itself only (and hashable, for Gateway._open)
class Exchange:
    """What one request has been through so far."""

    request: ChatRequest
    principal: Principal
    span: trace.Span
    session: str | None
    id: str = field(default_factory=completion_id)
    event_id: str = field(default_factory=new_id)
    created: int = field(default_factory=now)
    start: float = field(default_factory=time.perf_counter)
    input: Decision | None = None
    output: Decision | None = None
    raw_answer: str = ""  # the model's answer, before the output rails
    answer: str = ""  # what the client received
    finish_reason: str = "stop"
    blocked_stage: str | None = None
    upstream_ms: float = 0.0
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    status: int = 200
    error: str | None = None
    stored_prompt: str | None = None  # the prompt as the record keeps it (redacted)
    restorer: Vault | None = None  # the input's masked values, to put back into the answer
    tool_calls: list[dict[str, Any]] = field(default_factory=list)  # the first answer's
    more: list[tuple[str, str, list[dict[str, Any]]]] = field(default_factory=list)  # n > 1
    more_outputs: list[Decision] = field(default_factory=list)  # tool calls, further answers
    answered: bool = False  # the upstream answered (tokens were spent)
    disconnected: bool = False  # the client left before the end of the stream

    @property
    def context(self) -> dict[str, str]:
        ctx = {"user": self.principal.user}
        if self.session:
            ctx["session"] = self.session
        return ctx


class Gateway:
    """The guard, an upstream and a sink, joined per request (see the module docstring)."""

    def __init__(
        self,
        *,
        guard: Guard,
        upstream: Upstream,
        sink: EventSink,
        config: GatewayConfig,
        metrics: Metrics,
        tracer: Tracer,
    ) -> None:
        self.guard, self.upstream, self.sink = guard, upstream, sink
        self.config, self.metrics, self.tracer = config, metrics, tracer
        self.redactor = Redactor(guard.policy)
        # exchanges begun and not yet recorded (one whose record never comes, after a bug,
        # leaves when it is garbage)
        self._open: weakref.WeakSet[Exchange] = weakref.WeakSet()

    # --- the request ----------------------------------------------------------------------

    def begin(
        self, request: ChatRequest, principal: Principal, session: str | None, parent: Context
    ) -> Exchange:
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": self.upstream.provider,
            "gen_ai.system": self.upstream.provider,  # the name before semconv 1.37
            "gen_ai.request.model": request.model,
        }
        optional = {
            "gen_ai.request.temperature": request.temperature,
            "gen_ai.request.top_p": request.top_p,
            "gen_ai.request.max_tokens": request.max_tokens or request.max_completion_tokens,
            "gen_ai.conversation.id": session,
        }
        attributes.update((k, v) for k, v in optional.items() if v is not None)
        span = self.tracer.start_span(
            f"chat {request.model}", context=parent, kind=SpanKind.CLIENT, attributes=attributes
        )
        ex = Exchange(request, principal, span, session)
        self._open.add(ex)
        span.set_attribute("bastion.event_id", ex.event_id)
        span.set_attribute("gen_ai.response.id", ex.id)
        return ex

    async def check_input(self, ex: Exchange) -> Decision:
        """Every message through the rails its role gets in the policy (``roles``): a request
        of one user message as a text, any other as a conversation; masked values go to one
        vault, from which the answer gets them back (:meth:`restore`)."""
        messages = ex.request.messages
        if len(messages) == 1 and messages[0].role == "user":
            decision = await self.guard.acheck_input(messages[0].text, ex.context)
        else:
            decision = await self.guard.acheck_input(conversation_of(ex.request), ex.context)
        self.metrics.guard.labels("input").observe(decision.elapsed_ms / 1000)
        ex.input = decision
        if len(decision.vault):  # what the answer may give back: the user's own values
            ex.restorer = decision.vault.copy()
        if decision.blocked:
            self.refuse(ex, "input")
        return decision

    async def check_output(self, ex: Exchange, text: str) -> Decision:
        """The first answer's text through the output rails (``ex.output``)."""
        ex.output = await self._output_rails(ex, text)
        return ex.output

    async def _output_rails(self, ex: Exchange, text: str) -> Decision:
        decision = await self.guard.acheck_output(
            text,
            ex.context,
            prompt=self.prompt_of(ex),
            system=ex.request.system,
            vault=self.vault_of(ex),
        )
        self.metrics.guard.labels("output").observe(decision.elapsed_ms / 1000)
        return decision

    async def answer(self, ex: Exchange, reply: Completion) -> None:
        """Every answer of a completion through the output rails: its text, and its tool
        calls' arguments when the policy says so (``tool_calls: output``); an answer any of
        whose parts a rail blocks becomes the refusal, without tool calls."""
        for index, choice in enumerate(reply.choices):
            if index == 0:
                output = await self.check_output(ex, choice.text)
            else:
                output = await self._judged(ex, choice.text, f"choice {index}")
            calls = await self._tool_calls(ex, choice.tool_calls, index)
            if output.blocked or calls is None:
                ex.blocked_stage = "output"
                text, reason, calls = self.config.refusal_text, "content_filter", []
                if index == 0:
                    self.refuse(ex, "output")
            else:
                text, reason = self.restore(ex, output.text), choice.finish_reason
            if index == 0:
                ex.answer, ex.finish_reason, ex.tool_calls = text, reason, calls
            else:
                ex.more.append((text, reason, calls))

    async def _tool_calls(
        self, ex: Exchange, calls: Sequence[dict[str, Any]], choice: int
    ) -> list[dict[str, Any]] | None:
        """The calls with their arguments masked and restored as an answer's text would be;
        None when a rail blocks one."""
        judged = []
        for call in calls:
            function = call.get("function") or {}
            arguments = function.get("arguments")
            if self.guard.policy.tool_calls == "output" and isinstance(arguments, str):
                where = f"choice {choice} tool call {call.get('id', '')}".strip()
                decision = await self._judged(ex, arguments, where)
                if decision.blocked:
                    return None
                call = {
                    **call,
                    "function": {**function, "arguments": self.restore(ex, decision.text)},
                }
            judged.append(call)
        return judged

    async def _judged(self, ex: Exchange, text: str, where: str) -> Decision:
        """A text other than the first answer's through the output rails, kept for the record
        (its results marked with ``part``)."""
        decision = await self._output_rails(ex, text)
        results = tuple(replace(r, meta={**r.meta, "part": where}) for r in decision.results)
        decision = replace(decision, results=results)
        ex.more_outputs.append(decision)
        return decision

    def vault_of(self, ex: Exchange) -> Vault | None:
        """The input's vault, so that a value the output rails mask gets a new number: only
        the input's own placeholders are restored, never a value the model made up."""
        return ex.input.vault if ex.input is not None and ex.restorer is not None else None

    def restore(self, ex: Exchange, text: str) -> str:
        """The user's own masked values put back into an answer the rails passed."""
        return ex.restorer.restore(text) if ex.restorer is not None else text

    def refuse(self, ex: Exchange, stage: str) -> str:
        """Replace the answer (or, for a stream cut mid-way, its rest) with the refusal; the
        text the client still has to get."""
        ex.blocked_stage, ex.finish_reason = stage, "content_filter"
        rest = ("\n\n" if ex.answer else "") + self.config.refusal_text
        ex.answer += rest
        return rest

    def upstream_request(self, ex: Exchange) -> UpstreamRequest:
        """The request as the model gets it: the judged user turn masked when the rails
        masked it, and the trace context for the upstream's own spans."""
        request = ex.request
        messages = [m.model_dump(exclude_none=True) for m in request.messages]
        if ex.input is not None and ex.input.action in ("mask", "review"):
            if ex.input.messages is None:  # one user message
                messages[0]["content"] = ex.input.text
            else:
                for wire, judged, passed in zip(
                    messages, request.messages, ex.input.messages, strict=True
                ):
                    if passed.content != judged.text:
                        wire["content"] = passed.content
        extra = dict(request.model_extra or {})
        if request.n > 1:
            extra["n"] = request.n
        headers: dict[str, str] = {}
        inject(headers, context=trace.set_span_in_context(ex.span))
        return UpstreamRequest(
            model=request.model,
            messages=messages,
            max_tokens=request.max_completion_tokens or request.max_tokens,
            temperature=request.temperature,
            top_p=request.top_p,
            stop=request.stops,
            seed=request.seed,
            extra=extra,
            headers=headers,
        )

    async def call(self, ex: Exchange) -> Completion:
        start = self.upstream_started()
        try:
            reply = await self.meanwhile(ex, self.upstream.complete(self.upstream_request(ex)))
        finally:
            self.upstream_done(ex, start)
        ex.answered, ex.raw_answer = True, reply.text
        self.usage(ex, reply.prompt_tokens, reply.completion_tokens)
        return reply

    async def meanwhile(self, ex: Exchange, waiting: Awaitable[T]) -> T:
        """Await ``waiting`` (the upstream), redacting the prompt for the record while the
        request is out: the model takes far longer than the redaction, which then costs the
        client nothing."""
        task = asyncio.ensure_future(waiting)
        try:
            await asyncio.sleep(0)  # the task sends the request
            prompt = self.prompt_of(ex)
            if ex.stored_prompt is None and len(prompt) <= self.guard.inline_chars:
                ex.stored_prompt = self.redactor(prompt, ex.input)  # longer: in finish()'s thread
            return await task
        finally:
            if not task.done():  # the client left, or a bug: stop the call, and let it clean up
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            elif not task.cancelled():
                task.exception()  # seen: a failure nobody awaited is not reported as lost

    def prompt_of(self, ex: Exchange) -> str:
        """The judged user turn as it went on: masked if the input rails masked it."""
        return ex.input.text if ex.input is not None else ex.request.last_user

    def upstream_started(self) -> float:
        self.metrics.queue_depth.inc()
        return time.perf_counter()

    def upstream_done(self, ex: Exchange, start: float) -> None:
        elapsed = time.perf_counter() - start
        ex.upstream_ms += elapsed * 1000
        self.metrics.upstream.observe(elapsed)
        self.metrics.queue_depth.dec()

    def usage(self, ex: Exchange, prompt: int | None, completion: int | None) -> None:
        if prompt is not None:
            ex.prompt_tokens = prompt
        if completion is not None:
            ex.completion_tokens = completion

    async def guarded_stream(
        self, ex: Exchange, deltas: AsyncIterator[Delta], first: Delta | None, start: float
    ) -> AsyncGenerator[str, None]:
        """The text the output rails release, as the upstream's deltas arrive (``start``: when
        the upstream was called); on a block the stream stops (the caller sends the refusal)."""
        stream = self.guard.stream_output(vault=self.vault_of(ex))
        restorer = StreamRestorer(ex.restorer) if ex.restorer is not None else None
        guard_s, waiting = 0.0, True
        try:
            delta = first
            while delta is not None:
                ex.answered = True
                self.usage(ex, delta.prompt_tokens, delta.completion_tokens)
                if delta.finish_reason:
                    ex.finish_reason = delta.finish_reason
                if delta.text:
                    ex.raw_answer += delta.text
                    t = time.perf_counter()
                    step = await asyncio.to_thread(stream.feed, delta.text)
                    guard_s += time.perf_counter() - t
                    emit = restorer.feed(step.emit) if restorer else step.emit
                    if emit:
                        ex.answer += emit
                        yield emit
                    if step.stopped:
                        ex.output = step.decision
                        return
                delta = await anext(deltas, None)
            self.upstream_done(ex, start)
            waiting = False
            step = stream.close()
            if step.stopped:
                ex.output = step.decision
                return
            emit = (restorer.feed(step.emit) + restorer.close()) if restorer else step.emit
            if emit:
                ex.answer += emit
                yield emit
        finally:
            if waiting:
                self.upstream_done(ex, start)
            self.metrics.guard.labels("output_stream").observe(guard_s)

    # --- the record -----------------------------------------------------------------------

    def verdict(self, ex: Exchange) -> Verdict:
        decisions = [d for d in (ex.input, ex.output, *ex.more_outputs) if d is not None]
        decision = max((d.action for d in decisions), key=SEVERITY.__getitem__, default="allow")
        flagged = sorted({r.scanner for d in decisions for r in d.flagged})
        review: list[str] = []
        if decision != "block":  # a near miss changes nothing once a rail has blocked
            band = self.config.review_band
            rails = {"input": self.guard.policy.input, "output": self.guard.policy.output}
            review = [
                f"{d.stage}:{name}"
                for d in decisions
                for name in near_threshold(d, rails[d.stage], band)
            ]
        if decision == "review" and not review:
            review = ["decision:review"]
        return Verdict(decision, flagged, review)

    async def record(self, ex: Exchange) -> None:
        """:meth:`finish` the exchange, in a worker thread, where the records of concurrent
        exchanges share one fsync; or on the event loop when that delays nothing and costs
        less than the hand-off to a thread: the exchange is the only one open, the sink says
        its ``record`` is quick (``quick_record``: the event store's journal append), the
        event goes to no review queue (a database write) and its redaction is short and
        bounded (no NER model)."""
        try:
            verdict = self.verdict(ex)
            if self._records_inline(ex, verdict):
                self.finish(ex, verdict)
            else:
                await asyncio.to_thread(self.finish, ex, verdict)
        finally:
            self._open.discard(ex)

    def _records_inline(self, ex: Exchange, verdict: Verdict) -> bool:
        texts = len(self.prompt_of(ex)) + len(ex.answer) + len(ex.raw_answer)
        return (
            len(self._open) <= 1
            and bool(getattr(self.sink, "quick_record", False))
            and not verdict.review
            and texts <= self.guard.inline_chars
            and self.redactor.bounded
        )

    def finish(self, ex: Exchange, verdict: Verdict | None = None) -> Event:
        """Record the exchange (redacted), count it, end its span."""
        latency_ms = (time.perf_counter() - ex.start) * 1000
        verdict = self.verdict(ex) if verdict is None else verdict
        event = self.event(ex, verdict, latency_ms)
        try:
            self.sink.record(event)
            if event.review and isinstance(self.sink, ReviewQueue):
                self.sink.enqueue_review(event.id, "review_band")
        except Exception:  # the client's answer stands; the failure is logged and counted
            logger.exception("the event sink failed to record event %s", event.id)
            self.metrics.sink_errors.inc()
        stream = str(ex.request.stream).lower()
        label = verdict.decision
        self.metrics.requests.labels(label, str(ex.status), stream).inc()
        self.metrics.latency.labels(stream).observe(latency_ms / 1000)
        self.metrics.tokens.labels("input").inc(event.prompt_tokens)
        self.metrics.tokens.labels("output").inc(event.completion_tokens)
        end_span(ex.span, event, ex.request.model, ex.finish_reason, ex.blocked_stage,
                 trace_content=self.config.trace_content)  # fmt: skip
        return event

    def event(self, ex: Exchange, verdict: Verdict, latency_ms: float) -> Event:
        decisions = [d for d in (ex.input, ex.output, *ex.more_outputs) if d is not None]
        meta: dict[str, Any] = {"completion_id": ex.id, "role": ex.principal.role}
        if ex.more:
            meta["choices"] = 1 + len(ex.more)
        if ex.tool_calls:
            meta["tool_calls"] = [str(c.get("function", {}).get("name", "")) for c in ex.tool_calls]
        if verdict.review:
            meta["review_reasons"] = verdict.review
        if ex.disconnected:
            meta["disconnected"] = True
        limit = self.config.store_max_chars
        if ex.blocked_stage == "output":  # what the model said, for the reviewers (redacted)
            blocked = self.redactor(ex.raw_answer)
            meta["blocked_answer"] = capped(blocked, limit, "blocked_answer", meta)
        raw = self.config.store_raw
        if ex.stored_prompt is None:
            ex.stored_prompt = self.redactor(self.prompt_of(ex), ex.input)
        prompt = capped(ex.stored_prompt, limit, "prompt", meta)
        response = capped(self.redactor(ex.answer, ex.output), limit, "response", meta)
        return Event(
            id=ex.event_id,
            user=ex.principal.user,
            model=ex.request.model,
            prompt=prompt,
            response=response,
            decision=verdict.decision,
            blocked_stage=ex.blocked_stage,
            refused=ex.blocked_stage is not None or refusal_phrase(ex.answer) is not None,
            input_results=ex.input.to_dict()["results"] if ex.input else [],
            output_results=[
                result
                for d in (ex.output, *ex.more_outputs)
                if d is not None
                for result in d.to_dict()["results"]
            ],
            categories=sorted({category_of(r) for d in decisions for r in d.flagged}),
            attack_score=max((r.score for r in ex.input.results), default=0.0) if ex.input else 0.0,
            review=bool(verdict.review),
            latency_ms=latency_ms,
            upstream_ms=ex.upstream_ms,
            prompt_tokens=self.prompt_tokens(ex),
            completion_tokens=self.completion_tokens(ex),
            stream=ex.request.stream,
            status=ex.status,
            error=ex.error,
            session=ex.session,
            trace_id=trace_id(ex.span),
            raw_prompt=capped(ex.request.last_user, limit, "raw_prompt", meta) if raw else None,
            raw_response=capped(ex.raw_answer or ex.answer, limit, "raw_response", meta)
            if raw
            else None,
            meta=meta,
        )

    def prompt_tokens(self, ex: Exchange) -> int:
        if ex.prompt_tokens is not None:
            return ex.prompt_tokens
        if not ex.answered:  # blocked before the model, or the model failed
            return 0
        return estimate_tokens(" ".join(m.text for m in ex.request.messages))

    def completion_tokens(self, ex: Exchange) -> int:
        if ex.completion_tokens is not None or not ex.answered:
            return ex.completion_tokens or 0
        return estimate_tokens(ex.raw_answer)
