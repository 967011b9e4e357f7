"""The event store's review side: alerts, review items and reviewers' labels
(:class:`StoreReview`, a base of :class:`~bastion.monitor.store.EventStore`; like
:class:`~bastion.monitor.queries.StoreQueries` it needs only the store's engine). These go to
the database directly, without the journal, so a store opened with ``journal=False`` writes
them too."""

from __future__ import annotations

from dataclasses import asdict

from sqlalchemy import Connection, Engine, select, update

from bastion.monitor.database import Label, StoreError, check_choice, insert_into
from bastion.monitor.events import LABELS, REVIEW_REASONS, Alert, new_id, utcnow
from bastion.monitor.migrations.schema import alerts, labels, review_items


class StoreReview:
    """The event store's review side."""

    _engine: Engine
    _dialect: str

    def add_alert(self, alert: Alert, *, review: bool = True) -> str | None:
        """Store a detector's alert; with an ``event_id`` (and ``review``), open an ``anomaly``
        review item for it and return the item's id."""
        with self._engine.begin() as conn:
            conn.execute(insert_into(alerts, self._dialect).on_conflict_do_nothing(), asdict(alert))
            if review and alert.event_id is not None:
                return open_review_item(conn, self._dialect, alert.event_id, "anomaly")
        return None

    def enqueue_review(self, event_id: str, reason: str) -> str:
        """Open a review item; an event has at most one per reason (its id is returned again).
        Events recorded with ``review=True`` get a ``review_band`` item automatically."""
        check_choice(reason, REVIEW_REASONS, "review reason")
        with self._engine.begin() as conn:
            return open_review_item(conn, self._dialect, event_id, reason)

    def label(
        self, item_id: str, reviewer: str, label: str, better_response: str | None = None
    ) -> Label:
        """Record one reviewer's label for an item; labelling it again replaces the first."""
        check_choice(label, LABELS, "label")
        if not reviewer:
            raise StoreError("a label needs a reviewer")
        values = {"label": label, "better_response": better_response, "ts": utcnow()}
        with self._engine.begin() as conn:
            found = conn.execute(
                update(review_items).where(review_items.c.id == item_id).values(status="labelled")
            ).rowcount
            if not found:
                raise StoreError(f"no review item {item_id!r}")
            conn.execute(
                insert_into(labels, self._dialect)
                .values(id=new_id(), item_id=item_id, reviewer=reviewer, **values)
                .on_conflict_do_update(index_elements=["item_id", "reviewer"], set_=values)
            )
            row = conn.execute(
                select(labels).where(labels.c.item_id == item_id, labels.c.reviewer == reviewer)
            ).one()
        return Label(**row._asdict())


def open_review_item(conn: Connection, dialect: str, event_id: str, reason: str) -> str:
    """The id of the event's review item for ``reason``, opened now if it has none yet."""
    conn.execute(
        insert_into(review_items, dialect)
        .values(id=new_id(), event_id=event_id, reason=reason, status="open", created=utcnow())
        .on_conflict_do_nothing(index_elements=["event_id", "reason"])
    )
    item_id = conn.scalar(
        select(review_items.c.id).where(
            review_items.c.event_id == event_id, review_items.c.reason == reason
        )
    )
    assert item_id is not None
    return str(item_id)
