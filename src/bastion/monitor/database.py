"""The event store's database side: its engine, the row shapes of its tables, and the helpers
that convert and check rows (:mod:`bastion.monitor.store` and :mod:`bastion.monitor.queries`
use them; erasure is in :mod:`bastion.monitor.erasure`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields, is_dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Row, Table, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, StatementError

from bastion.errors import BastionError
from bastion.monitor.events import (
    DECISIONS,
    FEEDBACK_KINDS,
    Event,
    Feedback,
)

EVENT_FIELDS = tuple(f.name for f in fields(Event))
REPORT_KINDS = ("thumbs_down", "harmful", "over_refusal")  # feedback that opens a review item
MAX_BUCKETS = 100_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
PENDING_FEEDBACK_TTL = timedelta(hours=1)  # an event stored elsewhere comes in milliseconds
SWEEP_SECONDS = 60.0  # how often the writer looks over all the pending feedback
Item = dict[str, Any] | Feedback  # what a journal line holds: an event's row, or a report


class StoreError(BastionError):
    """A request the store cannot carry out; the message says what to change."""


@dataclass(frozen=True)
class ReviewItem:
    id: str
    event_id: str
    reason: str  # see REVIEW_REASONS
    status: str  # "open" or "labelled"
    created: datetime
    event: Event | None  # None while the event is still on its way to the database


@dataclass(frozen=True)
class Label:
    id: str
    item_id: str
    reviewer: str
    label: str  # see LABELS
    better_response: str | None
    ts: datetime


@dataclass(frozen=True)
class Bucket:
    """Counts of the events stamped in [start, start + bucket)."""

    start: datetime
    total: int
    blocked: int  # decision "block"
    refused: int
    review: int  # fell in the policy's review band


def database_url(target: str | Path) -> URL:
    """The store's URL; a SQLite file by its absolute path, so that the store and its journal
    are the same whatever the working directory."""
    text = str(target)
    if "://" not in text:
        path = Path(text).expanduser().resolve()
        return URL.create("sqlite", database=str(path))
    url = make_url(text)
    if url.get_backend_name() not in ("sqlite", "postgresql"):
        raise StoreError(f"the event store runs on SQLite or PostgreSQL, not {url.drivername}")
    if url.get_backend_name() == "sqlite":
        if url.database in (None, "", ":memory:"):
            raise StoreError(
                "the event store needs a SQLite *file* (its writer thread has its own "
                "connection, which an in-memory database would not share)"
            )
        if not url.query.get("uri"):  # a plain path (a file: URI names its own)
            url = url.set(database=str(Path(str(url.database)).expanduser().resolve()))
    return url


def store_engine(url: URL, *, create: bool = True) -> Engine:
    """An engine on the store; ``create=False`` for a SQLite file that must exist already."""
    if url.get_backend_name() == "postgresql":
        return create_engine(url, pool_pre_ping=True)
    assert url.database is not None
    if create:
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    elif not url.query.get("uri") and not Path(url.database).is_file():
        raise StoreError(f"{url.database}: no event store there yet; start the gateway on it "
                         "(bastion serve) or record into it first")  # fmt: skip
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _pragmas(connection: Any, record: Any) -> None:
        cursor = connection.cursor()
        # WAL lets the dashboard read while the writer writes; FULL syncs every commit, since
        # a checkpoint that a power cut rolls back would point past deleted journal segments.
        for pragma in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON"):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    return engine


def event_row(event: Event) -> dict[str, Any]:
    """The event as a row, checked; NUL characters become U+FFFD (PostgreSQL refuses them,
    and a prompt must not be able to keep its own exchange out of the log)."""
    if event.decision not in DECISIONS:
        raise StoreError(f"Event.decision must be one of {', '.join(DECISIONS)}, "
                         f"got {event.decision!r}")  # fmt: skip
    if not isinstance(event.ts, datetime) or event.ts.tzinfo is None:
        raise StoreError(f"Event.ts must be a timezone-aware datetime, got {event.ts!r}")
    # _scrub copies the nested lists and dicts, as asdict() would, without its deep copy
    return {name: _scrub(getattr(event, name)) for name in EVENT_FIELDS}


def event_of(row: Row[Any], prefix: str = "") -> Event:
    """The event in a row of ``events`` (its columns named ``prefix + field``)."""
    data = row._mapping
    return Event(**{name: data[prefix + name] for name in EVENT_FIELDS})


def review_item_of(row: Row[Any]) -> ReviewItem:
    """The review item in a row of ``review_items`` joined to its event's ``e_`` columns."""
    data = row._mapping
    event = event_of(row, "e_") if data["e_id"] is not None else None
    return ReviewItem(
        data["id"], data["event_id"], data["reason"], data["status"], data["created"], event
    )


def checked_feedback(item: Feedback) -> Feedback:
    """The report, checked, with NUL characters replaced (as :func:`event_row` does)."""
    if not isinstance(item.ts, datetime):
        item = Feedback(**{**asdict(item), "ts": datetime.fromisoformat(str(item.ts))})
    if item.ts.tzinfo is None:
        raise StoreError(f"Feedback.ts must be a timezone-aware datetime, got {item.ts!r}")
    check_choice(item.kind, FEEDBACK_KINDS, "feedback kind")
    return Feedback(**_scrub(asdict(item)))


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd") if "\x00" in value else value
    if isinstance(value, dict):
        return {_scrub(k): _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    if is_dataclass(value) and not isinstance(value, type):  # in meta, as asdict() allowed
        return _scrub(asdict(value))
    return value


def jsonable(row: dict[str, Any]) -> dict[str, Any]:
    """The row with its datetimes as ISO 8601 strings, for a journal line."""
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()}


def is_bad_row(exc: BaseException) -> bool:
    """The database refused the data itself (not its connection, not the schema)."""
    if isinstance(exc, IntegrityError | DataError):
        return True
    if isinstance(exc, StatementError):
        return not isinstance(exc, DBAPIError)  # e.g. a value no column type can bind
    return isinstance(exc, OverflowError | ValueError | TypeError)


def check_choice(value: str, allowed: Sequence[str], what: str) -> None:
    """A :class:`StoreError` naming ``what`` unless ``value`` is one of ``allowed``."""
    if value not in allowed:
        raise StoreError(f"{what} must be one of {', '.join(allowed)}, got {value!r}")


def aware(value: datetime, name: str) -> datetime:
    """``value``, if it is timezone-aware; a :class:`StoreError` naming ``name`` otherwise."""
    if value.tzinfo is None:
        raise StoreError(f"{name} must be timezone-aware (e.g. datetime.now(UTC)), got {value}")
    return value


def insert_into(table: Table, dialect: str) -> postgresql.Insert | sqlite.Insert:
    """``INSERT`` into ``table`` with the ``ON CONFLICT`` clause of the backend ``dialect``."""
    if dialect == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)
