"""``run_loop``: the closed loop, one iteration after another, every stage cached on disk.

Each iteration runs eight stages, each in its own folder ``OUT/iter-N/<stage>/`` that ends
with a ``done.json`` marker (written last, atomically, with the stage's outputs and time):

1. ``baseline`` — a red-team campaign on both halves of the behaviours and of the over-refusal
   prompts, and the capability questions, on the current model;
2. ``harvest`` — the train half's failures, and reviewed production events (``store``);
3. ``data`` — preference pairs, SFT rows and provenance (:mod:`bastion.loop.dataset`);
4. ``align`` — a new adapter on top of the current model (:mod:`bastion.loop.train`);
5. ``evaluate`` — the test half and the capability questions on the candidate;
6. ``gate`` — promote or keep (:mod:`bastion.loop.gate`); ``OUT/promoted.json`` names the
   promoted model;
7. ``guard`` — every successful attack into the guard's known-attack index;
8. ``report`` — the iteration's report, and ``OUT/report.html`` / ``report.json`` over all.

With ``resume``, a stage whose marker exists is not run again: its outputs are read back.
Campaign stages also resume inside (finished items stay in ``results.jsonl``), and training
resumes from its last checkpoint when ``align.train.save_every`` is set. Iteration N starts
from iteration N−1's promoted model (the base model when nothing was promoted); its baseline
reuses the results the previous iteration already has for that model.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bastion.data.jsonl import iter_jsonl, write_jsonl
from bastion.errors import BastionError
from bastion.loop import capability, dataset, harvest
from bastion.loop.config import GuardSection, LoopConfig
from bastion.loop.evaluate import Splits, keys_of, load_splits, run_items, subset, summary_file
from bastion.loop.gate import GateDecision, Measures, decide, no_candidate
from bastion.loop.outputs import (
    Aligned,
    Baseline,
    DataCounts,
    Evaluated,
    Gated,
    GuardRefresh,
    Harvested,
    Reported,
)
from bastion.loop.progress import CampaignTicker, LoopProgress, NullProgress, Ticker
from bastion.loop.report import write_iteration_report, write_loop_report
from bastion.loop.stages import StageRunner, atomic_json
from bastion.loop.train import Aligner, AlignJob, load_chain, train_adapters
from bastion.models.base import ChatModel
from bastion.redteam.attacks import Attack, get_attacks
from bastion.redteam.campaign import Item, Judges, plan
from bastion.redteam.results import RESULTS, Result, load_results
from bastion.redteam.seeds import AttackIndex, read_seeds

STAGES = ("baseline", "harvest", "data", "align", "evaluate", "gate", "guard", "report")
PROMOTED = "promoted.json"


def known_attack_scanner(section: GuardSection) -> AttackIndex:
    from bastion.guard.scanners import KnownAttackScanner

    return KnownAttackScanner(index=section.index)


@dataclass
class LoopParts:
    """What the loop talks to. The defaults are the real thing; tests pass fakes (a scripted
    model loader, an aligner that trains nothing, scripted judges, an in-memory guard)."""

    load_model: Callable[[str, Sequence[Path], int], ChatModel] = field(
        default=lambda model, adapters, batch: load_chain(model, adapters, batch_size=batch)
    )
    align: Aligner = train_adapters
    judges: Callable[[], Judges] = Judges
    guard: Callable[[GuardSection], AttackIndex] = known_attack_scanner
    store_failures: Callable[[str], list[harvest.Failure]] = harvest.from_store
    store_attacks: Callable[[str], list[str]] = field(default=lambda target: _store_attacks(target))


@dataclass(frozen=True)
class LoopResult:
    report: dict[str, Any]  # what OUT/report.json holds
    html: Path
    json: Path
    promoted: tuple[Path, ...]  # the promoted model's adapters (empty: the base model)


def run_loop(
    config: LoopConfig,
    *,
    resume: bool = False,
    progress: LoopProgress | None = None,
    parts: LoopParts | None = None,
) -> LoopResult:
    """Run (or resume) the loop; see the module docstring."""
    return _Loop(config, resume, progress or NullProgress(), parts or LoopParts()).run()


class _Loop:
    def __init__(
        self, config: LoopConfig, resume: bool, progress: LoopProgress, parts: LoopParts
    ) -> None:
        self.config, self.resume, self.progress, self.parts = config, resume, progress, parts
        self.root = config.out
        self.stages = StageRunner(config.out, STAGES, progress)
        self._judges: Judges | None = None
        self._model: tuple[tuple[Path, ...], ChatModel] | None = None
        self.attacks: list[Attack] = get_attacks(config.redteam.attacks)
        if not self.attacks:
            raise BastionError("redteam.attacks: name at least one attack")

    # --- the run ----------------------------------------------------------------------------

    def run(self) -> LoopResult:
        self.stages.claim(self.config.fingerprint(), resume=self.resume)
        chain: tuple[Path, ...] = ()
        reports = []
        splits = self._splits()
        for n in range(1, self.config.iterations + 1):
            report, chain = self._iteration(n, chain, splits)
            reports.append(report)
        html, path, report = write_loop_report(self.root, reports, self.config)
        return LoopResult(report, html, path, chain)

    def _iteration(
        self, n: int, chain: tuple[Path, ...], splits: Splits
    ) -> tuple[dict[str, Any], tuple[Path, ...]]:
        items = self._items(splits, test_only=False)
        test_items = self._items(splits, test_only=True)
        run = self.stages.run
        run(n, "baseline", Baseline, lambda f, t: self._baseline(n, f, t, chain, items, splits))
        run(n, "harvest", Harvested, lambda f, t: self._harvest(n, f, t, items, splits))
        run(n, "data", DataCounts, lambda f, t: self._data(n, f, t, chain))
        aligned = run(n, "align", Aligned, lambda f, t: self._align(n, f, t, chain), live=False)
        candidate = (*chain, *self._paths(aligned.adapters or []))
        evaluated = run(
            n, "evaluate", Evaluated,
            lambda f, t: self._evaluate(n, f, t, aligned, candidate, test_items),
        )  # fmt: skip
        gate = run(n, "gate", Gated, lambda f, t: self._gate(n, f, t, evaluated, candidate))
        chain = tuple(self._paths(gate.chain))
        run(n, "guard", GuardRefresh, lambda f, t: self._guard(n, f, t))
        run(n, "report", Reported, lambda f, t: self._report(n, f, t))
        report = json.loads((self._folder(n, "report") / "report.json").read_text())
        return report, chain

    # --- stages -----------------------------------------------------------------------------

    def _baseline(
        self,
        n: int,
        folder: Path,
        ticker: Ticker,
        chain: tuple[Path, ...],
        items: list[Item],
        splits: Splits,
    ) -> Baseline:
        atomic_json(folder / "splits.json", splits.to_dict())
        self._reuse_previous(n, folder)
        model = self._load(chain)
        results = self._campaign(model, items, folder, ticker)
        meta = self._meta(chain)
        test = summary_file(
            folder / "summary_test.json",
            subset(results, splits.test_keys()),
            {**meta, "split": "test"},
        )
        train = keys_of([*splits.train, *splits.benign_train])
        summary_file(
            folder / "summary_train.json", subset(results, train), {**meta, "split": "train"}
        )
        cap = self._capability(model, folder)
        ticker.done(_rates(test) + f" · benign accuracy {cap.accuracy.value:.0%}")
        return Baseline(meta["model"], test["asr"], test["over_refusal"])

    def _capability(self, model: ChatModel, folder: Path) -> capability.Capability:
        """The benign-work measure in ``folder``, measured once (a resumed stage reuses it)."""
        cap_file = folder / "capability.json"
        if not cap_file.is_file():
            measured = capability.measure(
                model, max_new_tokens=self.config.capability.max_new_tokens
            )
            atomic_json(cap_file, measured.to_dict())
        return capability.Capability.from_dict(json.loads(cap_file.read_text()))

    def _harvest(
        self, n: int, folder: Path, ticker: Ticker, items: list[Item], splits: Splits
    ) -> Harvested:
        results = load_results(self._folder(n, "baseline"))
        train = keys_of([*splits.train, *splits.benign_train])
        found = harvest.from_results(
            results, items, self.attacks, train, anchors=self.config.data.anchors
        )
        overlap = 0
        if self.config.store:
            production, overlap = harvest.drop_test_overlap(
                self.parts.store_failures(self.config.store),
                [b.goal for b in [*splits.test, *splits.benign_test]],
            )
            found += production
        write_jsonl(folder / "failures.jsonl", (f.to_dict() for f in found))
        counts = harvest.counts(found)
        ticker.done(
            ", ".join(f"{src}: {sum(c.values())}" for src, c in counts.items()) or "nothing"
        )
        return Harvested(counts, overlap, len(found))

    def _data(self, n: int, folder: Path, ticker: Ticker, chain: tuple[Path, ...]) -> DataCounts:
        failures = [
            harvest.Failure.from_dict(row)
            for _, row in iter_jsonl(self._folder(n, "harvest") / "failures.jsonl")
        ]
        unanswered = {harvest.REFUSED, *([harvest.COMPLIED] if self.config.data.cai else [])}
        needs_model = any(f.kind in unanswered and not f.better for f in failures)  # best of n, CAI
        model = self._load(chain) if needs_model else None
        rows = dataset.build_rows(
            failures, model, self.judges, self.config.data, seed=self.config.seed + n - 1
        )
        counts = DataCounts.from_dict(dataset.write_data(rows, folder))
        ticker.done(f"{counts.pairs} pairs, {counts.sft} SFT rows")
        return counts

    def _align(self, n: int, folder: Path, ticker: Ticker, chain: tuple[Path, ...]) -> Aligned:
        data = self._folder(n, "data")
        pairs = self.stages.outputs(n, "data", DataCounts).pairs
        if not pairs:
            ticker.done("no training data: nothing trained")
            return Aligned(None, "no training data")
        self._model = None  # free the current model's memory for training
        settings = self.config.align.model_copy(deep=True)
        settings.train.seed += n - 1
        job = AlignJob(
            self.config.model, chain, data / dataset.PAIRS, data / dataset.SFT, folder, settings,
            progress=self.progress.live,
        )  # fmt: skip
        outcome = self.parts.align(job)
        ticker.done(f"{len(outcome.adapters)} adapter(s) trained on {pairs} pairs")
        return Aligned([self._relative(p) for p in outcome.adapters], None, outcome.summary)

    def _evaluate(
        self,
        n: int,
        folder: Path,
        ticker: Ticker,
        aligned: Aligned,
        candidate: tuple[Path, ...],
        items: list[Item],
    ) -> Evaluated:
        if not aligned.trained:
            ticker.done("skipped: nothing was trained")
            return Evaluated(skipped=aligned.reason or "nothing was trained")
        model = self._load(candidate)
        results = self._campaign(model, items, folder, ticker)
        summary = summary_file(folder / "summary.json", results, self._meta(candidate))
        cap = self._capability(model, folder)
        ticker.done(_rates(summary) + f" · benign accuracy {cap.accuracy.value:.0%}")
        return Evaluated(summary["asr"], summary["over_refusal"])

    def _gate(
        self,
        n: int,
        folder: Path,
        ticker: Ticker,
        evaluated: Evaluated,
        candidate: tuple[Path, ...],
    ) -> Gated:
        previous = self._chain_before(n)
        if evaluated.skipped is not None:
            decision = no_candidate(evaluated.skipped)
        else:
            decision = gate_files(
                self._folder(n, "baseline"),
                self._folder(n, "evaluate"),
                self.config.gate.model_dump(),
            )
        chain = candidate if decision.promote else previous
        atomic_json(folder / "gate.json", decision.to_dict())
        if decision.promote:
            atomic_json(
                self.root / PROMOTED,
                {
                    "iteration": n,
                    "model": self.config.model,
                    "adapter": str(chain[-1].resolve()),
                    "adapters": [str(p.resolve()) for p in chain],
                    "load": "bastion.loop.load_chain(model, adapters)",
                },
            )
        ticker.done(("PROMOTE: " if decision.promote else "KEEP: ") + decision.reasons[0])
        return Gated(decision, [self._relative(p) for p in chain])

    def _guard(self, n: int, folder: Path, ticker: Ticker) -> GuardRefresh:
        if not self.config.guard.refresh:
            ticker.done("skipped (guard.refresh: false)")
            return GuardRefresh(skipped="guard.refresh is off")
        texts = [row["text"] for row in read_seeds(self._folder(n, "baseline"))]
        if (self._folder(n, "evaluate") / RESULTS).is_file():
            texts += [row["text"] for row in read_seeds(self._folder(n, "evaluate"))]
        if self.config.store:
            texts += self.parts.store_attacks(self.config.store)
        texts = list(dict.fromkeys(texts))
        if not texts:
            ticker.done("no successful attacks to add")
            return GuardRefresh(0, 0, None)
        scanner = self.parts.guard(self.config.guard)
        added = int(scanner.add(texts, f"loop:{self.root.name}:iter-{n}"))
        ticker.done(f"{added} of {len(texts)} successful attack prompts new to the index")
        return GuardRefresh(len(texts), added, str(scanner.folder))

    def _report(self, n: int, folder: Path, ticker: Ticker) -> Reported:
        stages = {
            name: self.stages.record(n, name) for name in STAGES if self.stages.is_done(n, name)
        }
        html = write_iteration_report(self.root, n, stages, folder)
        ticker.done(str(html))
        return Reported(self._relative(html))

    # --- helpers ----------------------------------------------------------------------------

    @property
    def judges(self) -> Judges:
        if self._judges is None:
            self._judges = self.parts.judges()
        return self._judges

    def _folder(self, n: int, stage: str) -> Path:
        return self.stages.folder(n, stage)

    def _splits(self) -> Splits:
        stored = self._folder(1, "baseline") / "splits.json"
        if stored.is_file():
            return Splits.from_dict(json.loads(stored.read_text()))
        return load_splits(self.config.redteam)

    def _items(self, splits: Splits, *, test_only: bool) -> list[Item]:
        harmful = splits.test if test_only else [*splits.train, *splits.test]
        benign = splits.benign_test if test_only else [*splits.benign_train, *splits.benign_test]
        section = self.config.redteam
        return plan(harmful, self.attacks, section.samples, benign, seed=self.config.seed)

    def _campaign(
        self, model: ChatModel, items: list[Item], folder: Path, ticker: Ticker
    ) -> list[Result]:
        section, progress = self.config.redteam, CampaignTicker(ticker)
        return run_items(model, items, self.attacks, folder, section, self.judges, progress)

    def _load(self, chain: tuple[Path, ...]) -> ChatModel:
        if self._model is None or self._model[0] != chain:
            self._model = None  # one model in memory at a time
            loaded = self.parts.load_model(self.config.model, chain, self.config.redteam.batch_size)
            self._model = (chain, loaded)
        return self._model[1]

    def _reuse_previous(self, n: int, folder: Path) -> None:
        """Iteration N's model was measured by iteration N−1 already (its evaluate stage when
        it was promoted, its baseline otherwise): start from those results."""
        if n == 1 or (folder / RESULTS).exists():
            return
        gate = self.stages.outputs(n - 1, "gate", Gated)
        source = self._folder(n - 1, "evaluate" if gate.decision.promote else "baseline")
        for name in (RESULTS, "capability.json"):
            if (source / name).is_file():
                shutil.copyfile(source / name, folder / name)

    def _chain_before(self, n: int) -> tuple[Path, ...]:
        if n == 1:
            return ()
        gate = self.stages.outputs(n - 1, "gate", Gated)
        return tuple(self._paths(gate.chain))

    def _meta(self, chain: tuple[Path, ...]) -> dict[str, Any]:
        model = self.config.model + "".join(f" + {self._relative(p)}" for p in chain)
        return {
            "target": model,
            "model": model,
            "behaviors": self.config.redteam.behaviors,
            "attacks": [a.name for a in self.attacks],
            "samples": self.config.redteam.samples,
            "seed": self.config.seed,
            "max_new_tokens": self.config.redteam.max_new_tokens,
        }

    def _relative(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)

    def _paths(self, values: Sequence[str]) -> list[Path]:
        return [p if (p := Path(v)).is_absolute() else self.root / p for v in values]


def gate_files(baseline: Path, evaluate: Path, policy: dict[str, Any]) -> GateDecision:
    """The gate on the numbers the two stages wrote (test half, capability); ``policy`` is
    :func:`~bastion.loop.gate.decide`'s keyword arguments."""

    def measures(folder: Path, summary: str) -> Measures:
        cap = capability.Capability.from_dict(json.loads((folder / "capability.json").read_text()))
        return Measures.from_summary(json.loads((folder / summary).read_text()), cap)

    before = measures(baseline, "summary_test.json")
    after = measures(evaluate, "summary.json")
    return decide(before, after, **policy)


def _store_attacks(target: str) -> list[str]:
    """Prompts people judged unsafe in an event store (for the guard's index)."""
    from bastion.monitor.export import export_rows
    from bastion.monitor.store import EventStore
    from bastion.monitor.web import reviewed_items

    with EventStore(target, journal=False) as store:  # reads only, beside the gateway
        return [str(row["text"]) for row in export_rows(reviewed_items(store, {}), "attacks")]


def _rates(summary: dict[str, Any]) -> str:
    asr, over = summary["asr"], summary["over_refusal"]
    return (
        f"test ASR {asr['rate']:.0%} ({asr['hits']}/{asr['n']}) · over-refusal "
        f"{over['rate']:.0%} ({over['hits']}/{over['n']})"
    )
