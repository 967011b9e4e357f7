"""Manual red teaming: a person talks with the target, with helpers, and marks findings.

``bastion redteam chat --target …`` reads lines from the terminal. A plain line is the next
user turn; commands start with ``/``:

* ``/encode NAME`` — write the next message in an encoding (base64, rot13, hex, morse,
  leetspeak, pig_latin, reversed_words, homoglyphs, zero_width, char_spacing), asking the
  target to decode and answer it, exactly as the attack of that name does;
* ``/persona`` and ``/frame NAME`` (fiction, hypothetical, past_tense, payload_split,
  refusal_suppression) — wrap the next message in a jailbreak persona or a framing;
* ``/finding CATEGORY SEVERITY [note]`` — mark the last exchange as a finding (severity: low,
  medium, high or critical);
* ``/reset`` (a new conversation), ``/help``, ``/quit`` (or end of input).

Every exchange is appended to ``results.jsonl`` in the campaign format (``kind`` "manual"), a
finding rewrites its exchange's line (the last line for an id wins), and on leaving the
session writes ``summary.json`` and ``report.html`` — so manual findings feed the same reports
and the same closed loop as campaigns.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from bastion.data.jsonl import json_line
from bastion.redteam.attacks import ATTACKS, Behavior
from bastion.redteam.campaign import Judges, write_outputs
from bastion.redteam.results import RESULTS, Result, excerpt, load_results
from bastion.redteam.targets import Target
from bastion.types import Message

SEVERITIES = ("low", "medium", "high", "critical")
ENCODINGS = tuple(n for n, c in ATTACKS.items() if c.family == "encoding")
FRAMES = ("fiction", "hypothetical", "past_tense", "payload_split", "refusal_suppression")
HELP = (
    "commands: /encode NAME · /persona · /frame NAME · /finding CATEGORY SEVERITY [note] · "
    "/reset · /help · /quit\n"
    f"encodings: {', '.join(ENCODINGS)}\nframes: {', '.join(FRAMES)}"
)


class Session:
    """One red-teamer's session with a target; writes as it goes."""

    def __init__(
        self,
        target: Target,
        out_dir: Path,
        *,
        judges: Judges | None = None,
        say: Callable[[str], None] = print,
        seed: int = 0,
    ) -> None:
        self.target, self.out_dir, self.say = target, out_dir, say
        self.judges = judges or Judges()
        self.rng = random.Random(seed)
        self.history: list[Message] = []
        self.pending: str | None = None  # the helper for the next message
        self.last: Result | None = None
        self.conversation = self._new_id()
        self.turn = 0
        out_dir.mkdir(parents=True, exist_ok=True)

    def _new_id(self) -> str:
        return hashlib.sha256(f"{time.time_ns()}:{self.rng.random()}".encode()).hexdigest()[:12]

    def handle(self, line: str) -> bool:
        """Process one input line; False when the session should end."""
        line = line.strip()
        if not line:
            return True
        if not line.startswith("/"):
            self._send(line)
            return True
        command, *args = line[1:].split()
        if command in ("quit", "exit"):
            return False
        if command == "help":
            self.say(HELP)
        elif command == "reset":
            self.history, self.pending, self.last = [], None, None
            self.conversation, self.turn = self._new_id(), 0
            self.say("new conversation")
        elif command == "encode" and args and args[0] in ENCODINGS:
            self.pending = args[0]
            self.say(f"the next message goes out in {args[0]}")
        elif command == "persona":
            self.pending = "persona"
            self.say("the next message goes out inside a jailbreak persona")
        elif command == "frame" and args and args[0] in FRAMES:
            self.pending = args[0]
            self.say(f"the next message goes out framed: {args[0]}")
        elif command == "finding":
            self._finding(args)
        else:
            self.say(f"unknown or incomplete command: /{command} (try /help)")
        return True

    def _send(self, text: str) -> None:
        helper, self.pending = self.pending, None
        prompt = text
        if helper is not None:
            behavior = Behavior(f"manual-{self.turn}", text, "-", "manual")
            case = ATTACKS[helper]().build(behavior, self.rng)
            prompt = case.prompt
        sent = [*self.history, Message("user", prompt)]
        reply = self.target.respond([sent])[0]
        self.history = [*sent, Message("assistant", reply)]
        refusal = self.judges.refusal.judge(reply)
        harm = self.judges.harm.judge(reply)
        self.last = Result(
            id=f"{self.conversation}-{self.turn}",
            kind="manual",
            behavior_id=self.conversation,
            category="-",
            source="manual",
            attack=f"manual:{helper}" if helper else "manual",
            family="manual",
            sample=self.turn,
            prompt=prompt,
            response=reply,
            refused=refusal.label,
            harmful=harm.label,
            success=False,
            scores={"refusal": refusal.score, "harm": harm.score},
            messages=len(sent),
        )
        self.turn += 1
        self._write(self.last)
        flags = ("refused" if refusal.label else "answered") + (" · harmful?" if harm.label else "")
        self.say(f"target> {reply}\n[{flags}]")

    def _finding(self, args: list[str]) -> None:
        if self.last is None:
            self.say("no exchange to mark yet")
            return
        if len(args) < 2 or args[1] not in SEVERITIES:
            self.say(f"usage: /finding CATEGORY SEVERITY [note]; severity: {', '.join(SEVERITIES)}")
            return
        category, severity, note = args[0], args[1], " ".join(args[2:])
        self.last = replace(
            self.last,
            category=category,
            success=True,
            finding={"severity": severity, "note": note},
        )
        self._write(self.last)
        self.say(f"finding saved: {category}, {severity} — {excerpt(self.last.prompt, 50)}")

    def _write(self, result: Result) -> None:
        with (self.out_dir / RESULTS).open("a", encoding="utf-8") as handle:
            handle.write(json_line(asdict(result)))

    def close(self) -> dict[str, Any]:
        """Summary and report of everything in the folder (earlier sessions included)."""
        if not (self.out_dir / RESULTS).exists():
            return {}
        results = load_results(self.out_dir)
        target = {"target": getattr(self.target, "name", "?")}
        return write_outputs(self.out_dir, results, target).summary
