"""Alembic migrations of the event store, shipped in the package.

:func:`upgrade` brings a database to the latest revision; :class:`~bastion.monitor.store.
EventStore` calls it on open, so users never need an ``alembic.ini``. To write a new revision,
change :mod:`.schema`, then, connected to a scratch database at head::

    from alembic import command
    command.revision(alembic_config(connection), "what changed", autogenerate=True,
                     rev_id="0002")

and review ``versions/v0002_what_changed.py`` (a revision never imports :mod:`.schema`: it is
a frozen snapshot; a test checks that head and :mod:`.schema` agree).
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

HERE = Path(__file__).parent


def alembic_config(connection: Connection) -> Config:
    """A configuration that migrates ``connection`` (what ``alembic.ini`` would otherwise say)."""
    config = Config()
    config.set_main_option("script_location", str(HERE))
    config.set_main_option("file_template", "v%%(rev)s_%%(slug)s")  # importable module names
    config.attributes["connection"] = connection
    return config


def upgrade(connection: Connection, revision: str = "head") -> None:
    """Migrate the database behind ``connection`` to ``revision``; the caller commits."""
    command.upgrade(alembic_config(connection), revision)


def revision(connection: Connection) -> str | None:
    """The revision the database is at (``None``: no event store there), read without writing."""
    return MigrationContext.configure(connection).get_current_revision()


def head(connection: Connection) -> str | None:
    """The latest revision this version of Bastion ships."""
    return ScriptDirectory.from_config(alembic_config(connection)).get_current_head()
