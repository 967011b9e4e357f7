"""Applying a journal to a database: :class:`Replicator`, the event store's writer thread.

The journal (:mod:`bastion.monitor.journal`) makes an event durable; the replicator carries it
into the database in batches, with the journal position in the same transaction.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from bastion.monitor.journal import Journal, JournalError, Line

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class _Entry(Generic[T]):
    start: int
    end: int
    item: T


class Replicator(Generic[T]):
    """A thread that applies the journal's lines, in order and in batches, to a sink.

    ``apply(items, lsn)`` must store the items *and* the checkpoint ``lsn`` atomically (one
    database transaction) and tolerate items it already has; ``decode`` turns a journal line
    back into an item (``None``: set aside, skip). :meth:`offer` hands over a line just
    appended, decoded already, without waiting longer than ``put_timeout``; a line the full
    queue turns away, or that arrives out of order, is read back from the journal instead (at
    the latest after one ``poll`` without news). A failing ``apply`` is retried with backoff
    (0.1 s doubling to 5 s), everything still in the journal. After the first line of a batch
    the thread sleeps ``linger`` seconds, then takes what has come meanwhile (Kafka's
    ``linger.ms``): under light load each line would otherwise cost a transaction of its own,
    and that work competes with the requests for the CPU (and the GIL). It sleeps rather than
    waiting on the queue, so lines offered meanwhile do not wake it one by one (each wake-up
    would take the GIL from a request in flight); :meth:`wait`, :meth:`stop` and a full batch
    cut the sleep short.
    """

    def __init__(
        self,
        journal: Journal,
        *,
        decode: Callable[[Line], T | None],
        apply: Callable[[list[T], int], None],
        checkpoint: int,
        queue_size: int = 10_000,
        put_timeout: float = 0.0,
        batch_size: int = 500,
        poll: float = 0.1,
        linger: float = 0.0,
    ) -> None:
        self._journal = journal
        self._decode = decode
        self._apply = apply
        self._queue: queue.Queue[_Entry[T] | None] = queue.Queue(maxsize=queue_size)
        self._put_timeout = put_timeout
        self._batch_size = batch_size
        self._poll = poll
        self._linger = linger
        self._carry: list[_Entry[T]] = []  # queued entries past a gap, kept for the next round
        self._gap_since: float | None = None  # monotonic time the current gap was first seen
        self._progress = threading.Condition()
        self._checkpoint = checkpoint
        self._error: BaseException | None = None
        self._dropped = 0
        self._stopping = threading.Event()
        self._hurry = threading.Event()  # cuts the linger short
        self._wakes = 0  # flush and stop requests whose marker is still queued (under _progress)
        self._thread = threading.Thread(target=self._run, name="bastion-replicator", daemon=True)

    @property
    def checkpoint(self) -> int:
        with self._progress:
            return self._checkpoint

    @property
    def dropped(self) -> int:
        """Lines the full queue turned away (read back from the journal instead)."""
        with self._progress:
            return self._dropped

    def start(self) -> None:
        self._thread.start()

    def offer(self, start: int, end: int, item: T) -> None:
        try:
            self._queue.put(_Entry(start, end, item), timeout=self._put_timeout)
        except queue.Full:
            with self._progress:
                self._dropped += 1
        if self._queue.qsize() + 1 >= self._batch_size:  # + the line the sleeper holds
            self._hurry.set()  # a batch is waiting: no reason to linger

    def catch_up(self, end: int) -> None:
        """Apply the journal from the checkpoint up to ``end`` (the thread's fallback; also
        called once on open, before :meth:`start`, to replay what a crash left)."""
        items: list[T] = []
        for line in self._journal.read(self._checkpoint, end):
            item = self._decode(line)
            if item is not None:
                items.append(item)
            if len(items) >= self._batch_size:
                self._commit(items, line.end)
                items = []
        self._commit(items, end)

    def wait(self, target: int, timeout: float | None) -> None:
        """Block until the sink has everything before ``target``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        self._wake()
        with self._progress:
            while self._checkpoint < target:
                if not self._thread.is_alive():
                    raise JournalError(f"{self._journal.path}: the replicator is not running")
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TimeoutError(
                        f"not yet written after {timeout}s (safe in the journal "
                        f"{self._journal.path}); last error: {self._error!r}"
                    ) from self._error
                self._progress.wait(0.5 if remaining is None else min(remaining, 0.5))

    def stop(self, timeout: float | None) -> None:
        self._stopping.set()
        self._wake()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        backoff = 0.0
        while not self._stopping.is_set():
            fresh = self._take()
            try:
                self._advance(fresh)
            except Exception as exc:
                self._carry.clear()  # the journal still has them
                with self._progress:
                    self._error = exc
                log.error(
                    "%s: could not apply the journal; retrying", self._journal.path, exc_info=True
                )
                backoff = min(max(2 * backoff, 0.1), 5.0)
                self._stopping.wait(backoff)
            else:
                backoff = 0.0

    def _take(self) -> list[_Entry[T]]:
        """What the queue holds (waiting up to ``poll`` for the first, then sleeping up to
        ``linger`` before taking the rest), at most a batch. No sleep while a batch is already
        queued or a flush or stop waits (its marker may sit behind a backlog)."""
        try:
            entry = self._queue.get(timeout=self._poll)
        except queue.Empty:
            return []
        taken: list[_Entry[T]] = []
        woken = 0
        if entry is None:
            woken += 1
        else:
            taken.append(entry)
            with self._progress:
                hurried = self._wakes > 0
            if self._linger > 0 and not hurried and self._queue.qsize() + 1 < self._batch_size:
                self._hurry.wait(self._linger)
        self._hurry.clear()  # a request that sets it from now on is also counted in _wakes
        while len(taken) < self._batch_size:
            try:
                entry = self._queue.get_nowait()
            except queue.Empty:
                break
            if entry is None:
                woken += 1
            else:
                taken.append(entry)
        if woken:
            with self._progress:
                self._wakes -= woken
        return taken

    def _advance(self, fresh: list[_Entry[T]]) -> None:
        """Apply the queued lines that continue the checkpoint; read a gap back from the
        journal once the queue will not fill it (a poll without news, a gap older than a poll,
        or a full batch waiting behind it)."""
        checkpoint = self._checkpoint
        pending = (e for e in [*self._carry, *fresh] if e.end > checkpoint)
        self._carry = sorted(pending, key=lambda e: e.start)
        run: list[_Entry[T]] = []
        for entry in self._carry[: self._batch_size]:
            if entry.start != (run[-1].end if run else checkpoint):
                break
            run.append(entry)
        if run:
            self._commit([e.item for e in run], run[-1].end)
            self._carry = self._carry[len(run) :]
            self._gap_since = None
            return
        end = self._journal.end
        if end <= checkpoint:
            return
        now = time.monotonic()
        self._gap_since = self._gap_since or now
        waited = now - self._gap_since >= self._poll
        if not fresh or waited or len(self._carry) >= self._batch_size:
            self._gap_since = None
            self.catch_up(end)

    def _commit(self, items: list[T], lsn: int) -> None:
        if not items and lsn == self._checkpoint:
            return
        self._apply(items, lsn)
        self._journal.delete_before(lsn)  # before waking wait(): flushed means gone from disk
        with self._progress:
            self._checkpoint = lsn
            self._error = None
            self._progress.notify_all()

    def _wake(self) -> None:
        try:
            self._queue.put_nowait(None)
        except queue.Full:  # when full, work is queued: the thread is awake and will not linger
            pass
        else:
            with self._progress:
                self._wakes += 1
        self._hurry.set()  # out of the linger's sleep
