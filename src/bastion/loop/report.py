"""The loop's report: ``report.json`` and one self-contained HTML page (inline SVG, no
scripts, no external files), per iteration and over all of them.

Every number comes from the stage outputs on disk (the summaries the campaigns wrote from
their ``results.jsonl``, the capability files, ``gate.json``, the data counts), so the report
can always be checked against them. The page shows the before/after table with Wilson 95%
intervals, the gate's decision and reasons, ASR against over-refusal (the base model, then one
point per iteration), ASR by family before and after, how much data each source gave, and —
as short single-line excerpts only — the attacks that succeeded before and those that still
succeed after.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bastion.loop.config import LoopConfig
from bastion.redteam.report import STYLE, bar_chart, scatter_plot
from bastion.redteam.results import RESULTS, excerpt, load_results

EXAMPLES = 8


def iteration_report(root: Path, n: int, stages: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One iteration's numbers, read from its stage folders."""
    folder = root / f"iter-{n}"
    baseline, evaluate = folder / "baseline", folder / "evaluate"
    before = _measured(baseline, "summary_test.json")
    after = _measured(evaluate, "summary.json") if (evaluate / "summary.json").is_file() else None
    tax = None
    if after is not None:
        b, a = before["capability"], after["capability"]
        loglik = None
        if b["loglik"] is not None and a["loglik"] is not None:
            loglik = b["loglik"] - a["loglik"]
        tax = {"accuracy": b["accuracy"]["rate"] - a["accuracy"]["rate"], "loglik": loglik}
    train = _read(baseline / "summary_train.json")
    gate_file = folder / "gate" / "gate.json"
    outputs = {name: record.get("outputs", {}) for name, record in stages.items()}
    data = outputs.get("data", {})
    return {
        "iteration": n,
        "model_before": outputs.get("baseline", {}).get("model"),
        "model_after": after["model"] if after else None,
        "before": before,
        "after": after,
        "tax": tax,
        "train_split": {"asr": train["asr"], "over_refusal": train["over_refusal"]},
        "gate": _read(gate_file) if gate_file.is_file() else None,
        "harvest": outputs.get("harvest", {}),
        "data": {k: data.get(k) for k in ("pairs", "sft", "by_source", "by_kind", "chosen_from")},
        "dropped": data.get("dropped", {}),
        "align": outputs.get("align", {}),
        "guard": outputs.get("guard", {}),
        "seconds": {name: record.get("seconds") for name, record in stages.items()},
        "succeeded_before": _examples(baseline, test_only=True),
        "still_succeeding": _examples(evaluate, test_only=False) if after else [],
    }


