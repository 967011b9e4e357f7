"""The guard: a policy's scanners run on a text, their results combined into one decision.

The text is normalized once for all the scanners of the stage. Scanners that may wait (on a
model, a server, a file) run concurrently in worker threads, each abandoned at its time budget,
so a slow one never holds up the rest. Bounded scanners (pure CPU, linear time: every built-in
rail but the embedding index) run in the caller's thread meanwhile: under the GIL, handing a
millisecond of Python work to another thread costs more than it saves (the default stacks:
1.2 ms a text inline, 1.7–1.8 ms with every scanner in a thread). A bounded scanner always finishes;
one that took longer than its budget keeps its answer and is marked ``over_budget`` in its
``meta`` (``isolate: true`` in the policy moves it to a worker thread, so that its budget is
enforced while it runs). A scanner that raises or is abandoned counts as flagged when it fails
closed and as clean when it fails open; its result says which. The decision is the strictest
action among flagged scanners: ``block`` > ``review`` > ``mask`` > ``log`` (logged only) >
``allow``; a rail with a review threshold (``review`` in the policy) that did not flag asks
for ``review`` when its score reaches that threshold. When masking, every masking scanner's
spans are applied to the original text at once.

Retrieved documents and tool outputs go through :meth:`Guard.check_context`: each passage
(paragraph) is scanned with the context rails, and a flagged passage is stripped, replaced by
a quarantine notice, or the whole document dropped, as the policy says.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import multiprocessing as mp
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

from bastion.guard.conversation import check_conversation
from bastion.guard.decision import SEVERITY, ContextDecision, Decision
from bastion.guard.policy import Policy, Rail, Stage, load_policy
from bastion.guard.result import ScanResult, Span
from bastion.guard.vault import Vault, mask
from bastion.text.normalize import Normalized, normalize
from bastion.types import Conversation, as_conversation

__all__ = [  # with the decisions, which live in bastion.guard.decision
    "QUARANTINE",
    "SEVERITY",
    "ContextDecision",
    "Decision",
    "Guard",
    "OutputStream",
    "StreamStep",
    "run_order",
]

QUARANTINE = "[passage removed by the guard: it looked like instructions to the model]"


@dataclass
class Guard:
    """Input, output and context rails from one policy."""

    policy: Policy
    inline_chars: int = 4096  # see runs_inline
    _bounded: dict[str, bool] = field(default_factory=dict, repr=False)
    _pool: concurrent.futures.ThreadPoolExecutor = field(
        default_factory=lambda: concurrent.futures.ThreadPoolExecutor(max_workers=8), repr=False
    )

    @classmethod
    def from_policy(cls, path: str | Path) -> Guard:
        return cls(load_policy(path))

    @classmethod
    def default(cls) -> Guard:
        """The shipped default policy."""
        return cls(load_policy(None))

    def check_input(
        self,
        text: str | Conversation | Sequence[Mapping[str, Any]],
        ctx: Mapping[str, str] | None = None,
        *,
        vault: Vault | None = None,
    ) -> Decision:
        """Input rails on a request: one text, or a whole conversation (a
        :class:`~bastion.types.Conversation` or a list of ``{"role", "content"}`` dicts), whose
        every message goes through the rails of its role (see
        :mod:`bastion.guard.conversation`). ``ctx``: what the application knows about the
        request (user, session, route …), passed to every scanner as ``Normalized.context``;
        masked values go to ``vault`` (a new one by default)."""
        if isinstance(text, str):
            return self.check(text, "input", context=dict(ctx or {}), vault=vault)
        return check_conversation(self, as_conversation(text), ctx, vault=vault)

    def check_output(
        self,
        text: str,
        ctx: Mapping[str, str] | None = None,
        *,
        prompt: str | None = None,
        system: str | None = None,
        vault: Vault | None = None,
    ) -> Decision:
        """Output rails on an answer; ``prompt`` and ``system`` (the request and the system
        prompt) join ``ctx`` for scanners that compare the answer with them (``leak``)."""
        context = dict(ctx or {})
        context.update((k, v) for k, v in (("prompt", prompt), ("system", system)) if v)
        return self.check(text, "output", context=context, vault=vault)

    def stream_output(
        self, *, context: int = 256, holdback: int = 64, vault: Vault | None = None
    ) -> OutputStream:
        """Output rails for an answer that arrives in chunks (see :class:`OutputStream`)."""
        return OutputStream(self, context=context, holdback=holdback, vault=vault)

    def runs_inline(self, text: str, stage: Stage, *context: str | None) -> bool:
        """Whether the async checks run ``text`` on the caller's event loop rather than in a
        worker thread: when every rail of the stage is bounded (pure CPU, linear time, not
        isolated) and the text, with the ``context`` texts the scanners compare it with (the
        prompt, the system prompt), is at most ``inline_chars`` long, the check takes about a
        millisecond, less than the hand-off to a thread and back, and a thread would not run
        it any sooner under the GIL. Longer texts and rails that may wait go to a thread, so
        the loop keeps serving other requests meanwhile."""
        if len(text) + sum(len(c) for c in context if c) > self.inline_chars:
            return False
        if stage not in self._bounded:
            self._bounded[stage] = all(rail.inline for rail in self.policy.rails(stage))
        return self._bounded[stage]

    async def acheck_input(
        self,
        text: str | Conversation | Sequence[Mapping[str, Any]],
        ctx: Mapping[str, str] | None = None,
        *,
        vault: Vault | None = None,
    ) -> Decision:
        if isinstance(text, str):
            inline = self.runs_inline(text, "input")
        else:  # a conversation: inline when all of it is short and every rail it meets bounded
            text = as_conversation(text)
            joined = "".join(m.content for m in text)
            inline = self.runs_inline(joined, "input") and self.runs_inline(joined, "context")
        if inline:
            return self.check_input(text, ctx, vault=vault)
        return await asyncio.to_thread(self.check_input, text, ctx, vault=vault)

    async def acheck_output(
        self,
        text: str,
        ctx: Mapping[str, str] | None = None,
        *,
        prompt: str | None = None,
        system: str | None = None,
        vault: Vault | None = None,
    ) -> Decision:
        if self.runs_inline(text, "output", prompt, system):
            return self.check_output(text, ctx, prompt=prompt, system=system, vault=vault)
        return await asyncio.to_thread(
            self.check_output, text, ctx, prompt=prompt, system=system, vault=vault
        )

    async def acheck_context(self, documents: Sequence[str]) -> ContextDecision:
        return await asyncio.to_thread(self.check_context, documents)

    def check(
        self,
        text: str,
        stage: Stage,
        *,
        context: dict[str, str] | None = None,
        vault: Vault | None = None,
    ) -> Decision:
        """One text through one stage's rails."""
        start = time.perf_counter()
        vault = vault if vault is not None else Vault()
        every = run_order(self.policy.rails(stage))
        # scanners that read only the raw text (the length limit) run first: a text they
        # block is never normalized, however long it is
        cheap = [r for r in every if r.scanner.reads_original_only]
        rest = every[len(cheap) :]
        results = self._run(cheap, Normalized.raw(text))
        if any(r.flagged and c.action == "block" for c, r in zip(cheap, results, strict=True)):
            elapsed = (time.perf_counter() - start) * 1000
            return Decision("block", text, tuple(results), stage, elapsed, vault)
        results += self._run(rest, normalize(text, context)) if rest else []
        rails = [*cheap, *rest]
        action = "allow"
        for index, (rail, result) in enumerate(zip(rails, results, strict=True)):
            wanted = rail.action if result.flagged else _review(rail, result)
            if wanted is not None and SEVERITY[wanted] > SEVERITY[action]:
                action = wanted
            if wanted == "review" and not result.flagged:
                results[index] = replace(result, meta={**result.meta, "review": True})
        # a text let through (for review or logged) is masked too
        passed = text if action == "block" else _masked(text, rails, results, vault)
        elapsed = (time.perf_counter() - start) * 1000
        return Decision(action, passed, tuple(results), stage, elapsed, vault)

    def masked(self, text: str, decision: Decision, vault: Vault | None = None) -> str:
        """``text`` with what ``decision``'s masking rails flagged masked, whatever the
        decision's action (a blocked text is not masked by :meth:`check`)."""
        stage = cast("Stage", decision.stage)
        rails = run_order(self.policy.rails(stage))
        return _masked(text, rails, decision.results, vault)

    def check_many(
        self, texts: Sequence[str], stage: Stage = "input", *, processes: int | None = None
    ) -> list[Decision]:
        """Many texts through one stage, in order, on several cores.

        Python threads share one core for this work (the GIL), so the texts are split into
        chunks shared by this process and ``processes - 1`` worker processes (default: one
        process per CPU), forked from this one so that nothing is loaded twice; the workers
        stay up for later calls (:meth:`close` ends them). This process takes chunks from the
        end of the queue that no worker has started, so it works instead of waiting and only
        the workers' chunks cross a process boundary. Where processes cannot be forked, or
        for one process, the texts are checked here, one by one.
        """
        processes = processes or os.cpu_count() or 1
        if processes < 2 or len(texts) < 2 or "fork" not in mp.get_all_start_methods():
            return [self.check(text, stage) for text in texts]
        pool = self._processes_for(processes - 1)
        size = max(1, min(32, len(texts) // (8 * processes)))
        chunks = [
            [(text, stage) for text in texts[i : i + size]] for i in range(0, len(texts), size)
        ]
        futures = [pool.submit(_check_chunk_in_worker, chunk) for chunk in chunks]
        done: dict[int, list[Decision]] = {}
        for index in reversed(range(len(chunks))):
            if futures[index].cancel():  # no worker has it: do it here
                done[index] = [self.check(text, stage) for text, stage in chunks[index]]
        out: list[Decision] = []
        for index, future in enumerate(futures):
            out += done[index] if index in done else future.result()
        return out

    def _processes_for(self, processes: int) -> concurrent.futures.ProcessPoolExecutor:
        pool = self.__dict__.get("_process_pool")
        if pool is None or self.__dict__.get("_process_count") != processes:
            self.close()
            self.__dict__["_process_count"] = processes
            global _WORKER_GUARD
            _WORKER_GUARD = self  # inherited by the forked workers
            pool = concurrent.futures.ProcessPoolExecutor(
                processes, mp_context=mp.get_context("fork"), initializer=_quiet_worker
            )
            self.__dict__["_process_pool"] = pool
        return pool

    def close(self) -> None:
        """End the worker processes of :meth:`check_many`, if any."""
        pool = self.__dict__.pop("_process_pool", None)
        if pool is not None:
            pool.shutdown()

    def check_context(self, documents: Sequence[str]) -> ContextDecision:
        """Scan each passage of each document; strip, quarantine or drop flagged ones."""
        start = time.perf_counter()
        rails = self.policy.rails("context")
        cleaned: list[str] = []
        removed: list[tuple[int, int, ScanResult]] = []
        for d, document in enumerate(documents):
            passages = document.split("\n\n")
            kept: list[str] = []
            dropped = False
            for p, passage in enumerate(passages):
                results = self._run(rails, normalize(passage)) if rails and passage.strip() else []
                hit = next(
                    (r for rail, r in zip(rails, results, strict=False) if r.flagged
                     and rail.action in ("block", "review")),
                    None,
                )  # fmt: skip
                if hit is None:
                    kept.append(passage)
                    continue
                removed.append((d, p, hit))
                if self.policy.context_action == "drop":
                    dropped = True
                    break
                if self.policy.context_action == "quarantine":
                    kept.append(QUARANTINE)
            if not dropped:
                cleaned.append("\n\n".join(kept))
        elapsed = (time.perf_counter() - start) * 1000
        return ContextDecision(tuple(cleaned), tuple(removed), elapsed)

    def _run(self, rails: Sequence[Rail], text: Normalized) -> list[ScanResult]:
        start = time.perf_counter()
        futures = {
            i: self._pool.submit(rail.scanner.scan, text)
            for i, rail in enumerate(rails)
            if not rail.inline
        }
        results: list[ScanResult | None] = [None] * len(rails)
        for i, rail in enumerate(rails):  # bounded scanners, here, while the others run
            if rail.inline:
                try:
                    result = rail.scanner.scan(text)
                except Exception as exc:  # a broken scanner is a finding, never a crash
                    result = _failed(rail, f"error: {type(exc).__name__}: {exc}")
                if result.elapsed_ms > rail.timeout_ms:  # finished: its answer stands
                    result = replace(result, meta={**result.meta, "over_budget": True})
                results[i] = result
        for i, future in futures.items():
            rail = rails[i]
            left = rail.timeout_ms / 1000 - (time.perf_counter() - start)
            try:
                results[i] = future.result(timeout=max(left, 0.0))
            except concurrent.futures.TimeoutError:
                results[i] = _failed(rail, f"over its {rail.timeout_ms:.0f} ms budget")
            except Exception as exc:  # a broken scanner is a finding, never a crash
                results[i] = _failed(rail, f"error: {type(exc).__name__}: {exc}")
        return [r for r in results if r is not None]


def _review(rail: Rail, result: ScanResult) -> str | None:
    """ "review" for a score in a rail's review band (at or above its review threshold, below
    the scanner's), else None."""
    threshold = rail.review_threshold
    if threshold is None or result.failed or result.score < threshold:
        return None
    return "review"


def _masked(
    text: str, rails: Sequence[Rail], results: Sequence[ScanResult], vault: Vault | None
) -> str:
    spans = _union(
        s
        for rail, result in zip(rails, results, strict=False)  # a block may stop early
        if rail.action == "mask" and result.flagged
        for s in result.spans
        if s.view == "original"
    )
    return mask(text, spans, vault) if spans else text


def run_order(rails: Sequence[Rail]) -> list[Rail]:
    """The rails in the order :meth:`Guard.check` runs them, which is the order of a
    decision's results: those that read only the raw text first."""
    first = [r for r in rails if r.scanner.reads_original_only]
    return first + [r for r in rails if not r.scanner.reads_original_only]


_WORKER_GUARD: Guard | None = None


def _quiet_worker() -> None:
    import torch

    torch.set_num_threads(1)  # one core per worker process


def _check_chunk_in_worker(chunk: list[tuple[str, Stage]]) -> list[Decision]:
    assert _WORKER_GUARD is not None, "forked from a process that set the guard"
    return [_WORKER_GUARD.check(text, stage) for text, stage in chunk]


def _failed(rail: Rail, why: str) -> ScanResult:
    closed = rail.fail_closed
    return ScanResult(
        scanner=rail.scanner.name,
        score=1.0 if closed else 0.0,
        flagged=closed,
        reason=f"{why}; failing {'closed' if closed else 'open'}",
        failed=True,
    )


def _union(spans: Any) -> list[Span]:
    """Overlapping spans merged (the first label kept), in order."""
    merged: list[Span] = []
    for span in sorted(spans, key=lambda s: (s.start, -s.end)):
        if merged and span.start < merged[-1].end:
            last = merged[-1]
            merged[-1] = Span(last.label, last.start, max(last.end, span.end))
        else:
            merged.append(span)
    return merged


@dataclass(frozen=True)
class StreamStep:
    """What a streamed answer may release now: ``emit`` (masked as needed), or a stop."""

    emit: str
    stopped: bool = False
    decision: Decision | None = None  # the decision that stopped the stream


class OutputStream:
    """Output rails on a streamed answer, chunk by chunk.

    Each new chunk is scanned together with the ``context`` characters released before it, so a
    phrase or an entity split across chunks is still seen; the last ``holdback`` characters are
    not released yet (an entity may continue in the next chunk), and nothing is released inside
    a detection that may still grow. A blocking result stops the stream mid-way: nothing more is
    released. :meth:`close` scans and releases the rest.
    """

    def __init__(
        self, guard: Guard, *, context: int = 256, holdback: int = 64, vault: Vault | None = None
    ) -> None:
        self.guard, self.context, self.holdback = guard, context, holdback
        self.vault = vault if vault is not None else Vault()  # one numbering for the answer
        self.text = ""
        self.released = 0  # characters of ``text`` already emitted
        self.stopped = False

    def feed(self, chunk: str) -> StreamStep:
        self.text += chunk
        return self._step(final=False)

    def close(self) -> StreamStep:
        return self._step(final=True)

    def _step(self, *, final: bool) -> StreamStep:
        if self.stopped:
            return StreamStep("", stopped=True)
        base = max(0, self.released - self.context)
        decision = self.guard.check_output(self.text[base:], vault=Vault())
        if decision.blocked:
            self.stopped = True
            return StreamStep("", stopped=True, decision=decision)
        spans = [
            Span(s.label, s.start + base, s.end + base)
            for rail, r in zip(run_order(self.guard.policy.output), decision.results, strict=True)
            if rail.action == "mask" and r.flagged
            for s in r.spans
            if s.view == "original" and s.end + base > self.released
        ]
        end = len(self.text) if final else max(self.released, len(self.text) - self.holdback)
        for span in spans:  # never cut through a detection that may still grow
            if span.start < end < span.end or (not final and span.end >= end > span.start):
                end = max(self.released, min(end, span.start))
        inside = [
            Span(s.label, max(s.start, self.released) - self.released, s.end - self.released)
            for s in _union(spans)
            if s.end <= end
        ]
        emit = mask(self.text[self.released : end], inside, self.vault)
        self.released = end
        return StreamStep(emit)
