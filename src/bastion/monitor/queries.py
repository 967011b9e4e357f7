"""Reading the event store: events, review items, alerts, labels, feedback and the dashboard's
counts (:class:`StoreQueries`, a base of :class:`~bastion.monitor.store.EventStore`; it needs
only the store's engine)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import datetime, timedelta

from sqlalchemy import (
    Engine,
    and_,
    case,
    func,
    literal,
    or_,
    select,
    true,
)

from bastion.monitor.database import (
    EPOCH,
    MAX_BUCKETS,
    Bucket,
    Label,
    ReviewItem,
    StoreError,
    aware,
    event_of,
    review_item_of,
)
from bastion.monitor.events import (
    Alert,
    Event,
    Feedback,
    utcnow,
)
from bastion.monitor.migrations.schema import (
    alerts,
    epoch_us,
    events,
    feedback,
    labels,
    review_items,
)


class StoreQueries:
    """The event store's read side."""

    _engine: Engine
    _dialect: str

    def events(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        user: str | None = None,
        decision: str | None = None,
        limit: int | None = None,
    ) -> list[Event]:
        """Events stamped in [since, until), oldest first."""
        query = select(events).order_by(events.c.ts, events.c.id).limit(limit)
        if since is not None:
            query = query.where(events.c.ts >= aware(since, "since"))
        if until is not None:
            query = query.where(events.c.ts < aware(until, "until"))
        if user is not None:
            query = query.where(events.c.user == user)
        if decision is not None:
            query = query.where(events.c.decision == decision)
        with self._engine.connect() as conn:
            return [event_of(row) for row in conn.execute(query)]

    def iter_events(self, since: datetime | None = None, *, page: int = 1000) -> Iterator[Event]:
        """Every event from ``since`` on, oldest first, fetched ``page`` at a time (keyset
        pagination, so no transaction stays open while the caller works)."""
        query = select(events).order_by(events.c.ts, events.c.id).limit(page)
        if since is not None:
            query = query.where(events.c.ts >= aware(since, "since"))
        after: tuple[datetime, str] | None = None
        while True:
            where = query
            if after is not None:
                ts, last = after
                where = query.where(
                    or_(events.c.ts > ts, and_(events.c.ts == ts, events.c.id > last))
                )
            with self._engine.connect() as conn:
                batch = [event_of(row) for row in conn.execute(where)]
            yield from batch
            if len(batch) < page:
                return
            after = (batch[-1].ts, batch[-1].id)

    def review_items(
        self,
        status: str | None = None,
        reason: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[ReviewItem]:
        """Review items, oldest first, each with its event."""
        event_columns = [column.label(f"e_{column.name}") for column in events.c]
        query = (
            select(review_items, *event_columns)
            .select_from(review_items.outerjoin(events, events.c.id == review_items.c.event_id))
            .order_by(review_items.c.created, review_items.c.id)
            .limit(limit)
            .offset(offset)
        )
        if status is not None:
            query = query.where(review_items.c.status == status)
        if reason is not None:
            query = query.where(review_items.c.reason == reason)
        with self._engine.connect() as conn:
            return [review_item_of(row) for row in conn.execute(query)]

    def review_item(self, item_id: str) -> ReviewItem | None:
        """One review item with its event, or ``None`` when there is no such item."""
        event_columns = [column.label(f"e_{column.name}") for column in events.c]
        query = (
            select(review_items, *event_columns)
            .select_from(review_items.outerjoin(events, events.c.id == review_items.c.event_id))
            .where(review_items.c.id == item_id)
        )
        with self._engine.connect() as conn:
            row = conn.execute(query).first()
        return review_item_of(row) if row is not None else None

    def alerts(self, since: datetime | None = None, limit: int = 100) -> list[Alert]:
        """The most recent alerts (newest first) since ``since``."""
        query = select(alerts).order_by(alerts.c.ts.desc()).limit(limit)
        if since is not None:
            query = query.where(alerts.c.ts >= aware(since, "since"))
        with self._engine.connect() as conn:
            return [Alert(**row._asdict()) for row in conn.execute(query)]

    def labels_for(self, item_id: str) -> list[Label]:
        """Every reviewer's current label for the item, in the order they were given."""
        query = select(labels).where(labels.c.item_id == item_id).order_by(labels.c.ts)
        with self._engine.connect() as conn:
            return [Label(**row._asdict()) for row in conn.execute(query)]

    def feedback_for(self, event_id: str) -> list[Feedback]:
        """Every user report on the event, oldest first (shown to its reviewers)."""
        query = (
            select(feedback)
            .where(feedback.c.event_id == event_id)
            .order_by(feedback.c.ts, feedback.c.id)
        )
        with self._engine.connect() as conn:
            return [Feedback(**row._asdict()) for row in conn.execute(query)]

    def stats(
        self, since: datetime, bucket: timedelta, until: datetime | None = None
    ) -> list[Bucket]:
        """Counts per time bucket over [since, until) (until: now), empty buckets included."""
        since = aware(since, "since")
        until = utcnow() if until is None else aware(until, "until")
        width = bucket // timedelta(microseconds=1)
        if width <= 0:
            raise StoreError(f"stats: bucket must be positive, got {bucket}")
        count = math.ceil((until - since) / bucket)
        if count > MAX_BUCKETS:
            raise StoreError(f"stats: {count} buckets of {bucket}; use a wider bucket")
        index = (epoch_us(events.c.ts) - literal(_epoch_us(since))) // width
        query = (
            select(
                index.label("bucket"),
                func.count(),
                func.sum(case((events.c.decision == "block", 1), else_=0)),
                func.sum(case((events.c.refused, 1), else_=0)),
                func.sum(case((events.c.review, 1), else_=0)),
            )
            .where(events.c.ts >= since, events.c.ts < until)
            .group_by("bucket")
        )
        with self._engine.connect() as conn:
            counts = {int(i): [int(n) for n in ns] for i, *ns in conn.execute(query)}
        return [
            Bucket(since + i * bucket, *counts.get(i, (0, 0, 0, 0))) for i in range(max(count, 0))
        ]

    def top_categories(self, since: datetime | None = None, n: int = 10) -> list[tuple[str, int]]:
        """The ``n`` scanner categories flagged most often since ``since``, with their counts."""
        elements = "json_each" if self._dialect == "sqlite" else "jsonb_array_elements_text"
        values = getattr(func, elements)(events.c.categories).table_valued("value")
        query = (
            select(values.c.value, func.count().label("n"))
            .select_from(events)
            .join(values, true())
            .group_by(values.c.value)
            .order_by(func.count().desc(), values.c.value)
            .limit(n)
        )
        if since is not None:
            query = query.where(events.c.ts >= aware(since, "since"))
        with self._engine.connect() as conn:
            return [(str(value), int(count)) for value, count in conn.execute(query)]


def _epoch_us(value: datetime) -> int:
    """Microseconds since the Unix epoch, as :class:`~bastion.monitor.migrations.schema.epoch_us`
    counts them in SQL."""
    return (value - EPOCH) // timedelta(microseconds=1)
