"""Where an event store keeps its journal: a place that follows from the store, not from the
working directory.

A journal holds events its store has acknowledged but not yet written to the database, so it
must be found again by whoever opens that store next, from wherever they start, and must never
be found by another store (a replay would copy the events there). SQLite keeps it beside the
database file (``<file>.journal``); a server's journal goes under the Bastion cache
(``$BASTION_CACHE/journals/<host>-<database>-<digest>``), named after the store's URL without
its password. The journal writes :func:`store_name` into its folder on first use and refuses
any other store afterwards (:class:`~bastion.monitor.journal.JournalOwnerError`).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from sqlalchemy.engine import URL

from bastion.cache import cache_dir


def store_name(url: URL) -> str:
    """The URL naming the store's database: no password (a journal folder, its owner file and
    error messages show it) and no driver (psycopg and psycopg2 reach the same database)."""
    plain = URL.create(
        url.get_backend_name(),
        username=url.username,
        host=url.host,
        port=url.port,
        database=url.database,
        query=url.query,
    )  # URL.set() cannot take a password away: None there means "unchanged"
    return plain.render_as_string(hide_password=False)


def journal_home(url: URL) -> Path:
    """The default journal of the store at ``url`` (an absolute path)."""
    if url.get_backend_name() == "sqlite" and url.database:
        return Path(url.database + ".journal").resolve()
    name = store_name(url)
    digest = hashlib.sha256(name.encode()).hexdigest()[:16]
    readable = "-".join(_safe(part) for part in (url.host or "local", url.database or "default"))
    return cache_dir() / "journals" / f"{readable}-{digest}"


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._]+", "_", text)[:40]
