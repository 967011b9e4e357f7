"""The event store's tables (SQLAlchemy Core), as the latest migration leaves them.

Core rather than the ORM: the rows already have typed containers (:class:`~bastion.monitor.
events.Event`, ``Feedback``, ``Alert``, the contract other pillars share), so mapped classes
would be a second copy of each to keep in step; and the store's work is bulk
``INSERT .. ON CONFLICT DO NOTHING``, upserts and aggregates, which Core writes directly.

Migrations never import this module (a revision is a frozen snapshot); a test compares the
database the migrations build with these tables, so the two cannot drift apart.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

JSONType = JSON().with_variant(JSONB(), "postgresql")


class UtcDateTime(TypeDecorator[datetime]):
    """Timestamps in UTC, aware on the way out on every backend.

    PostgreSQL keeps ``timestamptz``; SQLite keeps text, which SQLAlchemy writes as
    ``YYYY-MM-DD HH:MM:SS.ffffff`` (naive, so we convert to UTC first), and text in that fixed
    format sorts and compares in time order.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"a timestamp must be timezone-aware (UTC), got naive {value}")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class epoch_us(FunctionElement[int]):
    """Microseconds since the Unix epoch of a :class:`UtcDateTime` column, as an integer."""

    type = BigInteger()
    inherit_cache = True


@compiles(epoch_us, "sqlite")
def _epoch_us_sqlite(element: epoch_us, compiler: SQLCompiler, **kw: Any) -> str:
    column = compiler.process(element.clauses, **kw)
    # whole seconds from strftime, then the six digits after "YYYY-MM-DD HH:MM:SS."
    return (
        f"(CAST(strftime('%s', {column}) AS INTEGER) * 1000000"
        f" + CAST(substr({column}, 21, 6) AS INTEGER))"
    )


@compiles(epoch_us, "postgresql")
def _epoch_us_postgresql(element: epoch_us, compiler: SQLCompiler, **kw: Any) -> str:
    column = compiler.process(element.clauses, **kw)
    return f"CAST(EXTRACT(EPOCH FROM {column}) * 1000000 AS BIGINT)"


events = Table(
    "events",
    metadata,
    Column("id", String, primary_key=True),
    Column("ts", UtcDateTime, nullable=False, index=True),
    Column("user", String, nullable=False, index=True),
    Column("model", String, nullable=False),
    Column("prompt", Text, nullable=False),
    Column("response", Text, nullable=False),
    Column("decision", String, nullable=False, index=True),
    Column("blocked_stage", String),
    Column("refused", Boolean, nullable=False),
    Column("input_results", JSONType, nullable=False),
    Column("output_results", JSONType, nullable=False),
    Column("categories", JSONType, nullable=False),
    Column("attack_score", Double, nullable=False),
    Column("review", Boolean, nullable=False, index=True),
    Column("latency_ms", Double, nullable=False),
    Column("upstream_ms", Double, nullable=False),
    Column("prompt_tokens", Integer, nullable=False),
    Column("completion_tokens", Integer, nullable=False),
    Column("stream", Boolean, nullable=False),
    Column("status", Integer, nullable=False),
    Column("error", Text),
    Column("session", String),
    Column("trace_id", String),
    Column("raw_prompt", Text),
    Column("raw_response", Text),
    Column("meta", JSONType, nullable=False),
)

feedback = Table(
    "feedback",
    metadata,
    Column("id", String, primary_key=True),
    Column("event_id", String, nullable=False, index=True),
    Column("user", String, nullable=False, index=True),
    Column("kind", String, nullable=False),
    Column("comment", Text, nullable=False),
    Column("ts", UtcDateTime, nullable=False, index=True),
)

# Feedback whose event is not in the database (yet): the writer that stores the event moves it
# to ``feedback`` if the event is the reporting user's, and drops it otherwise, or after an hour.
pending_feedback = Table(
    "pending_feedback",
    metadata,
    Column("id", String, primary_key=True),
    Column("event_id", String, nullable=False, index=True),
    Column("user", String, nullable=False, index=True),
    Column("kind", String, nullable=False),
    Column("comment", Text, nullable=False),
    Column("ts", UtcDateTime, nullable=False, index=True),
)

# No foreign key to events: events reach the database asynchronously (a report can arrive
# before its event is written) and retention deletes them explicitly, with their items.
review_items = Table(
    "review_items",
    metadata,
    Column("id", String, primary_key=True),
    Column("event_id", String, nullable=False),
    Column("reason", String, nullable=False),
    Column("status", String, nullable=False),
    Column("created", UtcDateTime, nullable=False),
    UniqueConstraint("event_id", "reason"),
    Index(None, "status", "created"),
)

labels = Table(
    "labels",
    metadata,
    Column("id", String, primary_key=True),
    Column("item_id", String, ForeignKey("review_items.id", ondelete="CASCADE"), nullable=False),
    Column("reviewer", String, nullable=False),
    Column("label", String, nullable=False),
    Column("better_response", Text),
    Column("ts", UtcDateTime, nullable=False),
    UniqueConstraint("item_id", "reviewer"),
)

alerts = Table(
    "alerts",
    metadata,
    Column("id", String, primary_key=True),
    Column("ts", UtcDateTime, nullable=False, index=True),
    Column("detector", String, nullable=False),
    Column("statistic", String, nullable=False),
    Column("value", Double, nullable=False),
    Column("threshold", Double, nullable=False),
    Column("user", String, index=True),
    Column("event_id", String),
    Column("detail", JSONType, nullable=False),
)

# Users erased (SHA-256 of the id) and when: the writer drops their events stamped before that,
# whichever journal replays them.
erasures = Table(
    "erasures",
    metadata,
    Column("user_hash", String, primary_key=True),
    Column("erased_at", UtcDateTime, nullable=False),
)

# How far each journal (named by its random id) has been copied into this database; written in
# the same transaction as the events it covers.
journal_checkpoints = Table(
    "journal_checkpoints",
    metadata,
    Column("journal", String, primary_key=True),
    Column("lsn", BigInteger, nullable=False),
)
