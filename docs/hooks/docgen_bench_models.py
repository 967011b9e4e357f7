"""Tables of the model, training, red-team and guard benchmarks, read from their JSON.

Each renderer takes the JSON files a page names (paths from the repository root) and returns
Markdown; a key missing from a file fails the build with the file and the key.
"""

from __future__ import annotations

from typing import Any

from docgen_table import code, file_name, number, percent, table, text


def generate(runs: dict[str, Any]) -> str:
    rows = []
    for path, run in runs.items():
        for row in run["rows"]:
            rows.append(
                [
                    row["batch"],
                    row["prompts"],
                    number(row["bastion"]["tok_per_s"], 1),
                    number(row["plain"]["tok_per_s"], 1),
                    f"{row['bastion_vs_plain']:.2f}",
                    _tok(row.get("plain+sorted")),
                    _tok(row.get("plain+static-cache")),
                    code(file_name(path)),
                ]
            )
    return table(
        [
            "batch",
            "prompts",
            "Bastion tok/s",
            "plain tok/s",
            "Bastion / plain",
            "plain, sorted",
            "plain, static KV cache",
            "JSON",
        ],
        rows,
        numeric={0, 1, 2, 3, 4, 5, 6},
    )


def _tok(variant: dict[str, Any] | None) -> str:
    return "–" if variant is None else number(variant["tok_per_s"], 1)


def align_vs_trl(runs: dict[str, Any]) -> str:
    parts = []
    for path, run in runs.items():
        rows = []
        for model, result in run["models"].items():
            first = True
            for variant, figures in result.items():
                if not isinstance(figures, dict):
                    continue
                speed = result.get(f"speed_vs_{variant}")
                label = (
                    f"{model}, {run['pairs'][model]} pairs, {result['training_tokens']:,} tokens"
                )
                rows.append(
                    [
                        text(label) if first else "",
                        code(variant),
                        number(figures["tok_per_s"], 1),
                        number(figures["peak_rss_gib"], 2),
                        f"{figures['first_batch_loss']:.6f}",
                        "–" if speed is None else f"{speed:.2f}×",
                    ]
                )
                first = False
        parts.append(
            f"{run['loss'].upper()}, batch size {run['batch_size']}, {run['dtype']} "
            f"({code(file_name(path))}; {text(run.get('measured', ''))}):\n\n"
            + table(
                [
                    "model, data",
                    "run",
                    "tokens/s",
                    "peak RSS (GiB)",
                    "first-batch loss",
                    "Bastion's speed over this run's",
                ],
                rows,
                numeric={2, 3, 4, 5},
            )
        )
    return "\n\n".join(parts)


def ppo_step(runs: dict[str, Any]) -> str:
    phases = [
        ("generation_s", "generation"),
        ("scoring_s", "scoring"),
        ("update_s", "update"),
        ("total_s", "whole iteration"),
    ]
    headers = ["phase (s, mean after the warm-up iteration)"]
    for path in runs:
        headers += [f"Bastion ({code(file_name(path))})", "TRL", "TRL / Bastion"]
    rows = []
    for key, label in phases:
        row: list[object] = [label]
        for run in runs.values():
            trl = run.get("trl", {}).get("mean_after_warmup", {})
            ratio = run.get("ratios_trl_over_bastion", {}).get(key)
            row += [
                number(run["bastion"]["mean_after_warmup"][key]),
                number(trl.get(key)),
                "–" if ratio is None else f"{ratio:.2f}×",
            ]
        rows.append(row)
    return table(headers, rows, numeric=range(1, len(headers)))


def redteam_vs_garak(runs: dict[str, Any]) -> str:
    rows = []
    for path, run in runs.items():
        rows.append(
            [
                code(file_name(path)),
                run["garak"]["prompts"],
                number(run["garak"]["wall_s"], 1),
                number(run["bastion"]["wall_s"], 1),
                number(run["prompts_per_s"]["garak"]),
                number(run["prompts_per_s"]["bastion"]),
                f"{run['ratio_end_to_end']:.1f}×",
                f"{run['ratio_steady']:.1f}×",
                number(run["garak"]["peak_rss_mib"], 0),
                number(run["bastion"]["peak_rss_mib"], 0),
            ]
        )
    return table(
        [
            "JSON",
            "prompts",
            "garak wall (s)",
            "Bastion wall (s)",
            "garak prompts/s",
            "Bastion prompts/s",
            "ratio, end to end",
            "ratio, steady state",
            "garak peak RSS (MiB)",
            "Bastion peak RSS (MiB)",
        ],
        rows,
        numeric={1, 2, 3, 4, 5, 6, 7, 8, 9},
    )


