"""Every example in the docs runs: the README's and every page's under docs/.

* Each ```python block runs in its own interpreter, in a temporary folder, and must exit 0. A
  block right after ``<!-- slow: why -->`` is a ``slow`` test (it loads the packaged models);
  one right after ``<!-- no-run: why -->`` is skipped, for the few that need a server, a GPU or
  long training.
* Each command of a ```bash, ```sh or ```console block that starts with ``bastion `` (in a
  console block, after the ``$ `` prompt) is parsed by the real command with ``--help``
  appended: a page naming a command or an option that does not exist fails.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[\w-]*)")
MARK = re.compile(r"^<!--\s*(?P<kind>slow|no-run)\s*:\s*(?P<why>.*?)\s*-->$")
SHELLS = {"bash", "sh", "console"}


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # of the opening fence, 1-based
    lang: str
    code: str
    mark: str | None  # "slow" or "no-run"
    why: str

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    """The fenced code blocks of a Markdown page, each with the marker comment before it."""
    lines = page.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        indent, start = opening["indent"], index
        index += 1
        body = []
        while index < len(lines) and not lines[index].startswith(f"{indent}```"):
            body.append(lines[index].removeprefix(indent))
            index += 1
        previous = next((ln.strip() for ln in reversed(lines[:start]) if ln.strip()), "")
        mark = MARK.match(previous)
        found.append(
            Block(
                page,
                start + 1,
                opening["lang"].lower(),
                "\n".join(body) + "\n",
                mark["kind"] if mark else None,
                mark["why"] if mark else "",
            )
        )
        index += 1
    return found


def commands(block: Block) -> list[str]:
    """The ``bastion`` command lines of a shell block, continuation lines joined."""
    joined: list[str] = []
    pending = ""
    for raw in block.code.splitlines():
        line = pending + raw
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        pending = ""
        joined.append(line.strip())
    found = []
    for line in joined:
        if block.lang == "console":
            if not line.startswith("$ "):
                continue  # output, not a command
            line = line[2:]
        line = line.removeprefix("$ ")
        if line.startswith("bastion "):
            found.append(line)
    return found


ALL = [block for page in PAGES for block in blocks(page)]
PYTHON = [block for block in ALL if block.lang == "python"]
COMMANDS = [(block, line) for block in ALL if block.lang in SHELLS for line in commands(block)]


def _python_params() -> list[object]:
    params: list[object] = []
    for block in PYTHON:
        marks: list[pytest.MarkDecorator] = []
        if block.mark == "slow":
            marks.append(pytest.mark.slow)
        if block.mark == "no-run":
            marks.append(pytest.mark.skip(reason=f"{block.where}: {block.why}"))
        params.append(pytest.param(block, id=block.where, marks=marks))
    return params


def test_the_docs_have_examples_to_run() -> None:
    # the extractor finding nothing would make every test below pass vacuously
    assert len(PYTHON) >= 3, [b.where for b in PYTHON]
    assert len(COMMANDS) >= 20, [line for _, line in COMMANDS]


def test_every_marked_block_says_why() -> None:
    unexplained = [b.where for b in ALL if b.mark is not None and len(b.why.split()) < 2]
    assert not unexplained, f"a slow or no-run block must say why: {unexplained}"


@pytest.mark.parametrize("block", _python_params())
def test_python_example_runs(block: Block, tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(block.code, encoding="utf-8")
    timeout = 900 if block.mark == "slow" else 300  # the first slow run fetches the models
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"{block.where} failed:\n{done.stderr[-3000:]}"


@pytest.mark.parametrize(
    ("block", "line"), [pytest.param(b, line, id=f"{b.where}: {line}") for b, line in COMMANDS]
)
def test_shell_command_parses(block: Block, line: str) -> None:
    from bastion.cli import app

    args = shlex.split(line, comments=True)[1:]
    result = CliRunner().invoke(app, [*args, "--help"])
    assert result.exit_code == 0, f"{block.where}: `{line}` does not parse:\n{result.output}"
