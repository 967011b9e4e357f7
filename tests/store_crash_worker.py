"""Run by the store tests: record events, printing each id once record() has returned (the
acknowledgement), until the test kills this process with SIGKILL.

    python store_crash_worker.py DATABASE_URL JOURNAL_DIR N live|stalled [PREFIX]

``JOURNAL_DIR`` ``-`` means the store's default journal. ``stalled`` first locks the events
table from another connection, so the store's writer cannot insert anything: every
acknowledged event then exists only in the journal when the kill comes. Event ids start with
``PREFIX`` (default ``ev``); every tenth event gets a "harmful" report from its user, printed as
``fb <event id>`` once add_feedback() has returned.
"""

import signal
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bastion.monitor.events import Event, Feedback
from bastion.monitor.store import EventStore


def stall(url: str) -> Any:
    """A connection holding the write lock on the events table (kept open until the kill)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        conn = sqlite3.connect(str(parsed.database), isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")
        return conn
    conn = create_engine(url).connect()
    conn.execute(text("LOCK TABLE events IN ACCESS EXCLUSIVE MODE"))
    return conn


def main(url: str, journal: str, n: int, mode: str, prefix: str = "ev") -> None:
    store = EventStore(url, journal=None if journal == "-" else journal, queue_size=64)
    lock = stall(url) if mode == "stalled" else None
    print("ready", flush=True)
    for i in range(n):
        user = f"user{i % 7}"
        event = Event(user, "m", f"prompt {i}", f"answer {i}", "allow", id=f"{prefix}{i:06d}")
        store.record(event)
        sys.stdout.write(event.id + "\n")
        if i % 10 == 0:
            store.add_feedback(Feedback(event.id, user, "harmful"))
            sys.stdout.write(f"fb {event.id}\n")
        sys.stdout.flush()
    del lock
    store.close()


@dataclass
class Killed:
    """What a worker acknowledged before its SIGKILL."""

    events: list[str]  # event ids
    feedback: list[str]  # the event ids of the reports


def record_and_kill(
    url: str, journal: str, mode: str, acks: int, prefix: str = "ev", cwd: Path | None = None
) -> Killed:
    """Start a worker (in ``cwd``), let it acknowledge ``acks`` events, SIGKILL it."""
    worker = subprocess.Popen(
        [sys.executable, __file__, url, journal, "100000", mode, prefix],
        stdout=subprocess.PIPE,
        text=True,
        cwd=cwd,
    )
    assert worker.stdout is not None
    assert worker.stdout.readline() == "ready\n"
    lines = [worker.stdout.readline() for _ in range(acks)]
    worker.send_signal(signal.SIGKILL)
    rest, _ = worker.communicate(timeout=60)
    assert worker.returncode == -signal.SIGKILL
    lines += rest.splitlines(keepends=True)
    whole = [line.strip() for line in lines if line.endswith("\n")]  # whole lines only
    return Killed(
        [line for line in whole if not line.startswith("fb ")],
        [line[3:] for line in whole if line.startswith("fb ")],
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), *sys.argv[4:])
