"""Secrets: API keys, tokens and private keys, found by their published formats.

Each provider's key format is a fixed prefix and a character-class run of known length, so a
match is both cheap and specific. Credentials written as an assignment (``password = …``,
``api_key: …``) are caught too, when the value is long and random enough (Shannon entropy of
at least 3 bits per character) not to be a placeholder such as ``<your key>`` or ``xxxxxx``.
Matches are masked like personal data (``<AWS_ACCESS_KEY>`` …).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterator
from typing import ClassVar

from bastion.guard.scanners.base import register
from bastion.guard.scanners.patterns import Finder, PatternScanner, regex_finder

# (label, pattern, literals every match holds one of), the more specific first
FORMATS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("PRIVATE_KEY",
     r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |PGP |ENCRYPTED )?PRIVATE KEY(?: BLOCK)?-----",
     ("-----BEGIN",)),
    ("AWS_ACCESS_KEY", r"(?<![A-Z0-9])(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}(?![A-Z0-9])",
     ("AKIA", "ASIA", "ABIA", "ACCA")),
    ("GITHUB_TOKEN",
     r"(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{60,255})",
     ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_")),
    ("GITLAB_TOKEN", r"(?<![A-Za-z0-9_-])glpat-[A-Za-z0-9_-]{20,}", ("glpat-",)),
    ("SLACK_TOKEN", r"(?<![A-Za-z0-9-])xox[abprs]-[A-Za-z0-9-]{10,72}", ("xox",)),
    ("GOOGLE_API_KEY", r"(?<![A-Za-z0-9_-])AIza[0-9A-Za-z_-]{35}(?![A-Za-z0-9_-])", ("AIza",)),
    ("STRIPE_KEY", r"(?<![A-Za-z0-9_])(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{24,99}",
     ("_live_", "_test_")),
    ("HUGGINGFACE_TOKEN", r"(?<![A-Za-z0-9_])hf_[A-Za-z0-9]{34,40}(?![A-Za-z0-9])", ("hf_",)),
    ("API_KEY", r"(?<![A-Za-z0-9_-])sk-(?:[a-z]{2,12}-)?[A-Za-z0-9_-]{20,200}", ("sk-",)),
    ("JWT", r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
     ("eyJ",)),
)  # fmt: skip
ASSIGNMENT_WORDS = ("key", "secret", "token", "passw", "pwd")  # what ASSIGNMENT needs, lowered

ASSIGNMENT = re.compile(
    r"(?i)\b(?:api[_-]?key|access[_-]?key|secret(?:[_-]?key)?|token|passw(?:or)?d|pwd)"
    r"[\"']?\s{0,3}[:=]\s{0,3}[\"']?([^\s\"',;]{8,128})"
)


def entropy(value: str) -> float:
    """Shannon entropy in bits per character."""
    counts = Counter(value)
    return -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())


PLACEHOLDER = re.compile(r"(?i)^[<{$\[(]|your|example|placeholder|changeme|redacted|xxxx|\*\*\*")


def assigned_secrets(text: str) -> Iterator[tuple[int, int]]:
    """The value (not the key name) of each credential assignment that looks random."""
    lowered = text.lower()
    if not any(word in lowered for word in ASSIGNMENT_WORDS):
        return
    for match in ASSIGNMENT.finditer(text):
        value = match.group(1)
        if entropy(value) >= 3.0 and not PLACEHOLDER.search(value):
            yield match.start(1), match.end(1)


@register
class SecretsScanner(PatternScanner):
    """Flags and masks credentials in a text (prompts, tool outputs, answers)."""

    name: ClassVar[str] = "secrets"
    stage: ClassVar[str] = "both"
    what: ClassVar[str] = "secret"

    def __init__(self, *, threshold: float = 0.5) -> None:
        finders: list[tuple[str, Finder]] = [
            (label, regex_finder(re.compile(pattern), require=literals))
            for label, pattern, literals in FORMATS
        ]
        finders.append(("ASSIGNED_SECRET", assigned_secrets))
        super().__init__(finders, threshold=threshold)
