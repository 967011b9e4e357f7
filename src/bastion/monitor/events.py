"""What the gateway records and the monitor reads: one :class:`Event` per exchange.

The record is the contract between the gateway (:mod:`bastion.serve`), the event store
(:mod:`bastion.monitor.store`), the anomaly detectors (:mod:`bastion.monitor.anomaly`) and the
review queue. Text fields hold **redacted** text (PII masked by the guard before anything is
written); the raw prompt and response are kept only when the policy explicitly allows it
(``raw_prompt`` / ``raw_response``, else ``None``).
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from bastion.errors import BastionError

DECISIONS = ("allow", "log", "mask", "review", "block")
FEEDBACK_KINDS = ("thumbs_down", "thumbs_up", "harmful", "over_refusal")
LABELS = ("safe", "unsafe", "over_refusal")
REVIEW_REASONS = ("review_band", "anomaly", "report")


class UnknownEventError(BastionError):
    """Feedback about an event its user has no record of: no event has that id, or it is
    another user's (the two look the same, so an id tells nobody whose it is)."""


def new_id() -> str:
    return uuid.uuid4().hex


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Event:
    """One request/response exchange through the gateway."""

    user: str  # the user the API key maps to
    model: str  # the model name the client asked for
    prompt: str  # redacted: the last user message (what the input rails judged)
    response: str  # redacted: the answer the client received (a refusal when blocked)
    decision: str  # the strictest of the input and output decisions (see DECISIONS)
    id: str = field(default_factory=new_id)
    ts: datetime = field(default_factory=utcnow)
    blocked_stage: str | None = None  # "input" or "output" when the guard blocked
    refused: bool = False  # the answer is a refusal (the model's own or the guard's)
    input_results: list[dict[str, Any]] = field(default_factory=list)  # ScanResult dicts
    output_results: list[dict[str, Any]] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)  # flagged scanners' categories
    attack_score: float = 0.0  # the highest input-scanner score (0–1)
    review: bool = False  # the decision fell in the policy's review band
    latency_ms: float = 0.0  # the whole request, as the client saw it
    upstream_ms: float = 0.0  # of which: waiting on the model
    prompt_tokens: int = 0
    completion_tokens: int = 0
    stream: bool = False
    status: int = 200  # the HTTP status the client got
    error: str | None = None  # upstream failure, when there was one
    session: str | None = None  # a client-supplied conversation id, when given
    trace_id: str | None = None
    raw_prompt: str | None = None  # only when the policy allows storing raw text
    raw_response: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        row = asdict(self)
        row["ts"] = self.ts.isoformat()
        return row

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> Event:
        data = dict(row)
        ts = data.get("ts")
        if isinstance(ts, str):
            data["ts"] = datetime.fromisoformat(ts)
        return cls(**data)


@dataclass
class Feedback:
    """A user's report on an exchange (``POST /v1/feedback``)."""

    event_id: str
    user: str
    kind: str  # see FEEDBACK_KINDS
    comment: str = ""
    id: str = field(default_factory=new_id)
    ts: datetime = field(default_factory=utcnow)


@dataclass
class Alert:
    """An anomaly a detector raised."""

    detector: str  # e.g. "block_rate", "probing", "near_duplicates", "repetition"
    statistic: str  # what was measured, e.g. "CUSUM of block rate"
    value: float
    threshold: float
    user: str | None = None
    event_id: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=new_id)
    ts: datetime = field(default_factory=utcnow)

    def to_dict(self) -> dict[str, Any]:
        row = asdict(self)
        row["ts"] = self.ts.isoformat()
        return row
