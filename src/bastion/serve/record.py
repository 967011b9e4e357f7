"""What the event store keeps of an exchange: texts redacted for storage (:class:`Redactor`)
and cut to a size (:func:`capped`), the rails that ask for review (:func:`near_threshold`),
token estimates and categories."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bastion.guard.pipeline import Decision, Guard, run_order
from bastion.guard.policy import STAGES, Policy, Rail, parse_policy
from bastion.guard.result import ScanResult

STORAGE_SCANNERS = ("pii", "secrets")  # masked in every text the store keeps


@dataclass(frozen=True)
class Verdict:
    """The exchange's guard outcome as the client and the store see it."""

    decision: str
    flagged: list[str]
    review: list[str]  # "stage:scanner" for rails in the review band or with action review

    def to_dict(self, event_id: str, blocked_stage: str | None) -> dict[str, Any]:
        return {
            "event_id": event_id,
            "decision": self.decision,
            "blocked_stage": blocked_stage,
            "flagged": self.flagged,
            "review": bool(self.review),
        }


class Redactor:
    """Masks PII and secrets in a text for storage (:data:`STORAGE_SCANNERS`, as shipped),
    whatever the policy let through; ``store_raw`` adds the raw text beside it, never instead.

    A scan the policy's own rails already made on the same text is not repeated: a ``mask``
    rail of the same scanner with the shipped settings finds exactly what this scan would,
    so when its result stands (it did not fail, and found nothing or the decision masked)
    the text already is what this scan would return. With the default policy that is the
    secrets scan of the prompt and both scans of the answer.
    """

    def __init__(self, policy: Policy) -> None:
        self._rails: dict[str, list[Rail]] = {s: run_order(policy.rails(s)) for s in STAGES}
        # a guard for every set of scans a text may still need, built now: loading a scanner
        # (the PII scanner imports spaCy when it is installed) must not stall a request
        self._guards: dict[frozenset[str], Guard] = {
            needed: Guard(
                parse_policy(
                    {"input": [{"scanner": name, "action": "mask"} for name in sorted(needed)]},
                    source="storage redaction",
                )
            )
            for size in range(1, len(STORAGE_SCANNERS) + 1)
            for needed in map(frozenset, itertools.combinations(STORAGE_SCANNERS, size))
        }

    @property
    def bounded(self) -> bool:
        """Whether every scan it may run takes a bounded time (no NER model, say)."""
        return all(guard.runs_inline("", "input") for guard in self._guards.values())

    def __call__(self, text: str, decision: Decision | None = None) -> str:
        if not text:
            return text
        needed = frozenset(STORAGE_SCANNERS) - self.covered(text, decision)
        if not needed:
            return text
        return self._guards[needed].check(text, "input").text

    def covered(self, text: str, decision: Decision | None) -> frozenset[str]:
        """The storage scanners whose masking ``decision`` already applied to ``text``: each
        judged by the result of its own shipped-settings ``mask`` rail, never by another rail
        of the same scanner."""
        if decision is None or decision.text != text:
            return frozenset()
        masked = decision.action in ("mask", "review")  # a block leaves the text as it was
        pairs = zip(self._rails.get(decision.stage, []), decision.results, strict=False)
        return frozenset(
            rail.scanner.name
            for rail, result in pairs
            if rail.scanner.name in STORAGE_SCANNERS
            and rail.action == "mask"
            and rail.default_settings
            and result.scanner == rail.scanner.name
            and not result.failed
            and (masked or not result.flagged)
        )


def near_threshold(decision: Decision, rails: Sequence[Rail], band: float) -> list[str]:
    """Scanners of a decision that ask for review: a ``review`` rail that flagged, or a
    ``block``/``review`` rail whose score is within ``band`` below its threshold (a near miss
    a person should look at)."""
    found = []
    for rail, result in zip(run_order(rails), decision.results, strict=False):
        if rail.scanner.name != result.scanner or rail.action not in ("block", "review"):
            continue
        threshold = rail.scanner.threshold
        in_band = not result.flagged and result.score > 0 and threshold - band <= result.score
        if in_band or (result.flagged and rail.action == "review"):
            found.append(result.scanner)
    return found


def capped(text: str, limit: int, name: str, meta: dict[str, Any]) -> str:
    """``text`` as the store keeps it: NUL characters as U+FFFD (PostgreSQL's text refuses
    them, and the event would miss the database), cut at ``limit`` characters with the whole
    text's length and SHA-256 in ``meta`` (``<name>_chars``, ``<name>_sha256``) when longer."""
    text = text.replace("\x00", "\ufffd")
    if len(text) <= limit:
        return text
    meta[f"{name}_chars"] = len(text)
    meta[f"{name}_sha256"] = hashlib.sha256(text.encode(errors="surrogatepass")).hexdigest()
    return text[:limit] + f" […cut: {len(text) - limit} more characters]"


def estimate_tokens(text: str) -> int:
    """About four characters a token (OpenAI's rule of thumb), for upstreams without usage."""
    return (len(text) + 3) // 4


def category_of(result: ScanResult) -> str:
    """The category a flagged scan names in its ``meta``, else the scanner's name."""
    category = result.meta.get("category")
    return str(category) if isinstance(category, str) else str(result.scanner)
