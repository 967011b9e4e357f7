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
