"""The journal belongs to its store: found from the store wherever a process starts, never
shared by two stores, and not needed by the commands that only watch, so those run beside the
gateway."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from bastion.monitor.events import Alert, Event
from bastion.monitor.journal import JournalOwnerError
from bastion.monitor.journal_home import journal_home
from bastion.monitor.store import EventStore, StoreError
from bastion.serve.config import load_config
from bastion.serve.main import open_sink
from store_crash_worker import record_and_kill


def event(i: int, user: str = "alice") -> Event:
    ts = datetime(2026, 3, 1, 12, 0, i, tzinfo=UTC)
    return Event(user, "m", f"prompt {i}", f"answer {i}", "allow", id=f"ev{i:04d}", ts=ts)


def test_two_postgres_databases_used_from_one_folder_keep_their_own_events(
    new_postgres: Callable[[], str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    first, second = new_postgres(), new_postgres()
    # each gateway dies with its acknowledged events only in its journal
    acked = {
        first: record_and_kill(first, "-", "stalled", acks=40, prefix="first-"),
        second: record_and_kill(second, "-", "stalled", acks=40, prefix="second-"),
    }
    for url, prefix in ((first, "first-"), (second, "second-")):
        with EventStore(url) as store:  # the restart replays its own journal
            ids = {e.id for e in store.iter_events()}
        assert set(acked[url].events) <= ids
        assert all(i.startswith(prefix) for i in ids), ids - set(acked[url].events)


def test_a_store_reopened_from_another_folder_replays_its_journal(
    database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "here").mkdir()
    (tmp_path / "there").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    acked = record_and_kill(database, "-", "stalled", acks=40)
    monkeypatch.chdir(tmp_path / "there")
    with EventStore(database) as store:
        assert set(acked.events) <= {e.id for e in store.iter_events()}
        reported = {i.event_id for i in store.review_items(reason="report")}
    assert set(acked.feedback) <= reported


def test_a_journal_serves_one_store_and_refuses_another(tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    with EventStore(tmp_path / "a.db", journal=journal) as store:
        store.record(event(1))
    with pytest.raises(JournalOwnerError) as refused:
        EventStore(tmp_path / "b.db", journal=journal)
    message = str(refused.value)
    assert f"belongs to the event store sqlite:///{tmp_path / 'a.db'}, " in message
    assert f"not sqlite:///{tmp_path / 'b.db'};" in message
    assert "\n" not in message
    with EventStore(tmp_path / "a.db", journal=journal) as store:  # its own store still opens it
        assert [e.id for e in store.events()] == ["ev0001"]


def test_a_server_journal_lives_in_the_cache_whatever_the_password(tmp_path: Path) -> None:
    one = journal_home(make_url("postgresql+psycopg://app:old-secret@db.internal:5432/events"))
    two = journal_home(make_url("postgresql+psycopg2://app:new-secret@db.internal:5432/events"))
    other = journal_home(make_url("postgresql+psycopg://app:old-secret@db.internal:5432/audit"))
    assert one == two  # a rotated password or another driver: the same journal
    assert one != other
    assert one.parent == tmp_path / "cache" / "journals"  # $BASTION_CACHE (conftest)
    assert one.name.startswith("db.internal-events-") and "secret" not in one.name
    with EventStore(tmp_path / "runs" / "bastion.db") as store:
        assert store.journal == tmp_path / "runs" / "bastion.db.journal"
        owner = (tmp_path / "runs" / "bastion.db.journal" / "owner").read_text()
    assert owner == f"sqlite:///{tmp_path / 'runs' / 'bastion.db'}"


def test_a_store_without_a_journal_reads_beside_the_gateway(database: str) -> None:
    with EventStore(database) as gateway:  # the gateway's journal, by default
        gateway.record(event(1))
        gateway.flush()
        with EventStore(database, journal=False) as monitor:
            assert [e.id for e in monitor.events()] == ["ev0001"]
            monitor.add_alert(Alert("probing", "blocked in window", 6, 5, event_id="ev0001"))
            with pytest.raises(StoreError, match="records nothing"):
                monitor.record(event(2))
            assert monitor.journal is None
        gateway.record(event(3))
        gateway.flush()
        assert [e.id for e in gateway.events()] == ["ev0001", "ev0003"]
        assert [i.reason for i in gateway.review_items()] == ["anomaly"]


def test_a_store_without_a_journal_creates_nothing(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no event store there yet"):
        EventStore(tmp_path / "runs" / "bastion.db", journal=False)
    assert not (tmp_path / "runs").exists()


def test_the_monitor_commands_run_beside_a_running_gateway(tmp_path: Path) -> None:
    db = tmp_path / "bastion.db"
    with EventStore(db) as gateway:
        for i in range(3):
            gateway.record(event(i))
        gateway.flush()
        for args in (
            ["scan", "--since", "2026-03-01T00:00:00", "--save"],
            ["watch", "--duration", "0.2", "--poll", "0.1"],
            ["export", "--kind", "sft", "--out", str(tmp_path / "sft.jsonl")],
            ["purge", "--older-than", "2000-01-01T00:00:00"],
        ):
            result = subprocess.run(
                [sys.executable, "-m", "bastion", "monitor", *args, "--store", str(db)],
                capture_output=True, text=True, timeout=300, check=False, env=dict(os.environ),
            )  # fmt: skip
            assert result.returncode == 0, (args, result.stderr)
        assert len(gateway.events()) == 3


def test_the_gateway_config_names_the_journal(tmp_path: Path) -> None:
    config = tmp_path / "conf" / "gateway.yaml"
    config.parent.mkdir()
    config.write_text(f"store: {tmp_path / 'bastion.db'}\njournal: journal\n")
    store = open_sink(load_config(config))
    try:
        assert isinstance(store, EventStore)
        assert store.journal == tmp_path / "conf" / "journal"  # beside the config file
        assert (tmp_path / "conf" / "journal" / "owner").is_file()
    finally:
        store.close()  # type: ignore[attr-defined]
