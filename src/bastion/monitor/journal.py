"""The event store's write-ahead journal: append-only JSONL segments, fsynced in groups.

An event is *acknowledged* once its line is on disk (``write`` + ``fdatasync``), before the
database sees it: the database is then a replica the store can rebuild from the journal after a
crash. Concurrent appends share one fsync (group commit, as in PostgreSQL's ``commit_delay`` or
InnoDB's binlog group commit): whoever finds no write in progress becomes the leader, writes
every line queued so far and syncs once; the others wait for it.

Positions are log sequence numbers (LSNs): byte offsets into the journal as if it were one
file. A segment is named after the LSN of its first byte (as Kafka names its log segments), so
rotating to a new file leaves no gap and a reader needs no per-file bookkeeping. Each process
that opens the journal starts a fresh segment, so a line torn by a crash (no newline: it was
never acknowledged) is always the tail of a closed segment, where :meth:`Journal.read` skips it.

A :class:`Replicator` thread ships the journal to a sink (the database), in LSN order, and
keeps the sink's checkpoint; the lines reach it through a bounded queue when they can, and are
read back from the files when they cannot.

After a failed write or fsync the journal refuses every further append: the kernel may have
dropped the dirty pages, and retrying the fsync would report a success that is not one
(Rebello et al., "Can Applications Recover from fsync Failures?", USENIX ATC 2020).
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from bastion.errors import BastionError

SEGMENT_BYTES = 16 * 1024 * 1024

T = TypeVar("T")
log = logging.getLogger(__name__)


class JournalError(Exception):
    """The journal could not make a line durable; nothing more can be appended."""


class JournalLockedError(BastionError):
    """Another open store (this process or another) holds the journal."""


class JournalOwnerError(BastionError):
    """The journal belongs to another event store: replaying it here would copy that store's
    events into this one."""


@dataclass(frozen=True)
class Line:
    """One journal line: its bytes (newline stripped) and the LSNs where it starts and ends."""

    start: int
    end: int
    data: bytes


@dataclass
class _Pending:
    data: bytes
    start: int = -1
    end: int = -1
    done: bool = False


class Journal:
    """A directory of segments ``<first LSN>.jsonl``, an ``id`` file and a ``lock`` file.

    Lines must not contain a newline. :meth:`open` must be called before :meth:`append`; the
    store passes its checkpoint so that new lines always land past it, even if someone deleted
    segments by hand. With an ``owner`` (the store's name), the first open writes it to an
    ``owner`` file and every later open must name the same owner (:class:`JournalOwnerError`
    otherwise), so one journal's lines never replay into another store.
    """

    def __init__(
        self, path: str | Path, *, segment_bytes: int = SEGMENT_BYTES, owner: str | None = None
    ) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self._segment_bytes = segment_bytes
        self._lock_fd = os.open(self.path / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise JournalLockedError(
                f"{self.path}: the journal is in use by another open event store; give each "
                "process that records events its own journal (journal: in the gateway config, "
                "or --journal)"
            ) from None
        try:
            if owner is not None:
                self._claim(owner)
            self.id = self._read_or_create_id()
        except BaseException:
            os.close(self._lock_fd)
            raise
        self._segments = sorted(int(p.stem) for p in self.path.glob("*.jsonl"))
        self._cond = threading.Condition()
        self._pending: list[_Pending] = []
        self._writing = False
        self._broken: BaseException | None = None
        self._fd = -1
        self._start = 0  # LSN of the active segment's first byte
        self._size = 0  # bytes in the active segment, written or being written
        self._durable = 0  # LSN just past the last line fsynced

    def open(self, floor: int = 0) -> None:
        """Start a fresh segment after every existing line and at or past ``floor``."""
        end = floor
        if self._segments:
            last = self._segments[-1]
            end = max(end, last + (self.path / _name(last)).stat().st_size)
        with self._cond:
            self._start_segment(end)

    @property
    def end(self) -> int:
        """The LSN just past the last acknowledged line."""
        with self._cond:
            return self._durable

    def append(self, data: bytes) -> tuple[int, int]:
        """Write one line and return once it is on disk; returns its (start, end) LSNs."""
        if b"\n" in data:
            raise ValueError("a journal line must not contain a newline")
        entry = _Pending(data + b"\n")
        with self._cond:
            self._check_usable()
            self._pending.append(entry)
            while not entry.done:
                if self._writing:
                    self._cond.wait()
                    self._check_usable()
                    continue
                batch, self._pending = self._pending, []
                self._writing = True
                try:
                    if self._size >= self._segment_bytes:
                        self._start_segment(self._start + self._size)
                    self._cond.release()
                    try:
                        self._write(batch)
                    finally:
                        self._cond.acquire()
                except BaseException as exc:
                    self._broken = exc
                    raise JournalError(f"{self.path}: could not write the journal: {exc}") from exc
                finally:
                    self._writing = False
                    if self._broken is None:
                        self._durable = batch[-1].end
                        for done in batch:
                            done.done = True
                    self._cond.notify_all()
        return entry.start, entry.end

    def rotate(self) -> None:
        """Close the active segment (if it holds anything) and start a new one at the same LSN."""
        with self._cond:
            while self._writing:
                self._cond.wait()
            self._check_usable()
            if self._size:
                self._start_segment(self._start + self._size)

    def read(self, start: int, end: int) -> Iterator[Line]:
        """The complete lines that start in [start, end), in order; a torn tail is skipped."""
        with self._cond:
            segments = list(self._segments)
        for i, first in enumerate(segments):
            following = segments[i + 1] if i + 1 < len(segments) else None
            if first >= end:
                return
            if following is not None and following <= start:
                continue
            yield from self._read_segment(first, max(start, first), end)

    def delete_before(self, lsn: int) -> None:
        """Delete the closed segments whose every line lies before ``lsn`` (checkpointed)."""
        with self._cond:
            doomed = [
                first
                for first, following in zip(self._segments, self._segments[1:], strict=False)
                if following <= lsn
            ]
            self._segments = [s for s in self._segments if s not in doomed]
        for first in doomed:
            (self.path / _name(first)).unlink(missing_ok=True)
        if doomed:
            _fsync_dir(self.path)

    def close(self) -> None:
        with self._cond:
            while self._writing:
                self._cond.wait()
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
            if self._broken is None:
                self._broken = JournalError(f"{self.path}: the journal is closed")
        if self._lock_fd >= 0:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = -1

    def _check_usable(self) -> None:
        if self._broken is not None:
            raise JournalError(f"{self.path}: the journal is unusable") from self._broken
        if self._fd < 0:
            raise JournalError(f"{self.path}: call open() before append()")

    def _write(self, batch: list[_Pending]) -> None:
        """Runs in the leader only (``_writing`` set), outside the lock."""
        for entry in batch:
            entry.start = self._start + self._size
            self._size += len(entry.data)
            entry.end = self._start + self._size
        data = memoryview(b"".join(entry.data for entry in batch))
        while data:
            written = os.write(self._fd, data)
            data = data[written:]
        _datasync(self._fd)

    def _start_segment(self, lsn: int) -> None:
        """Called with the lock held and no write in progress."""
        fd = os.open(self.path / _name(lsn), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        _fsync_dir(self.path)  # the new file's name must survive a crash too
        if self._fd >= 0:
            os.close(self._fd)
        self._fd, self._start, self._size = fd, lsn, os.fstat(fd).st_size
        self._durable = lsn + self._size
        if lsn not in self._segments:
            self._segments.append(lsn)

    def _read_segment(self, first: int, start: int, end: int) -> Iterator[Line]:
        try:
            handle = (self.path / _name(first)).open("rb")
        except FileNotFoundError:  # deleted by a checkpoint since we listed it
            return
        with handle:
            handle.seek(start - first)
            lsn = start
            while lsn < end:
                raw = handle.readline()
                if not raw.endswith(b"\n"):  # EOF, or a line torn by a crash: never acked
                    return
                yield Line(lsn, lsn + len(raw), raw[:-1])
                lsn += len(raw)

    def _read_or_create_id(self) -> str:
        """A random id naming this journal in the database's checkpoint table."""
        path = self.path / "id"
        if not path.exists():
            _write_durably(path, uuid.uuid4().hex)
        return path.read_text().strip()

    def _claim(self, owner: str) -> None:
        """Write ``owner`` on first use; refuse a journal another owner wrote."""
        path = self.path / "owner"
        if not path.exists():
            _write_durably(path, owner)
        found = path.read_text().strip()
        if found != owner:
            raise JournalOwnerError(
                f"{self.path}: this journal belongs to the event store {found}, not {owner}; "
                f"give {owner} its own journal (journal: in the gateway config, or --journal), "
                f"or delete {path} if {found} has moved to {owner}"
            )


# fdatasync skips the inode's timestamps, which a crash may lose harmlessly; macOS lacks it.
_datasync = getattr(os, "fdatasync", os.fsync)


def _name(lsn: int) -> str:
    return f"{lsn:020d}.jsonl"


def _write_durably(path: Path, text: str) -> None:
    """Write a small file whole or not at all (temporary file, fsync, rename, fsync the dir)."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)
    _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
