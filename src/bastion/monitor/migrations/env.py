"""Alembic's entry point: migrate the connection the store hands over (online mode only)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, text

from bastion.monitor.migrations.schema import metadata

# Any constant works: it only has to be the same in every process migrating this database.
ADVISORY_LOCK = 0x62617374696F6E  # "bastion"


def run_migrations(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata)
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Two gateways starting together: the second waits, then finds the schema at head.
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK})
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run the store's migrations through EventStore(url).upgrade()")
run_migrations(connection)
