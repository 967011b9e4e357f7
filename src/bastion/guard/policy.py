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
roles:                      # a conversation's messages: which stage's rails each role gets
  system: input             # (the defaults: system and user input, tool context,
  tool: context             #  assistant none)
role_caps:                  # the strictest action a role's message can cause (default:
  system: review            #  system review; null: no cap)
tool_calls: output          # the arguments of the model's tool calls: output rails, or none
```

Each entry names a registered scanner; ``threshold``, ``action`` (block, mask, review, log),
``timeout_ms``, ``fail`` (closed: a scanner that errs or overruns its budget counts as
flagged; open: as clean), ``review`` (true: a score between the scanner's calibrated review
threshold and its threshold sends the text to review instead of letting it pass unseen; a
number: that score instead of the calibrated one) and ``isolate`` (true: run even a bounded
scanner in a worker thread, so that its budget is enforced while it runs; see
:mod:`bastion.guard.pipeline`) are common to all; every other key is an option of that scanner
and
is checked against its constructor. Errors name the file and the key, e.g.
``policy.yaml: input[1].treshold: unknown option for scanner 'blocklist' (known: files,
phrases, threshold)``.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    field_validator,
)

from bastion.config import read_yaml, validate
from bastion.errors import ConfigError
from bastion.guard.scanners import SCANNERS, Scanner
from bastion.types import Role

Action = Literal["block", "mask", "review", "log"]
# which stage's rails each role of a conversation goes through (Guard.check_input on messages)
DEFAULT_ROLES = {"system": "input", "user": "input", "tool": "context", "assistant": "none"}
# the strictest action a role's message can cause: the system prompt is the app's own text,
# and the injection rail reads a role it sets ("You are a helpful assistant.") much as it reads
# a role-play jailbreak; a finding there goes to review (the text passes, masked, and a person
# looks) instead of refusing every request the app sends
DEFAULT_ROLE_CAPS = {"system": "review"}
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
    review: StrictBool | StrictFloat = False

    @field_validator("review", mode="before")
    @classmethod
    def _not_an_int(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):  # `review: 1`: true, or 1.0?
            raise ValueError("must be true, false or a score such as 0.6")
        return value


class _Policy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: list[_Entry] = []
    output: list[_Entry] = []
    context: list[_Entry] = []
    context_action: Literal["strip", "quarantine", "drop"] = "quarantine"
    roles: dict[Role, Literal["input", "context", "none"]] = {}
    role_caps: dict[Role, Action | None] = {}
    tool_calls: Literal["output", "none"] = "output"


@dataclass(frozen=True)
class Rail:
    """One configured scanner on one stage."""

    scanner: Scanner
    action: Action
    timeout_ms: float
    fail_closed: bool
    inline: bool = False  # run in the caller's thread (a bounded scanner not isolated)
    options: tuple[tuple[str, str], ...] = ()  # the scanner's settings in the policy, if any
    # a score at or above this (and below the scanner's threshold) makes the decision at least
    # "review": the text passes and a person looks at it
    review_threshold: float | None = None

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
    roles: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_ROLES))
    tool_calls: str = "output"  # the rails a tool call's arguments go through
    role_caps: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_ROLE_CAPS))

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
    policy = validate(_Policy, raw, source)
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
        roles={**DEFAULT_ROLES, **{str(k): str(v) for k, v in policy.roles.items()}},
        tool_calls=policy.tool_calls,
        role_caps=_role_caps(policy.role_caps),
    )


def _role_caps(written: Mapping[Role, Action | None]) -> dict[str, str]:
    caps: dict[str, str | None] = dict(DEFAULT_ROLE_CAPS)
    caps.update({str(role): cap for role, cap in written.items()})
    return {role: cap for role, cap in caps.items() if cap is not None}  # null: no cap


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
    return Rail(
        scanner,
        entry.action,
        entry.timeout_ms,
        entry.fail == "closed",
        inline,
        settings,
        _review_threshold(entry, scanner, where),
    )


def _review_threshold(entry: _Entry, scanner: Scanner, where: str) -> float | None:
    """``review: true``: the scanner's calibrated review threshold; a number: that score."""
    if entry.review is False:
        return None
    if entry.action not in ("block", "review"):
        raise ConfigError(
            f"{where}.review: a review band sits below a block or review rail's threshold; "
            f"this rail's action is {entry.action!r}"
        )
    if entry.review is True:
        calibrated = scanner.review_threshold
        if calibrated is None:
            raise ConfigError(
                f"{where}.review: scanner {entry.scanner!r} has no calibrated review "
                "threshold; give a score in [0, 1]"
            )
        return min(calibrated, scanner.threshold)
    if not 0.0 <= entry.review <= 1.0:
        raise ConfigError(f"{where}.review: must be true, false or in [0, 1], got {entry.review}")
    return float(entry.review)
