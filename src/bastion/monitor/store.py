"""The event store: every exchange the gateway serves, on SQLite (a file) or PostgreSQL (a URL).

Durability. :meth:`EventStore.record` appends the event to a local :class:`~bastion.monitor.
journal.Journal` and returns once the line is fsynced: that is the acknowledgement, and from
then on the event survives a ``kill -9``. It then offers the event to a bounded queue without
waiting (``put_timeout``, 0 by default); a background thread copies queued events into the
database in batches and, in the same transaction, stores how far into the journal it got (the
checkpoint). When the queue is full, or events reach it out of order, the writer reads the
missing stretch back from the journal instead; on open, the store replays everything past the
checkpoint the same way. Inserting an id that is already there does nothing, so a replay
after a crash between the insert and the checkpoint is harmless. Journal segments wholly before
the checkpoint are deleted.

The journal belongs to its store (:mod:`bastion.monitor.journal_home`): ``<file>.journal``
beside a SQLite database, a folder of the Bastion cache named after a server's URL, or the
folder given as ``journal``; it records which store it serves and refuses any other, so a
replay only ever brings events into their own database. A store opened with
``journal=False`` has none: it reads, and writes only what goes to the database directly
(alerts, review items, labels, erasure, retention), so it can run beside the gateway that
records.

Feedback. :meth:`EventStore.add_feedback` journals the report like an event and returns: no
database round trip, no wait for the event, and the same answer and time whether or not the
event exists or is the user's (an event id tells nobody whose it is). The writer parks it in
``pending_feedback`` and moves it to ``feedback`` once the user's event is in the database
(at once for an event of this store, whose line comes first); the writer that stores an event,
whichever gateway's it is, settles what waits for it. Feedback about another user's event is
dropped, and so is feedback whose event has not come after :data:`PENDING_FEEDBACK_TTL`.

Erasure. :meth:`EventStore.erase_user` deletes the user's rows and leaves a tombstone (the
SHA-256 of the user id and the time): the writer drops any event of that user stamped before
it, so neither this process's queue, nor a replay after a crash, nor another process's journal
can bring the rows back. The local journal is then rotated and its checkpointed segments
deleted, so the erased text is not left on disk either.

The schema (SQLAlchemy Core) is in :mod:`bastion.monitor.migrations.schema`; opening a store
runs its Alembic migrations. :class:`EventStore` is this module's writer and lifecycle on top of
its read side (:mod:`bastion.monitor.queries`) and review side (:mod:`bastion.monitor.review`);
the rows are shaped in :mod:`bastion.monitor.database`, erased in :mod:`bastion.monitor.erasure`.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from sqlalchemy import ColumnElement, Connection, and_, delete, or_, select

from bastion.monitor import migrations
from bastion.monitor.database import (
    EPOCH,
    PENDING_FEEDBACK_TTL,
    REPORT_KINDS,
    SWEEP_SECONDS,
    Bucket,
    Item,
    Label,
    ReviewItem,
    StoreError,
    aware,
    checked_feedback,
    database_url,
    event_row,
    insert_into,
    is_bad_row,
    jsonable,
    store_engine,
)
from bastion.monitor.erasure import add_tombstone, erase, erased, erased_at, purge
from bastion.monitor.events import Event, Feedback, new_id, utcnow
from bastion.monitor.journal import SEGMENT_BYTES, Journal, Line
from bastion.monitor.journal_home import journal_home, store_name
from bastion.monitor.migrations.schema import (
    events,
    feedback,
    journal_checkpoints,
    pending_feedback,
    review_items,
)
from bastion.monitor.queries import StoreQueries
from bastion.monitor.replicator import Replicator
from bastion.monitor.review import StoreReview, open_review_item

__all__ = ["PENDING_FEEDBACK_TTL", "Bucket", "EventStore", "Label", "ReviewItem", "StoreError"]
log = logging.getLogger("bastion.monitor.store")


class EventStore(StoreReview, StoreQueries):
    """Events, feedback, review items, labels and alerts in one database.

    ``target`` is a SQLite file path or a SQLAlchemy URL (``sqlite:///runs/bastion.db``,
    ``postgresql+psycopg://user@host/db``). ``journal`` is a local directory no other open
    store uses: by default ``<database file>.journal`` for SQLite and a folder of the Bastion
    cache named after the URL for a server (see the module docstring). :meth:`record` blocks
    on the journal's fsync, so call it off an event loop. The database gets the events in
    batches, the first of a batch waiting up to ``linger`` seconds for company; :meth:`flush`
    waits until it has them all. ``name`` is the store's URL without its password.

    ``journal=False`` opens the store without a journal, for a process that does not record:
    it runs no migration (the database must hold an up-to-date store already), :meth:`record`
    and :meth:`add_feedback` refuse, and everything else works, including the writes that go
    to the database directly (alerts, review items, labels, erasure, retention). The monitor's
    commands open it so, beside a running gateway.
    """

    def __init__(
        self,
        target: str | Path = "runs/bastion.db",
        *,
        journal: str | Path | Literal[False] | None = None,
        queue_size: int = 10_000,
        put_timeout: float = 0.0,
        batch_size: int = 500,
        poll: float = 0.1,
        linger: float = 0.05,
        segment_bytes: int = SEGMENT_BYTES,
        migrate: bool = True,
    ) -> None:
        url = database_url(target)
        self.name = store_name(url)
        self._engine = store_engine(url, create=journal is not False)
        self._dialect = self._engine.dialect.name
        self._closed = False
        self._journal: Journal | None = None
        self._writer: Replicator[Item] | None = None
        self._next_sweep = 0.0  # monotonic time of the writer's next look at all pending feedback
        # record() is a journal append (and an fsync) that never waits on the database: quick
        # enough for a caller's event loop (EventSink), unless it may wait for queue room
        self.quick_record = put_timeout == 0 and journal is not False
        if journal is False:
            try:
                self._check_schema()
            except BaseException:
                self._engine.dispose()
                raise
            return
        try:
            if migrate:
                self.upgrade()
            self._journal = Journal(
                journal_home(url) if journal is None else journal,
                segment_bytes=segment_bytes,
                owner=self.name,
            )
        except BaseException:
            self._engine.dispose()
            raise
        try:
            with self._engine.connect() as conn:
                checkpoint = conn.scalar(
                    select(journal_checkpoints.c.lsn).where(
                        journal_checkpoints.c.journal == self._journal.id
                    )
                )
            self._journal.open(floor=checkpoint or 0)
            self._writer = Replicator[Item](
                self._journal,
                decode=self._decode,
                apply=self._apply,
                checkpoint=checkpoint or 0,
                queue_size=queue_size,
                put_timeout=put_timeout,
                batch_size=batch_size,
                poll=poll,
                linger=linger,
            )
            self._writer.catch_up(self._journal.end)  # replay what a crash left behind
        except BaseException:
            self._journal.close()
            self._engine.dispose()
            raise
        self._writer.start()

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def journal(self) -> Path | None:
        """The journal's folder (``None``: opened with ``journal=False``)."""
        return None if self._journal is None else self._journal.path

    def upgrade(self) -> None:
        """Bring the database to the latest schema (done on open unless ``migrate=False``)."""
        with self._engine.connect() as conn:
            migrations.upgrade(conn)
            conn.commit()

    def flush(self, timeout: float | None = 30.0) -> None:
        """Wait until every event and report recorded so far is in the database
        (``TimeoutError`` if the database stays away longer; they are still safe in the
        journal). Nothing to wait for without a journal."""
        if self._journal is not None and self._writer is not None:
            self._writer.wait(self._journal.end, timeout)

    def close(self, timeout: float | None = 30.0) -> None:
        """Flush, stop the writer and release the journal; unwritten events stay journalled
        and are replayed by the next store opened on it."""
        if self._closed:
            return
        self._closed = True
        try:
            self.flush(timeout)
        finally:
            if self._writer is not None:
                self._writer.stop(timeout)
            if self._journal is not None:
                self._journal.close()
            self._engine.dispose()

    def __enter__(self) -> EventStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def dropped(self) -> int:
        """Events the full queue turned away (the writer read them from the journal instead)."""
        return 0 if self._writer is None else self._writer.dropped

    # -- writing -----------------------------------------------------------------------------

    def record(self, event: Event) -> None:
        """Make ``event`` durable (journal + fsync: the acknowledgement), then offer it to the
        writer's queue, waiting at most ``put_timeout``."""
        row = event_row(event)
        self._append(jsonable(row), row, "record()")

    def add_feedback(self, item: Feedback) -> None:
        """Accept a user's report on one of their own events: it is journalled (durable on
        return, as an event is) and the writer stores it once the event is in the database; a
        harmful, over-refusal or thumbs-down report then opens a review item (reason
        ``report``). Feedback about an event that is not the user's, or that has not come
        after :data:`PENDING_FEEDBACK_TTL`, is dropped then (a log line says so): the caller
        gets the same answer, as fast, for an unknown id and another user's event.
        ``JournalError`` if the journal cannot take it."""
        report = checked_feedback(item)
        self._append({"feedback": jsonable(asdict(report))}, report, "add_feedback()")

    def _append(self, doc: dict[str, Any], item: Item, what: str) -> None:
        if self._closed:
            raise StoreError(f"{what} on a closed EventStore")
        if self._journal is None or self._writer is None:
            raise StoreError(f"{what}: the store was opened with journal=False: it records nothing")
        line = json.dumps(doc, allow_nan=False, separators=(",", ":")).encode()
        start, end = self._journal.append(line)
        self._writer.offer(start, end, item)

    def erase_user(self, user: str, timeout: float | None = 30.0) -> int:
        """Delete the user's events and everything attached to them (feedback, review items,
        labels, alerts), for good; returns how many events went. See the module docstring.

        On PostgreSQL a batch the writer was committing during the erasure did not see the
        tombstone yet: the deletion runs once more after the flush, for what this store's
        writer brought in meanwhile."""
        now = utcnow()
        self.flush(timeout)  # what this store journalled so far is in the database: deleted too
        with self._engine.begin() as conn:
            add_tombstone(conn, self._dialect, user, now)
            count = erase(conn, user)
        if self._journal is not None and self._writer is not None:
            self.flush(timeout)  # queued events of the user meet the tombstone
            with self._engine.begin() as conn:
                count += erase(conn, user)
            self._journal.rotate()
            self._journal.delete_before(self._writer.checkpoint)
        return count

    def purge(self, older_than: datetime) -> int:
        """Retention: delete events stamped before ``older_than`` with their feedback, review
        items and labels, and older alerts, feedback and items; returns how many events went."""
        cutoff = aware(older_than, "older_than")
        with self._engine.begin() as conn:
            return purge(conn, cutoff)

    # -- the writer's side (runs in the replicator thread) ------------------------------------

    def _decode(self, line: Line) -> Item | None:
        try:
            doc = json.loads(line.data)
            if isinstance(doc, dict) and "feedback" in doc:
                return checked_feedback(Feedback(**doc["feedback"]))
            return event_row(Event.from_dict(doc))
        except (ValueError, TypeError, KeyError, StoreError) as exc:
            self._reject({"line": line.data.decode(errors="replace")}, exc)
            return None

    def _apply(self, items: list[Item], lsn: int) -> None:
        """Store ``items`` and move the checkpoint to ``lsn`` in one transaction. A batch the
        database refuses is retried item by item, and an item it still refuses is set aside in
        ``rejected.jsonl`` beside the journal rather than blocking every later event."""
        try:
            with self._engine.begin() as conn:
                self._store(conn, items)
                self._save_checkpoint(conn, lsn)
            return
        except Exception as exc:
            if not items or not is_bad_row(exc):
                raise
        for item in items:
            try:
                with self._engine.begin() as conn:
                    self._store(conn, [item])
            except Exception as exc:
                if not is_bad_row(exc):
                    raise
                self._reject(jsonable(item if isinstance(item, dict) else asdict(item)), exc)
        with self._engine.begin() as conn:
            self._save_checkpoint(conn, lsn)

    def _store(self, conn: Connection, items: list[Item]) -> None:
        rows = [item for item in items if isinstance(item, dict)]
        reports = [item for item in items if isinstance(item, Feedback)]
        self._insert_events(conn, rows)
        if reports:
            when = erased_at(conn, {f.user for f in reports})
            held = [asdict(f) for f in reports if f.ts > when.get(f.user, EPOCH)]
            if held:
                conn.execute(
                    insert_into(pending_feedback, self._dialect).on_conflict_do_nothing(), held
                )
        arrived = {row["id"] for row in rows} | {f.event_id for f in reports}
        if arrived:
            self._settle_feedback(
                conn, and_(pending_feedback.c.event_id.in_(arrived), events.c.id.is_not(None))
            )
        if time.monotonic() >= self._next_sweep:  # what raced another writer, and the expired
            self._next_sweep = time.monotonic() + SWEEP_SECONDS
            expired = pending_feedback.c.ts < utcnow() - PENDING_FEEDBACK_TTL
            self._settle_feedback(conn, or_(events.c.id.is_not(None), expired))

    def _settle_feedback(self, conn: Connection, which: ColumnElement[bool]) -> None:
        """Take the pending feedback matching ``which`` out of waiting: into ``feedback`` when
        its event is the user's (a report opens a review item), dropped otherwise."""
        found = conn.execute(
            select(pending_feedback, events.c.user.label("owner"))
            .select_from(
                pending_feedback.outerjoin(events, events.c.id == pending_feedback.c.event_id)
            )
            .where(which)
        ).all()
        for row in found:
            item = Feedback(**{k: v for k, v in row._asdict().items() if k != "owner"})
            if row.owner == item.user:
                conn.execute(
                    insert_into(feedback, self._dialect).on_conflict_do_nothing(), asdict(item)
                )
                if item.kind in REPORT_KINDS:
                    open_review_item(conn, self._dialect, item.event_id, "report")
            elif row.owner is None:
                log.info("feedback %s dropped: no event %s came within %s",
                         item.id, item.event_id, PENDING_FEEDBACK_TTL)  # fmt: skip
            else:
                log.info("feedback %s dropped: event %s is not its user's", item.id, item.event_id)
        if found:
            done = [row.id for row in found]
            conn.execute(delete(pending_feedback).where(pending_feedback.c.id.in_(done)))

    def _insert_events(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        conn.execute(insert_into(events, self._dialect).on_conflict_do_nothing(), rows)
        doomed = erased(rows, erased_at(conn, {row["user"] for row in rows}))
        if doomed:
            conn.execute(delete(events).where(events.c.id.in_(doomed)))
        flagged = [
            {"id": new_id(), "event_id": r["id"], "reason": "review_band", "status": "open",
             "created": utcnow()}
            for r in rows
            if r["review"] and r["id"] not in doomed
        ]  # fmt: skip
        if flagged:
            conn.execute(
                insert_into(review_items, self._dialect).on_conflict_do_nothing(
                    index_elements=["event_id", "reason"]
                ),
                flagged,
            )

    def _save_checkpoint(self, conn: Connection, lsn: int) -> None:
        assert self._journal is not None  # the writer runs only with a journal
        conn.execute(
            insert_into(journal_checkpoints, self._dialect)
            .values(journal=self._journal.id, lsn=lsn)
            .on_conflict_do_update(index_elements=["journal"], set_={"lsn": lsn})
        )

    def _reject(self, doc: dict[str, Any], exc: BaseException) -> None:
        assert self._journal is not None  # the writer runs only with a journal
        path = self._journal.path / "rejected.jsonl"
        log.error("event store: the database refused an event (%s); kept in %s", exc, path)
        line = json.dumps({"error": str(exc), **doc}, default=str) + "\n"
        with path.open("a") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())

    # -- helpers -----------------------------------------------------------------------------

    def _check_schema(self) -> None:
        """A store opened without a journal does not migrate: the database must be at head."""
        with self._engine.connect() as conn:
            found, head = migrations.revision(conn), migrations.head(conn)
        if found is None:
            raise StoreError(f"{self.name}: no event store there yet; start the gateway on it "
                             "(bastion serve) or record into it first")  # fmt: skip
        if found != head:
            raise StoreError(f"{self.name}: the event store is at revision {found}, this Bastion "
                             f"needs {head}; open it once for writing (bastion serve) to "
                             "migrate it")  # fmt: skip