def guard_by_source(runs: dict[str, Any]) -> str:
    parts = []
    for path, run in runs.items():
        out, inside = run["out_of_source"], run["in_source"]
        pooled = table(
            ["", "harmful or attack texts caught", "benign texts blocked", "benign texts reviewed"],
            [
                [
                    label,
                    percent(split["pooled"]["tpr"]),
                    percent(split["pooled"]["fpr"]),
                    percent(split["pooled"]["review_rate"]),
                ]
                for label, split in (("out of source (pooled)", out), ("in source", inside))
                if split is not None
            ],  # the encoder's folds have no in-source split
            numeric={1, 2, 3},
        )
        rows = [
            [
                code(s["source"]),
                number(s["positives"]),
                number(s["negatives"]),
                _share(s["caught"], s["positives"]),
                _share(s["blocked"], s["negatives"]),
                _share(s["reviewed"], s["negatives"]),
                number(s["roc_auc"], 3),
            ]
            for s in out["sources"]
        ]
        per_source = table(
            [
                "held-out source",
                "positives",
                "negatives",
                "caught",
                "blocked",
                "reviewed",
                "ROC-AUC",
            ],
            rows,
            numeric={1, 2, 3, 4, 5, 6},
        )
        folds = f", sources held out in {out['folds']} groups" if out.get("folds") else ""
        parts.append(
            f"#### Task {code(run['task'])} "
            f"({code(file_name(path))}, {run['examples']:,} examples{folds})\n\n"
            f"Thresholds: block at {percent(out['target_fpr'])} and review at "
            f"{percent(out['review_fpr'])} false positives on the other sources.\n\n"
            f"{pooled}\n\n{per_source}"
        )
    return "\n\n".join(parts)


def _share(count: int, total: int) -> str:
    return "–" if not total else f"{100 * count / total:.1f}% ({count:,})"


def guard_latency(runs: dict[str, Any]) -> str:
    labels = {
        "bastion_default_input_plus_output_ms": "Bastion default input + output stacks, 1 KB texts",
        "bastion_ngram_only_input_plus_output_ms": "the same, n-gram stages only",
        "bastion_default_on_requests_ms": "Bastion default, single requests",
        "bastion_ngram_only_on_requests_ms": "the same, n-gram stages only",
        "bastion_pii_only_ms": "the PII scanner alone",
        "presidio_pattern_recognizers_ms": "Presidio's pattern recognizers",
        "llm_guard_offline_input_scanners_ms": (
            "LLM Guard's four offline input scanners, 1 KB texts"
        ),
    }
    rows = []
    for path, run in runs.items():
        for key, label in labels.items():
            figures = run.get(key)
            if figures is None:
                continue
            if "skipped" in figures:
                rows.append(
                    [text(label), "–", "–", "–", "–", "–", text(f"skipped: {figures['skipped']}")]
                )
                continue
            rows.append(
                [
                    text(label),
                    number(figures["p50"]),
                    number(figures["p95"]),
                    number(figures["p99"]),
                    number(figures.get("texts_per_s_2_processes"), 0),
                    percent(figures.get("harmful_encoder_share"), 0)
                    if "harmful_encoder_share" in figures
                    else "–",
                    code(file_name(path)),
                ]
            )
    return table(
        [
            "stack",
            "p50 (ms)",
            "p95 (ms)",
            "p99 (ms)",
            "texts/s, 2 processes",
            "encoder read",
            "JSON",
        ],
        rows,
        numeric={1, 2, 3, 4, 5},
    )


def _decisions(runs: dict[str, Any], noun: str, blocked_key: str, blocked_what: str) -> str:
    """A table of the input policy's decisions per kind of text, for each run."""
    parts = []
    for path, run in runs.items():
        rows = []
        for kind, counts in run["kinds"].items():
            total = counts["messages"]
            rows.append(
                [text(kind), total]
                + [_share(counts.get(a, 0), total) for a in ("allow", "review", "mask", "block")]
            )
        blocked_by = ", ".join(f"{r} {n}" for r, n in run[blocked_key].items()) or "none"
        weights = f"{text(run['weights'])}; " if "weights" in run else ""
        parts.append(
            table(
                ["kind", noun, "allowed", "reviewed", "masked", "blocked"],
                rows,
                numeric={1, 2, 3, 4, 5},
            )
            + f"\n\n{blocked_what} blocked by: {text(blocked_by)} "
            f"({weights}policy {code(run['policy'])}, {code(file_name(path))})."
        )
    return "\n\n".join(parts)


def guard_short(runs: dict[str, Any]) -> str:
    return _decisions(runs, "messages", "blocked_by", "Messages")


def guard_system_prompts(runs: dict[str, Any]) -> str:
    return _decisions(runs, "prompts", "benign_blocked_by", "Benign prompts")


def pii_f1(runs: dict[str, Any]) -> str:
    parts = []
    for path, run in runs.items():
        sides = [s for s in ("bastion", "presidio") if s in run]
        entities = list(run["bastion"]["per_entity"])
        rows = []
        for entity in entities:
            row: list[object] = [code(entity)]
            for side in sides:
                e = run[side]["per_entity"][entity]
                row += [f"{e['precision']:.3f}", f"{e['recall']:.3f}", f"{e['f1']:.3f}"]
            rows.append(row)
        micro = [cell for s in sides for cell in ("", "", f"**{run[s]['micro_f1']:.3f}**")]
        latency = [cell for s in sides for cell in ("", "", number(run[s]["latency_ms_p50"]))]
        rows += [["micro F1", *micro], ["p50 per sentence (ms)", *latency]]
        headers = ["entity", *(h for s in sides for h in (f"{s} precision", "recall", "F1"))]
        parts.append(
            f"{run['sentences']} sentences ({code(file_name(path))}):\n\n"
            + table(headers, rows, numeric=range(1, len(headers)))
        )
    return "\n\n".join(parts)


RENDERERS = {
    "generate": generate,
    "align_vs_trl": align_vs_trl,
    "ppo_step": ppo_step,
    "redteam_vs_garak": redteam_vs_garak,
    "guard_by_source": guard_by_source,
    "guard_latency": guard_latency,
    "guard_short": guard_short,
    "guard_system_prompts": guard_system_prompts,
    "pii_f1": pii_f1,
}
