"""Run by test_monitor_store.py: record events, printing each id once record() has returned
(the acknowledgement), until the test kills this process with SIGKILL.

    python store_crash_worker.py DATABASE_URL JOURNAL_DIR N live|stalled

``stalled`` first locks the events table from another connection, so the store's writer cannot
insert anything: every acknowledged event then exists only in the journal when the kill comes.
"""

import sqlite3
import sys
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bastion.monitor.events import Event
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


def main(url: str, journal: str, n: int, mode: str) -> None:
    store = EventStore(url, journal=journal, queue_size=64)
    lock = stall(url) if mode == "stalled" else None
    print("ready", flush=True)
    for i in range(n):
        event = Event(f"user{i % 7}", "m", f"prompt {i}", f"answer {i}", "allow", id=f"ev{i:06d}")
        store.record(event)
        sys.stdout.write(event.id + "\n")
        sys.stdout.flush()
    del lock
    store.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4])
