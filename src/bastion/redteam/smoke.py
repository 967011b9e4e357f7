"""The smoke run: a handful of harmful and benign prompts through a real model, judged for refusal.

It shows in a minute where a model stands: how often it refuses requests it should refuse
(harmful behaviours from HarmBench) and how often it refuses requests it should answer
(benign-but-sensitive prompts from the over-refusal set). Prompts are chosen by a stable hash,
so every run on every machine asks the same ones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from bastion.data.jsonl import write_jsonl
from bastion.data.registry import CorpusItem, load_corpus
from bastion.data.splits import stable_fraction
from bastion.errors import BastionError
from bastion.judges import RefusalPhraseJudge
from bastion.models.base import ChatModel

HARMFUL_SOURCE = "harmbench-val"
BENIGN_SOURCE = "rho-overrefusal"


@dataclass(frozen=True, slots=True)
class SmokeRow:
    id: str
    kind: str  # "harmful" (should be refused) or "benign" (should be answered)
    category: str
    prompt: str
    response: str
    refused: bool
    reason: str

    @property
    def correct(self) -> bool:
        return self.refused == (self.kind == "harmful")


@dataclass(frozen=True, slots=True)
class SmokeSummary:
    harmful: int
    harmful_refused: int
    benign: int
    benign_refused: int

    @classmethod
    def of(cls, rows: list[SmokeRow]) -> SmokeSummary:
        harmful = [r for r in rows if r.kind == "harmful"]
        benign = [r for r in rows if r.kind == "benign"]
        return cls(
            len(harmful),
            sum(r.refused for r in harmful),
            len(benign),
            sum(r.refused for r in benign),
        )

    def line(self) -> str:
        return (
            f"harmful refused: {self.harmful_refused}/{self.harmful} · "
            f"benign refused (over-refusal): {self.benign_refused}/{self.benign}"
        )


def check_smoke(harmful: int, benign: int, max_new_tokens: int) -> None:
    """The smoke run's counts, checked before minutes of loading and generation."""
    if harmful < 0 or benign < 0 or harmful + benign == 0:
        raise BastionError("--harmful and --benign must be >= 0, and at least one positive")
    if max_new_tokens < 1:
        raise BastionError(f"--max-new-tokens must be at least 1, got {max_new_tokens}")


def pick(items: list[CorpusItem], count: int, salt: str = "smoke") -> list[CorpusItem]:
    """``count`` items chosen by a stable hash of their text (the same on every machine)."""
    return sorted(items, key=lambda item: stable_fraction(item.text, salt=salt))[:count]


def smoke_prompts(harmful: int, benign: int) -> list[tuple[str, CorpusItem]]:
    chosen = [("harmful", item) for item in pick(load_corpus(HARMFUL_SOURCE), harmful)]
    return chosen + [("benign", item) for item in pick(load_corpus(BENIGN_SOURCE), benign)]


def run_smoke(
    model: ChatModel,
    prompts: list[tuple[str, CorpusItem]],
    *,
    max_new_tokens: int = 96,
    batch_size: int = 8,
    on_batch: Callable[[int], None] | None = None,
) -> list[SmokeRow]:
    """Generate greedily for each prompt and judge each reply for refusal."""
    judge = RefusalPhraseJudge()
    rows: list[SmokeRow] = []
    for start in range(0, len(prompts), batch_size):
        batch = prompts[start : start + batch_size]
        replies = model.generate([item.text for _, item in batch], max_new_tokens=max_new_tokens)
        for (kind, item), reply in zip(batch, replies, strict=True):
            verdict = judge.judge(reply)
            rows.append(
                SmokeRow(
                    item.id,
                    kind,
                    item.category or "-",
                    item.text,
                    reply,
                    verdict.label,
                    verdict.reason,
                )
            )
        if on_batch is not None:
            on_batch(len(batch))
    return rows


def save_rows(rows: list[SmokeRow], out_dir: Path) -> Path:
    path = out_dir / "results.jsonl"
    write_jsonl(path, (asdict(r) for r in rows))
    return path
