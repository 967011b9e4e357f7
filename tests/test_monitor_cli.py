"""`bastion monitor` as a user runs it: scan history, export reviewed data, erase, purge."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bastion.monitor.store import EventStore
from bastion.monitor.traffic import START, generate


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bastion", "monitor", *args],
        capture_output=True, text=True, timeout=300, check=False, env=dict(os.environ),
    )  # fmt: skip


def test_scan_finds_the_planted_prober_and_saves_alerts(tmp_path: Path) -> None:
    db = tmp_path / "bastion.db"
    traffic = generate(2_000, seed=3, plant=["prober"], users=200)
    with EventStore(db) as store:
        for event in traffic.events:
            store.record(event)
    result = run("scan", "--store", str(db), "--since", START.isoformat(), "--save")
    assert result.returncode == 0, result.stderr
    assert "probing" in result.stdout
    prober = traffic.planted["prober"].user
    assert prober is not None and prober in result.stdout
    with EventStore(db) as store:
        saved = store.alerts(limit=1000)
        assert any(a.detector == "probing" and a.user == prober for a in saved)
        assert store.review_items(reason="anomaly")  # anomalies enter the review queue


def test_export_erase_purge_and_bad_input(tmp_path: Path) -> None:
    db = tmp_path / "bastion.db"
    traffic = generate(300, seed=1, users=20)
    with EventStore(db) as store:
        for event in traffic.events:
            store.record(event)
        store.flush()
        first = traffic.events[0]
        item = store.enqueue_review(first.id, "report")
        store.label(item, "rita", "safe")
    out = tmp_path / "sft.jsonl"
    result = run("export", "--kind", "sft", "--out", str(out), "--store", str(db))
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    if first.refused:
        assert rows == []
    else:
        assert [r["meta"]["event_id"] for r in rows] == [first.id]
    result = run("erase", "--user", first.user, "--store", str(db))
    assert result.returncode == 0 and "erased" in result.stdout
    with EventStore(db) as store:
        assert store.events(user=first.user) == []
        left = len(store.events())
    assert left == 300 - sum(e.user == first.user for e in traffic.events)
    result = run("purge", "--older-than", "2000-01-01", "--store", str(db))
    assert result.returncode == 0 and "purged 0 event(s)" in result.stdout
    result = run("purge", "--older-than", "1d", "--store", str(db))  # all of 2025 goes
    assert result.returncode == 0 and f"purged {left} event(s)" in result.stdout
    for args, fragment in (
        (("scan", "--store", str(db), "--since", "yesterday"), "--since 'yesterday'"),
        (("export", "--kind", "all", "--out", str(out), "--store", str(db)), "--kind"),
    ):
        bad = run(*args)
        assert bad.returncode == 2 and fragment in bad.stderr and "Traceback" not in bad.stderr
