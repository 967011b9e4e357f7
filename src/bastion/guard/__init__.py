"""Runtime rails: a policy's scanners on requests, answers, retrieved documents and whole
conversations.

```python
from bastion.guard import Guard

guard = Guard.default()  # or Guard.from_policy("policy.yaml")
decision = guard.check_input("use key AKIAIOSFODNN7EXAMPLE please")
```

:class:`Guard` runs a :class:`Policy` (:func:`load_policy`, :func:`parse_policy`) and returns a
:class:`Decision` (a :class:`ContextDecision` for documents) holding every scanner's
:class:`ScanResult`; scanners are found by name in :data:`SCANNERS` (a :class:`Scanner`
subclass joins with :func:`register`); masked values go to a :class:`Vault`.

The names are imported on first use (PEP 562): importing one module of the guard — a result
type, the trainers' registry — does not load every scanner, and the models they read, with it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bastion.exports import lazy_exports

if TYPE_CHECKING:
    from bastion.guard.conversation import check_conversation
    from bastion.guard.decision import ContextDecision, Decision
    from bastion.guard.pipeline import Guard
    from bastion.guard.policy import Policy, load_policy, parse_policy
    from bastion.guard.result import ScanResult, Span
    from bastion.guard.scanners import SCANNERS, Scanner, register
    from bastion.guard.vault import Vault
    from bastion.text.normalize import Normalized, normalize

# each public name and the module it comes from
_HOMES = {
    "ContextDecision": "bastion.guard.decision",
    "Decision": "bastion.guard.decision",
    "Guard": "bastion.guard.pipeline",
    "Normalized": "bastion.text.normalize",
    "Policy": "bastion.guard.policy",
    "SCANNERS": "bastion.guard.scanners",
    "ScanResult": "bastion.guard.result",
    "Scanner": "bastion.guard.scanners",
    "Span": "bastion.guard.result",
    "Vault": "bastion.guard.vault",
    "check_conversation": "bastion.guard.conversation",
    "load_policy": "bastion.guard.policy",
    "normalize": "bastion.text.normalize",
    "parse_policy": "bastion.guard.policy",
    "register": "bastion.guard.scanners",
}

__all__ = [
    "SCANNERS",
    "ContextDecision",
    "Decision",
    "Guard",
    "Normalized",
    "Policy",
    "ScanResult",
    "Scanner",
    "Span",
    "Vault",
    "check_conversation",
    "load_policy",
    "normalize",
    "parse_policy",
    "register",
]

__getattr__, __dir__ = lazy_exports(__name__, _HOMES, __all__)
