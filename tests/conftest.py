"""Shared fixtures: a private cache per unit test, one tiny chat model per session, and fresh
event-store databases (a SQLite file, or a schema on the test PostgreSQL server)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from bastion.models import HFChatModel
from bastion.models.tiny import build_tiny_chat_model


@pytest.fixture(autouse=True)
def private_cache(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Unit tests never touch the user's cache; slow tests share it (models are big)."""
    if request.node.get_closest_marker("slow") is None:
        monkeypatch.setenv("BASTION_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_chat_model(tmp_path_factory.mktemp("tiny") / "model", seed=0)


@pytest.fixture(scope="session")
def tiny_chat(tiny_model_dir: Path) -> HFChatModel:
    return HFChatModel.from_pretrained(tiny_model_dir, batch_size=3, device="cpu")


POSTGRES = os.environ.get(
    "BASTION_TEST_POSTGRES", "postgresql+psycopg://{user}@127.0.0.1:5432/test"
)


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[Engine | str]:
    """An engine on the test server, or why there is none (the PostgreSQL tests then skip)."""
    errors = []
    for user in ("postgres", "root"):
        engine = create_engine(POSTGRES.format(user=user), isolation_level="AUTOCOMMIT")
        try:
            with engine.connect():
                pass
        except Exception as exc:
            errors.append(f"{user}: {str(exc).splitlines()[0]}")
            engine.dispose()
            continue
        yield engine
        engine.dispose()
        return
    yield "PostgreSQL unreachable at 127.0.0.1:5432 (database test): " + "; ".join(errors)


@pytest.fixture
def new_postgres(postgres_admin: Engine | str) -> Iterator[Callable[[], str]]:
    """Makes fresh, empty PostgreSQL databases (each a schema, dropped afterwards) and returns
    their URLs; skips the test when there is no server."""
    if isinstance(postgres_admin, str):
        pytest.skip(postgres_admin)
    admin = postgres_admin
    schemas: list[str] = []

    def make() -> str:
        schema = f"bastion_test_{uuid.uuid4().hex[:12]}"
        with admin.connect() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
        schemas.append(schema)
        url = admin.url.update_query_dict({"options": f"-csearch_path={schema}"})
        return url.render_as_string(hide_password=False)

    yield make
    with admin.connect() as conn:
        for schema in schemas:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database URL: a SQLite file, or a PostgreSQL schema dropped afterwards."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'bastion.db'}"
    make: Callable[[], str] = request.getfixturevalue("new_postgres")
    return make()