def write_iteration_report(
    root: Path, n: int, stages: dict[str, dict[str, Any]], folder: Path
) -> Path:
    report = iteration_report(root, n, stages)
    (folder / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    path = folder / "report.html"
    path.write_text(render_html([report], f"Bastion loop — iteration {n}"), encoding="utf-8")
    return path


def write_loop_report(
    root: Path, reports: Sequence[dict[str, Any]], config: LoopConfig
) -> tuple[Path, Path, dict[str, Any]]:
    """``OUT/report.json`` and ``OUT/report.html`` over every iteration."""
    promoted = _read(root / "promoted.json") if (root / "promoted.json").is_file() else None
    report = {
        "model": config.model,
        "out": str(root),
        "iterations": list(reports),
        "promoted": promoted,
        "config": config.model_dump(mode="json"),
    }
    json_path = root / "report.json"
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    html_path = root / "report.html"
    html_path.write_text(render_html(reports, "Bastion loop"), encoding="utf-8")
    return html_path, json_path, report


def _measured(folder: Path, summary_name: str) -> dict[str, Any]:
    summary = _read(folder / summary_name)
    return {
        "model": summary.get("model"),
        "asr": summary["asr"],
        "over_refusal": summary["over_refusal"],
        "by_family": summary["by_family"],
        "capability": _read(folder / "capability.json"),
    }


def _examples(folder: Path, *, test_only: bool) -> list[dict[str, str]]:
    if not (folder / RESULTS).is_file():
        return []
    keys = None
    if test_only:
        splits = _read(folder / "splits.json")
        keys = {(r["source"], r["id"]) for r in splits["test"]}
    hits = [
        r
        for r in load_results(folder)
        if r.kind == "attack" and r.success and (keys is None or (r.source, r.behavior_id) in keys)
    ]
    return [
        {"attack": r.attack, "category": r.category, "prompt": excerpt(r.prompt, 60),
         "response": excerpt(r.response)}
        for r in hits[:EXAMPLES]
    ]  # fmt: skip


def _read(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


# --- HTML ---------------------------------------------------------------------------------


def _pct(x: float | None) -> str:
    return "-" if x is None or x != x else f"{x:.1%}"


def _rate(r: dict[str, Any] | None) -> str:
    if not r:
        return "-"
    return f"{_pct(r['rate'])} <span class='muted'>[{_pct(r['low'])}, {_pct(r['high'])}] " \
        f"({r['hits']}/{r['n']})</span>"  # fmt: skip


def _loglik(cap: dict[str, Any] | None) -> str:
    if not cap or cap.get("loglik") is None:
        return "-"
    return f"{cap['loglik']:.3f}"


def _before_after(report: dict[str, Any]) -> str:
    before, after = report["before"], report["after"] or {}
    rows = [
        ("attack success (test behaviours)", _rate(before["asr"]), _rate(after.get("asr"))),
        ("over-refusal (test benign prompts)", _rate(before["over_refusal"]),
         _rate(after.get("over_refusal"))),
        ("benign accuracy (capability)", _rate(before["capability"]["accuracy"]),
         _rate((after.get("capability") or {}).get("accuracy"))),
        ("reference log-likelihood (nats/token)", _loglik(before["capability"]),
         _loglik(after.get("capability"))),
    ]  # fmt: skip
    body = "".join(f"<tr><td>{a}</td><td>{b}</td><td>{c}</td></tr>" for a, b, c in rows)
    return f"<table><tr><th></th><th>before</th><th>after</th></tr>{body}</table>"


def _gate(report: dict[str, Any]) -> str:
    gate = report.get("gate")
    if not gate:
        return "<p>no decision</p>"
    colour = "#067647" if gate["promote"] else "#b42318"
    verdict = "promoted" if gate["promote"] else "kept the previous model"
    reasons = "".join(f"<li>{html.escape(r)}</li>" for r in gate["reasons"])
    return f'<p class="big" style="color:{colour}">{verdict}</p><ul>{reasons}</ul>'


def _families(report: dict[str, Any]) -> str:
    before = report["before"]["by_family"]
    after = (report["after"] or {}).get("by_family", {})
    names = sorted(set(before) | set(after))
    rows = "".join(
        f"<tr><td>{html.escape(f)}</td><td>{_rate(before.get(f))}</td>"
        f"<td>{_rate(after.get(f))}</td></tr>"
        for f in names
    )
    table = f"<table><tr><th>family</th><th>before</th><th>after</th></tr>{rows}</table>"
    bars = bar_chart({f"{f} (before)": before[f] for f in before}, "ASR by family, before")
    if after:
        bars += bar_chart({f"{f} (after)": after[f] for f in after}, "ASR by family, after")
    return table + bars


def _data(report: dict[str, Any]) -> str:
    harvested = report["harvest"].get("by_source", {})
    rows = "".join(
        f"<tr><td>{html.escape(source)}</td>"
        + "".join(
            f"<td class='num'>{counts.get(k, 0)}</td>" for k in ("harmful", "benign", "anchor")
        )
        + "</tr>"
        for source, counts in harvested.items()
    )
    data = report["data"]
    chosen = "".join(
        f"<tr><td>{html.escape(k)}</td><td class='num'>{v}</td></tr>"
        for k, v in (data.get("chosen_from") or {}).items()
    )
    dropped = "".join(
        f"<tr><td>{html.escape(k)}</td><td class='num'>{v}</td></tr>"
        for k, v in (report.get("dropped") or {}).items()
    )
    overlap = report["harvest"].get("dropped_test_overlap", 0)
    return (
        "<table><tr><th>source</th><th>harmful requests complied with</th>"
        "<th>benign requests refused</th><th>benign answered (anchors)</th></tr>"
        f"{rows}</table>"
        f"<p>{data.get('pairs') or 0} preference pairs and {data.get('sft') or 0} SFT rows; "
        f"{overlap} production prompts dropped for matching a test prompt.</p>"
        f"<table><tr><th>chosen answer from</th><th>pairs</th></tr>{chosen}</table>"
        + (f"<table><tr><th>not used, because</th><th>rows</th></tr>{dropped}</table>"
           if dropped else "")
    )  # fmt: skip


def _examples_table(examples: Sequence[dict[str, str]]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(e['attack'])}</td><td>{html.escape(e['category'])}</td>"
        f"<td>{html.escape(e['prompt'])}</td><td>{html.escape(e['response'])}</td></tr>"
        for e in examples
    )
    if not rows:
        return "<p>none</p>"
    return (
        "<table><tr><th>attack</th><th>category</th><th>prompt</th><th>response</th></tr>"
        f"{rows}</table>"
    )


def _summary_table(reports: Sequence[dict[str, Any]]) -> str:
    rows = []
    for r in reports:
        after = r["after"] or {}
        decision = (r.get("gate") or {}).get("decision", "-")
        rows.append(
            f"<tr><td>{r['iteration']}</td><td>{_rate(r['before']['asr'])}</td>"
            f"<td>{_rate(after.get('asr'))}</td><td>{_rate(r['before']['over_refusal'])}</td>"
            f"<td>{_rate(after.get('over_refusal'))}</td><td>{html.escape(decision)}</td></tr>"
        )
    return (
        "<table><tr><th>iteration</th><th>ASR before</th><th>ASR after</th>"
        "<th>over-refusal before</th><th>over-refusal after</th><th>gate</th></tr>"
        f"{''.join(rows)}</table>"
    )


def scatter_points(reports: Sequence[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """ASR against over-refusal: the first model, then one point per iteration's candidate."""
    if not reports:
        return []
    points = [("base", reports[0]["before"])]
    points += [(f"iter {r['iteration']}", r["after"]) for r in reports if r["after"]]
    return points


def render_html(reports: Sequence[dict[str, Any]], title: str) -> str:
    sections = []
    for r in reports:
        seconds = sum(v for v in r["seconds"].values() if v)
        sections.append(
            f"<h2>Iteration {r['iteration']}</h2>"
            f"<p class='muted'>{html.escape(str(r['model_before']))} → "
            f"{html.escape(str(r['model_after'] or '(nothing trained)'))} · "
            f"{seconds / 60:.1f} min</p>"
            f"{_before_after(r)}<h3>Gate</h3>{_gate(r)}"
            f"<h3>Attack success by family</h3>{_families(r)}"
            f"<h3>Training data by source</h3>{_data(r)}"
            "<h3>Successful attacks before (redacted excerpts)</h3>"
            f"{_examples_table(r['succeeded_before'])}"
            "<h3>Attacks that still succeed after (redacted excerpts)</h3>"
            f"{_examples_table(r['still_succeeding'])}"
        )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{STYLE}</style></head><body>
<h1>{html.escape(title)}</h1>
{_summary_table(reports)}
<h2>Attack success against over-refusal</h2>{scatter_plot(scatter_points(reports))}
{"".join(sections)}
<p class="muted">Test half only (behaviours and benign prompts split by a stable hash, never
trained on). Success: not refused and judged harmful. Intervals are Wilson 95%.</p>
</body></html>
"""
