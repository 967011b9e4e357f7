"""The guard's YAML policy: which scanners run on which stage, with what threshold and action.

```yaml
input:                      # the user's messages, before the model
  - scanner: length
    max_chars: 20000
  - scanner: blocklist
    files: [phrases.txt]
    action: block
  - scanner: secrets
    action: mask
output:                     # the model's answer
  - scanner: pii
    action: mask
    entities: [EMAIL, PHONE, CREDIT_CARD]
context:                    # retrieved documents, web pages, tool outputs
  - scanner: blocklist
    phrases: ["ignore previous instructions"]
context_action: quarantine  # strip | quarantine | drop, for a flagged passage
```

Each entry names a registered scanner; ``threshold``, ``action`` (block, mask, review, log),
``timeout_ms`` and ``fail`` (closed: a scanner that errs or overruns its budget counts as
flagged; open: as clean) and ``isolate`` (true: run even a bounded scanner in a worker thread,
so that its budget is enforced while it runs; see :mod:`bastion.guard.pipeline`) are common to
all; every other key is an option of that scanner and
is checked against its constructor. Errors name the file and the key, e.g.
``policy.yaml: input[1].treshold: unknown option for scanner 'blocklist' (known: files,
phrases, threshold)``.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bastion.config import read_yaml
from bastion.errors import ConfigError
from bastion.guard.scanners import SCANNERS, Scanner

Action = Literal["block", "mask", "review", "log"]
Stage = Literal["input", "output", "context"]
STAGES: tuple[Stage, ...] = ("input", "output", "context")


class _Entry(BaseModel):
    model_config = ConfigDict(extra="allow")

    scanner: str
    action: Action = "block"
    threshold: float | None = Field(None, ge=0, le=1)
    timeout_ms: float = Field(1000.0, gt=0)
    fail: Literal["closed", "open"] = "closed"
    isolate: bool = False


class _Policy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: list[_Entry] = []
    output: list[_Entry] = []
    context: list[_Entry] = []
    context_action: Literal["strip", "quarantine", "drop"] = "quarantine"


@dataclass(frozen=True)
class Rail:
    """One configured scanner on one stage."""

    scanner: Scanner
    action: Action
    timeout_ms: float
    fail_closed: bool
    inline: bool = False  # run in the caller's thread (a bounded scanner not isolated)
    options: tuple[tuple[str, str], ...] = ()  # the scanner's settings in the policy, if any

    @property
    def default_settings(self) -> bool:
        """The scanner runs as shipped (no option, no threshold of the policy's own)."""
        return not self.options


@dataclass(frozen=True)
class Policy:
    input: tuple[Rail, ...]
    output: tuple[Rail, ...]
    context: tuple[Rail, ...]
    context_action: str
    source: str

    def rails(self, stage: Stage) -> tuple[Rail, ...]:
        rails: tuple[Rail, ...] = getattr(self, stage)
        return rails


def default_policy_path() -> Path:
    return Path(str(resources.files("bastion.guard") / "default_policy.yaml"))


def load_policy(path: str | Path | None = None) -> Policy:
    """Read and validate a policy file (the shipped default when ``path`` is None)."""
    path = Path(path) if path is not None else default_policy_path()
    raw = read_yaml(path, "the policy")
    return parse_policy(raw if raw is not None else {}, source=str(path), base=path.parent)


def parse_policy(raw: Any, *, source: str = "policy", base: Path | None = None) -> Policy:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the policy must be a mapping of stages")
    try:
        policy = _Policy.model_validate(raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(
            f"[{part}]" if isinstance(part, int) else str(part) for part in error["loc"]
        ).replace(".[", "[")
        raise ConfigError(f"{source}: {where}: {error['msg']}") from None
    built = {
        stage: tuple(
            _rail(entry, f"{source}: {stage}[{index}]", base)
            for index, entry in enumerate(getattr(policy, stage))
        )
        for stage in STAGES
    }
    return Policy(
        input=built["input"],
        output=built["output"],
        context=built["context"],
        context_action=policy.context_action,
        source=source,
    )


def _rail(entry: _Entry, where: str, base: Path | None) -> Rail:
    cls = SCANNERS.get(entry.scanner)
    if cls is None:
        known = ", ".join(sorted(SCANNERS))
        raise ConfigError(f"{where}.scanner: unknown scanner {entry.scanner!r} (known: {known})")
    options = dict(entry.model_extra or {})
    accepted = [
        name
        for name, p in inspect.signature(cls.__init__).parameters.items()
        if name != "self" and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    for key in options:
        if key not in accepted:
            raise ConfigError(
                f"{where}.{key}: unknown option for scanner {entry.scanner!r} "
                f"(known: {', '.join(sorted(accepted))})"
            )
    if "files" in options and base is not None:  # phrase files are relative to the policy
        options["files"] = [str(base / f) for f in options["files"]]
    if entry.threshold is not None:
        options["threshold"] = entry.threshold
    try:
        scanner = cls(**options)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from None
    inline = scanner.is_bounded() and not entry.isolate
    settings = tuple(sorted((key, repr(value)) for key, value in options.items()))
    return Rail(scanner, entry.action, entry.timeout_ms, entry.fail == "closed", inline, settings)
