"""Where the gateway's events go: the :class:`EventSink` protocol and two small sinks.

The real sink is the event store (:class:`bastion.monitor.store.EventStore`), which has this
shape; :class:`MemorySink` is for tests and :class:`JsonlSink` is the fallback ``bastion
serve`` uses when no store can be opened. The gateway calls a sink from worker threads, so a
sink may block briefly (the store waits on its journal's fsync) but should not queue work for
long: the response waits for ``record``. A sink whose ``record`` is quick and never waits on
anything but its own disk write says so with ``quick_record = True``; the gateway then records
an exchange that is the only one open on its event loop (a thread hand-off would cost more).
Feedback and review requests always come from threads.
"""

from __future__ import annotations

import json
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from bastion.monitor.events import Event, Feedback, UnknownEventError


@runtime_checkable
class EventSink(Protocol):
    """Takes events and feedback (return values, such as a row id, are ignored).
    ``add_feedback`` may raise :class:`~bastion.monitor.events.UnknownEventError` for
    feedback about an event that is not the user's (the gateway answers 404). The event store
    never does: it journals every report and drops the ones about other users' events when it
    stores them, so that the answer cannot tell whose an event is."""

    def record(self, event: Event, /) -> object: ...

    def add_feedback(self, feedback: Feedback, /) -> object: ...


@runtime_checkable
class ReviewQueue(Protocol):
    """A sink that can also queue events for human review (the store can)."""

    def enqueue_review(self, event_id: str, reason: str, /) -> object: ...


class MemorySink:
    """Keeps everything in lists, for tests and demos."""

    quick_record = True

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.feedback: list[Feedback] = []
        self.reviews: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def record(self, event: Event) -> None:
        with self._lock:
            self.events.append(event)

    def add_feedback(self, feedback: Feedback) -> None:
        """Only about one of the user's own events, refused at once otherwise (the store
        accepts it and drops it later)."""
        with self._lock:
            if not any(e.id == feedback.event_id and e.user == feedback.user for e in self.events):
                raise UnknownEventError(f"no event {feedback.event_id!r} of user {feedback.user!r}")
            self.feedback.append(feedback)

    def enqueue_review(self, event_id: str, reason: str) -> None:
        with self._lock:
            self.reviews.append((event_id, reason))

    def event(self, event_id: str) -> Event:
        with self._lock:
            return next(e for e in self.events if e.id == event_id)

    def close(self) -> None:
        pass


class JsonlSink:
    """One JSON line per event, feedback or review request, appended to a file (feedback is
    written as it comes: the file cannot say whose an event is)."""

    quick_record = True  # a write and a flush

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a", encoding="utf-8")
        self._lock = threading.Lock()

    def _write(self, row: dict[str, Any]) -> None:
        with self._lock:
            self._file.write(json.dumps(row, default=str) + "\n")
            self._file.flush()

    def record(self, event: Event) -> None:
        self._write({"type": "event", **event.to_dict()})

    def add_feedback(self, feedback: Feedback) -> None:
        self._write({"type": "feedback", **asdict(feedback)})

    def enqueue_review(self, event_id: str, reason: str) -> None:
        self._write({"type": "review", "event_id": event_id, "reason": reason})

    def close(self) -> None:
        with self._lock:
            self._file.close()
