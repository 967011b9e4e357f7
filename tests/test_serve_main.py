"""``bastion serve`` as a process: a SIGTERM (what systemd, Docker and Kubernetes send) stops it
gracefully and closes the event store, so the database holds every answered exchange."""

from __future__ import annotations

import json
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx

from bastion.serve.fakes import fake_openai_app, serving


def test_sigterm_closes_the_store_before_the_process_exits(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with serving(fake_openai_app("Hello.")) as upstream:
        config = tmp_path / "gateway.yaml"
        config.write_text(
            json.dumps(
                {
                    "port": port,
                    "upstream": {"url": f"{upstream}/v1"},
                    "keys": {"sk-test": {"user": "alice"}},
                    "store": str(tmp_path / "bastion.db"),
                }
            )
        )
        bastion = Path(sys.executable).with_name("bastion")
        proc = subprocess.Popen(
            [str(bastion), "serve", "--config", str(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while True:
                assert proc.poll() is None and time.monotonic() < deadline
                try:
                    httpx.get(f"{base}/healthz")
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            answer = httpx.post(
                f"{base}/v1/chat/completions",
                headers={"authorization": "Bearer sk-test"},
                json={"model": "m", "messages": [{"role": "user", "content": "Hi"}]},
            )
            event_id = answer.json()["bastion"]["event_id"]
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(60) == 128 + signal.SIGTERM  # not killed by the signal: it exited
        finally:
            proc.kill()
            proc.wait()
        assert proc.stdout is not None
        log = proc.stdout.read().decode()
        assert "Uvicorn running on" in log
        assert "POST /v1/chat/completions" not in log  # no access log by default: see events
    with sqlite3.connect(tmp_path / "bastion.db") as db:  # read directly: no journal replay
        assert db.execute("select id from events").fetchall() == [(event_id,)]
