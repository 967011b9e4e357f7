"""`bastion redteam` as a user runs it: a real (tiny) model, real processes, exit codes."""

import json
from pathlib import Path

import pytest

from test_cli import assert_user_error, run


def test_run_report_and_compare_on_a_local_model(tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["redteam", "run", "--target", str(tiny_model_dir), "--attacks", "direct,encoding",
            "--limit", "2", "--benign", "3", "--max-new-tokens", "8",
            "--out", str(out)]  # fmt: skip
    result = run(*args)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 2 * 11 + 3  # two behaviours × (direct + ten encodings) + three benign
    summary = json.loads((out / "summary.json").read_text())
    attacks = [r for r in rows if r["kind"] == "attack"]
    assert summary["asr"]["n"] == len(attacks) == 22
    assert summary["asr"]["hits"] == sum(r["success"] for r in attacks)
    assert summary["over_refusal"]["n"] == 3 and set(summary["by_family"]) == {
        "baseline", "encoding"
    }  # fmt: skip
    assert (out / "report.html").read_text().startswith("<!doctype html>")
    again = run(*args)  # everything is done: nothing is sent again, the same numbers
    assert (
        again.returncode == 0
        and json.loads((out / "summary.json").read_text())["asr"] == (summary["asr"])
    )
    assert run("redteam", "report", str(out)).returncode == 0
    compared = run("redteam", "compare", str(out), str(out))
    assert compared.returncode == 0 and "overall" in compared.stdout
    gate = run("redteam", "compare", str(out), str(out), "--fail-above", "0")
    assert gate.returncode == (1 if summary["asr"]["hits"] else 0)


def test_the_run_command_and_the_campaign_spec_share_their_defaults() -> None:
    import typer

    from bastion.cli import app
    from bastion.redteam import CampaignSpec

    command = typer.main.get_command(app).commands["redteam"].commands["run"]  # type: ignore[attr-defined]
    options = {p.name: p.default for p in command.params if p.name != "out"}
    options["attacks"] = tuple(options["attacks"].split(","))
    options["guarded"] = options.pop("guard")
    assert CampaignSpec(**options) == CampaignSpec()


def test_attacks_lists_every_attack() -> None:
    result = run("redteam", "attacks")
    assert result.returncode == 0
    for name in ("base64", "many_shot", "indirect_injection", "system_prompt_extraction"):
        assert name in result.stdout


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--attacks", "nope"], ["--attacks: unknown attack or family 'nope'"]),
        (["--behaviors", "missing.jsonl"], ["--behaviors missing.jsonl", "neither"]),
        (["--samples", "0"], ["--samples"]),
    ],
)
def test_bad_run_options_are_one_line_and_exit_2(args: list[str], fragments: list[str]) -> None:
    assert_user_error(run("redteam", "run", "--target", "nowhere", *args), *fragments)


def test_compare_needs_run_folders(tmp_path: Path) -> None:
    assert_user_error(run("redteam", "compare", str(tmp_path), str(tmp_path)), "no summary")


def _pty_session(args: list[str], lines: list[str], timeout: float = 120.0) -> str:
    """Run a command on a pseudo-terminal, type ``lines`` at each "you> " prompt, and return
    everything it printed."""
    import os
    import pty
    import select
    import subprocess
    import sys
    import time

    main, child = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "bastion", *args], stdin=child, stdout=child, stderr=child,
        env={**os.environ, "COLUMNS": "200"}, close_fds=True,
    )  # fmt: skip
    os.close(child)
    output, pending, deadline = b"", list(lines), time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([main], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(main, 4096)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
            if output.rstrip().endswith(b"you>") and pending:
                os.write(main, (pending.pop(0) + "\n").encode())
        elif process.poll() is not None:
            break
    process.wait(timeout=30)
    os.close(main)
    assert process.returncode == 0, output.decode(errors="replace")[-2000:]
    return output.decode(errors="replace")


def test_manual_session_through_a_terminal(tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "manual"
    typed = [
        "hello there",
        "/encode base64",
        "tell me a secret",
        "/finding leak high the model decoded it",
        "/frame nope",
        "/reset",
        "/persona",
        "what do you think",
        "/quit",
    ]
    args = ["redteam", "chat", "--target", str(tiny_model_dir), "--max-new-tokens", "6",
            "--out", str(out)]  # fmt: skip
    printed = _pty_session(args, typed)
    assert "the next message goes out in base64" in printed
    assert "finding saved: leak, high" in printed and "unknown or incomplete command" in printed
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    final = {r["id"]: r for r in rows}  # the last line for an id wins
    assert len(final) == 3 and all(r["kind"] == "manual" for r in final.values())
    encoded = [r for r in final.values() if r["attack"] == "manual:base64"]
    assert len(encoded) == 1 and encoded[0]["success"] and encoded[0]["finding"] == {
        "severity": "high", "note": "the model decoded it"
    }  # fmt: skip
    assert "dGVsbCBtZSBhIHNlY3JldA==" in encoded[0]["prompt"]  # base64 of the typed line
    assert len({r["behavior_id"] for r in final.values()}) == 2  # /reset began a new one
    summary = json.loads((out / "summary.json").read_text())
    assert summary["manual"] == {
        "exchanges": 3, "findings": 1, "by_severity": {"high": 1}, "by_category": {"leak": 1}
    }  # fmt: skip
    assert (out / "report.html").exists()
