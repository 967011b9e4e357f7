"""Benign requests in the vocabulary of an override, written here as the injection classifier's
negatives: "ignore the typo", "disregard my last e-mail", "from now on answer in French", "you
are now my chess coach".

The pinned corpora hold almost none, so a classifier trained on them alone learns that "ignore"
or "from now on" is an attack. What is ignored or changed here is the user's own material or the
answer's style — never the model's instructions, rules or system prompt, which is what the
positives override.
"""

from __future__ import annotations

import random

from bastion.guard.training.examples import Example

_OVERRIDE_VERBS = ("Ignore", "Disregard", "Forget", "Skip", "Never mind", "Scratch", "Drop")
_OWN_MATERIAL = (
    "the typo in my last message", "my previous email about the invoice",
    "the first paragraph of the draft", "what I said earlier about the dates",
    "the formatting in the template", "the second bullet point", "the spelling mistakes",
    "my earlier question about taxes", "the last sentence I wrote", "the attached file for now",
    "the old address in my signature", "the comments in the spreadsheet",
    "the numbers I gave you yesterday", "the part about the weekend trip",
)  # fmt: skip
_FOLLOW_UPS = (
    "and rewrite the conclusion.", "I meant Tuesday, not Thursday.",
    "and just summarize the rest.", "the amounts were right after all.",
    "and focus on the introduction.", "sorry for the confusion.", "and check the grammar only.",
    "we will discuss it at the meeting.", "and make the tone friendlier.",
)  # fmt: skip
_STYLE_CHANGES = (
    "From now on, answer in bullet points.", "From now on, reply in French, please.",
    "From now on, keep your answers under 100 words.", "From now on, use metric units.",
    "From now on, call me Sam.", "Going forward, include sources for each claim.",
    "For the rest of this chat, explain things as if I were twelve.",
    "Please stop using emojis in your replies.", "Switch to a more formal tone from here on.",
)  # fmt: skip
_ROLES = (
    ("You are now my Spanish tutor.", "Correct this sentence: yo es estudiante."),
    ("Pretend you are a tour guide in Rome.", "Describe the Colosseum for a family."),
    ("Act as a travel agent.", "Plan three days in Lisbon on a budget."),
    ("Pretend you are a pirate.", "Tell my kids a bedtime story about treasure."),
    ("You are a patient chess coach.", "Explain why castling early is useful."),
    ("Act as an interviewer for a junior accountant role.", "Ask me the first question."),
    ("Play the role of a grumpy wizard in my tabletop game.", "Greet the adventurers."),
    ("Imagine you are a nutritionist.", "Suggest a week of vegetarian lunches."),
)


def benign_overrides(per_group: int = 4) -> list[Example]:
    """Benign requests that sound like overrides, as negatives (deterministic; each material
    phrase, style change or role is one group, so dev holds phrasings never trained on)."""
    examples: list[Example] = []
    for material in _OWN_MATERIAL:
        draw = random.Random("override:" + material)
        for _ in range(per_group):
            verb, follow = draw.choice(_OVERRIDE_VERBS), draw.choice(_FOLLOW_UPS)
            examples.append(
                Example(f"{verb} {material}, {follow}", 0, "bastion-benign-overrides",
                        "override:" + material)
            )  # fmt: skip
    for change in _STYLE_CHANGES:
        draw = random.Random("style:" + change)
        for _ in range(per_group):
            task = draw.choice([f for f in _FOLLOW_UPS if f.startswith("and")])[4:]
            examples.append(
                Example(f"{change} Now {task}", 0, "bastion-benign-overrides", "style:" + change)
            )
    for role, task in _ROLES:
        examples.append(Example(f"{role} {task}", 0, "bastion-benign-overrides", "role:" + role))
    return examples
