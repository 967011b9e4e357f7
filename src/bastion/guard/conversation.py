"""A whole conversation through the rails: every message, by its role.

Checking only the last user turn lets an attack ride in anywhere else: a jailbreak in an
earlier turn followed by "Please continue.", an override in the system text, an instruction
planted in a tool's result. So each message goes through the rails its role is given in the
policy (``roles``; by default system and user text through the input rails, tool results
through the context rails, the assistant's own turns through none):

* input-railed messages are decided like a single text (:meth:`Guard.check`); masked values of
  every message share one vault, so a placeholder means the same value throughout; a role
  with a cap in the policy (``role_caps``; by default ``system: review``) causes at most that
  action: a system prompt the rails would block passes, masked, for review, its results marked
  ``capped`` in their ``meta``;
* context-railed messages are documents (:meth:`Guard.check_context`): a flagged passage is
  stripped, quarantined or the message emptied, as the policy says, and the conversation goes
  on with the cleaned text — the decision is at least ``mask`` (the text changed), never a
  block: the user did not write it.

The decision is the strictest of the messages' actions; its results are every input rail's
result on every input-railed message and the context rails' findings on the passages they
removed, each marked with the message's index and role in its ``meta`` (and the context
rails' with ``stage: context``); ``messages``
is the conversation to pass on (masked and cleaned), and ``text`` the last user message of it.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from bastion.guard.decision import SEVERITY, Decision
from bastion.guard.result import ScanResult
from bastion.guard.vault import Vault
from bastion.types import Conversation, Message

if TYPE_CHECKING:
    from collections.abc import Mapping

    from bastion.guard.pipeline import Guard


def check_conversation(
    guard: Guard,
    conversation: Conversation,
    ctx: Mapping[str, str] | None = None,
    *,
    vault: Vault | None = None,
) -> Decision:
    start = time.perf_counter()
    vault = vault if vault is not None else Vault()
    action = "allow"
    results: list[ScanResult] = []
    passed: list[Message] = []
    for index, message in enumerate(conversation):
        stage = guard.policy.roles.get(message.role, "none")
        where: dict[str, Any] = {"message": index, "role": message.role}
        if stage == "input" and message.content:
            decision = guard.check(message.content, "input", context=dict(ctx or {}), vault=vault)
            here, content = decision.action, decision.text
            found = list(decision.results)
            cap = guard.policy.role_caps.get(message.role)
            # a block by a raw-text rail (the length limit) stops the other rails: nothing was
            # scanned or masked, so it stands whatever the cap
            whole = len(decision.results) == len(guard.policy.rails("input"))
            if cap is not None and SEVERITY[here] > SEVERITY[cap] and whole:
                here, where = cap, {**where, "capped": decision.action}
                if decision.blocked:  # a blocked text was never masked: mask it now
                    content = guard.masked(message.content, decision, vault)
            if content != message.content and SEVERITY[here] < SEVERITY["mask"]:
                here = "mask"  # the text passed on changed: the caller must send the masked one
        elif stage == "context" and message.content:
            cleaned = guard.check_context([message.content])
            content = cleaned.documents[0] if cleaned.documents else ""
            here = "mask" if cleaned.flagged else "allow"
            found = [r for _, _, r in cleaned.removed]
            where = {**where, "stage": "context"}
        else:
            here, content, found = "allow", message.content, []
        results += [replace(r, meta={**r.meta, **where}) for r in found]
        passed.append(Message(message.role, content))
        if SEVERITY[here] > SEVERITY[action]:
            action = here
    text = next((m.content for m in reversed(passed) if m.role == "user"), "")
    elapsed = (time.perf_counter() - start) * 1000
    return Decision(
        action, text, tuple(results), "input", elapsed, vault, messages=Conversation(tuple(passed))
    )
