"""Erasure and retention in the event store's database: deleting events with everything that
hangs on them, and the tombstones that keep an erased user's events from coming back.

A tombstone is the SHA-256 of the user id and the time of the erasure (the user id itself is
not kept); the writer drops any event of that user stamped before it, so neither a queue, nor a
replay after a crash, nor another process's journal can bring the rows back
(:meth:`~bastion.monitor.store.EventStore.erase_user` says how the journal is cleaned too).
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, delete, or_, select

from bastion.monitor.database import insert_into
from bastion.monitor.migrations.schema import (
    alerts,
    erasures,
    events,
    feedback,
    labels,
    pending_feedback,
    review_items,
)


def hash_user(user: str) -> str:
    """The user id as a tombstone keeps it: its SHA-256, in hex."""
    return hashlib.sha256(user.encode()).hexdigest()


def add_tombstone(conn: Connection, dialect: str, user: str, at: datetime) -> None:
    """Mark ``user`` erased at ``at`` (a later erasure moves the mark)."""
    conn.execute(
        insert_into(erasures, dialect)
        .values(user_hash=hash_user(user), erased_at=at)
        .on_conflict_do_update(index_elements=["user_hash"], set_={"erased_at": at})
    )


def erased_at(conn: Connection, users: set[str]) -> dict[str, datetime]:
    """When each of these users was erased (the users never erased are left out)."""
    hashes = {hash_user(user): user for user in users}
    tombstones = conn.execute(
        select(erasures.c.user_hash, erasures.c.erased_at).where(erasures.c.user_hash.in_(hashes))
    ).all()
    return {hashes[h]: ts for h, ts in tombstones}


def erased(rows: list[dict[str, Any]], when: dict[str, datetime]) -> set[str]:
    """The ids of the rows stamped at or before their user's erasure (``when``: by user, as
    :func:`erased_at` gives it)."""
    return {r["id"] for r in rows if r["user"] in when and r["ts"] <= when[r["user"]]}


def erase(conn: Connection, user: str) -> int:
    """Delete the user's events, feedback (stored and pending) and alerts, with everything
    attached to them; returns how many events went."""
    return delete_events(
        conn,
        events.c.user == user,
        feedback.c.user == user,
        pending_feedback.c.user == user,
        alerts.c.user == user,
    )


def purge(conn: Connection, cutoff: datetime) -> int:
    """Retention: delete events stamped before ``cutoff`` with their feedback, review items and
    labels, and older alerts, feedback and items; returns how many events went."""
    conn.execute(
        delete(labels).where(
            labels.c.item_id.in_(select(review_items.c.id).where(review_items.c.created < cutoff))
        )
    )
    conn.execute(delete(review_items).where(review_items.c.created < cutoff))
    return delete_events(
        conn,
        events.c.ts < cutoff,
        feedback.c.ts < cutoff,
        pending_feedback.c.ts < cutoff,
        alerts.c.ts < cutoff,
    )


def delete_events(
    conn: Connection,
    which: ColumnElement[bool],
    feedback_too: ColumnElement[bool],
    pending_too: ColumnElement[bool],
    alerts_too: ColumnElement[bool],
) -> int:
    """Delete the events matching ``which`` with everything attached to them, plus the
    feedback (stored and pending) and alerts matching the other three conditions."""
    ids = select(events.c.id).where(which)
    items = select(review_items.c.id).where(review_items.c.event_id.in_(ids))
    conn.execute(delete(labels).where(labels.c.item_id.in_(items)))
    conn.execute(delete(review_items).where(review_items.c.event_id.in_(ids)))
    conn.execute(delete(feedback).where(or_(feedback.c.event_id.in_(ids), feedback_too)))
    conn.execute(
        delete(pending_feedback).where(or_(pending_feedback.c.event_id.in_(ids), pending_too))
    )
    conn.execute(delete(alerts).where(or_(alerts.c.event_id.in_(ids), alerts_too)))
    return conn.execute(delete(events).where(which)).rowcount
