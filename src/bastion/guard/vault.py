"""Placeholders for masked values, and the vault that can put them back.

When the guard masks personal data or a secret, each distinct value becomes a numbered
placeholder (``<EMAIL_1>``, ``<EMAIL_2>``, ``<PHONE_1>`` …): the same value gets the same
placeholder, so the model can still tell "write to <EMAIL_1>, copy <EMAIL_2>" apart, and the
application can restore the values in the model's answer for the same user with
:meth:`Vault.restore`. A :class:`~bastion.guard.pipeline.Decision` carries the vault of its
request; pass one vault to several checks (``guard.check_input(text, vault=v)``) to share
numbering across a conversation.

The vault holds the raw values, so it stays in memory with the request: it is left out of
``Decision.to_dict()`` (what the CLI prints, what the gateway logs and stores), its ``repr``
shows only a count, and it cannot be serialized with JSON.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable

from bastion.guard.result import Span

_PLACEHOLDER = re.compile(r"<([A-Z][A-Z0-9_]*?)_(\d+)>")


class Vault:
    """Numbered placeholders for masked values, and the values behind them."""

    def __init__(self) -> None:
        self._placeholders: dict[tuple[str, str], str] = {}  # (label, value) -> placeholder
        self._values: dict[str, str] = {}  # placeholder -> value
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def placeholder(self, label: str, value: str) -> str:
        """The placeholder of ``value`` (a new number for a value not seen before)."""
        with self._lock:
            key = (label, value)
            if key not in self._placeholders:
                self._counts[label] = self._counts.get(label, 0) + 1
                name = f"<{label}_{self._counts[label]}>"
                self._placeholders[key] = name
                self._values[name] = value
            return self._placeholders[key]

    def restore(self, text: str) -> str:
        """``text`` with every placeholder of this vault replaced by its value (placeholders
        it does not hold are left as they are)."""
        return _PLACEHOLDER.sub(lambda m: self._values.get(m.group(0), m.group(0)), text)

    def copy(self) -> Vault:
        """A vault holding this one's values now (later placeholders stay out of it)."""
        other = Vault()
        with self._lock:
            other._placeholders = dict(self._placeholders)
            other._values = dict(self._values)
            other._counts = dict(self._counts)
        return other

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Vault({len(self)} values)"

    def __getstate__(self) -> dict[str, object]:  # pickled only between worker processes
        state = dict(self.__dict__)
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()


class StreamRestorer:
    """:meth:`Vault.restore` for a text that arrives in pieces: a piece's tail that may be the
    start of a placeholder (``<EMA``) waits for the next piece (at most ``longest`` characters),
    so a placeholder split across pieces is restored whole."""

    _PARTIAL = re.compile(r"<[A-Z0-9_]*\Z")

    def __init__(self, vault: Vault, longest: int = 64) -> None:
        self.vault, self.longest, self._held = vault, longest, ""

    def feed(self, piece: str) -> str:
        text = self._held + piece
        partial = self._PARTIAL.search(text)
        cut = partial.start() if partial and len(text) - partial.start() <= self.longest else None
        self._held = text[cut:] if cut is not None else ""
        return self.vault.restore(text[:cut] if cut is not None else text)

    def close(self) -> str:
        text, self._held = self._held, ""
        return self.vault.restore(text)


def mask(text: str, spans: Iterable[Span], vault: Vault | None = None) -> str:
    """``text`` with every span replaced by a placeholder (spans must not overlap): numbered
    from ``vault`` when given, else ``<LABEL>``."""
    out, at = [], 0
    for span in sorted(spans, key=lambda s: s.start):
        value = text[span.start : span.end]
        name = vault.placeholder(span.label, value) if vault is not None else f"<{span.label}>"
        out += [text[at : span.start], name]
        at = span.end
    out.append(text[at:])
    return "".join(out)
