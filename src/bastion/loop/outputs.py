"""What each stage of the loop hands to the stages after it (and to ``done.json``).

One small dataclass per stage. ``to_dict`` is the JSON a stage's ``done.json`` holds under
``outputs`` (the report copies some of it into ``report.json``, so its shape is kept exactly);
``from_dict`` reads it back when a resumed run skips the stage.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, Self

from bastion.loop.gate import GateDecision


class StageOutputs(Protocol):
    def to_dict(self) -> dict[str, Any]: ...

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self: ...


@dataclass(frozen=True)
class Baseline:
    """The current model's attack success and over-refusal on the test half."""

    model: str
    asr: dict[str, Any]  # a Rate's to_dict()
    over_refusal: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "asr": self.asr, "over_refusal": self.over_refusal}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        return cls(data["model"], data["asr"], data["over_refusal"])


@dataclass(frozen=True)
class Harvested:
    """How many failures each source gave, and how many production prompts were dropped for
    matching a test prompt."""

    by_source: dict[str, dict[str, int]]
    dropped_test_overlap: int
    failures: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "by_source": self.by_source,
            "dropped_test_overlap": self.dropped_test_overlap,
            "failures": self.failures,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        return cls(data["by_source"], data["dropped_test_overlap"], data["failures"])


@dataclass(frozen=True)
class DataCounts:
    """The training data written (:func:`bastion.loop.dataset.write_data`'s counts)."""

    pairs: int
    sft: int
    failures: int
    by_source: dict[str, int]
    by_kind: dict[str, int]
    chosen_from: dict[str, int]
    dropped: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return {
            "pairs": self.pairs, "sft": self.sft, "failures": self.failures,
            "by_source": self.by_source, "by_kind": self.by_kind,
            "chosen_from": self.chosen_from, "dropped": self.dropped,
        }  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        return cls(
            data["pairs"], data["sft"], data["failures"], data["by_source"], data["by_kind"],
            data["chosen_from"], data["dropped"],
        )  # fmt: skip


@dataclass(frozen=True)
class Aligned:
    """The adapters trained (paths relative to the run folder; None: nothing trained, and
    ``reason`` says why) and what training reported."""

    adapters: list[str] | None
    reason: str | None = None
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def trained(self) -> bool:
        return bool(self.adapters)

    def to_dict(self) -> dict[str, Any]:
        reason = {} if self.reason is None else {"reason": self.reason}
        return {"adapters": self.adapters, **reason, **self.summary}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        rest = dict(data)
        return cls(rest.pop("adapters"), rest.pop("reason", None), rest)


@dataclass(frozen=True)
class Evaluated:
    """The candidate's attack success and over-refusal on the test half, or why there was no
    candidate to measure."""

    asr: dict[str, Any] | None = None
    over_refusal: dict[str, Any] | None = None
    skipped: str | None = None

    def to_dict(self) -> dict[str, Any]:
        if self.skipped is not None:
            return {"skipped": self.skipped}
        return {"asr": self.asr, "over_refusal": self.over_refusal}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        if "skipped" in data:
            return cls(skipped=str(data["skipped"]))
        return cls(data["asr"], data["over_refusal"])


@dataclass(frozen=True)
class Gated:
    """The gate's decision, and the model the next iteration starts from (its adapters,
    relative to the run folder when inside it)."""

    decision: GateDecision
    chain: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {**self.decision.to_dict(), "chain": self.chain}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        return cls(GateDecision.from_dict(data), list(data["chain"]))


@dataclass(frozen=True)
class GuardRefresh:
    """How many successful attack prompts were offered to the known-attack index and how many
    were new to it, or why the guard was not refreshed."""

    offered: int = 0
    added: int = 0
    index: str | None = None
    skipped: str | None = None

    def to_dict(self) -> dict[str, Any]:
        if self.skipped is not None:
            return {"skipped": self.skipped}
        return {"offered": self.offered, "added": self.added, "index": self.index}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        if "skipped" in data:
            return cls(skipped=str(data["skipped"]))
        return cls(data["offered"], data["added"], data["index"])


@dataclass(frozen=True)
class Reported:
    """The iteration's report page (relative to the run folder)."""

    html: str

    def to_dict(self) -> dict[str, Any]:
        return {"html": self.html}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        return cls(data["html"])
